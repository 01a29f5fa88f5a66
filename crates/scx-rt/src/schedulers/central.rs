//! A port of scx_central (SPEC.md §8): one CPU makes every scheduling
//! decision, the others only run what it puts in their local DSQs.
//!
//! # The policy, as scx_central has it
//!
//! - `select_cpu` always names the central CPU (a hint: a task that may not
//!   run there goes elsewhere).
//! - `enqueue` pushes the task on one central FIFO (bounded, like the BPF
//!   queue map; when full the task goes to the fallback DSQ) and kicks the
//!   central CPU with `PREEMPT` so it decides (when, below).
//! - `dispatch` on the central CPU is a *pass*: it serves every CPU that
//!   asked for work (its "gimme" flag), dispatching to `DSQ_LOCAL_ON | cpu`
//!   with an infinite slice and `IDLE`-kicking that CPU; tasks not allowed
//!   there are bounced to the fallback DSQ. When the dispatch buffer runs
//!   out of slots mid-pass (the v2 fix of the seed) the central CPU kicks
//!   itself with `PREEMPT` to retry, because the core's automatic retry
//!   only looks at the central CPU's own local DSQ. Then it feeds itself:
//!   the fallback DSQ, else the central FIFO.
//! - `dispatch` on any other CPU consumes the fallback DSQ, else raises its
//!   gimme flag and kicks the central CPU with `PREEMPT` (unless a kick is
//!   outstanding: batching 3 below).
//! - `running`/`stopping` record when each CPU's task started. A periodic
//!   timer pinned to the central CPU (every `timer_interval`) walks the
//!   CPUs, starting one further each time, and `PREEMPT`-kicks each whose
//!   task ran for at least a slice while something waits (the fallback
//!   DSQ, its local DSQ, or the central FIFO). Tasks run with `SLICE_INF`,
//!   so this timer is the only preemption: worker CPUs get no slice-timer
//!   wake-ups at all (the tickless result of PATCH 21).
//!
//! # Batching: how the central CPU keeps up (deviations from scx_central)
//!
//! scx_central gives each asking CPU one task per pass, and every enqueue
//! preempts the central CPU. With short tasks that is a round trip through
//! the central CPU per task on every other CPU, and a central CPU that
//! spends its time being preempted: under load it falls behind the offered
//! load and never catches up. Four changes, each a policy decision a BPF
//! scheduler could make too (no sched_ext rule is bent):
//!
//! 1. **A pass fills local DSQs to a depth.** The depth is the backlog
//!    shared out over the CPUs, `ceil(queued / nr_cpus)`, at least 1 and at
//!    most [`Central::local_depth`] (default [`LOCAL_DEPTH`]). Under light
//!    load it is 1, which is scx_central's pass exactly; under a backlog a
//!    CPU gets several tasks per round trip. Asking CPUs are served first
//!    (in CPU order, starting one further each pass), then the central CPU
//!    feeds itself, then, when the depth is 2 or more (a real backlog),
//!    busy CPUs whose local DSQ is below the depth are topped up, so a busy
//!    CPU finds its next task local instead of asking and waiting. The
//!    FIFO lock is taken once per phase, not per task.
//!    A deeper local DSQ can hold a short task behind a long one; the timer
//!    bounds that wait to about a slice, as it bounds a wait in the FIFO.
//!    The central CPU feeds itself one task per pass, so that a CPU that
//!    asks while it runs is served at its next pass (a task in the central
//!    CPU's local DSQ would run first, without a pass); when it is the
//!    runtime's only CPU there is nobody to serve and it takes the depth
//!    too, which spares it a pass per task under a backlog.
//! 2. **One kick per CPU per pass.** An asking CPU that got tasks is
//!    `IDLE`-kicked once, after the pass; a topped-up CPU is busy and is
//!    not kicked (it finds the tasks at its next pick).
//! 3. **An enqueue kicks the central CPU only when a CPU waits for work**
//!    (a gimme flag is up, the central CPU's own included: it raises it when
//!    a pass leaves it nothing to run) **and no kick is outstanding** (the
//!    central CPU has not started a pass since the last one). A task queued
//!    while every CPU is busy waits for the next pass, which the first CPU
//!    to run out of work (or the timer) starts: preempting the central CPU
//!    for it would decide nothing. scx_central instead kicks at every
//!    enqueue of a task that is not running. The waiting set, the kick flag
//!    and the FIFO are one lock's data, which is the no-lost-wake-up
//!    argument: an enqueue either sees the waiter (and kicks, or finds the
//!    kick outstanding, whose pass has not yet taken the lock and will pop
//!    the task), or pushed the task before the waiter raised its flag, and
//!    then the waiter's own kick starts a pass that finds the task.
//! 4. **The central CPU keeps its task through a pass.** A pass needs the
//!    central CPU to reschedule, so scx_central preempts the central CPU's
//!    task for every pass and sends it to the back of the FIFO: under load
//!    a task that landed on the central CPU is preempted again and again
//!    and its latency grows with the queue. Here, if that task has run for
//!    less than a slice, the pass gives it its slice back (`set_slice`, as
//!    a BPF `ops.dispatch` may refill `prev`'s slice) and it resumes after
//!    the pass, like an interrupted task. The timer walk includes the
//!    central CPU, so the central CPU's task too is preempted after a slice
//!    when something waits (scx_central's timer skips it because every
//!    enqueue preempts it anyway).
//!
//! # Overload
//!
//! When the FIFO is full, an enqueue sends the task to the fallback DSQ
//! (scx_central's overflow path). While the fallback DSQ holds tasks, a
//! pass does not batch (depth 1, no top-ups): every CPU then comes back
//! through its own `dispatch`, which takes the fallback DSQ first, so the
//! overflow drains at the rate of all CPUs pulling from one shared DSQ and
//! is not left behind local DSQs refilled from the FIFO. A central CPU
//! alone on its runtime is the only one that drains it, and takes up to
//! [`Central::local_depth`] tasks from it per pass: one per pass made a
//! pass per task exactly while it was behind, so that under a sustained
//! load near its capacity the overflow, once reached, did not drain. What scx_central
//! does here too, and what remains: in a sustained overload the tasks
//! still in the FIFO wait until the fallback DSQ runs dry.
//!
//! # Userspace notes
//!
//! Tasks here become bound to their CPU after their first run (the crate's
//! migration rule), so every preempted task may run on one CPU only; popped
//! while another CPU is served, it takes the bounce path to the fallback
//! DSQ, from which only its CPU consumes it. This is the port's behaviour
//! for pinned tasks, not a special case. The kernel version sends per-CPU
//! kthreads straight to their local DSQ with `ENQ_PREEMPT`; scx-rt has no
//! kernel threads, so that branch is absent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::consts::{SLICE_DFL, SLICE_INF};
use crate::flags::{dsq_id, EnqFlags, KickFlags, OpsFlags, WakeFlags};
use crate::ops::{Ctx, DispatchCtx, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx};
use crate::task::TaskRef;

