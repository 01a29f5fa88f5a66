//! Futex wait/wake on an `AtomicU32`: the OS half of the idle doorbell.
//!
//! The protocol a caller builds on top is the classic one: publish "I am
//! about to sleep" in the atomic, re-check the condition, then
//! [`wait`]`(atom, expected)`. The kernel compares `*atom == expected` under
//! its hash-bucket lock before sleeping, so a waker that changes the atomic
//! and then calls [`wake_one`]/[`wake_all`] cannot be lost: either the waiter
//! sees the new value and returns at once, or it is already queued and gets
//! woken.
//!
//! Returns are allowed to be spurious (signals, `EAGAIN` when the value has
//! already changed, timeouts): callers always re-check their condition in a
//! loop.
//!
//! The untimed path is the `atomic-wait` crate; the timed path is a direct
//! `FUTEX_WAIT_PRIVATE` with a relative timeout.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::timespec::duration_to_timespec;

/// Block while `atom == expected`, at most `timeout` (`None` = forever).
/// Spurious returns are allowed.
pub fn wait(atom: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    match timeout {
        None => atomic_wait::wait(atom, expected),
        Some(t) => wait_timeout(atom, expected, t),
    }
}

fn wait_timeout(atom: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = duration_to_timespec(timeout);
    // SAFETY: FUTEX_WAIT reads the u32 at `atom.as_ptr()`, which is valid and
    // aligned for the whole call because we borrow `atom`; `ts` lives on our
    // stack for the duration of the call; the remaining arguments are unused
    // by FUTEX_WAIT. The kernel never writes through either pointer.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_futex,
            atom.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    // EINTR, EAGAIN (value already changed) and ETIMEDOUT are all ordinary
    // returns for a caller that re-checks its condition; nothing else can
    // happen with valid arguments.
}

/// Wake at most one thread blocked in [`wait`] on `atom`.
pub fn wake_one(atom: &AtomicU32) {
    atomic_wait::wake_one(atom);
}

/// Wake every thread blocked in [`wait`] on `atom`.
pub fn wake_all(atom: &AtomicU32) {
    atomic_wait::wake_all(atom);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wake_one_across_threads() {
        let atom = Arc::new(AtomicU32::new(0));
        let a2 = atom.clone();
        let t = std::thread::spawn(move || {
            while a2.load(Ordering::Acquire) == 0 {
                wait(&a2, 0, None);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        atom.store(1, Ordering::Release);
        wake_one(&atom);
        t.join().unwrap();
    }

    #[test]
    fn wake_all_across_threads() {
        let atom = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = atom.clone();
                std::thread::spawn(move || {
                    while a.load(Ordering::Acquire) == 0 {
                        wait(&a, 0, Some(Duration::from_secs(10)));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        atom.store(1, Ordering::Release);
        wake_all(&atom);
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn timeout_elapses() {
        let atom = AtomicU32::new(0);
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        // Spurious returns are allowed, so loop until the deadline.
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            wait(&atom, 0, Some(left));
        }
        assert!(start.elapsed() >= timeout);
    }

    #[test]
    fn single_timed_wait_sleeps() {
        // A single timed wait with nobody waking it should (barring a
        // signal) sleep for the full timeout.
        let atom = AtomicU32::new(0);
        let timeout = Duration::from_millis(20);
        let start = Instant::now();
        wait(&atom, 0, Some(timeout));
        assert!(start.elapsed() >= timeout);
    }

    #[test]
    fn value_mismatch_returns_immediately() {
        let atom = AtomicU32::new(5);
        let start = Instant::now();
        wait(&atom, 4, Some(Duration::from_secs(10)));
        wait(&atom, 4, None);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
