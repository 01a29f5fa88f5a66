//! The worker thread's context: the runtime it belongs to, its blocking
//! pool and the green task it runs now, with the switch codes a task
//! suspends with. The worker loop (`worker`) fills it in; tasks and wait
//! queues (`sync`) read it. The CPU identity and `need_resched` flag are
//! the leaf `core::current`.

use std::cell::RefCell;
use std::sync::Arc;

use crate::flags::WakeFlags;
use crate::ops::Shared;
use crate::task::TaskRef;

/// Switch codes a task suspends its fiber with.
pub(crate) const SW_YIELD: usize = 1;
pub(crate) const SW_PREEMPT: usize = 2;
pub(crate) const SW_BLOCK: usize = 3;

/// What a worker thread knows about itself beyond its identity
/// (`core::current`).
pub(crate) struct WorkerTls {
    pub sh: Arc<Shared>,
    pub blocking: Arc<crate::blocking::pool::BlockingPool>,
    pub cpu: usize,
}

std::thread_local! {
    static WORKER: RefCell<Option<WorkerTls>> = const { RefCell::new(None) };
}

// The accessors are `#[inline(never)]`: a task may suspend on one thread and
// resume on another, and a thread-local address computed before the switch
// must not be reused after it.

/// (runtime, cpu, current task) of the calling thread, if it is a worker.
/// The task is the one the worker lent the fiber it runs
/// (`Fiber::resume_with`): a task finds itself with one thread-local read.
#[inline(never)]
pub(crate) fn current() -> Option<(Arc<Shared>, usize, Option<TaskRef>)> {
    WORKER.with(|w| {
        w.borrow()
            .as_ref()
            .map(|w| (w.sh.clone(), w.cpu, current_task()))
    })
}

/// Runs `f` with the calling worker's runtime and CPU, borrowed (no
/// reference counted, no task looked up): `None` off a worker. `f` must
/// not switch fibers (it runs inside the thread-local's borrow).
#[inline(never)]
pub(crate) fn with_worker<R>(f: impl FnOnce(&Arc<Shared>, usize) -> R) -> Option<R> {
    WORKER.with(|w| w.borrow().as_ref().map(|w| f(&w.sh, w.cpu)))
}

/// The green task the calling code runs in, if any.
#[inline]
pub(crate) fn current_task() -> Option<TaskRef> {
    scx_rt_sys::fiber::lent::<crate::task::Task>()
}

/// The blocking pool of the calling worker's runtime.
#[inline(never)]
pub(crate) fn blocking_pool() -> Option<Arc<crate::blocking::pool::BlockingPool>> {
    WORKER.with(|w| w.borrow().as_ref().map(|w| w.blocking.clone()))
}

/// The CPU of the calling worker thread.
pub(crate) fn current_cpu() -> Option<usize> {
    crate::core::current::cpu()
}

/// The CPU of the calling worker when it is a worker of `sh`.
pub(crate) fn cpu_in(sh: &Shared) -> Option<usize> {
    crate::core::current::cpu_in(sh.rt_id)
}

/// Whether the calling code runs inside a green task (a task runs in a
/// fiber and only there).
#[inline]
pub(crate) fn in_task() -> bool {
    scx_rt_sys::fiber::in_fiber()
}

/// Whether the calling thread is a worker with a reschedule pending
/// (`need_resched`, or a polled slice deadline that passed, which this
/// marks as the slice timer would: `RqShared::expire_slice`).
#[inline]
pub(crate) fn need_resched() -> bool {
    match crate::core::current::preempt_check() {
        crate::core::current::Due::No => false,
        crate::core::current::Due::Resched => true,
        crate::core::current::Due::SliceOver => {
            expire_polled_slice();
            true
        }
    }
}

/// A preemption point found its polled slice deadline passed: the same
/// marks as the timer thread's for an expired CPU.
#[cold]
#[inline(never)]
fn expire_polled_slice() {
    with_worker(|sh, cpu| sh.cpus[cpu].shared.expire_slice());
}

/// Makes the calling thread a worker with context `w`.
pub(crate) fn enter(w: WorkerTls) {
    WORKER.with(|c| *c.borrow_mut() = Some(w));
}

/// The calling thread is no worker any more.
pub(crate) fn leave() {
    WORKER.with(|c| *c.borrow_mut() = None);
}

/// Wakes a blocked task (green wait queues call this). A waker that is a
/// worker of the task's runtime uses its own context's reference to the
/// runtime; any other finds it in the registry of runtimes. Neither
/// counts a reference on the runtime's shared state, which every CPU
/// would write.
pub(crate) fn wake_task(p: TaskRef) {
    wake_task_with(p, WakeFlags::TTWU);
}

/// `wake_task` with the wake flags `flags` (`TTWU` and any hints, such as
/// `SYNC` for a waker CPU about to go idle: `io::look`).
pub(crate) fn wake_task_with(p: TaskRef, flags: WakeFlags) {
    if !p.wake_claim() {
        return;
    }
    let p = WORKER.with(|w| {
        let w = w.borrow();
        match w.as_ref() {
            Some(w) if w.sh.rt_id == p.rt_id => {
                crate::core::enqueue::wake_up(&w.sh, p, flags, Some(w.cpu));
                None
            }
            _ => Some(p),
        }
    });
    if let Some(p) = p {
        if let Some(sh) = crate::runtimes::find(p.rt_id) {
            let from = cpu_in(&sh);
            crate::core::enqueue::wake_up(&sh, p, flags, from);
        }
    }
}
