//! The idea of `scx_qmap` (SPEC.md §8), written for scx-rt: five FIFO
//! queues chosen by task weight, fed to CPUs in weighted batches. Like the
//! kernel's, it is a feature exerciser more than a policy for real work:
//! it uses every helper a sched_ext scheduler of 2025 writes with.
//!
//! # The policy
//!
//! ```text
//! select_cpu   prev_cpu idle (claimed)?  dsq_insert(LOCAL): runs there next
//!              else an idle CPU the task may use (claimed), else prev_cpu
//! enqueue      ENQ_REENQ (from reenqueue_local) -> SHARED_DSQ, or HIGHPRI_DSQ
//!                in vtime order when boosting a high-priority task; kick an
//!                idle CPU that may run it
//!              else the FIFO of the task's weight (queue_of); a full FIFO
//!                sends the task to SHARED_DSQ
//! dispatch     1 boosting: walk SHARED_DSQ, move each high-priority task to
//!                HIGHPRI_DSQ (dsq_move_vtime, vtime = when it was enqueued),
//!                then move HIGHPRI_DSQ's first task that may run here to
//!                this CPU (dsq_move with set_slice); one bound to another
//!                CPU goes to that CPU's local DSQ with ENQ_PREEMPT
//!              2 dsq_move_to_local(SHARED_DSQ)
//!              3 refill: pop up to `batch` tasks from the FIFOs in weighted
//!                round-robin, dsq_insert each into SHARED_DSQ, then 2 again
//!              4 nothing found: prev, if still runnable, gets a new slice
//! cpu_release  reenqueue_local: the released CPU's waiting tasks go back
//!              through enqueue (ENQ_REENQ) and can run elsewhere
//! cpu_acquire  counted
//! dump         every FIFO's length, enqueued and dispatched counts and the
//!              wait of its head (Ctx::now), SHARED_DSQ tail first (a
//!              reverse DSQ iterator), HIGHPRI_DSQ, the counters
//! ```
//!
//! **Weighted batches.** Each CPU keeps a cursor over the five FIFOs. At
//! FIFO `i` it may take `2^i` tasks (1, 2, 4, 8, 16) before moving to the
//! next, so while every FIFO has work a round gives the heaviest FIFO 16
//! dispatches for the lightest one's 1; an empty FIFO gives up the rest of
//! its turn. One `dispatch` call takes at most `batch` tasks (qmap's `-b`,
//! default 1) and the cursor keeps its place between calls, so the ratio
//! holds whatever the batch.
//!
//! **Weights.** Task weights are in the cgroup scale (100 = nice 0), set at
//! spawn with [`Runtime::spawn_weighted`](crate::Runtime::spawn_weighted):
//! weight <= 25 is FIFO 0, <= 50 FIFO 1, < 200 FIFO 2 (the default weight),
//! < 400 FIFO 3, else FIFO 4. A high-priority task for boosting has weight
//! [`HIGHPRI_WEIGHT`] or more (nice -20).
//!
//! # Why the FIFOs are the scheduler's own queues
//!
//! The kernel's qmap keeps its FIFOs in BPF queue maps, not in DSQs, and
//! this port keeps them in its own locked queues for the same reason: a
//! task on one is owned by the scheduler (the core's ops state `QUEUED`),
//! not by a DSQ, so the policy exercises the ownership protocol: the
//! `dequeue` callback, and the core silently dropping an insertion of a
//! task the scheduler no longer owns. A DSQ could also not be popped from a
//! given FIFO in a weighted order without walking it. Each FIFO is a
//! `parking_lot` mutex around a `VecDeque`, bounded like the BPF map
//! ([`QUEUE_CAP`]); the mutex is a leaf, never held across a helper call.
//! The two DSQs the kernel's qmap uses are real user DSQs
//! ([`SHARED_DSQ`], FIFO; [`HIGHPRI_DSQ`], vtime-ordered).
//!
//! # Userspace notes
//!
//! - A task in scx-rt is bound to its CPU after its first run (the
//!   migration rule), and the core never asks `select_cpu` about a task
//!   that may run on one CPU only, so the kernel qmap's "single-CPU task:
//!   straight to the local DSQ" branch cannot arise here; such a task goes
//!   through the FIFOs like any other. A task popped by a CPU it may not
//!   run on is inserted into the local DSQ of a CPU it may use (its own,
//!   once bound), which wakes that CPU if it is idle; otherwise it could
//!   wait on `SHARED_DSQ` for a CPU that sleeps.
//! - The kernel's qmap sets a 5 s watchdog timeout; this port keeps the
//!   runtime's default (30 s) so that tests which hold a CPU on purpose
//!   are not ejected on a loaded machine.
//! - Left out: core scheduling, the cpuperf targets, the monitor timer and
//!   the fault injection switches of the kernel's qmap (`-t`, `-T`, `-l`,
//!   `-e`), which test kernel features scx-rt has in other forms.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::consts::SLICE_DFL;
use crate::exit::ExitInfo;
use crate::flags::DeqFlags;
use crate::flags::{dsq_id, DsqIterFlags, EnqFlags, KickFlags, PickIdleFlags, WakeFlags};
use crate::ops::InitTaskArgs;
use crate::ops::{
    CpuAcquireArgs, CpuReleaseArgs, CpuReleaseCtx, Ctx, DispatchCtx, DumpCtx, EnqueueCtx, InitCtx,
    Scheduler, SelectCpuCtx,
};
use crate::task::TaskRef;

