//! Per-CPU runqueues.
//!
//! Each CPU has an [`RqSynced`] behind its rq lock (local DSQ, `curr`,
//! `nr_running`, flags, `ops_qseq`, the runnable list, sleep timers, the
//! dispatch buffer) and an [`RqShared`] of atomics read and written without
//! it (`need_resched`, the doorbell/idle state, the kick cpumasks owned by this
//! CPU as a kicker, the lock-free local DSQ count, the pick sequence).
//! Functions that need the rq lock take `&mut RqSynced`, so the compiler
//! checks the locking comment (STYLE.md habit 2).
//!
//! # Lock order (one table; keep it true)
//!
//! | class | may be taken while holding | never while holding |
//! |---|---|---|
//! | enable lock (`Shared::enable_lock`, attach/detach) | nothing | any other lock |
//! | disable lock (`Shared::disabling`) | nothing (a safe point), or the enable lock | any lock below it |
//! | bypass-depth lock (`Shared::bypass_depth`) | nothing, the enable or the disable lock | an rq or DSQ lock, the fork lock |
//! | fork lock (`Shared::fork_lock`; spawn shared, attach/disable exclusive) | nothing, the enable or the disable lock | an rq or DSQ lock |
//! | hotplug lock (`Hotplug`) | nothing | any other lock |
//! | task-registry shard lock (leaf) | an rq lock, or the fork lock | any other lock |
//! | rq lock (spin) | nothing, the disable lock, or the scheduler's own locks | another rq lock, a DSQ lock |
//! | user-DSQ table (rwlock: create, destroy, sparse ids; dense ids are read without it, `core::user_dsqs`) | one rq lock | a DSQ lock |
//! | non-local DSQ lock (spin) | one rq lock, the user-DSQ table | another DSQ lock |
//! | wake list (`RqRemote::wake_list`: a waker pushes, the owner takes it all) | nothing, or one rq lock | — (a leaf) |
//! | higher-class work queue (`RqRemote::hc`: `Runtime::run_on_cpu` pushes, the owner takes it all) | nothing, or one rq lock | — (a leaf) |
//! | I/O registration (`GreenFd`'s first wait: its `registering` lock, then `io::reactor::Reactors::make`) | nothing | an rq or DSQ lock, a source lock |
//! | reactor table (`Reactor::table`, token -> source; locked by whichever worker collects the reactor, `io`, "Who collects what") | nothing or the registration locks | an rq or DSQ lock |
//! | I/O source state (`io::source::Source`; waiters are woken after it is released) | nothing, or the table | an rq or DSQ lock (a timed wait arms its timer after releasing it) |
//! | scheduler slots (rwlock, read on a cache miss and by `Ctx::events`) | anything above | — (a leaf) |
//! | exit record (spin) | anything above | — (a leaf) |
//! | task body lock (stack) | nothing | — (held only by the worker running it) |
//! | sync state lock (spin: a channel's, a green `Mutex`'s, a `WaitGroup`'s, a blocking call's result; `sync::wait`) | nothing | any other lock (it only tries a green `Mutex`'s data lock; waiters are woken after it is released) |
//!
//! 1. No path holds two rq locks: tasks move between CPUs by the hand-off of
//!    SPEC.md §3.9 (`holding_cpu`: unlink under the DSQ lock, drop it, drop
//!    our rq lock, take the source rq lock, re-check ownership). A batched
//!    consume (`core::dispatch::consume_dsq_batch`) makes the same steps
//!    once per run of one source rq's tasks, re-checking each task.
//! 2. A non-local DSQ lock nests inside an rq lock, never the reverse.
//! 3. The kick step holds no rq lock when it takes a target's.
//! 4. No scheduler callback is entered while holding a DSQ lock.
//! 5. Nothing blocks (futex wait, sleep) while holding any rq or DSQ lock;
//!    doorbells are rung after the lock is released.
//! 6. No task's last reference is dropped under an rq lock: an exited
//!    task goes in `core::step::finish`, after the unlock (what a
//!    detached task returned is dropped with it and may run any code).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crossbeam_utils::CachePadded;

