//! The green task control block.
//!
//! A [`Task`] is what sched_ext calls `struct task_struct` plus its
//! `sched_ext_entity`: identity, the scheduling fields a policy reads and
//! writes (`slice`, `dsq_vtime`, `weight`), the core's bookkeeping
//! (`ops_state` + qseq, `holding_cpu`, the DSQ it is on, `runnable_at`,
//! `sum_exec_runtime`), the stack context, and per-task scheduler data.
//!
//! # Which lock protects what
//!
//! As in the kernel, the scheduling fields belong to the task's rq (the rq of
//! [`Task::cpu`]): they are written with that rq locked, or — for a task in
//! transit — by the CPU that owns it through `ops_state` (DISPATCHING) or
//! `holding_cpu`. They are atomics so that reading them without the lock
//! (dumps, policies peeking at another CPU's task) is defined behaviour; the
//! atomics are `Relaxed` except `ops_state` and `holding_cpu`, whose
//! hand-offs publish the task (release/acquire, SPEC.md §3.4).
//!
//! # Wake state
//!
//! Independently of sched_ext's view, a task is *on an rq* (runnable or
//! running) or *off* (blocked). Blocking and waking race (the waker may run
//! before the blocker has switched out), so the transition is an atomic word:
//!
//! | state | meaning |
//! |---|---|
//! | `ON_RQ` | queued or running |
//! | `BLOCKING` | its CPU is switching it out to sleep, under its rq lock |
//! | `OFF_RQ` | asleep; a waker must enqueue it |
//! | `+NOTIFIED` | a wake-up arrived while `ON_RQ`/`BLOCKING`; the block is cancelled |
//!
//! A waker CASes `OFF_RQ -> ON_RQ` and enqueues, or sets `NOTIFIED` on an
//! on-rq task. The blocking CPU CASes `ON_RQ -> BLOCKING` (fails only when
//! notified: the task keeps running), does the dequeue bookkeeping, then CASes
//! `BLOCKING -> OFF_RQ`; if a wake-up slipped in meanwhile that CAS fails and
//! the CPU wakes the task itself once its rq lock is released. So exactly one
//! party enqueues a woken task, and no wake-up is lost.

use std::any::Any;
use std::sync::Arc;

use crate::consts::SLICE_DFL;
use crate::cpumask::Cpumask;
use crate::flags::DSQ_INVALID;
use scx_rt_sys::small_box::SmallBox;

use crate::loom::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering};

/// A shared handle to a task, as policies hold them in their queues.
pub type TaskRef = Arc<Task>;

/// Task id (unique within a process).
pub type TaskId = u64;

/// `p->scx.flags` bits (SPEC.md §3.2).
pub(crate) mod tflags {
    /// On the SCX runqueue: runnable from SCX's view, including while running.
    pub const QUEUED: u32 = 1 << 0;
    /// The next time the task becomes waiting, `runnable_at` restarts.
    pub const RESET_RUNNABLE_AT: u32 = 1 << 2;
    /// Last dequeue was for sleep.
    pub const DEQD_FOR_SLEEP: u32 = 1 << 3;
    /// Between two rqs: deactivated on the source, not yet activated on the
    /// destination (the kernel's `TASK_ON_RQ_MIGRATING`); `task_rq_lock`
    /// waits it out.
    pub const MIGRATING: u32 = 1 << 4;
}

/// Per-task SCX state (`SCX_TASK_*`; the kernel keeps it in bits 8..9 of
/// `p->scx.flags`, scx-rt in a word of its own, `SchedEntity::state`,
/// because attach and detach change it without the task's rq lock while
/// the flags are written only under it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TaskState {
    /// Not known to the scheduler.
    None = 0,
    /// `init_task` succeeded.
    Init = 1,
    /// Ready to be enabled.
    Ready = 2,
    /// `enable` called; the scheduler schedules it.
    Enabled = 3,
}