/// The user DSQ that popped tasks wait on until a CPU moves one to its
/// local DSQ (qmap's `SHARED_DSQ`).
pub const SHARED_DSQ: u64 = 0;

/// The vtime-ordered user DSQ of boosted high-priority tasks (qmap's
/// `HIGHPRI_DSQ`).
pub const HIGHPRI_DSQ: u64 = 1;

/// The weight from which a task is high-priority for boosting: what nice
/// -20 maps to in the cgroup scale (qmap's `HIGHPRI_WEIGHT`).
pub const HIGHPRI_WEIGHT: u32 = 8668;

/// Number of FIFOs.
pub const NR_QUEUES: usize = 5;

/// Capacity of each FIFO (the BPF queue maps' `max_entries`); a task that
/// finds its FIFO full goes to [`SHARED_DSQ`].
pub const QUEUE_CAP: usize = 4096;

/// The FIFO of a task of weight `weight`.
pub fn queue_of(weight: u32) -> usize {
    match weight {
        0..=25 => 0,
        26..=50 => 1,
        51..=199 => 2,
        200..=399 => 3,
        _ => 4,
    }
}

/// The weights each FIFO takes, for the dump.
const QUEUE_WEIGHTS: [&str; NR_QUEUES] = ["1-25", "26-50", "51-199", "200-399", "400-10000"];

/// Counters, as qmap prints them; readable while the scheduler runs
/// ([`Qmap::stats`]).
#[derive(Debug, Default)]
pub struct QmapStats {
    /// Tasks queued on each FIFO.
    pub enqueued: [AtomicU64; NR_QUEUES],
    /// Tasks popped from each FIFO and inserted for a CPU.
    pub dispatched: [AtomicU64; NR_QUEUES],
    /// Tasks `select_cpu` inserted straight into an idle CPU's local DSQ.
    pub direct: AtomicU64,
    /// Tasks sent to `SHARED_DSQ` because their FIFO was full.
    pub overflow: AtomicU64,
    /// Tasks that came back through `enqueue` with `ENQ_REENQ`.
    pub reenqueued: AtomicU64,
    /// `dequeue` calls (a queued task left the scheduler).
    pub dequeued: AtomicU64,
    /// High-priority tasks moved from `SHARED_DSQ` to `HIGHPRI_DSQ`.
    pub boosted: AtomicU64,
    /// Tasks moved from `HIGHPRI_DSQ` to a CPU.
    pub highpri_dispatched: AtomicU64,
    /// `cpu_release` calls.
    pub cpu_released: AtomicU64,
    /// `cpu_acquire` calls.
    pub cpu_acquired: AtomicU64,
}

