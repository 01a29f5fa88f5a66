//! The slice timer's word: the state a worker touches to publish its
//! current task's slice deadline and make sure something will notice when
//! it passes: the worker's own expiry timer (`SliceTimer::Signal`), or the
//! timer thread, woken when it sleeps past the deadline. The protocol is in
//! the `timer` module docs; the thread itself lives there. A leaf below the
//! runtime state.

use crate::loom::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The timer thread's shared state.
pub(crate) struct TimerState {
    pub(crate) word: AtomicU32,
    pub(crate) next: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Rings so far (`Stats::timer_rings`).
    pub(crate) rings: AtomicU64,
}

impl TimerState {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            next: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            rings: AtomicU64::new(0),
        }
    }

    /// Worker side: the CPU whose `slice_deadline` this is now runs a task
    /// whose slice ends at `deadline` (`u64::MAX`: none). `expiry` is the
    /// CPU's expiry-timer handle (`scx_rt_sys::expiry::ExpiryHandle` as an
    /// integer; 0: the timer thread serves this CPU). Called on the CPU's
    /// worker thread only (the expiry timer's rule).
    ///
    /// With a handle, the timer is re-armed only for a deadline earlier
    /// than the armed one (`ExpiryHandle::published`). Its signal handler
    /// runs on this thread, so the store needs no ordering against other
    /// threads: a plain store, kept before `published` by a compiler fence.
    ///
    /// Without, the store and the load of `next` are both SeqCst, which
    /// orders them (a store then a load of another location, in the single
    /// total order of SeqCst operations) as the timer thread's side is
    /// ordered: one locked instruction. Even a deadline later than the one
    /// it replaces needs it: the thread forgets a deadline once it has
    /// passed (it marks the tick and stops watching), so "it wakes by the
    /// replaced one anyway" does not hold.
    #[inline]
    pub(crate) fn set_deadline(
        &self,
        slice_deadline: &AtomicU64,
        expiry: &AtomicU64,
        deadline: u64,
    ) {
        let old = slice_deadline.load(Ordering::Relaxed);
        if old == deadline {
            return;
        }
        match scx_rt_sys::expiry::ExpiryHandle::from_raw(expiry.load(Ordering::Relaxed)) {
            Some(h) => {
                slice_deadline.store(deadline, Ordering::Release);
                std::sync::atomic::compiler_fence(Ordering::SeqCst);
                h.published(deadline);
            }
            None => {
                slice_deadline.store(deadline, Ordering::SeqCst);
                if deadline != u64::MAX && deadline < self.next.load(Ordering::SeqCst) {
                    self.ring();
                }
            }
        }
    }

    /// A scheduler timer was armed for `deadline`: wakes the timer thread
    /// if it sleeps past it by more than `REARM_SLACK_NS` (same protocol as
    /// `set_deadline`; the slack is the `ops_timer` docs': a timer re-armed
    /// from its callback rings nobody).
    pub(crate) fn ops_timer_armed(&self, deadline: u64) {
        fence(Ordering::SeqCst);
        let slack = crate::ops_timer::REARM_SLACK_NS;
        if deadline.saturating_add(slack) < self.next.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    /// Makes the timer thread re-scan now (a scheduler was attached: its
    /// watchdog timeout may be shorter than the current sleep).
    pub(crate) fn wake(&self) {
        self.ring();
    }

    fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Relaxed);
        self.word.fetch_add(1, Ordering::SeqCst);
        scx_rt_sys::futex::wake_one(&self.word);
    }

    /// Stops the timer thread.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ring();
    }
}