/// `ops_state` low bits (SPEC.md §3.4).
pub(crate) mod opss {
    /// The core owns the task (on a DSQ, running, or in transit).
    pub const NONE: u64 = 0;
    /// Being handed to the scheduler, under the task's rq lock.
    pub const QUEUEING: u64 = 1;
    /// The scheduler owns it.
    pub const QUEUED: u64 = 2;
    /// A dispatcher is handing it back to the core.
    pub const DISPATCHING: u64 = 3;
    /// Mask of the state bits.
    pub const STATE_MASK: u64 = 3;
    /// The qseq lives above the state.
    pub const QSEQ_SHIFT: u32 = 2;
}

/// Wake-state words (module docs).
pub(crate) mod wake {
    pub const ON_RQ: u32 = 0;
    pub const BLOCKING: u32 = 1;
    pub const OFF_RQ: u32 = 2;
    pub const STATE_MASK: u32 = 3;
    pub const NOTIFIED: u32 = 4;
}

/// Where a task may run.
#[derive(Clone, Debug)]
pub(crate) enum Affinity {
    /// Any CPU of the runtime.
    All,
    /// Only the CPUs in the mask.
    Mask(Arc<Cpumask>),
}

/// The sched_ext entity: fields with sched_ext's names.
pub(crate) struct SchedEntity {
    /// `tflags` bits. Written only under the task's rq lock, or by the
    /// one party moving the task between rqs (`MIGRATING`): plain
    /// load/store pairs, no read-modify-write.
    pub flags: AtomicU32,
    /// The [`TaskState`].
    pub state: AtomicU32,
    pub ops_state: AtomicU64,
    pub holding_cpu: AtomicI32,
    pub sticky_cpu: AtomicI32,
    pub cpu: AtomicU32,
    pub slice: AtomicU64,
    pub dsq_vtime: AtomicU64,
    pub weight: AtomicU32,
    pub ddsp_dsq_id: AtomicU64,
    pub ddsp_enq_flags: AtomicU64,
    /// Id of the DSQ the task is on (`LOCAL_ON | cpu` for a local DSQ),
    /// `DSQ_INVALID` when on none.
    pub dsq: AtomicU64,
    pub dsq_seq: AtomicU32,
    pub runnable_at: AtomicU64,
    pub exec_start: AtomicU64,
    pub sum_exec_runtime: AtomicU64,
    /// On its rq's runnable list (`rq::RunnableList`; written under that
    /// rq's lock).
    pub on_runnable: AtomicBool,
    /// The task is some CPU's `curr` (`scx_bpf_task_running`).
    pub on_cpu: AtomicBool,
    /// Generation of the scheduler that ran `init_task` for it (0: none);
    /// its `exit_task` goes to that scheduler.
    pub sched_gen: AtomicU64,
    /// Slot in the runtime's task registry (`usize::MAX`: none). Written
    /// only under the registry shard's lock, read anywhere.
    pub reg_slot: AtomicUsize,
}

impl SchedEntity {
    /// A new task, runnable from `now` on: `runnable_at` is set here, so
    /// its first activation (the fork's enqueue, which follows at once)
    /// need not read the clock again (`RESET_RUNNABLE_AT` clear).
    fn new(now: u64) -> Self {
        Self {
            flags: AtomicU32::new(0),
            state: AtomicU32::new(TaskState::None as u32),
            ops_state: AtomicU64::new(opss::NONE),
            holding_cpu: AtomicI32::new(-1),
            sticky_cpu: AtomicI32::new(-1),
            cpu: AtomicU32::new(0),
            slice: AtomicU64::new(SLICE_DFL),
            dsq_vtime: AtomicU64::new(0),
            weight: AtomicU32::new(crate::consts::WEIGHT_DFL),
            ddsp_dsq_id: AtomicU64::new(DSQ_INVALID),
            ddsp_enq_flags: AtomicU64::new(0),
            dsq: AtomicU64::new(DSQ_INVALID),
            dsq_seq: AtomicU32::new(0),
            runnable_at: AtomicU64::new(now),
            exec_start: AtomicU64::new(now),
            sum_exec_runtime: AtomicU64::new(0),
            on_runnable: AtomicBool::new(false),
            on_cpu: AtomicBool::new(false),
            sched_gen: AtomicU64::new(0),
            reg_slot: AtomicUsize::new(usize::MAX),
        }
    }
}