use crate::doorbell::Doorbell;
use crate::dsq::LocalDsq;
use crate::flags::{dsq_id, EnqFlags};
use crate::kick_state::KickState;
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::task::TaskRef;

/// `scx_rq.flags` bits (6.12 values, SPEC.md §3.1).
pub mod rqflags {
    /// The scheduler was told the CPU is online.
    pub const ONLINE: u32 = 1 << 0;
    /// The current task has an infinite slice; no tick needed.
    pub const CAN_STOP_TICK: u32 = 1 << 1;
    /// A pick cycle started and balance has not run yet.
    pub const BAL_PENDING: u32 = 1 << 2;
    /// Balance decided to keep running prev.
    pub const BAL_KEEP: u32 = 1 << 3;
    /// This CPU's view of bypass mode.
    pub const BYPASSING: u32 = 1 << 4;
    /// Inside the enqueue of a wake-up.
    pub const IN_WAKEUP: u32 = 1 << 16;
    /// Inside balance: set for the whole step, cleared at its one exit.
    pub const IN_BALANCE: u32 = 1 << 17;
    /// The seed patch's name for `IN_BALANCE`.
    pub const BALANCING: u32 = IN_BALANCE;
}

/// One decision of the balance step, recorded for tests of the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceStep {
    /// Kept prev (slice left).
    KeepPrev,
    /// The local DSQ had a task.
    Local,
    /// A task was consumed from the global DSQ.
    Global,
    /// `ops.dispatch` was called.
    Dispatch,
    /// Kept prev after the dispatch loop produced nothing.
    KeepPrevLast,
    /// The dispatch loop hit its cap and the CPU kicked itself.
    LoopCap,
    /// Nothing to run.
    Idle,
}

/// A buffered dispatch (SPEC.md §2.6).
pub(crate) struct DispatchEntry {
    pub task: TaskRef,
    pub qseq: u64,
    pub dsq_id: u64,
    pub enq_flags: EnqFlags,
}

/// The runnable set of this rq (`rq->scx.runnable_list`): every task that
/// is runnable here, the running one included (it stays on it: `pick`).
/// Membership is a flag in each task (`SchedEntity::on_runnable`), written
/// under this rq's lock, and the list keeps only the count: joining and
/// leaving, at every wake-up and block, cost two plain stores and count no
/// reference. The passes that need the tasks themselves (bypass, hotplug,
/// dumps: rare) find them in the runtime's task registry, which holds
/// every task from before its first enqueue until after its last dequeue
/// ([`RqSynced::runnable_tasks`]).
#[derive(Default)]
pub(crate) struct RunnableList {
    len: usize,
}

impl RunnableList {
    pub(crate) fn add(&mut self, p: &TaskRef) {
        debug_assert!(!p.scx.on_runnable.load(Ordering::Relaxed));
        p.scx.on_runnable.store(true, Ordering::Relaxed);
        self.len += 1;
    }

    pub(crate) fn remove(&mut self, p: &TaskRef) {
        // A load and a store, not a swap: the flag is written only under
        // the rq lock of the list it is on (no read-modify-write needed).
        if !p.scx.on_runnable.load(Ordering::Relaxed) {
            return;
        }
        p.scx.on_runnable.store(false, Ordering::Relaxed);
        self.len -= 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A sleeping task's timer.
pub(crate) struct Timer {
    pub deadline: u64,
    pub seq: u64,
    pub task: TaskRef,
}
impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.deadline, self.seq) == (o.deadline, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(o.deadline, o.seq))
    }
}

