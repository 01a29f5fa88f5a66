//! Per-thread POSIX timers that raise a flag on their own thread, and the
//! timer slack of the calling thread.
//!
//! A [`SigTimer`] is a `timer_create(CLOCK_MONOTONIC)` timer whose expiry
//! sends a real-time signal ([`signal`], `SIGRTMIN + 3`) to the one thread
//! that created it (`SIGEV_THREAD_ID`). The handler stores `true` into the
//! `&'static AtomicBool` the timer was created with. It is the "per-worker
//! timer signal" alternative to the runtime's slice-timer thread
//! (`scx-rt`'s `timer` module explains which one the runtime uses, and why);
//! the benchmark `scx-rt-bench slice-timer` measures both.
//!
//! # How the handler finds the flag
//!
//! The handler runs on the signalled thread, possibly in the middle of any
//! code of that thread, so it touches nothing but atomics in statics: no
//! thread-locals (which are not guaranteed async-signal-safe for code that
//! ends up in a dynamically loaded object), no locks, no allocation, and no
//! `errno`. Each timer owns a slot of a static table ([`MAX_TIMERS`]
//! slots); the slot holds an allocation generation and the flag pointer,
//! and the timer's `sigev_value` carries `(slot, generation)`. The handler
//! acts only on signals whose `si_code` is `SI_TIMER` and whose generation
//! is the slot's current one, so a signal still queued when its timer was
//! deleted (and its slot perhaps reused) is ignored. Flags are `'static`,
//! so even a forged signal can at worst set some live flag: the handler
//! never dereferences memory that could have been freed.
//!
//! # What signals cost the signalled thread
//!
//! The handler is installed with `SA_RESTART`, so most interrupted system
//! calls of the thread are restarted. Not all: Linux never restarts sleeps
//! with a timeout (`nanosleep`, `futex` waits with a timeout, `epoll_wait`,
//! `poll`, `select`) or calls interrupted while a socket timeout is set;
//! they fail with `EINTR`. Code that runs on a thread owning an armed
//! `SigTimer` must therefore cope with `EINTR` (std's `thread::sleep` and
//! its I/O retry loops do; arbitrary C libraries may not).
//!
//! # Timer slack
//!
//! Linux lets the kernel fire a sleeping thread's timeouts (futex waits,
//! `nanosleep`, `poll`) up to the thread's *timer slack* late (50 µs by
//! default for normal threads) so that wake-ups can be batched; POSIX
//! timers are not subject to it. [`set_timer_slack`] changes the slack of
//! the calling thread (`PR_SET_TIMERSLACK`).

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::timespec::duration_to_timespec;

/// Timers that may exist at once in the process (slots of the static table
/// the handler reads). [`SigTimer::new`] fails with `EAGAIN` beyond that.
pub const MAX_TIMERS: usize = 1024;

/// Offset of the signal used above `SIGRTMIN`. glibc keeps the first two
/// kernel real-time signals for itself (its `SIGRTMIN` is already past
/// them); 3 stays clear of the low offsets that libraries tend to pick.
const SIGNAL_OFFSET: libc::c_int = 3;

/// Bits of `sigev_value` that carry the slot index; the rest carry the
/// generation.
const SLOT_BITS: u32 = 16;
const _: () = assert!(MAX_TIMERS <= 1 << SLOT_BITS);

/// One slot of the table: `state` is `generation << 1 | used`, `flag` the
/// flag of the timer that owns it (null when free).
struct Slot {
    state: AtomicU64,
    flag: AtomicPtr<AtomicBool>,
}

#[allow(clippy::declare_interior_mutable_const)] // only an array initialiser
const FREE_SLOT: Slot = Slot {
    state: AtomicU64::new(0),
    flag: AtomicPtr::new(std::ptr::null_mut()),
};

static SLOTS: [Slot; MAX_TIMERS] = [FREE_SLOT; MAX_TIMERS];

/// The real-time signal the timers send (`SIGRTMIN + 3`).
pub fn signal() -> libc::c_int {
    libc::SIGRTMIN() + SIGNAL_OFFSET
}

