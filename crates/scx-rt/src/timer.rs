//! The slice timer: one runtime thread that sleeps until the earliest slice
//! deadline of any CPU (tickless, SPEC.md §3.8), then marks the CPUs whose
//! current task's slice ran out: `need_resched` (the task switches out at
//! its next preemption point) and `tick_pending` (that switch calls
//! `ops.tick` first).
//!
//! # Protocol
//!
//! Each worker publishes its current task's deadline (`slice_deadline`,
//! `u64::MAX` for idle or `SLICE_INF`) whenever it picks a task, and rings
//! the timer only when that deadline is earlier than the one the timer
//! sleeps until (`next`). The timer reads the doorbell word, publishes
//! `next = MAX` ("scanning": every worker rings), scans, publishes the
//! earliest future deadline, and sleeps on the word until then. A deadline
//! stored after the scan read it is therefore either rung (the worker saw
//! MAX, or a later `next`) or not earlier than `next` (the timer wakes by
//! then and sees it): a deadline is never overslept. The fences make the
//! store-then-load pairs on both sides ordered (as in `doorbell`).
//!
//! This is the first cut of the kick issue's timer; the choice against
//! per-worker timer signals is to be made by measurement there.

use std::sync::Arc;
use std::time::Duration;

use crate::loom::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::sched::{now, Shared};

/// The timer thread's shared state.
pub(crate) struct TimerState {
    word: AtomicU32,
    next: AtomicU64,
    stop: AtomicBool,
}

impl TimerState {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            next: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
        }
    }

    /// Worker side: CPU `cpu` now runs a task whose slice ends at
    /// `deadline` (`u64::MAX`: none).
    #[inline]
    pub(crate) fn set_deadline(&self, sh: &Shared, cpu: usize, deadline: u64) {
        let s = &sh.cpus[cpu].shared;
        if s.slice_deadline.load(Ordering::Relaxed) == deadline {
            return;
        }
        s.slice_deadline.store(deadline, Ordering::SeqCst);
        if deadline == u64::MAX {
            return;
        }
        fence(Ordering::SeqCst);
        if deadline < self.next.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    fn ring(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        scx_rt_sys::futex::wake_one(&self.word);
    }

    /// Stops the timer thread.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ring();
    }
}

/// The timer thread's loop.
pub(crate) fn timer_main(sh: Arc<Shared>) {
    let t = &sh.timer;
    loop {
        let w = t.word.load(Ordering::SeqCst);
        if t.stop.load(Ordering::SeqCst) {
            return;
        }
        t.next.store(u64::MAX, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let now = now();
        let mut next = u64::MAX;
        for c in sh.cpus.iter() {
            let d = c.shared.slice_deadline.load(Ordering::SeqCst);
            if d == u64::MAX {
                continue;
            }
            if d <= now {
                if !c.shared.tick_pending.swap(true, Ordering::AcqRel) {
                    // The CPU runs a task: no doorbell needed, it sees the
                    // flag at its next preemption point.
                    c.shared.need_resched.store(true, Ordering::SeqCst);
                }
            } else {
                next = next.min(d);
            }
        }
        t.next.store(next, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let timeout = (next != u64::MAX).then(|| Duration::from_nanos(next - now));
        scx_rt_sys::futex::wait(&t.word, w, timeout);
    }
}
