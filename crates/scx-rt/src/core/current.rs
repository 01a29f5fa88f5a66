//! Who the calling thread is: a worker (which runtime, which CPU), and its
//! CPU's `need_resched` flag. A leaf: thread-locals and accessors only;
//! the worker loop fills them in (`worker`).
//!
//! The accessors are `#[inline(never)]`: a task may suspend on one thread
//! and resume on another, and a thread-local address computed before the
//! switch must not be reused after it.

use std::cell::Cell;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicBool, Ordering};

/// The worker's `need_resched` flag, shared with its CPU's atomics.
pub(crate) type Flag = Arc<CachePadded<AtomicBool>>;

std::thread_local! {
    /// (runtime id, CPU) of a worker thread; `(0, 0)` elsewhere (runtime
    /// ids start at 1).
    static WHO: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// The worker's `need_resched` flag (unset on other threads).
    static NEED_RESCHED: std::cell::OnceCell<Flag> = const { std::cell::OnceCell::new() };
}

/// Marks the calling thread as CPU `cpu` of runtime `rt_id`, with its
/// `need_resched` flag.
pub(crate) fn enter_worker(rt_id: u64, cpu: usize, need_resched: Flag) {
    WHO.with(|w| w.set((rt_id, cpu)));
    NEED_RESCHED.with(|f| {
        let _ = f.set(need_resched);
    });
}

/// The calling thread is no worker any more.
pub(crate) fn leave_worker() {
    WHO.with(|w| w.set((0, 0)));
}

/// (runtime id, CPU) of the calling worker thread.
#[inline(never)]
pub(crate) fn worker() -> Option<(u64, usize)> {
    WHO.with(|w| {
        let (rt, cpu) = w.get();
        (rt != 0).then_some((rt, cpu))
    })
}

/// The CPU of the calling worker thread.
#[inline(never)]
pub(crate) fn cpu() -> Option<usize> {
    WHO.with(|w| {
        let (rt, cpu) = w.get();
        (rt != 0).then_some(cpu)
    })
}

/// The CPU of the calling worker when it is a worker of runtime `rt_id`.
#[inline(never)]
pub(crate) fn cpu_in(rt_id: u64) -> Option<usize> {
    worker().filter(|(rt, _)| *rt == rt_id).map(|(_, c)| c)
}

/// Whether the calling thread is a worker with a reschedule pending: one
/// thread-local access and one load. Callers check `in_task` before
/// switching (a scheduler callback runs on the worker's own stack).
#[inline(never)]
pub(crate) fn need_resched() -> bool {
    NEED_RESCHED.with(|f| f.get().is_some_and(|f| f.load(Ordering::Relaxed)))
}