/// The user DSQ that takes what the central FIFO cannot (scx_central's
/// `FALLBACK_DSQ_ID`).
pub const FALLBACK_DSQ: u64 = 0;

/// Capacity of the central FIFO by default (the BPF queue map's
/// `max_entries`; [`Central::queue_cap`]).
pub const CENTRAL_QUEUE_CAP: usize = 4096;

/// Most tasks a pass puts in one CPU's local DSQ (module docs, batching 1).
pub const LOCAL_DEPTH: usize = 4;

/// The scheduler timer id Central uses.
const TIMER_ID: u32 = 0;

/// Counters, as scx_central prints them, and the batching's. Each has one
/// writer at a time (the central CPU, or the holder of the FIFO lock),
/// which adds with a load and a store.
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
    /// Of `dispatched`: tasks put in the local DSQ of a busy CPU that had
    /// not asked (batching 1).
    pub topped_up: AtomicU64,
    /// Central dispatch passes.
    pub passes: AtomicU64,
    /// Passes after which the central CPU's task kept running (batching 4).
    pub prev_kept: AtomicU64,
    /// Central dispatch passes cut short by a full dispatch buffer.
    pub retries: AtomicU64,
    /// Kicks of the central CPU by enqueues and asking CPUs.
    pub central_kicks: AtomicU64,
    /// Enqueues and asking CPUs that sent no kick of the central CPU
    /// because one was outstanding (batching 3).
    pub kicks_coalesced: AtomicU64,
    /// Enqueues that sent no kick because no CPU waited for work
    /// (batching 3).
    pub kicks_unneeded: AtomicU64,
    /// Timer runs.
    pub timer_runs: AtomicU64,
    /// `PREEMPT` kicks sent by the timer.
    pub timer_kicks: AtomicU64,
}

