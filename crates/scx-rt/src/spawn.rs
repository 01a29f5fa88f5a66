//! Spawning a green task, its join handle, and the blocking-pool entry
//! point.

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::context;
use crate::core::clock::now;
use crate::core::error::{call_op, call_task};
use crate::core::has_op::Op;
use crate::cpumask::Cpumask;
use crate::flags::WakeFlags;
use crate::join::JoinError;
use crate::loom::{Mutex, Ordering};
use crate::ops::Shared;
use crate::ops::{Ctx, InitCtx, InitTaskArgs};
use crate::sync::wait::{park, Waiter};
use crate::task::{Affinity, Task, TaskEntry, TaskId, TaskRef, TaskState};
use scx_rt_sys::small_box::SmallBox;

/// Where a spawned task is in its life, as its joiner sees it.
enum Stage<F, T> {
    /// Not started: the closure.
    Pending(F),
    /// Running (the closure taken), or its fiber being dropped unrun.
    Running,
    /// Finished: the outcome, until `join` takes it.
    Done(Result<T, JoinError>),
    /// Finished, and the outcome taken.
    Joined,
}

/// What a spawned task runs and how it ends, under one lock: the closure
/// until the task starts, then its outcome until the join takes it, and the
/// one joiner waiting (a [`JoinHandle`] is not `Clone`, and `join` consumes
/// it, so there is never more than one). The closure and the outcome share
/// their space (`Stage`), which keeps small entries inside the task.
struct EntryState<F, T> {
    stage: Stage<F, T>,
    /// The joiner parked on this task, if any.
    joiner: Option<Waiter>,
}

/// What a spawned task runs (`Task::entry`): the closure and the join
/// state. Kept inside the task when small (`SmallBox`: one allocation per
/// spawn), boxed beside it when not (`Task`'s docs, "Layout"). The lock is
/// the runtime's spin lock: it is held for a few moves, never across a
/// switch or a wake-up (the joiner is woken after it is released), and its
/// release is a store, not a read-modify-write.
struct Entry<F, T> {
    st: Mutex<EntryState<F, T>>,
}

impl<F, T> Entry<F, T> {
    fn new(f: F) -> Self {
        Entry {
            st: Mutex::new(EntryState {
                stage: Stage::Pending(f),
                joiner: None,
            }),
        }
    }

    /// Takes the closure (`None`: already taken).
    fn take_f(&self) -> Option<F> {
        let mut s = self.st.lock();
        match std::mem::replace(&mut s.stage, Stage::Running) {
            Stage::Pending(f) => Some(f),
            other => {
                s.stage = other;
                None
            }
        }
    }

    /// Stores the task's outcome and wakes its joiner.
    fn complete(&self, r: Result<T, JoinError>) {
        let joiner = {
            let mut s = self.st.lock();
            s.stage = Stage::Done(r);
            s.joiner.take()
        };
        if let Some(w) = joiner {
            w.wake();
        }
    }
}

impl<F, T> crate::task::sealed::Sealed for Entry<F, T> {}

impl<F, T> scx_rt_sys::small_box::AsDyn<dyn TaskEntry> for Entry<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn as_dyn(&self) -> &(dyn TaskEntry + 'static) {
        self
    }
}

impl<F, T> TaskEntry for Entry<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let Some(f) = self.take_f() else {
            return;
        };
        let r = catch_unwind(AssertUnwindSafe(f));
        if r.is_err() && scx_rt_sys::fiber::unwinding_for_drop() {
            // The fiber is being dropped while suspended: let its forced
            // unwind through.
            if let Err(e) = r {
                resume_unwind(e);
            }
            return;
        }
        self.complete(r.map_err(JoinError::Panicked));
    }

    fn fail(&self, id: TaskId, stack_size: usize, source: std::io::Error) {
        let Some(f) = self.take_f() else {
            return;
        };
        drop(f);
        self.complete(Err(JoinError::NoStack {
            id,
            stack_size,
            source,
        }));
    }

    fn join_state(&self) -> &dyn std::any::Any {
        self
    }
}

/// The body every task's fiber runs: the task's entry, found through the
/// task its worker lends the fiber. Captures nothing, so boxing it for the
/// fiber allocates nothing.
fn run_lent_task() {
    if let Some(t) = context::current_task() {
        t.entry.run();
    }
}