/// State behind the rq lock.
///
/// The fields are in a fixed order (`repr(C)`): first, on the lock word's
/// cache line (the lock is the first byte of the `Cpu`'s padded `rq`),
/// what another CPU holding this lock reads or writes: a kicker reads
/// `curr` and `flags` (`kick::can_skip_idle_kick`, `online`) and counts in
/// `stats`; `ring_on_unlock` and `trace` are read by every guard's
/// release. A kick then takes one line from the CPU it kicks, the line
/// that CPU must take back anyway to lock its rq when it wakes, instead
/// of that line and the lines these fields happened to fall on (with the
/// compiler's order, three more: `curr`, `stats` and `flags` on lines 2,
/// 3 and 4). `kick`, 12 runs alternating builds on one host, medians of
/// the p50s: to a polling CPU 381 to 311 ns, `busy-preempt` 544 to 463.
#[repr(C)]
pub(crate) struct RqSynced {
    /// The task this CPU runs (`None`: the idle task), named without a
    /// count (`core::curr`).
    pub curr: Option<crate::core::curr::Curr>,
    pub flags: u32,
    pub nr_running: u32,
    /// Counters other CPUs count for this one while they hold this lock.
    pub stats: RqCounters,
    /// This CPU's scheduling-event ring when tracing is on
    /// (`Builder::trace`; the protocol is in `trace`'s docs).
    pub trace: Option<Box<crate::trace::ring::Ring>>,
    /// A `resched_curr` was made under this lock: the doorbell is rung
    /// once the lock is released ([`RqGuard`]; the lock table's rule 5).
    pub ring_on_unlock: bool,
    /// Whether the CPU went idle through a real transition (for
    /// `update_idle` and the idle masks).
    pub idle_notified: bool,
    pub zero_slice_warned: bool,
    /// The CPU's own scheduling step holds the lock and picks once the
    /// current operation is done (its drain of the wake list,
    /// `core::enqueue::drain_wake_list_locked`): a task put on the local
    /// DSQ of the idle CPU needs no reschedule, as inside balance
    /// (`IN_BALANCE`). Set and cleared within one hold of the lock.
    pub picking: bool,
    /// Higher-class work took the CPU and `cpu_release` ran (or would
    /// have): the next balance calls `cpu_acquire` (`core::release`).
    pub cpu_released: bool,
    // The rest: this CPU's own.
    pub cpu: usize,
    pub local: LocalDsq,
    pub ops_qseq: u64,
    pub runnable: RunnableList,
    /// Direct dispatches to other CPUs' local DSQs, parked until this rq lock
    /// is released (SPEC.md §3.10).
    pub ddsp_deferred_locals: Vec<(TaskRef, usize, EnqFlags)>,
    /// The wake list's second buffer (`drain_wake_list`): swapped with the
    /// list at each drain, so that queueing and draining wake-ups reuse
    /// two buffers instead of allocating one per drain.
    pub wake_spare: Vec<(TaskRef, EnqFlags)>,
    pub dispatch_buf: Vec<DispatchEntry>,
    pub timers: BinaryHeap<Reverse<Timer>>,
    pub timer_seq: u64,
    /// The step's clock reading while the step holds the lock (0
    /// otherwise): the copy of `RqOwner::clock` that code holding the rq
    /// reads without an index (`core::dsqs::activate` stamps the tasks the
    /// step's drain enqueues with it instead of reading the clock again).
    pub clock: u64,
    /// Generation of the scheduler this rq calls (swapped under the lock).
    pub sched_gen: u64,
    /// Balance decisions, when recording is on (`Builder::record_balance`).
    pub balance_trace: Option<Vec<crate::rq::BalanceStep>>,
}

// The lock word (one byte, padded to the data's alignment) and the fields
// other CPUs touch fit one 64-byte line ("State behind the rq lock").
const _: () = assert!(8 + std::mem::offset_of!(RqSynced, cpu) <= 64);

