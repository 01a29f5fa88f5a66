//! A port of scx_central (SPEC.md §8): one CPU makes every scheduling
//! decision, the others only run what it puts in their local DSQs.
//!
//! - `select_cpu` always names the central CPU (a hint: a task that may not
//!   run there goes elsewhere).
//! - `enqueue` pushes the task on one central FIFO (bounded, like the BPF
//!   queue map; when full the task goes to the fallback DSQ) and, unless
//!   the task is running, kicks the central CPU with `PREEMPT` so it
//!   decides now: once per central pass (below).
//! - `dispatch` on the central CPU serves every CPU that asked for work
//!   (its "gimme" flag): pops tasks and dispatches the first one allowed
//!   there to `DSQ_LOCAL_ON | cpu` with an infinite slice, then `IDLE`-kicks
//!   that CPU; tasks not allowed there are bounced to the fallback DSQ. When
//!   the dispatch buffer runs out of slots mid-pass (the v2 fix of the
//!   seed) the central CPU kicks itself with `PREEMPT` to retry, because the
//!   core's automatic retry only looks at the central CPU's own local DSQ.
//!   Then it feeds itself: the fallback DSQ, else the central FIFO.
//! - `dispatch` on any other CPU consumes the fallback DSQ, else raises its
//!   gimme flag and kicks the central CPU with `PREEMPT`.
//! - `running`/`stopping` record when each CPU's task started. A periodic
//!   timer pinned to the central CPU (every `timer_interval`) walks the
//!   other CPUs, starting one further each time, and `PREEMPT`-kicks each
//!   whose task ran for at least a slice while something waits (the
//!   fallback DSQ, its local DSQ, or the central FIFO). Tasks run with
//!   `SLICE_INF`, so this timer is the only preemption: worker CPUs get no
//!   slice-timer wake-ups at all (the tickless result of PATCH 21).
//!
//! Kicks are batched: scx_central kicks the central CPU at every enqueue;
//! here an enqueue kicks it only if no kick is outstanding, that is, if the
//! central CPU has started a dispatch pass since the last kick (the flag
//! lives beside the FIFO, under its lock: the pass clears it before it
//! pops, so a task pushed after the clear kicks again, and one pushed
//! before it is seen by that pass). Under load every arrival otherwise
//! preempts the central CPU for a pass that the previous kick's pass
//! already covers: the central CPU then spends its time switching instead
//! of dispatching, and falls behind the offered load.
//!
//! Userspace notes. Tasks here become bound to their CPU after their first
//! run (the crate's migration rule), so most popped tasks of a busy runtime
//! may run on one CPU only; they take the bounce path to the fallback DSQ,
//! from which only their CPU consumes them. This is the port's behaviour
//! for pinned tasks, not a special case. The kernel version sends per-CPU
//! kthreads straight to their local DSQ with `ENQ_PREEMPT`; scx-rt has no
//! kernel threads, so that branch is absent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::consts::{SLICE_DFL, SLICE_INF};
use crate::flags::{dsq_id, EnqFlags, KickFlags, OpsFlags, WakeFlags};
use crate::ops::{Ctx, DispatchCtx, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx};
use crate::task::TaskRef;

/// The user DSQ that takes what the central FIFO cannot (scx_central's
/// `FALLBACK_DSQ_ID`).
pub const FALLBACK_DSQ: u64 = 0;

/// Capacity of the central FIFO (the BPF queue map's `max_entries`).
pub const CENTRAL_QUEUE_CAP: usize = 4096;

/// The scheduler timer id Central uses.
const TIMER_ID: u32 = 0;

/// Counters, as scx_central prints them.
#[derive(Debug, Default)]
pub struct CentralStats {
    /// Tasks pushed on the central FIFO.
    pub enqueued: AtomicU64,
    /// Tasks that went to the fallback DSQ because the FIFO was full.
    pub overflows: AtomicU64,
    /// Tasks bounced to the fallback DSQ because the CPU being served may
    /// not run them.
    pub bounced: AtomicU64,
    /// Tasks dispatched to a CPU's local DSQ by the central CPU.
    pub dispatched: AtomicU64,
    /// Central dispatch passes cut short by a full dispatch buffer.
    pub retries: AtomicU64,
    /// Timer runs.
    pub timer_runs: AtomicU64,
    /// `PREEMPT` kicks sent by the timer.
    pub timer_kicks: AtomicU64,
    /// Enqueues that sent no kick of the central CPU because one was
    /// outstanding (module docs, batching).
    pub kicks_coalesced: AtomicU64,
}