/// A one-shot `CLOCK_MONOTONIC` timer of the calling thread: when it
/// expires, a signal interrupts this thread and sets the timer's flag.
///
/// Not `Send`: the timer signals the thread that created it, and only that
/// thread may delete it (so the handler and `Drop` never run at once on two
/// threads).
pub struct SigTimer {
    id: libc::timer_t,
    slot: usize,
    _not_send: PhantomData<*const ()>,
}

impl SigTimer {
    /// Creates a disarmed timer that will signal the calling thread and
    /// set `flag` (installing the process-wide handler on first use).
    ///
    /// Errors: the signal already has a handler that is not ours
    /// (`EBUSY`), all [`MAX_TIMERS`] slots are taken (`EAGAIN`), or
    /// `timer_create` failed.
    pub fn new(flag: &'static AtomicBool) -> io::Result<SigTimer> {
        install_handler()?;
        let (slot, gen) = claim_slot().ok_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN))?;
        SLOTS[slot].flag.store(
            flag as *const AtomicBool as *mut AtomicBool,
            Ordering::Release,
        );
        // SAFETY: an all-zero `sigevent` is a valid value (integers and a
        // null pointer); the fields we need are set below.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = signal();
        sev.sigev_value = libc::sigval {
            sival_ptr: encode(slot, gen) as *mut libc::c_void,
        };
        // SAFETY: `gettid` has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `sev` and `id` are valid for the call; with
        // SIGEV_THREAD_ID the kernel sends the signal to the thread named,
        // which is this one (a thread of this process).
        let rc = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            release_slot(slot);
            return Err(e);
        }
        Ok(SigTimer {
            id,
            slot,
            _not_send: PhantomData,
        })
    }

    /// Arms the timer to expire once, `after` from now (a zero duration
    /// is rounded up to 1 ns: it expires at once rather than disarming).
    /// Re-arming replaces the previous expiry. One `timer_settime` call.
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        self.settime(duration_to_timespec(after))
    }

    /// Disarms the timer. A signal already sent is still delivered (and
    /// sets the flag); callers clear the flag after disarming if that
    /// matters.
    pub fn disarm(&self) -> io::Result<()> {
        self.settime(libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        })
    }

    fn settime(&self, value: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `self.id` is a live timer (deleted only in `drop`);
        // `spec` is a valid itimerspec and the old value is not requested.
        let rc = unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for SigTimer {
    fn drop(&mut self) {
        // SAFETY: `self.id` is a live timer and is not used after this.
        unsafe { libc::timer_delete(self.id) };
        release_slot(self.slot);
    }
}

impl std::fmt::Debug for SigTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigTimer")
            .field("slot", &self.slot)
            .finish()
    }
}

/// Sets the timer slack of the calling thread to `ns` nanoseconds (at
/// least 1; `PR_SET_TIMERSLACK` reads 0 as "back to the default").
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(ns.max(1)).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no
    // memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The timer slack of the calling thread, in nanoseconds.
pub fn timer_slack() -> io::Result<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as u64)
    }
}

fn encode(slot: usize, gen: u64) -> usize {
    ((gen as usize) << SLOT_BITS) | slot
}

/// Takes a free slot and returns `(slot, generation)`.
fn claim_slot() -> Option<(usize, u64)> {
    // The generation only has to tell a slot's owners apart within the
    // bits `sigev_value` carries above the slot index.
    claim_gen_slot(
        SLOTS.iter().map(|s| &s.state),
        (usize::MAX >> SLOT_BITS) as u64,
    )
}

/// The slot tables of the timer signals (here and `expiry`): each slot's
/// `state` is `generation << 1 | busy`. Takes the first free slot of
/// `states`, bumping its generation within `gen_mask` (never to 0, so an
/// encoded handle is never 0), and returns `(index, generation)`; `None`
/// when every slot is busy.
pub(crate) fn claim_gen_slot<'a>(
    states: impl Iterator<Item = &'a AtomicU64>,
    gen_mask: u64,
) -> Option<(usize, u64)> {
    for (i, state) in states.enumerate() {
        let st = state.load(Ordering::Relaxed);
        if st & 1 == 1 {
            continue;
        }
        let mut gen = ((st >> 1) + 1) & gen_mask;
        if gen == 0 {
            gen = 1;
        }
        if state
            .compare_exchange(st, gen << 1 | 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Some((i, gen));
        }
    }
    None
}