impl RqSynced {
    pub(crate) fn new(cpu: usize) -> Self {
        Self {
            cpu,
            local: LocalDsq::new(dsq_id::LOCAL_ON | cpu as u64),
            curr: None,
            nr_running: 0,
            flags: rqflags::ONLINE,
            ops_qseq: 0,
            runnable: RunnableList::default(),
            ddsp_deferred_locals: Vec::new(),
            wake_spare: Vec::new(),
            dispatch_buf: Vec::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            picking: false,
            idle_notified: false,
            zero_slice_warned: false,
            clock: 0,
            cpu_released: false,
            sched_gen: 0,
            stats: RqCounters::default(),
            ring_on_unlock: false,
            balance_trace: None,
            trace: None,
        }
    }

    pub(crate) fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    pub(crate) fn bypassing(&self) -> bool {
        self.has(rqflags::BYPASSING)
    }

    /// SCX-online: the scheduler was told the CPU is online.
    pub(crate) fn online(&self) -> bool {
        self.has(rqflags::ONLINE)
    }

    /// The tasks on this rq's runnable list ([`RunnableList`]), the
    /// running one included, oldest `runnable_at` first, found in `tasks`
    /// (the runtime's task registry, a leaf lock taken under this one).
    /// rq locked. A task moving between two other rqs may show here for a
    /// moment: callers that act on a task check it with
    /// `core::dsqs::waits_on_rq` first, as they must anyway once they drop
    /// the lock between tasks.
    pub(crate) fn runnable_tasks(&self, tasks: &crate::registry::TaskRegistry) -> Vec<TaskRef> {
        let mut v: Vec<TaskRef> = tasks
            .snapshot()
            .into_iter()
            .filter(|p| p.cpu() == self.cpu && p.scx.on_runnable.load(Ordering::Relaxed))
            .collect();
        v.sort_by_key(|p| p.runnable_at());
        v
    }

    /// The earliest sleep-timer deadline.
    pub(crate) fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse(t)| t.deadline)
    }
}

/// Atomics of a CPU, outside the rq lock, grouped by who writes them so
/// that a write by one side does not take the other side's cache line
/// away (STYLE.md habit 10): what remote CPUs write (`remote`, with
/// `need_resched` and the doorbell word on its first line), what the
/// owner writes and others read (`kick`, `owner`), and what changes only
/// at hotplug or bypass transitions (`mostly`). Each group is on its own
/// cache line(s).
pub(crate) struct RqShared {
    /// The slice deadline `preempt_point` compares the clock with
    /// (`SliceTimer::Poll`; `u64::MAX`: none, and always in the other
    /// modes). Written and read by the worker thread only (the step
    /// publishes it, a preemption point that finds it passed clears it),
    /// shared with its thread-local beside `need_resched`; its own line.
    pub poll_deadline: std::sync::Arc<CachePadded<AtomicU64>>,
    /// Written by other CPUs and threads (wakers, kickers, the timer),
    /// `need_resched` first. Shared with the worker thread's thread-local,
    /// so that `preempt_point` reads `need_resched` with one thread-local
    /// access and one load.
    pub remote: std::sync::Arc<CachePadded<RqRemote>>,
    /// The kick state (owner-written; the pick sequence is read remotely).
    pub kick: CachePadded<KickState>,
    /// Written by the owner, read by others.
    pub owner: CachePadded<RqOwner>,
    /// Changed only at hotplug and bypass transitions.
    pub mostly: CachePadded<RqReadMostly>,
    /// The event counters (`core::events`): written under this CPU's rq
    /// lock, read by anyone without it.
    pub events: CachePadded<crate::core::events::CpuEvents>,
}

