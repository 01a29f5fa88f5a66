//! The per-CPU doorbell: how a sleeping worker is woken.
//!
//! # Protocol
//!
//! The doorbell word is the worker's idle state: `RUNNING`, `POLLING`
//! (spinning idle: it watches `need_resched` and needs no syscall to wake) or
//! `SLEEPING` (blocked in `futex_wait` on this word).
//!
//! ```text
//! sleeper (the worker itself)             waker (resched_curr)
//! S1 state := SLEEPING                    W1 need_resched := true
//!    fence(SeqCst)                           fence(SeqCst)
//! S2 if need_resched { cancel }           W2 if state == SLEEPING &&
//! S3 futex_wait(state, SLEEPING)             CAS(SLEEPING -> RUNNING) { futex_wake }
//! S4 state := RUNNING
//! ```
//!
//! Why no wake-up is lost: the two SeqCst fences are totally ordered. If the
//! sleeper's fence comes first, W2 (after the waker's fence) sees S1's
//! `SLEEPING`; if the waker's comes first, S2 sees W1's `true` and the sleep
//! is cancelled. So S2 reading `false` implies W2 reads `SLEEPING` (only the
//! sleeper leaves SLEEPING, at S4, after it woke). Fences rather than SeqCst
//! accesses: the store-load (Dekker) pattern needs them in the C++ model
//! that loom checks, and on x86 they cost what a SeqCst store would. The waker then changes the word before it wakes: if its CAS lands
//! before S3, `futex_wait` sees a value other than `SLEEPING` and returns at
//! once; if after, the sleeper is queued on the futex and `futex_wake` wakes
//! it. Only the waker whose CAS wins makes the syscall, so a sleep costs at
//! most one wake. A worker that is RUNNING or POLLING costs its waker no
//! syscall at all: it sees `need_resched` at its next check.
//!
//! Under `cfg(scx_rt_loom)` the futex is a loom `Mutex` + `Condvar` with the
//! same compare-then-block semantics (timeouts are not modelled).
//!
//! # Sleeping in epoll (`SLEEPING_IO`)
//!
//! A CPU with I/O registered (`io::reactor`) sleeps in `epoll_wait` on its
//! reactor instead of `futex_wait`, so that a readiness event and a
//! reschedule both end the sleep in one system call. The protocol is the
//! one above with a second sleeping value: S1 publishes `SLEEPING_IO`, S3 is
//! the epoll wait, and W2's CAS moves either sleeping value to `RUNNING`;
//! the winner then wakes the sleeper the way its value says: `futex_wake`
//! for `SLEEPING`, a write to the CPU's eventfd (registered, level
//! triggered, in that epoll) for `SLEEPING_IO`. The no-lost-wake-up
//! argument does not change: it rests on the fences and the re-check, not
//! on the kind of wait. The eventfd differs from the futex in one way: its
//! count outlives the sleep. A sleeper that an I/O event woke before the
//! waker's write finds the count at its next epoll wait, which returns at
//! once and consumes it: one spurious wake-up, never a lost one.

use std::time::Duration;

use crate::loom::{fence, AtomicU32, Ordering};

/// Running a task or the scheduler.
pub(crate) const RUNNING: u32 = 0;
/// Idle and spinning on `need_resched`.
pub(crate) const POLLING: u32 = 1;
/// Idle and blocked on the doorbell.
pub(crate) const SLEEPING: u32 = 2;
/// Idle and blocked in the CPU's reactor (`epoll_wait`); woken through
/// its eventfd.
pub(crate) const SLEEPING_IO: u32 = 3;