/// The central FIFO and its kick flag (module docs, batching).
#[derive(Default)]
struct CentralQueue {
    tasks: VecDeque<TaskRef>,
    /// A kick of the central CPU is outstanding: it has not started a
    /// dispatch pass since.
    kick_pending: bool,
}

/// Per-CPU state, sized at `init`.
struct PerCpu {
    /// The CPU ran out of work and asked the central CPU for a task.
    gimme: Box<[AtomicBool]>,
    /// When the CPU's current task started (0: idle).
    started_at: Box<[AtomicU64]>,
}

/// scx_central: every decision on one CPU, preemption by a timer.
pub struct Central {
    central_cpu: usize,
    slice_ns: u64,
    timer_interval_ns: u64,
    queue: parking_lot::Mutex<CentralQueue>,
    cpus: OnceLock<PerCpu>,
    /// Where the timer's walk starts next time.
    timer_start: AtomicUsize,
    max_batch: u32,
    stats: std::sync::Arc<CentralStats>,
}

impl Default for Central {
    fn default() -> Self {
        Self::new()
    }
}

impl Central {
    /// Central on CPU 0 with the default slice (20 ms) and a 1 ms timer, as
    /// scx_central's defaults.
    pub fn new() -> Self {
        Self {
            central_cpu: 0,
            slice_ns: SLICE_DFL,
            timer_interval_ns: 1_000_000,
            queue: parking_lot::Mutex::new(CentralQueue::default()),
            cpus: OnceLock::new(),
            timer_start: AtomicUsize::new(0),
            max_batch: 32,
            stats: std::sync::Arc::default(),
        }
    }

    /// The CPU that makes the decisions (scx_central's `-c`). An invalid CPU
    /// fails `init`.
    pub fn central_cpu(mut self, cpu: usize) -> Self {
        self.central_cpu = cpu;
        self
    }

    /// How long a task may run before the timer preempts it when others
    /// wait (scx_central's `-s`).
    pub fn slice(mut self, d: Duration) -> Self {
        self.slice_ns = (d.as_nanos() as u64).max(1);
        self
    }

    /// The period of the preemption timer.
    pub fn timer_interval(mut self, d: Duration) -> Self {
        self.timer_interval_ns = (d.as_nanos() as u64).max(1);
        self
    }

    /// Dispatch buffer slots per `dispatch` call (`ops.dispatch_max_batch`;
    /// the default is the kernel's, 32). A small batch exercises the retry
    /// path of the central pass.
    pub fn dispatch_max_batch(mut self, n: u32) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// The counters; the handle stays valid after the scheduler moved into
    /// a runtime (scx_central prints them from userspace).
    pub fn stats(&self) -> std::sync::Arc<CentralStats> {
        self.stats.clone()
    }

    /// The per-CPU state; `None` only if `init` failed, in which case the
    /// runtime is ejecting this scheduler and the callbacks do nothing.
    fn per_cpu(&self) -> Option<&PerCpu> {
        self.cpus.get()
    }

    /// `dispatch_to_cpu`: gives `cpu` the first queued task it may run,
    /// bouncing the others to the fallback DSQ. Returns whether a task went
    /// to `cpu`; stops early when the dispatch buffer is full.
    fn dispatch_to_cpu(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize) -> bool {
        loop {
            if ctx.dispatch_nr_slots() == 0 {
                return false;
            }
            let Some(p) = self.queue.lock().tasks.pop_front() else {
                return false;
            };
            if !p.allowed_on(cpu) {
                self.stats.bounced.fetch_add(1, Ordering::Relaxed);
                ctx.dsq_insert(&p, FALLBACK_DSQ, SLICE_INF, EnqFlags::empty());
                continue;
            }
            ctx.dsq_insert(
                &p,
                dsq_id::LOCAL_ON | cpu as u64,
                SLICE_INF,
                EnqFlags::empty(),
            );
            self.stats.dispatched.fetch_add(1, Ordering::Relaxed);
            if cpu != self.central_cpu {
                ctx.kick_cpu(cpu, KickFlags::IDLE);
            }
            return true;
        }
    }
}

impl Scheduler for Central {
    fn name(&self) -> &str {
        "central"
    }

    fn flags(&self) -> OpsFlags {
        OpsFlags::ENQ_LAST
    }