/// The central FIFO and who waits for it: one lock's data (module docs,
/// batching 3).
struct CentralQueue {
    tasks: VecDeque<TaskRef>,
    /// A kick of the central CPU is outstanding: it has not started a
    /// dispatch pass since.
    kick_pending: bool,
    /// Per CPU: it ran out of work and waits for the central CPU (the
    /// gimme flag; the central CPU's own: a pass left it nothing to run).
    gimme: Box<[bool]>,
    /// How many `gimme` flags are up.
    nr_waiting: usize,
}

impl CentralQueue {
    fn set_gimme(&mut self, cpu: usize) {
        if !std::mem::replace(&mut self.gimme[cpu], true) {
            self.nr_waiting += 1;
        }
    }

    fn clear_gimme(&mut self, cpu: usize) {
        if std::mem::replace(&mut self.gimme[cpu], false) {
            self.nr_waiting -= 1;
        }
    }
}

/// scx_central: every decision on one CPU, preemption by a timer.
pub struct Central {
    central_cpu: usize,
    slice_ns: u64,
    timer_interval_ns: u64,
    local_depth: usize,
    /// Capacity of the central FIFO.
    queue_cap: usize,
    /// The FIFO and the waiting set; `None` only if `init` failed (the
    /// runtime is then ejecting this scheduler, and callbacks do nothing).
    queue: OnceLock<parking_lot::Mutex<CentralQueue>>,
    /// Per CPU: when its current task started (0: idle).
    started_at: OnceLock<Box<[AtomicU64]>>,
    /// Where the timer's walk starts next time.
    timer_start: AtomicUsize,
    /// Where a pass starts serving asking CPUs next time.
    serve_start: AtomicUsize,
    max_batch: u32,
    stats: std::sync::Arc<CentralStats>,
}

impl Default for Central {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `n` to a counter that has one writer at a time: the central CPU
/// (the pass, the timer, `fill`) or the holder of the FIFO lock (the
/// enqueue and asking-CPU counters). A load and a store: no locked
/// instruction on the per-task path; readers see a count at most a few
/// updates old.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// CPUs a pass keeps its served set for on the stack (more spill to the
/// heap).
const INLINE_CPUS: usize = 256;

/// A set of CPUs as bits, on the caller's stack when it fits.
struct CpuBits<'a> {
    words: &'a mut [u64],
}

impl<'a> CpuBits<'a> {
    /// An empty set of `n` CPUs in `inline`, or in `spill` when `inline`
    /// is too small.
    fn new(inline: &'a mut [u64], spill: &'a mut Vec<u64>, n: usize) -> Self {
        let w = n.div_ceil(64);
        let words = if w <= inline.len() {
            &mut inline[..w]
        } else {
            spill.resize(w, 0);
            &mut spill[..]
        };
        Self { words }
    }

    fn set(&mut self, c: usize) {
        self.words[c / 64] |= 1 << (c % 64);
    }

    fn get(&self, c: usize) -> bool {
        self.words[c / 64] & (1 << (c % 64)) != 0
    }

    /// The members, ascending.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    i * 64 + b
                })
            })
        })
    }
}

/// What a pass did for one CPU.
#[derive(Clone, Copy, Default)]
struct Served {
    /// Tasks put in its local DSQ.
    tasks: usize,
    /// The dispatch buffer ran out of slots.
    out_of_slots: bool,
}