/// Per-task state (qmap's task storage), attached in `init_task`.
#[derive(Debug, Default)]
struct TaskCtx {
    /// When the task was last enqueued (`Ctx::now`); the vtime it gets on
    /// `HIGHPRI_DSQ`.
    enq_at: AtomicU64,
    /// The FIFO it was last queued on (`u32::MAX`: none yet).
    queue: AtomicU32,
    /// It is a high-priority task on `SHARED_DSQ`, counted in
    /// `Qmap::highpri_queued`, until boosted or run.
    highpri_shared: AtomicBool,
}

/// A CPU's place in the weighted round-robin. Written only by that CPU's
/// `dispatch` (its rq locked), so relaxed atomics suffice.
#[derive(Debug)]
struct Cursor {
    /// The FIFO the CPU takes from.
    idx: AtomicU32,
    /// Tasks it may still take from that FIFO this round.
    left: AtomicU32,
}

/// One bounded FIFO.
#[derive(Default)]
struct Fifo(Mutex<VecDeque<TaskRef>>);

impl Fifo {
    /// Appends `p`; `false` if the FIFO is full.
    fn push(&self, p: &TaskRef) -> bool {
        let mut q = self.0.lock();
        if q.len() >= QUEUE_CAP {
            return false;
        }
        q.push_back(p.clone());
        true
    }

    fn pop(&self) -> Option<TaskRef> {
        self.0.lock().pop_front()
    }
}

/// scx_qmap: five weight-chosen FIFOs, weighted batches, `cpu_release`
/// re-enqueueing and, optionally, high-priority boosting (module docs).
///
/// ```
/// use scx_rt::schedulers::Qmap;
/// let qmap = Qmap::new().batch(4).highpri_boosting(true);
/// let stats = qmap.stats();
/// let rt = scx_rt::Runtime::builder()
///     .nr_cpus(2)
///     .pin(false)
///     .scheduler(qmap)
///     .build()
///     .unwrap();
/// let hs: Vec<_> = [10, 100, 8668]
///     .into_iter()
///     .map(|w| rt.spawn_weighted(w, move || w).unwrap())
///     .collect();
/// for (h, w) in hs.into_iter().zip([10, 100, 8668]) {
///     assert_eq!(h.join().unwrap(), w);
/// }
/// assert!(rt.dump().contains("qmap: queue4"));
/// # let _ = stats;
/// ```
pub struct Qmap {
    slice_ns: u64,
    batch: u32,
    highpri_boosting: bool,
    queues: [CachePadded<Fifo>; NR_QUEUES],
    /// One cursor per CPU, sized at `init`.
    cursors: OnceLock<Box<[CachePadded<Cursor>]>>,
    /// High-priority tasks on `SHARED_DSQ` (qmap's `nr_highpri_queued`):
    /// the boosting walk runs only when it is non-zero.
    highpri_queued: AtomicU64,
    stats: Arc<QmapStats>,
}

impl Default for Qmap {
    fn default() -> Self {
        Self::new()
    }
}

impl Qmap {
    /// qmap's defaults: the default slice (20 ms), one task per `dispatch`
    /// call, no boosting.
    pub fn new() -> Self {
        Self {
            slice_ns: SLICE_DFL,
            batch: 1,
            highpri_boosting: false,
            queues: Default::default(),
            cursors: OnceLock::new(),
            highpri_queued: AtomicU64::new(0),
            stats: Arc::default(),
        }
    }

    /// The slice every task gets (qmap's `-s`); at least 1 ns.
    /// `Duration::MAX` (or anything past `u64::MAX` ns) is
    /// [`SLICE_INF`](crate::SLICE_INF): tasks run until they yield, block
    /// or finish.
    pub fn slice(mut self, d: Duration) -> Self {
        self.slice_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self
    }

    /// Most tasks one `dispatch` call pops from the FIFOs (qmap's `-b`);
    /// 0 means 1. Also bounded by the free dispatch-buffer slots.
    pub fn batch(mut self, n: u32) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Boost high-priority tasks (weight [`HIGHPRI_WEIGHT`] and up) waiting
    /// on `SHARED_DSQ` ahead of the others (qmap's `-H`; off by default).
    pub fn highpri_boosting(mut self, on: bool) -> Self {
        self.highpri_boosting = on;
        self
    }

