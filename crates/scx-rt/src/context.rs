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
    pub task: Option<TaskRef>,
}

std::thread_local! {
    static WORKER: RefCell<Option<WorkerTls>> = const { RefCell::new(None) };
}

// The accessors are `#[inline(never)]`: a task may suspend on one thread and
// resume on another, and a thread-local address computed before the switch
// must not be reused after it.

/// (runtime, cpu, current task) of the calling thread, if it is a worker.
#[inline(never)]
pub(crate) fn current() -> Option<(Arc<Shared>, usize, Option<TaskRef>)> {
    WORKER.with(|w| {
        w.borrow()
            .as_ref()
            .map(|w| (w.sh.clone(), w.cpu, w.task.clone()))
    })
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

/// Whether the calling code runs inside a green task.
#[inline(never)]
pub(crate) fn in_task() -> bool {
    WORKER.with(|w| w.borrow().as_ref().is_some_and(|w| w.task.is_some()))
}

/// Whether the calling thread is a worker with a reschedule pending.
#[inline]
pub(crate) fn need_resched() -> bool {
    crate::core::current::need_resched()
}

/// Makes the calling thread a worker with context `w`.
pub(crate) fn enter(w: WorkerTls) {
    WORKER.with(|c| *c.borrow_mut() = Some(w));
}

/// The calling thread is no worker any more.
pub(crate) fn leave() {
    WORKER.with(|c| *c.borrow_mut() = None);
}

/// Sets the task the calling worker runs now (`None`: none).
pub(crate) fn set_task(t: Option<TaskRef>) {
    WORKER.with(|w| {
        if let Some(w) = w.borrow_mut().as_mut() {
            w.task = t;
        }
    });
}

/// Wakes a blocked task (green wait queues call this).
pub(crate) fn wake_task(sh: &Shared, p: TaskRef) {
    if p.wake_claim() {
        crate::core::enqueue::wake_up(sh, p, WakeFlags::TTWU, cpu_in(sh));
    }
}