/// The part of a CPU's atomics that other CPUs write.
///
/// What a waker or a kicker writes and the woken worker then reads and
/// clears shares the first cache line (`repr(C)`, in this order):
/// `need_resched`, the request and interrupt flags, the doorbell word and
/// the wake list's lock. A wake-up of an idle CPU then moves that one line
/// to it and back, not one line per flag: the waker's stores, the
/// worker's first load and its clears each cost a cross-CPU transfer per
/// line they touch.
#[repr(C)]
pub(crate) struct RqRemote {
    /// The CPU must enter the scheduling path at its next check (a task
    /// stops at its next preemption point; an idle worker looks).
    pub need_resched: AtomicBool,
    /// `need_resched` was set because the CPU must go through its
    /// scheduling path (a kick, an expired slice, a preemption). When only
    /// interrupt work is pending (`irq_pending`), the worker runs it and
    /// resumes the interrupted task without a scheduling pass, as a kernel
    /// timer interrupt returns to the task it interrupted.
    pub resched_req: AtomicBool,
    /// Interrupt work (scheduler timers) is pending on this CPU.
    pub irq_pending: AtomicBool,
    /// The slice timer found the deadline passed: the next switch calls
    /// `ops.tick` first.
    pub tick_pending: AtomicBool,
    /// `hc` holds work: the next scheduling step releases the CPU to it
    /// instead of picking a task. Set and cleared under `hc`'s lock.
    pub hc_pending: AtomicBool,
    pub doorbell: Doorbell,
    /// Remote wake-ups queued for this CPU (`core::enqueue::wake_up`):
    /// tasks whose `select_cpu` chose this CPU on another one, with their
    /// enqueue flags; enqueued here as interrupt work.
    pub wake_list: Mutex<Vec<(TaskRef, EnqFlags)>>,
    /// Scheduler timers (`Ctx::timer_start`) that fired for this CPU, one
    /// bit per timer id.
    pub ops_timers_fired: AtomicU64,
    /// Higher-class work queued for this CPU (`Runtime::run_on_cpu`,
    /// `core::release`).
    pub hc: Mutex<crate::core::release::HigherClassQueue>,
}

// What a wake-up of an idle CPU touches fits the first 64-byte line of
// `RqRemote` (its docs): the flags, the doorbell word and the wake list
// (its lock byte and the vector's header). Under loom the doorbell is a
// model's condvar, of another size.
#[cfg(not(scx_rt_loom))]
const _: () = assert!(
    std::mem::offset_of!(RqRemote, wake_list)
        + std::mem::size_of::<Mutex<Vec<(TaskRef, EnqFlags)>>>()
        <= 64
);

/// The part of a CPU's atomics that only its worker writes.
pub(crate) struct RqOwner {
    /// Lock-free mirror of the local DSQ length (`dsq_nr_queued`).
    pub local_nr: AtomicUsize,
    /// Whether the CPU currently runs its idle task (a lock-free hint).
    pub idle: AtomicBool,
    /// Earliest sleep-timer deadline (`u64::MAX`: none), for the idle loop.
    pub next_timer: AtomicU64,
    /// When the current task's slice runs out (`u64::MAX`: idle or
    /// infinite slice); read by the slice timer.
    pub slice_deadline: AtomicU64,
    /// The worker's expiry timer (`scx_rt_sys::expiry::ExpiryHandle` as an
    /// integer), set once when the worker starts; 0: the timer thread
    /// watches `slice_deadline` instead (`SliceTimer::Thread`, or the
    /// worker could not create its timer).
    pub expiry: AtomicU64,
    /// Counters (`Runtime::stats`) this CPU counts itself.
    pub stats: CpuCounters,
    /// Tasks bound to this CPU (started, not migratable: the runtime's
    /// migration rule) that have not exited, runnable or blocked: the
    /// worker adds one when it binds a task at its first run and takes one
    /// away when a bound task returns here (bound tasks run nowhere else),
    /// both in `worker::run_task`.
    /// Read by policies placing new tasks (`Ctx::nr_bound_tasks`).
    pub nr_bound: AtomicUsize,
    /// The rq clock (`rq->clock` with `SCX_RQ_CLK_VALID`): the time the
    /// worker read at the start of its scheduling step, valid while it
    /// holds the rq lock in that step (0: not valid). `Ctx::now` answers
    /// with it on this CPU's worker, so the callbacks of one step see one
    /// time and pay no clock read (`scx_bpf_now`, SPEC.md §7).
    pub clock: AtomicU64,
}