/// Owns the right to join a task.
///
/// A `join` on a worker thread that leaves the handle the task's last
/// reference (the task has exited: the runtime holds every live task in
/// its registry) hands the task's block to that thread's pool
/// (`task_pool`) rather than to the allocator: a burst of spawns joined
/// on a worker is followed by spawns there that reuse the blocks. A
/// handle dropped unjoined drops its reference as usual (no check: a
/// detached spawn drops its handle at once, while its task lives).
pub struct JoinHandle<T> {
    task: TaskRef,
    /// Sends and shares like the outcome it takes.
    _p: PhantomData<Result<T, JoinError>>,
    /// The typed reads of the task's entry, whose closure type the handle
    /// does not know (monomorphized at spawn).
    vt: JoinVtable<T>,
}

/// The typed reads a handle makes on its task's entry, monomorphized for
/// `Entry<F, T>` at spawn.
struct JoinVtable<T> {
    /// Waits for the outcome and takes it.
    join: fn(&dyn std::any::Any) -> Result<T, JoinError>,
    /// Whether the task has finished.
    is_finished: fn(&dyn std::any::Any) -> bool,
}

/// The typed reads of an `Entry<F, T>` behind a `&dyn Any`.
trait JoinState<T> {
    const VTABLE: JoinVtable<T>;
}

impl<F, T> JoinState<T> for Entry<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    const VTABLE: JoinVtable<T> = JoinVtable {
        join: |e| {
            let e = entry::<F, T>(e);
            loop {
                let mut s = e.st.lock();
                if matches!(s.stage, Stage::Done(_)) {
                    s.joiner = None;
                    let Stage::Done(r) = std::mem::replace(&mut s.stage, Stage::Joined) else {
                        unreachable!("checked above")
                    };
                    return r;
                }
                // Listed once; a spurious wake-up finds itself still listed.
                if s.joiner.is_none() {
                    s.joiner = Some(Waiter::current());
                }
                drop(s);
                park();
            }
        },
        is_finished: |e| {
            matches!(
                entry::<F, T>(e).st.lock().stage,
                Stage::Done(_) | Stage::Joined
            )
        },
    };
}

fn entry<F: 'static, T: 'static>(e: &dyn std::any::Any) -> &Entry<F, T> {
    e.downcast_ref::<Entry<F, T>>()
        .expect("a join handle's task has the handle's entry type")
}

impl<T: Send + 'static> JoinHandle<T> {
    /// Waits for the task and returns its value. Blocks the OS thread, or
    /// only the green task when called from one.
    #[inline(always)]
    pub fn join(self) -> Result<T, JoinError> {
        let r = (self.vt.join)(self.task.entry.join_state());
        // The count first, then the worker check (a call; `retire` then
        // looks at the pool's room): off the workers (the main thread
        // after `block_on`, a blocking-pool thread) a thread that may
        // never spawn would keep the blocks until it exits.
        let p = self.task;
        if Arc::strong_count(&p) == 1 && crate::core::current::cpu().is_some() {
            crate::task_pool::retire(p);
        }
        r
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        (self.vt.is_finished)(self.task.entry.join_state())
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }
}

/// The first resume of `t` found no stack (`err`): its closure is dropped
/// unrun and its join state completed with [`JoinError::NoStack`], which
/// wakes its joiners. The caller then retires the task as an exited one.
/// No lock held (the joiners are woken here).
pub(crate) fn fail_unstarted(sh: &Shared, t: &TaskRef, err: std::io::Error) {
    let fiber = t.body.lock().take();
    debug_assert!(fiber.as_ref().is_some_and(|f| !f.is_started()));
    drop(fiber);
    sh.nr_no_stack.fetch_add(1, Ordering::Relaxed);
    t.entry.fail(t.id(), sh.stacks.stack_size(), err);
}

