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

use std::time::Duration;

use crate::loom::{fence, AtomicU32, Ordering};

/// Running a task or the scheduler.
pub(crate) const RUNNING: u32 = 0;
/// Idle and spinning on `need_resched`.
pub(crate) const POLLING: u32 = 1;
/// Idle and blocked on the doorbell.
pub(crate) const SLEEPING: u32 = 2;

pub(crate) struct Doorbell {
    state: AtomicU32,
    #[cfg(scx_rt_loom)]
    mu: loom::sync::Mutex<()>,
    #[cfg(scx_rt_loom)]
    cv: loom::sync::Condvar,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(RUNNING),
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
        if self.state.load(Ordering::SeqCst) != SLEEPING {
            return false;
        }
        if self
            .state
            .compare_exchange(SLEEPING, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        #[cfg(not(scx_rt_loom))]
        scx_rt_sys::futex::wake_one(&self.state);
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
}