/// `repr(C)`, the state word first: it shares the remotely written line
/// of its CPU with `need_resched` (`rq::RqRemote`).
#[repr(C)]
pub(crate) struct Doorbell {
    state: AtomicU32,
    /// The eventfd of this CPU's reactor (set once, when the reactor is
    /// made): how a waker wakes a `SLEEPING_IO` sleeper.
    #[cfg(not(scx_rt_loom))]
    io_wake: std::sync::OnceLock<std::sync::Arc<scx_rt_sys::eventfd::EventFd>>,
    #[cfg(scx_rt_loom)]
    mu: loom::sync::Mutex<()>,
    #[cfg(scx_rt_loom)]
    cv: loom::sync::Condvar,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(RUNNING),
            #[cfg(not(scx_rt_loom))]
            io_wake: std::sync::OnceLock::new(),
            #[cfg(scx_rt_loom)]
            mu: loom::sync::Mutex::new(()),
            #[cfg(scx_rt_loom)]
            cv: loom::sync::Condvar::new(),
        }
    }

    /// Current idle state (for dumps and `can_skip_idle_kick` hints).
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }

    pub(crate) fn set_state(&self, s: u32) {
        self.state.store(s, Ordering::SeqCst);
    }

    /// Waker side (W2). Returns `true` when it made the wake syscall.
    #[inline]
    pub(crate) fn ring(&self) -> bool {
        // Orders the caller's `need_resched` store (W1) before the load (W2).
        fence(Ordering::SeqCst);
        let s = self.state.load(Ordering::SeqCst);
        if s != SLEEPING && s != SLEEPING_IO {
            return false;
        }
        if self
            .state
            .compare_exchange(s, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        #[cfg(not(scx_rt_loom))]
        if s == SLEEPING_IO {
            self.ring_io();
        } else {
            scx_rt_sys::futex::wake_one(&self.state);
        }
        #[cfg(scx_rt_loom)]
        {
            let _g = self.mu.lock().unwrap();
            self.cv.notify_all();
        }
        true
    }

    /// Sleeper side (S1..S4). `cancel` is S2: re-checked after SLEEPING is
    /// published; when it returns `true` the sleep is abandoned. Returns
    /// whether a waker rang (it moved the word off SLEEPING), as opposed to
    /// a cancelled sleep or a timeout.
    pub(crate) fn sleep(&self, timeout: Option<Duration>, cancel: impl Fn() -> bool) -> bool {
        self.state.store(SLEEPING, Ordering::SeqCst);
        // Orders S1 before the re-check S2.
        fence(Ordering::SeqCst);
        let mut rung = false;
        if !cancel() {
            #[cfg(not(scx_rt_loom))]
            scx_rt_sys::futex::wait(&self.state, SLEEPING, timeout);
            #[cfg(scx_rt_loom)]
            {
                let _ = timeout;
                let mut g = self.mu.lock().unwrap();
                while self.state.load(Ordering::SeqCst) == SLEEPING {
                    g = self.cv.wait(g).unwrap();
                }
            }
            rung = self.state.load(Ordering::SeqCst) != SLEEPING;
        }
        self.state.store(RUNNING, Ordering::SeqCst);
        rung
    }

    /// W2's wake of a `SLEEPING_IO` sleeper: a write to its eventfd. Only
    /// `sleep_io` publishes SLEEPING_IO, and only once the eventfd is set;
    /// a failed write (it cannot fail for a valid eventfd) leaves the
    /// sleeper to its timeout. Out of line: it keeps `ring`, on every
    /// wake-up's path, small enough to inline.
    #[cfg(not(scx_rt_loom))]
    #[cold]
    #[inline(never)]
    fn ring_io(&self) {
        if let Some(e) = self.io_wake.get() {
            let _ = e.notify();
        }
    }

    /// The eventfd that wakes this CPU out of its reactor (set once).
    #[cfg(not(scx_rt_loom))]
    pub(crate) fn set_io_wake(&self, e: std::sync::Arc<scx_rt_sys::eventfd::EventFd>) {
        let _ = self.io_wake.set(e);
    }

    /// `sleep` in the CPU's reactor: S1 publishes `SLEEPING_IO`, S3 is
    /// `wait` (an epoll wait that returns on an I/O event, the eventfd a
    /// waker writes, or the timeout). Returns whether a waker rang.
    ///
    /// Under loom the wait is the model's condvar, as for `sleep` (epoll is
    /// not modelled; the protocol under test is the state word's).
    pub(crate) fn sleep_io(
        &self,
        timeout: Option<Duration>,
        cancel: impl Fn() -> bool,
        wait: impl FnOnce(Option<Duration>),
    ) -> bool {
        #[cfg(not(scx_rt_loom))]
        debug_assert!(self.io_wake.get().is_some(), "sleep_io without an eventfd");
        self.state.store(SLEEPING_IO, Ordering::SeqCst);
        // Orders S1 before the re-check S2, as in `sleep`.
        fence(Ordering::SeqCst);
        let mut rung = false;
        if !cancel() {
            #[cfg(not(scx_rt_loom))]
            wait(timeout);
            #[cfg(scx_rt_loom)]
            {
                let _ = (timeout, wait);
                let mut g = self.mu.lock().unwrap();
                while self.state.load(Ordering::SeqCst) == SLEEPING_IO {
                    g = self.cv.wait(g).unwrap();
                }
            }
            rung = self.state.load(Ordering::SeqCst) != SLEEPING_IO;
        }
        self.state.store(RUNNING, Ordering::SeqCst);
        rung
    }
}