/// Task ids are unique per process. Each thread takes them in blocks from
/// one counter, so spawning from many CPUs shares no cache line per task.
fn next_task_id() -> TaskId {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    std::thread_local! {
        static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            end = next + BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// Queues `f` on the blocking pool `pool` (`spawn_blocking`).
pub(crate) fn spawn_blocking_in<F, T>(
    pool: &crate::blocking::BlockingPool,
    f: F,
) -> crate::BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match crate::blocking::spawn(pool, f) {
        Ok(h) => h,
        Err(crate::blocking::SpawnError::ShutDown) => {
            panic!("spawn_blocking on a runtime that was shut down")
        }
        Err(crate::blocking::SpawnError::Thread(e)) => {
            panic!("spawn_blocking: cannot start a blocking-pool thread: {e}")
        }
    }
}

/// Spawns `f` as a green task that may run where `affinity` allows, with
/// scheduling weight `weight` (in `WEIGHT_MIN..=WEIGHT_MAX`, checked by the
/// caller), set before `init_task`, as the kernel sets a forked task's
/// weight before `enable`.
pub(crate) fn spawn_in<F, T>(
    sh: &Arc<Shared>,
    f: F,
    affinity: Affinity,
    weight: u32,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_from(sh, context::cpu_in(sh), f, affinity, weight)
}

/// [`spawn_in`] from CPU `from` of `sh` (`None`: from outside its
/// workers), which the caller knows.
pub(crate) fn spawn_from<F, T>(
    sh: &Arc<Shared>,
    from: Option<usize>,
    f: F,
    affinity: Affinity,
    weight: u32,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    debug_assert_eq!(from, context::cpu_in(sh));
    let id = next_task_id();
    let entry = Entry::new(f);
    // A block an exited task left to this thread (`task_pool`), or a new
    // one; built in place either way: a `Task` is several hundred bytes
    // (`in_place`).
    let block = crate::task_pool::take().unwrap_or_default();
    let p: TaskRef = block.fill(|| {
        Task::new(
            id,
            sh.rt_id,
            Some(scx_rt_sys::fiber::Fiber::new(Box::new(run_lent_task))),
            affinity,
            sh.cfg.allow_migration,
            now(),
            SmallBox::new(entry),
        )
    });
    if weight != crate::consts::WEIGHT_DFL {
        p.scx.weight.store(weight, Ordering::Relaxed);
    }
    sh.live.spawned(from);
    let start = from.unwrap_or_else(|| sh.spread_hint());
    let start = if p.allowed_on(start) {
        start
    } else {
        (0..sh.nr_cpus).find(|&c| p.allowed_on(c)).unwrap_or(0)
    };
    p.scx.cpu.store(start as u32, Ordering::Relaxed);
    p.set_slice(sh.cfg.slice_dfl);
    // Shared fork lock: an attach or a disable pass over every task either
    // sees this one registered or happens entirely before it picks its
    // scheduler.
    let fork = sh.fork_lock.read(from);
    sh.tasks.add(&p);
    let slot = sh.cur_slot();
    p.scx.sched_gen.store(slot.gen, Ordering::Release);
    if slot.has.has(Op::InitTask) {
        let ictx = InitCtx::new(sh, from);
        let init = call_op(sh, &slot, Op::InitTask, Some(&p), || {
            slot.ops.init_task(&ictx, &p, InitTaskArgs { fork: true })
        });
        if let Some(Err(code)) = init {
            sh.ops_error(format!("ops.init_task failed ({code}) for task {id}"));
        }
    }
    p.set_state(TaskState::Ready);
    if slot.has.has(Op::Enable) {
        let ctx = Ctx::for_op(sh, from, "enable", Some(&p));
        call_op(sh, &slot, Op::Enable, Some(&p), || {
            slot.ops.enable(&ctx, &p)
        });
    }
    p.set_state(TaskState::Enabled);
    if slot.has.has(Op::SetWeight) {
        let ctx = Ctx::for_op(sh, from, "set_weight", Some(&p));
        call_op(sh, &slot, Op::SetWeight, Some(&p), || {
            slot.ops.set_weight(&ctx, &p, p.weight())
        });
    }
    if slot.wants_cpumask {
        let mask = match &p.affinity {
            Affinity::All => Cpumask::full(sh.nr_cpus),
            Affinity::Mask(m) => (**m).clone(),
        };
        let ctx = Ctx::for_op(sh, from, "set_cpumask", Some(&p));
        call_task(sh, "set_cpumask", &p, || {
            slot.ops.set_cpumask(&ctx, &p, &mask)
        });
    }
    drop(fork);
    crate::core::enqueue::wake_up_in(sh, Some(&slot), p.clone(), WakeFlags::FORK, from);
    JoinHandle {
        task: p,
        _p: PhantomData,
        vt: <Entry<F, T> as JoinState<T>>::VTABLE,
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;

    /// The entry of a closure that captures a few words and returns a
    /// word-sized value stays inside the task (no second allocation).
    #[test]
    fn small_entries_fit_inline() {
        let cap = [0u64; 3];
        let e = Entry::new(move || cap[0]);
        let b: SmallBox<dyn TaskEntry> = SmallBox::new(e);
        assert!(b.is_inline());
        let b: SmallBox<dyn TaskEntry> = SmallBox::new(Entry::new(|| ()));
        assert!(b.is_inline());
    }

    /// A runtime of one unpinned CPU: every spawn and join of a test runs
    /// on its one worker, which keeps the blocks (`task_pool`).
    fn one_cpu() -> crate::Runtime {
        crate::Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .build()
            .unwrap()
    }

    /// A join on a worker that leaves the handle its exited task's last
    /// reference hands the task's block to that worker, and the next spawn
    /// there is built in it; a handle still held (its task finished, not
    /// joined) keeps its block and its result, however many blocks are
    /// reused around it. Joins off the workers give nothing to their
    /// thread.
    #[test]
    fn a_joined_handle_gives_its_block_to_the_next_spawn_on_its_worker() {
        let rt = one_cpu();
        rt.block_on(|| {
            let kept = crate::task_pool::kept();
            let held = crate::spawn(|| vec![7u64; 4]);
            let h = crate::spawn(|| vec![1u64, 2, 3]);
            let (held_at, at) = (Arc::as_ptr(&held.task), Arc::as_ptr(&h.task));
            assert_eq!(h.join().unwrap(), vec![1, 2, 3]);
            assert_eq!(crate::task_pool::kept(), kept + 1, "the block is kept");
            assert!(held.is_finished());
            let again = crate::spawn(|| vec![9u64]);
            assert_eq!(Arc::as_ptr(&again.task), at, "the kept block is reused");
            assert_eq!(crate::task_pool::kept(), kept);
            assert_ne!(again.id(), held.id());
            // Many more reuses around the held handle.
            for round in 0..3u64 {
                let hs: Vec<_> = (0..100u64)
                    .map(|i| crate::spawn(move || vec![round, i]))
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_ne!(Arc::as_ptr(&h.task), held_at);
                    assert_eq!(h.join().unwrap(), vec![round, i as u64]);
                }
            }
            assert_eq!(again.join().unwrap(), vec![9]);
            assert_eq!(held.join().unwrap(), vec![7; 4]);
        });
        // The root task was joined here, off the workers.
        assert_eq!(crate::task_pool::kept(), 0);
        let h = rt.spawn(|| 5);
        assert_eq!(h.join().unwrap(), 5);
        assert_eq!(crate::task_pool::kept(), 0);
    }

    /// A burst larger than the task pool's floor, joined on a worker,
    /// leaves all its blocks there, and the next burst's spawns are built
    /// in them; an epoch in which spawns took them keeps them, and one
    /// with no spawn leaves the floor.
    #[test]
    fn a_burst_joined_on_a_worker_is_kept_for_the_next_and_then_decays() {
        use crate::task_pool::{kept, tick};
        let rt = one_cpu();
        rt.block_on(|| {
            let floor = crate::consts::TASK_POOL_FLOOR;
            let e = crate::consts::TASK_POOL_EPOCH_NS;
            // The test ends the epochs: this one ends an hour from now,
            // past any clock reading of the worker's own ticks.
            let t = crate::core::clock::now() + 3600 * e;
            tick(t, usize::MAX);
            let n = 3 * floor;
            let burst = |round: usize| -> Vec<_> {
                (0..n).map(|i| crate::spawn(move || (round, i))).collect()
            };
            let join = |round: usize, hs: Vec<JoinHandle<(usize, usize)>>| {
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), (round, i));
                }
            };
            let hs = burst(0);
            let left = kept();
            join(0, hs);
            let all = kept();
            assert_eq!(all, left + n, "every block of the burst is kept");
            assert!(all > floor);
            let hs = burst(1);
            assert_eq!(kept(), all - n, "the next burst is built in them");
            join(1, hs);
            assert_eq!(kept(), all);
            // The blocks the spawns took in the epoch stay at its end.
            tick(t + e, usize::MAX);
            assert_eq!(kept(), all);
            // No spawn in the next: the floor is left.
            tick(t + 2 * e, usize::MAX);
            assert_eq!(kept(), floor);
        });
    }
}
