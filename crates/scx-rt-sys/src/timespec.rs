//! `Duration` to `timespec`, for the system calls that take a timeout
//! (futex, eventfd's poll, POSIX timers). A leaf of this crate.

use std::time::Duration;

/// Converts a `Duration` to a `timespec`, saturating at the largest
/// representable number of seconds.
pub(crate) fn duration_to_timespec(d: Duration) -> libc::timespec {
    let secs = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX);
    libc::timespec {
        tv_sec: secs,
        // Always < 1_000_000_000, fits every c_long.
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}