/// What a task runs, inside the task when small (`Task::entry`, the
/// "Layout" section of [`Task`]): the closure and its join state together
/// (`spawn::Entry`). Model tokens have none (`NoEntry`). Not implementable
/// outside the crate.
#[doc(hidden)]
pub trait TaskEntry: Send + Sync + 'static + sealed::Sealed {
    /// Runs the task's closure, on its fiber, once; completes its join
    /// state with the outcome.
    fn run(&self);
    /// The task will never run (`fail`): drops the closure unrun and
    /// completes its join state with the error.
    fn fail(&self, id: TaskId, stack_size: usize, source: std::io::Error);
    /// The join state, for a `JoinHandle` to downcast.
    fn join_state(&self) -> &dyn Any;
}

pub(crate) mod sealed {
    /// Seals [`super::TaskEntry`].
    pub trait Sealed {}
}

/// The entry of a task with nothing to run (loom models' tokens, unit
/// tests of the queues).
pub(crate) struct NoEntry;

impl sealed::Sealed for NoEntry {}

impl scx_rt_sys::small_box::AsDyn<dyn TaskEntry> for NoEntry {
    fn as_dyn(&self) -> &(dyn TaskEntry + 'static) {
        self
    }
}

impl TaskEntry for NoEntry {
    fn run(&self) {}
    fn fail(&self, _id: TaskId, _stack_size: usize, _source: std::io::Error) {}
    fn join_state(&self) -> &dyn Any {
        self
    }
}

/// A green task, as the runtime and policies see it. Every reference the
/// runtime and policies hold is a [`TaskRef`], `Arc<Task>`.
///
/// # Layout
///
/// `Task` is sized, and what it runs (the closure and its join state, one
/// `TaskEntry`) sits inside it when small: a `SmallBox` keeps an entry of
/// up to `scx_rt_sys::small_box::INLINE_BYTES` at a fixed offset, and boxes
/// a larger one beside the task. So a spawn allocates once (the `Arc`),
/// twice only for a closure or result too big for the box. With the entry
/// as an unsized tail instead (`Arc<Task<dyn TaskEntry>>`) the offset of
/// every field inside the `Arc` depends on the entry's alignment, which
/// only its vtable knows: each field access through a `TaskRef` then
/// reloads it and rounds (six instructions), about 20 times per switch
/// (a yield cost 162 instructions more, callgrind). The second allocation
/// of an always-boxed entry cost a spawn + exit about 520 instructions
/// (a malloc and a free, in the allocator's slow paths with many tasks
/// alive).
///
/// The fields are in a fixed order (`repr(C)`), in three parts: a head
/// that only the spawn writes (with the `Arc`'s two counts before it, 64
/// bytes), then what switches write (the sched_ext entity, the wake word,
/// the body lock and fiber, the scheduler's data), then a tail that a
/// running task leaves alone (its entry: the closure and its join state,
/// 80 bytes). Tasks spawned one after another lie next to each other in
/// memory, and neighbours often run on different CPUs (a burst spread by
/// fork balancing, stealing or `spawn_on`). With the compiler's order,
/// fields that each switch writes sat in the cache line shared with a
/// neighbour, and two CPUs switching neighbouring tasks pulled that line
/// from each other at every switch. Here a task's switch-written fields
/// are at least 64 bytes from its neighbours' (the head) and its own
/// fields never share a line with a neighbour's counts, which other CPUs
/// write when they take a reference (the tail), whatever the allocator's
/// 16-byte alignment. `yield-many`'s shape, 200 tasks on two CPUs handed
/// out alternately (`spawn_on(i % 2)`), best of 30 runs, 20 rounds
/// alternating builds on one host, median (quartiles): 105 (94–112) ns
/// per yield per CPU with the compiler's order, 88 (88–92) with this one,
/// where one CPU alone takes 81. Aligning the task to 64 bytes does as
/// well, but sends every `Arc` allocation through `posix_memalign` (+440
/// instructions per spawn that allocates); this order costs a spawn about
/// 20 instructions (the entry is copied into place last). The assertions
/// below the type hold the sizes.
#[repr(C)]
pub struct Task {
    // Head, written only at spawn: with the `Arc`'s two counts before it,
    // 64 bytes.
    id: TaskId,
    /// The runtime the task belongs to (`Shared::rt_id`): a waker finds
    /// it through its own worker context, or the registry of runtimes.
    pub(crate) rt_id: u64,
    pub(crate) affinity: Affinity,
    /// The CPU of a one-CPU affinity.
    affinity_single: Option<usize>,
    /// Whether the task may migrate after it first ran (unsafe opt-in).
    pub(crate) migratable: bool,
    // What switches write.
    pub(crate) scx: SchedEntity,
    pub(crate) wake: AtomicU32,
    /// CPU the task is bound to once it has run (`-1`: free). See the
    /// migration section of the crate docs.
    pub(crate) bound_cpu: AtomicI32,
    /// The stack context; `None` for model tokens and for tasks that
    /// failed to start. A finished task keeps its finished fiber (it holds
    /// nothing) until it is dropped.
    pub(crate) body: Mutex<Option<scx_rt_sys::fiber::Fiber>>,
    /// Set (before the lock, never cleared) by the first `set_data`: a task
    /// whose scheduler keeps no data leaves `clear_data` (every exit) and
    /// `data` without taking the lock.
    has_data: AtomicBool,
    /// The scheduler's data (a policy may lock it at every callback).
    data: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    // Tail: what a running task leaves alone, 80 bytes.
    /// What it runs (inline when small: "Layout" above).
    pub(crate) entry: SmallBox<dyn TaskEntry>,
}

