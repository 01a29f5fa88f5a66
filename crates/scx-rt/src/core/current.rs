//! Who the calling thread is: a worker (which runtime, which CPU), and its
//! CPU's `need_resched` flag and polled slice deadline (`SliceTimer::Poll`).
//! Thread-locals and accessors only (a leaf but for the type of the line
//! `need_resched` sits on, `rq::RqRemote`); the worker loop fills them in
//! (`worker`).
//!
//! The accessors are `#[inline(never)]`: a task may suspend on one thread
//! and resume on another, and a thread-local address computed before the
//! switch must not be reused after it.

use std::cell::Cell;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicU64, Ordering};

/// The remotely written line of the worker's CPU, `need_resched` first
/// (`RqShared::remote`).
pub(crate) type Flag = Arc<CachePadded<crate::rq::RqRemote>>;

/// The worker's polled slice deadline (`RqShared::poll_deadline`).
pub(crate) type PollWord = Arc<CachePadded<AtomicU64>>;

std::thread_local! {
    /// (runtime id, CPU) of a worker thread; `(0, 0)` elsewhere (runtime
    /// ids start at 1).
    static WHO: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// The worker's remotely written line (for its `need_resched`) and
    /// polled slice deadline (unset on other threads).
    static PREEMPT: std::cell::OnceCell<(Flag, PollWord)> = const { std::cell::OnceCell::new() };
}

/// Marks the calling thread as CPU `cpu` of runtime `rt_id`, with its
/// CPU's remotely written line (`need_resched` first) and polled slice
/// deadline.
pub(crate) fn enter_worker(rt_id: u64, cpu: usize, remote: Flag, poll: PollWord) {
    WHO.with(|w| w.set((rt_id, cpu)));
    PREEMPT.with(|f| {
        let _ = f.set((remote, poll));
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

/// What a preemption point of the calling thread finds ([`preempt_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing: the task runs on.
    No,
    /// `need_resched` is set.
    Resched,
    /// The polled slice deadline passed (`SliceTimer::Poll`); the check
    /// cleared it, and the caller marks the expiry (`RqShared::expire_slice`).
    SliceOver,
}

/// Whether the calling thread is a worker with a reschedule pending, or
/// whose polled slice deadline has passed: one thread-local access and two
/// loads, and a clock read while a polled deadline is set. Callers check
/// `in_task` before switching (a scheduler callback runs on the worker's
/// own stack).
#[inline(never)]
pub(crate) fn preempt_check() -> Due {
    PREEMPT.with(|f| {
        let Some((flag, poll)) = f.get() else {
            return Due::No;
        };
        if flag.need_resched.load(Ordering::Relaxed) {
            return Due::Resched;
        }
        let d = poll.load(Ordering::Relaxed);
        if d == u64::MAX || crate::core::clock::now() < d {
            return Due::No;
        }
        // Once: the next pick publishes the next deadline.
        poll.store(u64::MAX, Ordering::Relaxed);
        Due::SliceOver
    })
}
