//! Monotonic time in nanoseconds.
//!
//! `std::time::Instant` is opaque; the runtime wants plain `u64` nanoseconds
//! it can store in atomics (slice accounting, `runnable_at`, watchdog). This
//! is `clock_gettime(CLOCK_MONOTONIC)`, served by the vDSO without a system
//! call.

/// `CLOCK_MONOTONIC` in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec on our stack;
    // CLOCK_MONOTONIC is always supported on Linux, so the call cannot fail.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_and_advances() {
        let mut prev = now_ns();
        for _ in 0..10_000 {
            let n = now_ns();
            assert!(n >= prev);
            prev = n;
        }
        let a = now_ns();
        std::thread::sleep(Duration::from_millis(10));
        let b = now_ns();
        assert!(b - a >= 10_000_000);
    }
}