/// The part of a CPU's atomics that changes only at transitions.
pub(crate) struct RqReadMostly {
    /// Whether the CPU is online (a lock-free mirror of `rqflags::ONLINE`
    /// plus the worker's parking state; `Runtime::cpu_offline`).
    pub online: AtomicBool,
    /// Lock-free mirror of the rq's `BYPASSING` flag, for the kick call
    /// side (which may run under this very rq lock).
    pub bypassing: AtomicBool,
}

/// Per-CPU event counters that the CPU counts itself (plain load/store
/// pairs: one writer). Counters another CPU counts for this one live in
/// `RqSynced::stats`, under the rq lock that CPU holds anyway.
#[derive(Default)]
pub(crate) struct CpuCounters {
    /// Kicks this CPU issued (not dropped at the call side).
    pub kicks_sent: AtomicU64,
    /// Wake-ups of this CPU that needed the futex syscall (it slept).
    pub doorbell_syscalls: AtomicU64,
    /// Wake-ups of this CPU that found it polling (no syscall).
    pub wakes_while_polling: AtomicU64,
    /// `KICK_WAIT`s this CPU completed as the waiter.
    pub kick_waits: AtomicU64,
    /// Tasks this CPU's reactor woke for I/O readiness.
    pub io_wakeups: AtomicU64,
    /// Wake-ups of this CPU out of an epoll sleep by a waker's eventfd
    /// write (the `SLEEPING_IO` counterpart of `doorbell_syscalls`).
    pub io_doorbell_wakes: AtomicU64,
    /// Of `io_wakeups`: tasks woken for events a peek of the idle poll
    /// phase found (`idle_wait_with`).
    pub io_wakeups_polling: AtomicU64,
    /// Of `io_wakeups`: tasks woken for events an epoll sleep returned.
    pub io_wakeups_slept: AtomicU64,
    /// Of `io_wakeups`: tasks woken for events this CPU collected from
    /// another CPU's reactor (`io`, "Who collects what").
    pub io_wakeups_sibling: AtomicU64,
    /// Non-blocking looks at this CPU's reactor by the busy CPU's
    /// periodic check (`IO_POLL_INTERVAL_NS`), each one system call.
    pub io_busy_looks: AtomicU64,
}

impl CpuCounters {
    /// Counts one event (the owner is the only writer).
    #[inline]
    pub(crate) fn bump(c: &AtomicU64) {
        let v = c.load(Ordering::Relaxed);
        c.store(v + 1, Ordering::Relaxed);
    }
}

/// Counters other CPUs count for this one, under its rq lock.
#[derive(Default, Clone, Copy)]
pub(crate) struct RqCounters {
    /// Kicks that rescheduled this CPU.
    pub kicks_received: u64,
    /// `IDLE` kicks to this CPU skipped because it was busy.
    pub idle_kicks_skipped: u64,
    /// Times this CPU's current task had its slice zeroed by a kick or an
    /// `ENQ_PREEMPT` insertion.
    pub preemptions: u64,
}

impl RqShared {
    /// Asks the CPU to go through its scheduling path at its next check
    /// (the flag half of `resched_curr`; `Cpu::resched` also rings).
    #[inline]
    pub(crate) fn set_need_resched(&self) {
        self.remote.resched_req.store(true, Ordering::SeqCst);
        self.remote.need_resched.store(true, Ordering::SeqCst);
    }

    /// The slice timer found the deadline passed: the next switch calls
    /// `ops.tick` first, and the running task stops at its next preemption
    /// point. The first marking raises `need_resched` (the timer thread's
    /// scan, a polled expiry; the expiry signal's handler makes the same
    /// marks, `worker::expiry_target`).
    #[inline]
    pub(crate) fn expire_slice(&self) {
        if !self.remote.tick_pending.swap(true, Ordering::AcqRel) {
            // The CPU runs a task: no doorbell needed, it sees the flag at
            // its next preemption point.
            self.set_need_resched();
        }
    }