impl Central {
    /// Central on CPU 0 with the default slice (20 ms) and a 1 ms timer, as
    /// scx_central's defaults.
    pub fn new() -> Self {
        Self {
            central_cpu: 0,
            slice_ns: SLICE_DFL,
            timer_interval_ns: 1_000_000,
            local_depth: LOCAL_DEPTH,
            queue_cap: CENTRAL_QUEUE_CAP,
            queue: OnceLock::new(),
            started_at: OnceLock::new(),
            timer_start: AtomicUsize::new(0),
            serve_start: AtomicUsize::new(0),
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

    /// Most tasks a pass puts in one CPU's local DSQ (module docs, batching
    /// 1; default [`LOCAL_DEPTH`], at least 1). 1 is scx_central's one task
    /// per asking CPU, plus the top-up of busy CPUs.
    pub fn local_depth(mut self, n: usize) -> Self {
        self.local_depth = n.max(1);
        self
    }

    /// Capacity of the central FIFO (default [`CENTRAL_QUEUE_CAP`], at
    /// least 1; scx_central's queue map size): an enqueue that finds it full
    /// goes to the fallback DSQ (module docs, overload). A small one makes
    /// the overflow path certain under any burst (its tests).
    pub fn queue_cap(mut self, n: usize) -> Self {
        self.queue_cap = n.max(1);
        self
    }

    /// The counters; the handle stays valid after the scheduler moved into
    /// a runtime (scx_central prints them from userspace).
    pub fn stats(&self) -> std::sync::Arc<CentralStats> {
        self.stats.clone()
    }

    /// Puts up to `want` tasks of the FIFO in `cpu`'s local DSQ (scx_central's
    /// `dispatch_to_cpu`, batched), bouncing the ones it may not run to the
    /// fallback DSQ. Stops early when the FIFO is empty or the dispatch
    /// buffer full. FIFO locked by the caller.
    fn fill(
        &self,
        ctx: &mut DispatchCtx<'_, '_>,
        q: &mut CentralQueue,
        cpu: usize,
        want: usize,
    ) -> Served {
        let mut s = Served::default();
        while s.tasks < want {
            if ctx.dispatch_nr_slots() == 0 {
                s.out_of_slots = true;
                break;
            }
            let Some(p) = q.tasks.pop_front() else {
                break;
            };
            if !p.allowed_on(cpu) {
                bump(&self.stats.bounced, 1);
                ctx.dsq_insert(&p, FALLBACK_DSQ, SLICE_INF, EnqFlags::empty());
                continue;
            }
            ctx.dsq_insert(
                &p,
                dsq_id::LOCAL_ON | cpu as u64,
                SLICE_INF,
                EnqFlags::empty(),
            );
            s.tasks += 1;
        }
        bump(&self.stats.dispatched, s.tasks as u64);
        s
    }

    /// Whether the central CPU's `prev` keeps running through this pass
    /// (module docs, batching 4): it is runnable and ran less than a slice.
    fn keep_prev(&self, ctx: &DispatchCtx<'_, '_>, prev: Option<&TaskRef>) -> bool {
        let (Some(p), Some(started)) = (prev, self.started_at.get()) else {
            return false;
        };
        let at = started[self.central_cpu].load(Ordering::Relaxed);
        if at == 0 || ctx.now() >= at.saturating_add(self.slice_ns) {
            return false;
        }
        p.set_slice(SLICE_INF);
        true
    }

    /// The pass of the central CPU (module docs). FIFO not locked.
    fn central_pass(
        &self,
        ctx: &mut DispatchCtx<'_, '_>,
        qm: &parking_lot::Mutex<CentralQueue>,
        prev: Option<&TaskRef>,
    ) {
        bump(&self.stats.passes, 1);
        let me = self.central_cpu;
        let n = ctx.nr_cpu_ids();
        // The CPUs served in phase 1: phase 3 skips them, and each gets
        // one kick after the pass. A bitset on the stack up to
        // `INLINE_CPUS` CPUs: a pass per task on a busy central CPU must
        // not allocate.
        let mut inline = [0u64; INLINE_CPUS / 64];
        let mut spill = Vec::new();
        let mut served = CpuBits::new(&mut inline, &mut spill, n);
        let mut out_of_slots = false;
        // Tasks wait in the fallback DSQ (the FIFO overflowed, or bounced
        // tasks): no batching, so that every CPU comes back through its own
        // `dispatch`, which takes the fallback DSQ first (module docs,
        // overload).
        let overflow = ctx.dsq_nr_queued(FALLBACK_DSQ) > 0;
        // Phase 1: the CPUs that asked, each filled to the depth.
        let depth = {
            let mut q = qm.lock();
            q.kick_pending = false;
            q.clear_gimme(me);
            let depth = if overflow {
                1
            } else {
                q.tasks.len().div_ceil(n).clamp(1, self.local_depth)
            };
            let start = self.serve_start.load(Ordering::Relaxed) % n;
            self.serve_start.store(start + 1, Ordering::Relaxed);
            for c in (0..n).map(|i| (start + i) % n) {
                if q.nr_waiting == 0 || q.tasks.is_empty() {
                    break;
                }
                if c == me || !q.gimme[c] {
                    continue;
                }
                let s = self.fill(ctx, &mut q, c, depth);
                if s.tasks > 0 {
                    q.clear_gimme(c);
                    served.set(c);
                }
                if s.out_of_slots {
                    out_of_slots = true;
                    break;
                }
            }
            depth
        };
        // Phase 2: the central CPU itself: its task keeps running, or the
        // fallback DSQ, or the FIFO; nothing: it waits like any CPU.
        let kept = self.keep_prev(ctx, prev);
        if kept {
            bump(&self.stats.prev_kept, 1);
        }
        let mut fed = kept;
        if !fed && !out_of_slots {
            fed = ctx.dsq_move_to_local(FALLBACK_DSQ);
            if fed && n == 1 {
                // Alone, the central CPU is the only one that drains the
                // overflow: it takes the depth (module docs, overload).
                for _ in 1..self.local_depth {
                    if !ctx.dsq_move_to_local(FALLBACK_DSQ) {
                        break;
                    }
                }
            }
        }
        {
            let mut q = qm.lock();
            if !fed && !out_of_slots {
                // Alone, the central CPU serves nobody else: it takes the
                // depth like an asking CPU (module docs, batching 1).
                let want = if n == 1 { depth } else { 1 };
                let s = self.fill(ctx, &mut q, me, want);
                out_of_slots = s.out_of_slots;
                if s.tasks == 0 && !out_of_slots {
                    // Under the lock that the enqueues take: the next one
                    // kicks (module docs, batching 3).
                    q.set_gimme(me);
                }
            }
            // Phase 3: top up the busy CPUs while a backlog remains, but
            // only a real one (more than a task per CPU): a task or two
            // wait in the FIFO for whichever CPU frees first.
            if !out_of_slots && !overflow && depth >= 2 {
                for c in 0..n {
                    if q.tasks.is_empty() {
                        break;
                    }
                    // A CPU served above got its depth (its tasks may
                    // still be in the dispatch buffer, not yet counted).
                    if c == me || q.gimme[c] || served.get(c) {
                        continue;
                    }
                    let queued = ctx.dsq_nr_queued(dsq_id::LOCAL_ON | c as u64).max(0) as usize;
                    if queued >= depth {
                        continue;
                    }
                    let s = self.fill(ctx, &mut q, c, depth - queued);
                    bump(&self.stats.topped_up, s.tasks as u64);
                    if s.out_of_slots {
                        out_of_slots = true;
                        break;
                    }
                }
            }
            if out_of_slots {
                // Some CPUs may have been skipped, and the central CPU
                // itself may not be fed: retry from a fresh pass.
                q.kick_pending = true;
            }
        }
        // Batching 2: one kick per served CPU, after the pass.
        for c in served.iter() {
            ctx.kick_cpu(c, KickFlags::IDLE);
        }
        if out_of_slots {
            bump(&self.stats.retries, 1);
            ctx.kick_cpu(me, KickFlags::PREEMPT);
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
        let _ = self
            .started_at
            .set((0..n).map(|_| AtomicU64::new(0)).collect());
        ctx.create_dsq(FALLBACK_DSQ, -1).map_err(|_| -12)?;
        // Every CPU counts as waiting until a pass has seen it: a CPU that
        // went idle before this scheduler was attached has never raised its
        // flag, and the first enqueue must start a pass.
        let _ = self.queue.set(parking_lot::Mutex::new(CentralQueue {
            tasks: VecDeque::new(),
            kick_pending: false,
            gimme: vec![true; n].into_boxed_slice(),
            nr_waiting: n,
        }));
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
        let Some(qm) = self.queue.get() else {
            // init failed: the runtime is ejecting us; keep the task.
            ctx.dsq_insert(p, dsq_id::GLOBAL, SLICE_INF, enq_flags);
            return;
        };
        let kick = {
            let mut q = qm.lock();
            if q.tasks.len() >= self.queue_cap {
                bump(&self.stats.overflows, 1);
                drop(q);
                ctx.dsq_insert(p, FALLBACK_DSQ, SLICE_INF, enq_flags);
                return;
            }
            q.tasks.push_back(p.clone());
            bump(&self.stats.enqueued, 1);
            if q.nr_waiting == 0 {
                bump(&self.stats.kicks_unneeded, 1);
                false
            } else if q.kick_pending {
                bump(&self.stats.kicks_coalesced, 1);
                false
            } else {
                q.kick_pending = true;
                bump(&self.stats.central_kicks, 1);
                true
            }
        };
        if kick {
            ctx.kick_cpu(self.central_cpu, KickFlags::PREEMPT);
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        let Some(qm) = self.queue.get() else {
            return;
        };
        if cpu == self.central_cpu {
            return self.central_pass(ctx, qm, prev);
        }
        if ctx.dsq_move_to_local(FALLBACK_DSQ) {
            return;
        }
        let kick = {
            let mut q = qm.lock();
            q.set_gimme(cpu);
            let kick = !std::mem::replace(&mut q.kick_pending, true);
            if kick {
                bump(&self.stats.central_kicks, 1);
            } else {
                bump(&self.stats.kicks_coalesced, 1);
            }
            kick
        };
        if kick {
            ctx.kick_cpu(self.central_cpu, KickFlags::PREEMPT);
        }
    }

    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        if let (Some(cpu), Some(started)) = (ctx.cpu(), self.started_at.get()) {
            // Never 0 while running (0 means idle).
            started[cpu].store(ctx.now().max(1), Ordering::Relaxed);
        }
    }

    fn stopping(&self, ctx: &Ctx<'_>, _p: &TaskRef, _runnable: bool) {
        if let (Some(cpu), Some(started)) = (ctx.cpu(), self.started_at.get()) {
            started[cpu].store(0, Ordering::Relaxed);
        }
    }

    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        if id != TIMER_ID {
            return;
        }
        let (Some(started_at), Some(qm)) = (self.started_at.get(), self.queue.get()) else {
            return;
        };
        bump(&self.stats.timer_runs, 1);
        let n = ctx.nr_cpu_ids();
        let now = ctx.now();
        let start = self.timer_start.load(Ordering::Relaxed) % n;
        self.timer_start.store(start + 1, Ordering::Relaxed);
        let central_pending = !qm.lock().tasks.is_empty();
        for i in 0..n {
            let cpu = (start + i) % n;
            // Kick only a CPU whose task used up its slice (or that is idle)...
            let started = started_at[cpu].load(Ordering::Relaxed);
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
            bump(&self.stats.timer_kicks, 1);
        }
        ctx.timer_start(TIMER_ID, self.timer_interval_ns, self.central_cpu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_bits_inline_and_spilled() {
        for n in [1, 63, 64, 65, INLINE_CPUS, INLINE_CPUS + 1, 1000] {
            let mut inline = [0u64; INLINE_CPUS / 64];
            let mut spill = Vec::new();
            let mut b = CpuBits::new(&mut inline, &mut spill, n);
            let members: Vec<usize> = [0, 1, 63, 64, 200, 256, 999]
                .into_iter()
                .filter(|&c| c < n)
                .collect();
            for &c in members.iter().rev() {
                b.set(c);
            }
            assert_eq!(b.iter().collect::<Vec<_>>(), members, "n = {n}");
            for c in 0..n {
                assert_eq!(b.get(c), members.contains(&c), "n = {n}, cpu {c}");
            }
            assert_eq!(spill.is_empty(), n <= INLINE_CPUS);
        }
    }
}
