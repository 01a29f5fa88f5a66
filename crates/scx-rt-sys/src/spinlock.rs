//! A spin lock for the runtime's short critical sections (rq and DSQ
//! locks), as the kernel uses raw spinlocks for them.
//!
//! A parking lock (parking_lot's) parks a contended waiter in the kernel;
//! when sixteen CPUs pass tasks through one global DSQ, each hand-off then
//! costs a futex wake. The holders here are running workers that hold the
//! lock for a few hundred nanoseconds, so waiting by spinning is cheaper.
//! After a bounded number of spins the waiter yields the OS thread, so that
//! a holder preempted by the OS (more workers than cores, or a noisy
//! hypervisor) gets to run.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::lock_api;

/// Spins between two `sched_yield`s while the lock is held.
const SPINS_BEFORE_YIELD: u32 = 128;

/// The raw lock: one flag.
pub struct RawSpinLock {
    locked: AtomicBool,
}

// SAFETY: `lock` returns only after this thread changed `locked` from false
// to true with an acquire swap, and `try_lock` returns true only in that
// case too, so at most one owner holds the lock at a time; `unlock` (called
// only by the owner, per the trait's contract) publishes the critical
// section with a release store. The lock is not tied to a thread (a guard
// may be released by another thread), which `GuardSend` states.
unsafe impl lock_api::RawMutex for RawSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self {
        locked: AtomicBool::new(false),
    };

    type GuardMarker = lock_api::GuardSend;

    #[inline]
    fn lock(&self) {
        if self.try_lock() {
            return;
        }
        self.lock_slow();
    }

    #[inline]
    fn try_lock(&self) -> bool {
        !self.locked.load(Ordering::Relaxed) && !self.locked.swap(true, Ordering::Acquire)
    }

    // SAFETY (of the implementation): the trait's contract is that only the
    // owner calls `unlock`; releasing the flag is then the end of its
    // critical section.
    #[inline]
    unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

impl RawSpinLock {
    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    spins = 0;
                    std::thread::yield_now();
                }
            }
            if !self.locked.swap(true, Ordering::Acquire) {
                return;
            }
        }
    }
}

/// A mutex on [`RawSpinLock`].
pub type SpinMutex<T> = lock_api::Mutex<RawSpinLock, T>;
/// Its guard.
pub type SpinMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawSpinLock, T>;

/// Releases the lock of `guard` while `f` runs and takes it again before
/// returning (`lock_api::MutexGuard::unlocked`, for users of this module
/// that do not name `lock_api`).
pub fn unlocked<T, R>(guard: &mut SpinMutexGuard<'_, T>, f: impl FnOnce() -> R) -> R {
    lock_api::MutexGuard::unlocked(guard, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_counts_exactly() {
        let m = std::sync::Arc::new(SpinMutex::new(0u64));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 160_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = SpinMutex::new(());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(m.try_lock().is_some());
    }
}