    fn new(nr_cpus: usize) -> Self {
        Self {
            poll_deadline: std::sync::Arc::new(CachePadded::new(AtomicU64::new(u64::MAX))),
            remote: std::sync::Arc::new(CachePadded::new(RqRemote {
                need_resched: AtomicBool::new(false),
                resched_req: AtomicBool::new(false),
                irq_pending: AtomicBool::new(false),
                tick_pending: AtomicBool::new(false),
                hc_pending: AtomicBool::new(false),
                doorbell: Doorbell::new(),
                wake_list: Mutex::new(Vec::new()),
                ops_timers_fired: AtomicU64::new(0),
                hc: Mutex::new(Default::default()),
            })),
            kick: CachePadded::new(KickState::new(nr_cpus)),
            owner: CachePadded::new(RqOwner {
                local_nr: AtomicUsize::new(0),
                idle: AtomicBool::new(true),
                next_timer: AtomicU64::new(u64::MAX),
                slice_deadline: AtomicU64::new(u64::MAX),
                expiry: AtomicU64::new(0),
                stats: CpuCounters::default(),
                nr_bound: AtomicUsize::new(0),
                clock: AtomicU64::new(0),
            }),
            mostly: CachePadded::new(RqReadMostly {
                online: AtomicBool::new(true),
                bypassing: AtomicBool::new(false),
            }),
            events: CachePadded::new(Default::default()),
        }
    }
}

/// One CPU: its rq lock and its atomics, each on its own cache line.
pub(crate) struct Cpu {
    pub id: usize,
    pub rq: CachePadded<Mutex<RqSynced>>,
    pub shared: RqShared,
}

impl Cpu {
    pub(crate) fn new(id: usize, nr_cpus: usize) -> Self {
        Self {
            id,
            rq: CachePadded::new(Mutex::new(RqSynced::new(id))),
            shared: RqShared::new(nr_cpus),
        }
    }

    /// Takes this CPU's rq lock.
    #[inline]
    pub(crate) fn lock(&self) -> RqGuard<'_> {
        RqGuard {
            g: self.rq.lock(),
            ringer: Ringer {
                cpu: self,
                pending: false,
            },
        }
    }

    /// Takes this CPU's rq lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<RqGuard<'_>> {
        self.rq.try_lock().map(|g| RqGuard {
            g,
            ringer: Ringer {
                cpu: self,
                pending: false,
            },
        })
    }

    /// `resched_curr` under this CPU's rq lock: the flag now, the doorbell
    /// when the lock is released.
    #[inline]
    pub(crate) fn resched_locked(&self, rq: &mut RqSynced) {
        self.shared.set_need_resched();
        rq.ring_on_unlock = true;
    }

    /// `resched_curr`: make the CPU enter its scheduling path; ring its
    /// doorbell only if it sleeps (no syscall for a polling or busy CPU).
    /// This is the waker side of the idle handshake (`doorbell` docs).
    #[inline]
    pub(crate) fn resched(&self) {
        self.shared.set_need_resched();
        self.ring();
    }

    /// Raises interrupt work on this CPU (a fired scheduler timer): the
    /// worker runs it at its next check, and a running task resumes after
    /// it unless something else asked for a reschedule.
    pub(crate) fn raise_irq(&self) {
        self.shared.remote.irq_pending.store(true, Ordering::SeqCst);
        self.shared
            .remote
            .need_resched
            .store(true, Ordering::SeqCst);
        self.ring();
    }

    /// Queues the wake-up of `p` (enqueue flags `f`) for this CPU's worker
    /// to carry out as interrupt work, and makes it look: the waker takes
    /// no lock of this CPU's rq (`core::enqueue::wake_up`).
    ///
    /// The fence between the `irq_pending` store and the `need_resched`
    /// read is the waker's half of a store-buffering pair with the worker's
    /// `need_resched` clear (`core::irq` docs): without it both may miss
    /// the other's store, and the worker runs a task with the wake-up
    /// unseen. The `need_resched` store comes before the ring, whose fence
    /// orders it before the doorbell's state load; set after the ring, it
    /// could land after a woken worker's clear and stop its next task for
    /// nothing.
    pub(crate) fn queue_wakeup(&self, p: TaskRef, f: EnqFlags) {
        self.shared.remote.wake_list.lock().push((p, f));
        let r = &self.shared.remote;
        if !r.irq_pending.load(Ordering::Relaxed) {
            r.irq_pending.store(true, Ordering::Release);
        }
        crate::loom::fence(Ordering::SeqCst);
        if !self.shared.remote.need_resched.load(Ordering::Relaxed) {
            self.shared
                .remote
                .need_resched
                .store(true, Ordering::Relaxed);
        }
        self.ring();
    }

    /// Rings the doorbell if the worker sleeps (after a `need_resched`
    /// store). The worker counts how its wake-ups went (`idle_wait`), so
    /// the waker writes none of its lines beyond the doorbell word.
    #[inline]
    fn ring(&self) {
        self.shared.remote.doorbell.ring();
    }
}