// "Layout" above: the `Arc`'s two counts and the head put 64 bytes before
// the first field a switch writes, and the tail after the last one is 64
// bytes or more.
const _: () = {
    let counts = 2 * std::mem::size_of::<usize>();
    assert!(counts + std::mem::offset_of!(Task, scx) >= 64);
    assert!(std::mem::size_of::<Task>() - std::mem::offset_of!(Task, entry) >= 64);
};

impl Task {
    #[inline(always)]
    pub(crate) fn new(
        id: TaskId,
        rt_id: u64,
        body: Option<scx_rt_sys::fiber::Fiber>,
        affinity: Affinity,
        migratable: bool,
        now: u64,
        entry: SmallBox<dyn TaskEntry>,
    ) -> Self {
        let affinity_single = match &affinity {
            Affinity::Mask(m) if m.weight() == 1 => m.first(),
            _ => None,
        };
        Self {
            id,
            rt_id,
            affinity,
            affinity_single,
            migratable,
            scx: SchedEntity::new(now),
            wake: AtomicU32::new(wake::ON_RQ),
            bound_cpu: AtomicI32::new(-1),
            body: Mutex::new(body),
            has_data: AtomicBool::new(false),
            data: Mutex::new(None),
            entry,
        }
    }
}

impl Task {
    /// A task with no stack: a token pushed through the real queues by loom
    /// models and unit tests of the queueing code.
    #[doc(hidden)]
    pub fn new_token(id: TaskId) -> TaskRef {
        Arc::new(Task::new(
            id,
            0,
            None,
            Affinity::All,
            true,
            0,
            SmallBox::new(NoEntry),
        ))
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Remaining slice in ns (`p->scx.slice`). `SLICE_INF` never expires.
    pub fn slice(&self) -> u64 {
        self.scx.slice.load(Ordering::Relaxed)
    }

    /// Sets the remaining slice (a BPF-writable field in sched_ext).
    pub fn set_slice(&self, slice: u64) {
        self.scx.slice.store(slice, Ordering::Relaxed)
    }

    /// When the task last started running or was last charged for its
    /// run (`p->se.exec_start`; ns, the clock of `Ctx::now`). While the
    /// task runs, [`slice`](Self::slice) is what was left at that moment:
    /// the slice ends at `exec_start() + slice()`.
    pub fn exec_start(&self) -> u64 {
        self.scx.exec_start.load(Ordering::Relaxed)
    }

    /// Virtual time used by vtime-ordered DSQs (`p->scx.dsq_vtime`).
    pub fn dsq_vtime(&self) -> u64 {
        self.scx.dsq_vtime.load(Ordering::Relaxed)
    }

    /// Sets the virtual time (a BPF-writable field in sched_ext).
    pub fn set_dsq_vtime(&self, vtime: u64) {
        self.scx.dsq_vtime.store(vtime, Ordering::Relaxed)
    }

    /// Weight in the cgroup scale 1..=10000 (100 = nice 0).
    pub fn weight(&self) -> u32 {
        self.scx.weight.load(Ordering::Relaxed)
    }

    /// The CPU the task is on or was last on (`task_cpu(p)`).
    pub fn cpu(&self) -> usize {
        self.scx.cpu.load(Ordering::Relaxed) as usize
    }

    /// Total CPU time the task has run, in ns. Unlike `slice`, preemption
    /// does not disturb it.
    pub fn sum_exec_runtime(&self) -> u64 {
        self.scx.sum_exec_runtime.load(Ordering::Relaxed)
    }

    /// When the task last became runnable-and-waiting (monotonic ns).
    pub fn runnable_at(&self) -> u64 {
        self.scx.runnable_at.load(Ordering::Relaxed)
    }

    /// Whether the task may run on `cpu` (affinity, and the binding of a
    /// started non-migratable task).
    pub fn allowed_on(&self, cpu: usize) -> bool {
        let b = self.bound_cpu.load(Ordering::Relaxed);
        if b >= 0 {
            return b as usize == cpu;
        }
        match &self.affinity {
            Affinity::All => true,
            Affinity::Mask(m) => m.test(cpu),
        }
    }

    /// Number of CPUs the task may run on, given `nr_cpus` in the runtime.
    pub fn nr_cpus_allowed(&self, nr_cpus: usize) -> usize {
        if self.bound_cpu.load(Ordering::Relaxed) >= 0 {
            return 1;
        }
        match &self.affinity {
            Affinity::All => nr_cpus,
            Affinity::Mask(m) => m.weight(),
        }
    }

    /// The one CPU the task may run on, if it may run on only one (bound
    /// after its first run, or an affinity of one CPU).
    pub fn single_cpu(&self) -> Option<usize> {
        let b = self.bound_cpu.load(Ordering::Relaxed);
        if b >= 0 {
            return Some(b as usize);
        }
        self.affinity_single
    }

    /// The CPU a started, non-migratable task is bound to.
    pub fn bound_cpu(&self) -> Option<usize> {
        let b = self.bound_cpu.load(Ordering::Relaxed);
        (b >= 0).then_some(b as usize)
    }

    /// The task's SCX state.
    pub fn state(&self) -> TaskState {
        match self.scx.state.load(Ordering::Acquire) {
            0 => TaskState::None,
            1 => TaskState::Init,
            2 => TaskState::Ready,
            _ => TaskState::Enabled,
        }
    }

    pub(crate) fn set_state(&self, s: TaskState) {
        self.scx.state.store(s as u32, Ordering::Release);
    }

    /// Whether the task is on the SCX runqueue (runnable or running).
    pub fn is_queued(&self) -> bool {
        self.scx.flags.load(Ordering::Relaxed) & tflags::QUEUED != 0
    }

    /// Attaches per-task scheduler data (usually from `init_task`),
    /// replacing any earlier value. No global map: the data lives in the task.
    pub fn set_data<T: Any + Send + Sync>(&self, data: T) {
        // Before the store: a `clear_data` or `data` that misses the flag
        // is ordered before this call (it did not happen before them).
        self.has_data.store(true, Ordering::Release);
        *self.data.lock() = Some(Arc::new(data));
    }

    /// The per-task scheduler data, if it is a `T`.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        if !self.has_data.load(Ordering::Acquire) {
            return None;
        }
        let d = self.data.lock().clone()?;
        d.downcast::<T>().ok()
    }

    /// Drops the task's scheduler data, if any (every exit: a load when
    /// none was set, inlined into the exit path).
    #[inline]
    pub(crate) fn clear_data(&self) {
        if self.has_data.load(Ordering::Acquire) {
            self.clear_data_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn clear_data_slow(&self) {
        *self.data.lock() = None;
    }

    pub(crate) fn has_flag(&self, f: u32) -> bool {
        self.scx.flags.load(Ordering::Relaxed) & f != 0
    }
    /// Sets flag bits (the task's rq locked, or the task in flight and
    /// ours; see `SchedEntity::flags`).
    #[inline]
    pub(crate) fn set_flag(&self, f: u32) {
        let v = self.scx.flags.load(Ordering::Relaxed);
        self.scx.flags.store(v | f, Ordering::Relaxed);
    }
    /// Clears flag bits (same contract as `set_flag`).
    #[inline]
    pub(crate) fn clear_flag(&self, f: u32) {
        let v = self.scx.flags.load(Ordering::Relaxed);
        if v & f != 0 {
            self.scx.flags.store(v & !f, Ordering::Relaxed);
        }
    }

    pub(crate) fn ops_state(&self) -> u64 {
        self.scx.ops_state.load(Ordering::Acquire)
    }

    /// Waker side of the wake-state word. Returns `true` when the caller won
    /// the `OFF_RQ -> ON_RQ` transition and must enqueue the task.
    pub(crate) fn wake_claim(&self) -> bool {
        let mut s = self.wake.load(Ordering::Acquire);
        loop {
            if s & wake::NOTIFIED != 0 {
                return false;
            }
            let (new, enqueue) = if s & wake::STATE_MASK == wake::OFF_RQ {
                (wake::ON_RQ, true)
            } else {
                (s | wake::NOTIFIED, false)
            };
            match self
                .wake
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return enqueue,
                Err(cur) => s = cur,
            }
        }
    }

    /// Blocker side, first step (task's rq locked): `ON_RQ -> BLOCKING`.
    /// `false` when a wake-up already arrived: the block is cancelled and the
    /// notification consumed.
    pub(crate) fn block_begin(&self) -> bool {
        match self.wake.compare_exchange(
            wake::ON_RQ,
            wake::BLOCKING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(cur) => {
                debug_assert_eq!(cur, wake::ON_RQ | wake::NOTIFIED);
                self.wake.store(wake::ON_RQ, Ordering::Release);
                false
            }
        }
    }

    /// Blocker side, last step: `BLOCKING -> OFF_RQ`. `false` when a wake-up
    /// slipped in: the task is `ON_RQ` again and the caller must enqueue it.
    pub(crate) fn block_finish(&self) -> bool {
        match self.wake.compare_exchange(
            wake::BLOCKING,
            wake::OFF_RQ,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(cur) => {
                debug_assert_eq!(cur, wake::BLOCKING | wake::NOTIFIED);
                self.wake.store(wake::ON_RQ, Ordering::Release);
                false
            }
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("cpu", &self.cpu())
            .field("slice", &self.slice())
            .field("vtime", &self.dsq_vtime())
            .field("ops_state", &self.ops_state())
            .finish()
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn wake_before_block_cancels_the_block() {
        let t = Task::new_token(1);
        assert!(!t.wake_claim(), "an on-rq task is only notified");
        assert!(!t.wake_claim(), "a second wake-up is absorbed");
        assert!(!t.block_begin(), "notified: the block is cancelled");
        assert!(t.block_begin());
        assert!(t.block_finish());
        assert!(t.wake_claim(), "an off-rq task is enqueued by its waker");
        assert!(!t.wake_claim());
    }

    #[test]
    fn wake_during_block_hands_the_enqueue_to_the_blocker() {
        let t = Task::new_token(1);
        assert!(t.block_begin());
        assert!(!t.wake_claim(), "blocking: the waker only notifies");
        assert!(!t.block_finish(), "the blocker must enqueue it");
        assert_eq!(t.wake.load(Ordering::Relaxed), wake::ON_RQ);
    }

    #[test]
    fn per_task_data_is_typed() {
        let t = Task::new_token(7);
        assert!(t.data::<u32>().is_none());
        t.set_data(5u32);
        assert_eq!(*t.data::<u32>().unwrap(), 5);
        assert!(t.data::<u64>().is_none());
    }
}