    /// The counters; the handle stays valid after the scheduler moved into
    /// a runtime.
    pub fn stats(&self) -> Arc<QmapStats> {
        self.stats.clone()
    }

    fn task_ctx(p: &TaskRef) -> Option<Arc<TaskCtx>> {
        p.data::<TaskCtx>()
    }

    /// Counts `p` as a high-priority task on `SHARED_DSQ` if it is one.
    fn note_shared(&self, p: &TaskRef, t: Option<&TaskCtx>) {
        if !self.highpri_boosting || p.weight() < HIGHPRI_WEIGHT {
            return;
        }
        if let Some(t) = t {
            if !t.highpri_shared.swap(true, Ordering::Relaxed) {
                self.highpri_queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `p` left `SHARED_DSQ` (boosted or running): uncount it.
    fn forget_shared(&self, t: &TaskCtx) {
        if t.highpri_shared.swap(false, Ordering::Relaxed) {
            self.highpri_queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Dispatch step 1a: moves the high-priority tasks waiting on
    /// `SHARED_DSQ` to `HIGHPRI_DSQ`, ordered by when they were enqueued.
    fn boost(&self, ctx: &mut DispatchCtx<'_, '_>) {
        if self.highpri_queued.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Ok(mut it) = ctx.dsq_iter(SHARED_DSQ, DsqIterFlags::empty()) else {
            return;
        };
        while let Some(p) = it.next() {
            if p.weight() < HIGHPRI_WEIGHT {
                continue;
            }
            let t = Self::task_ctx(&p);
            it.set_vtime(t.as_ref().map_or(0, |t| t.enq_at.load(Ordering::Relaxed)));
            if ctx.dsq_move_vtime(&mut it, &p, HIGHPRI_DSQ, EnqFlags::empty()) {
                self.stats.boosted.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = &t {
                    self.forget_shared(t);
                }
            }
        }
    }

    /// Dispatch step 1b: moves the first task of `HIGHPRI_DSQ` that may
    /// run on `cpu` there; tasks before it that may not go to a CPU they
    /// may use, preempting it. Whether `cpu` got a task.
    fn serve_highpri(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize) -> bool {
        if ctx.dsq_nr_queued(HIGHPRI_DSQ) <= 0 {
            return false;
        }
        let Ok(mut it) = ctx.dsq_iter(HIGHPRI_DSQ, DsqIterFlags::empty()) else {
            return false;
        };
        while let Some(p) = it.next() {
            it.set_slice(self.slice_ns);
            if p.allowed_on(cpu) {
                if ctx.dsq_move(&mut it, &p, dsq_id::LOCAL, EnqFlags::empty()) {
                    self.stats
                        .highpri_dispatched
                        .fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                continue;
            }
            let Some(c) = p
                .single_cpu()
                .or_else(|| ctx.pick_any_cpu(&p, PickIdleFlags::empty()))
            else {
                continue;
            };
            if ctx.dsq_move(&mut it, &p, dsq_id::LOCAL_ON | c as u64, EnqFlags::PREEMPT) {
                self.stats
                    .highpri_dispatched
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        false
    }

    /// Dispatch step 3: pops up to `batch` tasks in weighted round-robin
    /// (module docs) and inserts each into `SHARED_DSQ`, or into the local
    /// DSQ of a CPU it may run on if it may not run on `cpu`. How many.
    fn refill(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize) -> u32 {
        let Some(cur) = self.cursors.get().and_then(|c| c.get(cpu)) else {
            return 0;
        };
        let mut idx = cur.idx.load(Ordering::Relaxed) as usize % NR_QUEUES;
        let mut left = cur.left.load(Ordering::Relaxed);
        let (mut n, mut empty) = (0, 0);
        while n < self.batch && empty < NR_QUEUES && ctx.dispatch_nr_slots() > 0 {
            if left == 0 {
                idx = (idx + 1) % NR_QUEUES;
                left = 1 << idx;
            }
            let Some(p) = self.queues[idx].pop() else {
                // An empty FIFO gives up the rest of its turn.
                left = 0;
                empty += 1;
                continue;
            };
            left -= 1;
            empty = 0;
            n += 1;
            self.stats.dispatched[idx].fetch_add(1, Ordering::Relaxed);
            if p.allowed_on(cpu) {
                self.note_shared(&p, Self::task_ctx(&p).as_deref());
                ctx.dsq_insert(&p, SHARED_DSQ, self.slice_ns, EnqFlags::empty());
            } else {
                let dst = p
                    .single_cpu()
                    .or_else(|| ctx.pick_any_cpu(&p, PickIdleFlags::empty()))
                    .map_or(SHARED_DSQ, |c| dsq_id::LOCAL_ON | c as u64);
                ctx.dsq_insert(&p, dst, self.slice_ns, EnqFlags::empty());
            }
        }
        cur.idx.store(idx as u32, Ordering::Relaxed);
        cur.left.store(left, Ordering::Relaxed);
        n
    }
}

impl Scheduler for Qmap {
    fn name(&self) -> &str {
        "qmap"
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        let n = ctx.nr_cpu_ids();
        // Each cursor starts just before FIFO 0, so the first round opens
        // with FIFO 0's one task.
        let _ = self.cursors.set(
            (0..n)
                .map(|_| {
                    CachePadded::new(Cursor {
                        idx: AtomicU32::new(NR_QUEUES as u32 - 1),
                        left: AtomicU32::new(0),
                    })
                })
                .collect(),
        );
        ctx.create_dsq(SHARED_DSQ, -1).map_err(|_| -22)?;
        ctx.create_dsq(HIGHPRI_DSQ, -1).map_err(|_| -22)?;
        Ok(())
    }

    fn init_task(&self, _ctx: &InitCtx<'_>, p: &TaskRef, _args: InitTaskArgs) -> Result<(), i32> {
        p.set_data(TaskCtx {
            queue: AtomicU32::new(u32::MAX),
            ..TaskCtx::default()
        });
        Ok(())
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        _wake_flags: WakeFlags,
    ) -> i32 {
        if p.allowed_on(prev_cpu) && ctx.test_and_clear_cpu_idle(prev_cpu) {
            self.stats.direct.fetch_add(1, Ordering::Relaxed);
            ctx.dsq_insert(p, dsq_id::LOCAL, self.slice_ns, EnqFlags::empty());
            return prev_cpu as i32;
        }
        match ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
            Some(c) => c as i32,
            None => prev_cpu as i32,
        }
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        let t = Self::task_ctx(p);
        let now = ctx.now();
        if let Some(t) = &t {
            t.enq_at.store(now, Ordering::Relaxed);
        }
        if f.contains(EnqFlags::REENQ) {
            self.stats.reenqueued.fetch_add(1, Ordering::Relaxed);
            if self.highpri_boosting && p.weight() >= HIGHPRI_WEIGHT {
                ctx.dsq_insert_vtime(p, HIGHPRI_DSQ, self.slice_ns, now, f);
            } else {
                ctx.dsq_insert(p, SHARED_DSQ, self.slice_ns, f);
            }
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
            return;
        }
        let q = queue_of(p.weight());
        if let Some(t) = &t {
            t.queue.store(q as u32, Ordering::Relaxed);
        }
        if self.queues[q].push(p) {
            self.stats.enqueued[q].fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.overflow.fetch_add(1, Ordering::Relaxed);
            self.note_shared(p, t.as_deref());
            ctx.dsq_insert(p, SHARED_DSQ, self.slice_ns, f);
        }
    }

    fn dequeue(&self, _ctx: &Ctx<'_>, _p: &TaskRef, _f: DeqFlags) {
        // The task stays in its FIFO; the core drops the insertion when
        // it is popped (it is no longer ours), as with qmap's PID queues.
        self.stats.dequeued.fetch_add(1, Ordering::Relaxed);
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        if self.highpri_boosting {
            self.boost(ctx);
            if self.serve_highpri(ctx, cpu) {
                return;
            }
        }
        if ctx.dsq_move_to_local(SHARED_DSQ) {
            return;
        }
        if self.refill(ctx, cpu) > 0 && ctx.dsq_move_to_local(SHARED_DSQ) {
            return;
        }
        // Nothing for this CPU: a runnable prev keeps it, with a new slice.
        if let Some(p) = prev {
            p.set_slice(self.slice_ns);
        }
    }

    fn running(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        if !self.highpri_boosting {
            return;
        }
        if let Some(t) = Self::task_ctx(p) {
            self.forget_shared(&t);
        }
    }

    fn cpu_release(&self, ctx: &mut CpuReleaseCtx<'_>, _cpu: usize, _args: CpuReleaseArgs) {
        self.stats.cpu_released.fetch_add(1, Ordering::Relaxed);
        // Each comes back through `enqueue` with ENQ_REENQ (counted there).
        ctx.reenqueue_local();
    }

    fn cpu_acquire(&self, _ctx: &Ctx<'_>, _cpu: usize, _args: CpuAcquireArgs) {
        self.stats.cpu_acquired.fetch_add(1, Ordering::Relaxed);
    }

    fn exit(&self, _info: &ExitInfo) {
        // The core took every task back; drop the references left behind.
        for q in &self.queues {
            q.0.lock().clear();
        }
        self.highpri_queued.store(0, Ordering::Relaxed);
    }

    fn dump(&self, ctx: &mut DumpCtx<'_>) {
        let now = ctx.now();
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "qmap: slice={}ns batch={} highpri_boosting={}",
            self.slice_ns, self.batch, self.highpri_boosting
        );
        for (i, q) in self.queues.iter().enumerate() {
            let (len, head) = {
                let q = q.0.lock();
                (q.len(), q.front().cloned())
            };
            let _ = write!(
                out,
                "qmap: queue{i} weight={} queued={len} enqueued={} dispatched={}",
                QUEUE_WEIGHTS[i],
                s.enqueued[i].load(Ordering::Relaxed),
                s.dispatched[i].load(Ordering::Relaxed),
            );
            if let Some(t) = head.as_ref().and_then(Self::task_ctx) {
                let waited = now.saturating_sub(t.enq_at.load(Ordering::Relaxed));
                let _ = write!(out, " head_wait={}us", waited / 1000);
            }
            out.push('\n');
        }
        // SHARED_DSQ tail first, as qmap's -P prints it.
        let shared: Vec<String> = ctx
            .dsq_iter(SHARED_DSQ, DsqIterFlags::REV)
            .map(|it| it.take(16).map(|p| p.id().to_string()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "qmap: shared_dsq queued={} tail_first=[{}]",
            ctx.dsq_nr_queued(SHARED_DSQ),
            shared.join(", ")
        );
        let _ = writeln!(
            out,
            "qmap: highpri_dsq queued={} highpri_on_shared={}",
            ctx.dsq_nr_queued(HIGHPRI_DSQ),
            self.highpri_queued.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "qmap: direct={} overflow={} reenqueued={} dequeued={} boosted={} \
             highpri_dispatched={} cpu_released={} cpu_acquired={}",
            s.direct.load(Ordering::Relaxed),
            s.overflow.load(Ordering::Relaxed),
            s.reenqueued.load(Ordering::Relaxed),
            s.dequeued.load(Ordering::Relaxed),
            s.boosted.load(Ordering::Relaxed),
            s.highpri_dispatched.load(Ordering::Relaxed),
            s.cpu_released.load(Ordering::Relaxed),
            s.cpu_acquired.load(Ordering::Relaxed),
        );
        ctx.dump(out);
    }

    fn dump_cpu(&self, ctx: &mut DumpCtx<'_>, cpu: usize, _idle: bool) {
        if let Some(c) = self.cursors.get().and_then(|c| c.get(cpu)) {
            ctx.dump(format!(
                "qmap: cursor queue{} left={}",
                c.idx.load(Ordering::Relaxed),
                c.left.load(Ordering::Relaxed)
            ));
        }
    }

    fn dump_task(&self, ctx: &mut DumpCtx<'_>, p: &TaskRef) {
        if let Some(t) = Self::task_ctx(p) {
            let q = t.queue.load(Ordering::Relaxed);
            let q = if q == u32::MAX {
                "-".to_string()
            } else {
                q.to_string()
            };
            ctx.dump(format!("qmap: weight={} queue={q}", p.weight()));
        }
    }
}