/// A held rq lock that rings the CPU's doorbell after releasing the lock
/// if a `resched_curr` was made under it (`Cpu::resched_locked`): decide
/// under the lock, wake after it (STYLE.md habit 5, the lock table's rule
/// 5). Functions that drop the rq lock in the middle (the hand-offs of
/// SPEC.md §3.9) take `&mut RqGuard`; the others take `&mut RqSynced`.
///
/// The ring comes after the unlock by field order: `Drop for RqGuard`
/// moves the flag out of the locked state into `ringer`, then the fields
/// drop in declaration order, the lock guard `g` first (unlocking) and
/// `ringer` second (ringing).
pub(crate) struct RqGuard<'a> {
    g: MutexGuard<'a, RqSynced>,
    ringer: Ringer<'a>,
}

/// Rings a CPU's doorbell when dropped, if asked to (`RqGuard`).
struct Ringer<'a> {
    cpu: &'a Cpu,
    pending: bool,
}

impl Drop for Ringer<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.pending {
            self.cpu.ring();
        }
    }
}

impl<'a> RqGuard<'a> {
    /// The CPU whose rq this is (no index into `Shared::cpus`).
    #[inline(always)]
    pub(crate) fn this_cpu(&self) -> &'a Cpu {
        self.ringer.cpu
    }

    /// Releases the lock while `f` runs (ringing first if a resched is
    /// pending) and takes it again before returning. Everything read
    /// under the lock before the call may have changed.
    pub(crate) fn unlocked<R>(this: &mut Self, f: impl FnOnce() -> R) -> R {
        let ring = std::mem::take(&mut this.g.ring_on_unlock);
        this.g.clock = 0;
        let cpu = this.ringer.cpu;
        // The rq clock is valid only while the step holds the lock
        // (`RqOwner::clock`): from here on `now` reads the clock.
        #[cfg(not(scx_rt_loom))]
        if cpu.shared.owner.clock.load(Ordering::Relaxed) != 0 {
            cpu.shared.owner.clock.store(0, Ordering::Relaxed);
        }
        MutexGuard::unlocked(&mut this.g, || {
            if ring {
                cpu.ring();
            }
            f()
        })
    }
}

impl std::ops::Deref for RqGuard<'_> {
    type Target = RqSynced;
    #[inline]
    fn deref(&self) -> &RqSynced {
        &self.g
    }
}

impl std::ops::DerefMut for RqGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut RqSynced {
        &mut self.g
    }
}

impl Drop for RqGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.ringer.pending = std::mem::take(&mut self.g.ring_on_unlock);
    }
}