/// Frees a slot claimed with `claim_gen_slot` (its generation stays, so
/// a late signal naming the old owner is ignored).
pub(crate) fn release_gen_slot(state: &AtomicU64) {
    let st = state.load(Ordering::Relaxed);
    state.store(st & !1, Ordering::Release);
}

fn release_slot(slot: usize) {
    let s = &SLOTS[slot];
    s.flag.store(std::ptr::null_mut(), Ordering::Release);
    release_gen_slot(&s.state);
}

/// Installs [`handler`] for [`signal`] once per process.
fn install_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = INSTALLED.get_or_init(|| take_signal(signal(), handler));
    r.map_err(io::Error::from_raw_os_error)
}

/// Installs `handler` (`SA_SIGINFO | SA_RESTART`, empty mask) for `sig`,
/// unless the signal already has a handler of someone else's (`EBUSY`):
/// the timers here never take a signal over. Returns the errno on failure.
/// `handler` must be async-signal-safe.
pub(crate) fn take_signal(
    sig: libc::c_int,
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
) -> Result<(), i32> {
    // SAFETY: an all-zero `sigaction` is a valid value; `sigemptyset`
    // initialises its mask.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as *const () as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: an all-zero `sigaction` is a valid out-value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reading the current disposition (null new action).
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
        // Someone else uses this signal: do not take it over.
        return Err(libc::EBUSY);
    }
    // SAFETY: `sa` is fully initialised and the caller promises `handler`
    // is async-signal-safe.
    if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    Ok(())
}

