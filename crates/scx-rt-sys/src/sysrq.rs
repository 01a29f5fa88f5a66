//! Signals an application opts into for the SysRq analogues (a state dump,
//! a scheduler detach): the handler only counts the delivery and wakes
//! whoever waits; a runtime's watcher thread does the work outside the
//! handler.
//!
//! The handler touches nothing but statics: a per-signal delivery counter
//! and a sequence word it bumps and wakes with `FUTEX_WAKE` (both
//! async-signal-safe). Any number of watchers (one per runtime that opted
//! in) compare counters with what they saw last, so no delivery is lost and
//! none needs clearing.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Highest signal number accepted (Linux's `SIGRTMAX` is 64).
const MAX_SIG: usize = 64;

static COUNTS: [AtomicU32; MAX_SIG + 1] = [const { AtomicU32::new(0) }; MAX_SIG + 1];
static SEQ: AtomicU32 = AtomicU32::new(0);
static INSTALLED: [AtomicU32; MAX_SIG + 1] = [const { AtomicU32::new(0) }; MAX_SIG + 1];

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some(c) = usize::try_from(sig).ok().and_then(|s| COUNTS.get(s)) {
        c.fetch_add(1, Ordering::AcqRel);
    }
    SEQ.fetch_add(1, Ordering::AcqRel);
    crate::futex::wake_all(&SEQ);
}

fn check(sig: libc::c_int) -> io::Result<usize> {
    match usize::try_from(sig) {
        Ok(s) if (1..=MAX_SIG).contains(&s) && sig != libc::SIGKILL && sig != libc::SIGSTOP => {
            Ok(s)
        }
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// Installs the counting handler for `sig` (once; later calls do nothing).
/// It replaces the signal's previous disposition for the whole process:
/// pick a signal the application does not otherwise use (`SIGUSR1`,
/// `SIGUSR2`, a real-time signal).
pub fn install(sig: libc::c_int) -> io::Result<()> {
    let s = check(sig)?;
    if INSTALLED[s].swap(1, Ordering::AcqRel) == 1 {
        return Ok(());
    }
    // SAFETY: an all-zero `sigaction` is a valid starting value (empty
    // mask, no flags); the fields we need are set below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a valid, owned sigset_t.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialized; the handler only touches atomics
    // in statics and makes one futex syscall, all async-signal-safe; a null
    // old-action pointer is allowed.
    let r = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    if r != 0 {
        INSTALLED[s].store(0, Ordering::Release);
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Deliveries of `sig` so far (0 for an invalid signal).
pub fn count(sig: libc::c_int) -> u32 {
    check(sig).map_or(0, |s| COUNTS[s].load(Ordering::Acquire))
}

/// The sequence word every delivery bumps.
pub fn seq() -> u32 {
    SEQ.load(Ordering::Acquire)
}

/// Waits until the sequence word differs from `seen`, or `timeout`.
pub fn wait(seen: u32, timeout: Option<Duration>) {
    crate::futex::wait(&SEQ, seen, timeout);
}

/// Wakes every waiter without a delivery (a watcher shutting down).
pub fn wake_waiters() {
    SEQ.fetch_add(1, Ordering::AcqRel);
    crate::futex::wake_all(&SEQ);
}

/// Sends `sig` to this process (`kill(getpid(), sig)`).
pub fn raise(sig: libc::c_int) -> io::Result<()> {
    check(sig)?;
    // SAFETY: plain syscalls with a valid signal number and our own pid.
    let r = unsafe { libc::kill(libc::getpid(), sig) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_counted_and_wakes_a_waiter() {
        let sig = libc::SIGRTMIN() + 7;
        install(sig).unwrap();
        install(sig).unwrap(); // idempotent
        let before = count(sig);
        let seen = seq();
        let waiter = std::thread::spawn(move || {
            while seq() == seen {
                wait(seen, Some(Duration::from_secs(5)));
            }
        });
        raise(sig).unwrap();
        waiter.join().unwrap();
        // The handler may run on any thread; it has run once `seq` moved.
        assert_eq!(count(sig), before + 1);
    }

    #[test]
    fn invalid_signals_are_refused() {
        assert!(install(0).is_err());
        assert!(install(libc::SIGKILL).is_err());
        assert!(install(65).is_err());
        assert_eq!(count(-1), 0);
    }
}