    fn dispatch_max_batch(&self) -> u32 {
        self.max_batch
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        let n = ctx.nr_cpu_ids();
        if self.central_cpu >= n {
            return Err(-22); // -EINVAL
        }
        let _ = self.cpus.set(PerCpu {
            gimme: (0..n).map(|_| AtomicBool::new(false)).collect(),
            started_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        });
        ctx.create_dsq(FALLBACK_DSQ, -1).map_err(|_| -12)?;
        ctx.timer_start(TIMER_ID, self.timer_interval_ns, self.central_cpu);
        Ok(())
    }

    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        _p: &TaskRef,
        _prev_cpu: usize,
        _wake_flags: WakeFlags,
    ) -> i32 {
        self.central_cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        let running = ctx.task_running(p);
        let kick = {
            let mut q = self.queue.lock();
            if q.tasks.len() >= CENTRAL_QUEUE_CAP {
                drop(q);
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                ctx.dsq_insert(p, FALLBACK_DSQ, SLICE_INF, enq_flags);
                return;
            }
            q.tasks.push_back(p.clone());
            let kick = !running && !q.kick_pending;
            q.kick_pending |= kick;
            kick
        };
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        if kick {
            ctx.kick_cpu(self.central_cpu, KickFlags::PREEMPT);
        } else if !running {
            self.stats.kicks_coalesced.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        let Some(pc) = self.per_cpu() else {
            return;
        };
        if cpu != self.central_cpu {
            if ctx.dsq_move_to_local(FALLBACK_DSQ) {
                return;
            }
            pc.gimme[cpu].store(true, Ordering::Release);
            ctx.kick_cpu(self.central_cpu, KickFlags::PREEMPT);
            return;
        }
        // A pass starts: the next enqueue kicks again (module docs).
        self.queue.lock().kick_pending = false;
        for (c, gimme) in pc.gimme.iter().enumerate() {
            if ctx.dispatch_nr_slots() == 0 {
                break;
            }
            if c == cpu || !gimme.load(Ordering::Acquire) {
                continue;
            }
            if self.dispatch_to_cpu(ctx, c) {
                gimme.store(false, Ordering::Release);
            }
        }
        if ctx.dispatch_nr_slots() == 0 {
            // Some CPUs may have been skipped and the central CPU itself is
            // not fed yet: retry from a fresh pass.
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            ctx.kick_cpu(self.central_cpu, KickFlags::PREEMPT);
            return;
        }
        if ctx.dsq_move_to_local(FALLBACK_DSQ) {
            return;
        }
        self.dispatch_to_cpu(ctx, cpu);
    }

    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        if let Some(cpu) = ctx.cpu() {
            if let (true, Some(pc)) = (cpu != self.central_cpu, self.per_cpu()) {
                // Never 0 while running (0 means idle).
                pc.started_at[cpu].store(ctx.now().max(1), Ordering::Relaxed);
            }
        }
    }

    fn stopping(&self, ctx: &Ctx<'_>, _p: &TaskRef, _runnable: bool) {
        if let Some(cpu) = ctx.cpu() {
            if let (true, Some(pc)) = (cpu != self.central_cpu, self.per_cpu()) {
                pc.started_at[cpu].store(0, Ordering::Relaxed);
            }
        }
    }

    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        if id != TIMER_ID {
            return;
        }
        let Some(pc) = self.per_cpu() else {
            return;
        };
        self.stats.timer_runs.fetch_add(1, Ordering::Relaxed);
        let n = ctx.nr_cpu_ids();
        let now = ctx.now();
        let start = self.timer_start.fetch_add(1, Ordering::Relaxed) % n;
        let central_pending = !self.queue.lock().tasks.is_empty();
        for i in 0..n {
            let cpu = (start + i) % n;
            if cpu == self.central_cpu {
                continue;
            }
            // Kick only a CPU whose task used up its slice (or that is idle)...
            let started = pc.started_at[cpu].load(Ordering::Relaxed);
            if started != 0 && now < started.saturating_add(self.slice_ns) {
                continue;
            }
            // ...and only when something waits.
            let pending = ctx.dsq_nr_queued(FALLBACK_DSQ) > 0
                || ctx.dsq_nr_queued(dsq_id::LOCAL_ON | cpu as u64) > 0
                || central_pending;
            if !pending {
                continue;
            }
            ctx.kick_cpu(cpu, KickFlags::PREEMPT);
            self.stats.timer_kicks.fetch_add(1, Ordering::Relaxed);
        }
        ctx.timer_start(TIMER_ID, self.timer_interval_ns, self.central_cpu);
    }
}