/// The signal handler: sets the flag of the timer named by `sigev_value`
/// if that timer still owns its slot.
extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    if info.is_null() {
        return;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for the
    // duration of the handler.
    let info = unsafe { &*info };
    if info.si_code != libc::SI_TIMER {
        return; // not from a POSIX timer (kill, sigqueue, tgkill)
    }
    // SAFETY: for SI_TIMER the kernel fills the timer fields of the union,
    // whose `si_sigval` lies where `si_value` reads it.
    let v = unsafe { info.si_value() }.sival_ptr as usize;
    let slot = v & ((1 << SLOT_BITS) - 1);
    let gen = (v >> SLOT_BITS) as u64;
    let Some(s) = SLOTS.get(slot) else {
        return;
    };
    if s.state.load(Ordering::Acquire) != gen << 1 | 1 {
        return; // the timer was deleted; its slot is free or reused
    }
    let p = s.flag.load(Ordering::Acquire);
    // SAFETY: non-null slot pointers come from `&'static AtomicBool`s
    // (`SigTimer::new`), valid forever.
    if let Some(flag) = unsafe { p.as_ref() } {
        flag.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn leak_flag() -> &'static AtomicBool {
        Box::leak(Box::new(AtomicBool::new(false)))
    }

    /// Spins until `flag` is set or `limit` passes (a hang guard, not a
    /// timing assertion); returns whether it was set.
    fn wait_for(flag: &AtomicBool, limit: Duration) -> bool {
        let t = Instant::now();
        while !flag.load(Ordering::Acquire) {
            if t.elapsed() > limit {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    #[test]
    fn sigtimer_arming_fires_the_flag_on_this_thread() {
        let flag = leak_flag();
        let t = SigTimer::new(flag).unwrap();
        t.arm(Duration::from_micros(200)).unwrap();
        assert!(wait_for(flag, Duration::from_secs(10)), "timer never fired");
        // One-shot: cleared, it stays clear.
        flag.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!flag.load(Ordering::Relaxed));
        // Re-armable; a sleep the signal interrupts still sleeps its full
        // time (std retries an EINTR with the time left).
        t.arm(Duration::from_millis(1)).unwrap();
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(
            wait_for(flag, Duration::from_secs(10)),
            "re-armed timer never fired"
        );
    }

    #[test]
    fn sigtimer_disarm_prevents_expiry() {
        let flag = leak_flag();
        let t = SigTimer::new(flag).unwrap();
        t.arm(Duration::from_millis(50)).unwrap();
        t.disarm().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!flag.load(Ordering::Relaxed), "disarmed timer fired");
        // Dropping an armed timer deletes it: it never fires.
        let flag2 = leak_flag();
        let t2 = SigTimer::new(flag2).unwrap();
        t2.arm(Duration::from_millis(50)).unwrap();
        drop(t2);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!flag2.load(Ordering::Relaxed), "deleted timer fired");
    }

    #[test]
    fn sigtimer_two_threads_get_only_their_own() {
        use std::sync::mpsc;
        // Thread B owns a timer it arms only when told to; meanwhile A's
        // timer fires twenty times. Then B's fires and A's (disarmed) not.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (flag_tx, flag_rx) = mpsc::channel::<&'static AtomicBool>();
        let b = std::thread::spawn(move || {
            let mine = leak_flag();
            let t = SigTimer::new(mine).unwrap();
            flag_tx.send(mine).unwrap();
            go_rx.recv().unwrap();
            t.arm(Duration::from_micros(100)).unwrap();
            wait_for(mine, Duration::from_secs(10))
        });
        let b_flag = flag_rx.recv().unwrap();
        let a_flag = leak_flag();
        let a = SigTimer::new(a_flag).unwrap();
        for _ in 0..20 {
            a_flag.store(false, Ordering::Relaxed);
            a.arm(Duration::from_micros(100)).unwrap();
            assert!(wait_for(a_flag, Duration::from_secs(10)));
        }
        assert!(!b_flag.load(Ordering::Acquire), "A's timer set B's flag");
        a_flag.store(false, Ordering::Relaxed);
        go_tx.send(()).unwrap();
        assert!(b.join().unwrap(), "B's timer never fired");
        assert!(!a_flag.load(Ordering::Acquire), "B's timer set A's flag");
    }

    #[test]
    fn sigtimer_signal_goes_to_the_owner_thread() {
        // The owner blocks the signal: its timer's signal stays pending on
        // the owner (a process-directed one would run the handler on
        // another thread, which has it unblocked) until it unblocks.
        let sig = signal();
        let h = std::thread::spawn(move || {
            let flag = leak_flag();
            let t = SigTimer::new(flag).unwrap();
            // SAFETY: an all-zero sigset_t is valid input to sigemptyset.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: `set` is a valid sigset_t; `sig` is a valid signal.
            unsafe {
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
            }
            // SAFETY: `set` is initialised; the old mask is not requested.
            let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
            assert_eq!(rc, 0);
            t.arm(Duration::from_micros(100)).unwrap();
            // Wait until the signal is pending on this thread.
            let start = Instant::now();
            loop {
                // SAFETY: as above.
                let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
                // SAFETY: `pending` is a valid out-parameter.
                assert_eq!(unsafe { libc::sigpending(&mut pending) }, 0);
                // SAFETY: `pending` was filled by sigpending.
                if unsafe { libc::sigismember(&pending, sig) } == 1 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(10), "never pending");
                std::thread::sleep(Duration::from_micros(100));
            }
            let before = flag.load(Ordering::Acquire);
            // SAFETY: as for SIG_BLOCK.
            let rc =
                unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
            assert_eq!(rc, 0);
            (before, flag.load(Ordering::Acquire))
        });
        let (before, after) = h.join().unwrap();
        assert!(!before, "handler ran while the owner blocked the signal");
        assert!(after, "pending signal did not set the flag on unblock");
    }

    #[test]
    fn sigtimer_foreign_signal_is_ignored() {
        // A plain `raise` of the signal (si_code SI_TKILL, not SI_TIMER)
        // does not set the flag.
        let flag = leak_flag();
        let _t = SigTimer::new(flag).unwrap();
        // SAFETY: our handler is installed for this signal (by `new`), so
        // raising it does not kill the process.
        assert_eq!(unsafe { libc::raise(signal()) }, 0);
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[test]
    fn timer_slack_round_trips() {
        std::thread::spawn(|| {
            set_timer_slack(1).unwrap();
            assert_eq!(timer_slack().unwrap(), 1);
            set_timer_slack(123_000).unwrap();
            assert_eq!(timer_slack().unwrap(), 123_000);
        })
        .join()
        .unwrap();
    }
}
