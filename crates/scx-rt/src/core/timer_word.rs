//! The slice timer's word: the state a worker touches to publish its
//! current task's slice deadline and make sure something will notice when
//! it passes: the worker's own expiry timer (`SliceTimer::Signal`), or the
//! timer thread, woken when it sleeps past the deadline. The protocol is in
//! the `timer` module docs; the thread itself lives there. A leaf below the
//! runtime state.

use crate::loom::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What ends a slice when its deadline passes ([`Builder::slice_timer`]);
/// the `timer` module docs give the measurements behind the default.
///
/// Whichever is chosen, a slice ends the same way: the CPU's `tick_pending`
/// and `need_resched` are set, the task switches out at its next
/// preemption point and the scheduler's `tick` runs first (SPEC.md §3.8).
///
/// [`Builder::slice_timer`]: crate::Builder::slice_timer
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SliceTimer {
    /// One POSIX timer per worker thread (`scx_rt_sys::expiry`), armed at
    /// the earliest slice deadline and re-armed only when a deadline is
    /// earlier than the armed one or when it fires: no system call on a
    /// common switch, and no spare CPU needed (the signal interrupts the
    /// worker itself, like the kernel's tick). The cost: a task's raw
    /// system calls that Linux does not restart (sleeps and waits with a
    /// timeout, `poll`, `epoll_wait`, socket calls with a timeout) can fail
    /// with `EINTR` when its slice ends during one. A worker that cannot
    /// create its timer (the signal, `SIGRTMIN + 4`, is taken by another
    /// handler, or the timer limit is reached) falls back to `Thread`.
    #[default]
    Signal,
    /// The runtime's timer thread, which sleeps until the earliest deadline
    /// of all CPUs. No signal reaches task code; a slice ends late when
    /// every CPU is busy and the OS runs the thread late.
    Thread,
    /// `Thread` at real-time priority (`SCHED_FIFO` 1), which the OS runs
    /// as soon as it wakes; where the process may not have it
    /// (`CAP_SYS_NICE` or `RLIMIT_RTPRIO`), exactly `Thread`.
    RealtimeThread,
}

/// The timer thread's shared state.
pub(crate) struct TimerState {
    pub(crate) word: AtomicU32,
    pub(crate) next: AtomicU64,
    pub(crate) stop: AtomicBool,
}

impl TimerState {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            next: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
        }
    }

    /// Worker side: the CPU whose `slice_deadline` this is now runs a task
    /// whose slice ends at `deadline` (`u64::MAX`: none). `expiry` is the
    /// CPU's expiry-timer handle (`scx_rt_sys::expiry::ExpiryHandle` as an
    /// integer; 0: the timer thread serves this CPU). Called on the CPU's
    /// worker thread only (the expiry timer's rule).
    ///
    /// With a handle, the timer is re-armed only for a deadline earlier
    /// than the armed one (`ExpiryHandle::published`). Without, the store
    /// and the load of `next` are both SeqCst, which orders them (a store
    /// then a load of another location, in the single total order of
    /// SeqCst operations) as the timer thread's side is ordered; one locked
    /// instruction.
    #[inline]
    pub(crate) fn set_deadline(
        &self,
        slice_deadline: &AtomicU64,
        expiry: &AtomicU64,
        deadline: u64,
    ) {
        if slice_deadline.load(Ordering::Relaxed) == deadline {
            return;
        }
        slice_deadline.store(deadline, Ordering::SeqCst);
        match scx_rt_sys::expiry::ExpiryHandle::from_raw(expiry.load(Ordering::Relaxed)) {
            Some(h) => {
                h.published(deadline);
            }
            None => {
                if deadline != u64::MAX && deadline < self.next.load(Ordering::SeqCst) {
                    self.ring();
                }
            }
        }
    }

    /// A scheduler timer was armed for `deadline`: wakes the timer thread
    /// if it sleeps past it (same protocol as `set_deadline`).
    pub(crate) fn ops_timer_armed(&self, deadline: u64) {
        fence(Ordering::SeqCst);
        if deadline < self.next.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    /// Makes the timer thread re-scan now (a scheduler was attached: its
    /// watchdog timeout may be shorter than the current sleep).
    pub(crate) fn wake(&self) {
        self.ring();
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
