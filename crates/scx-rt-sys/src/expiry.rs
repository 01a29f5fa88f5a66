//! A per-thread slice-expiry timer: one POSIX timer per thread whose signal
//! handler compares the thread's published deadline with the clock and, when
//! the deadline has passed, raises the thread's flags. It is how a worker
//! notices the end of its task's slice without a spare CPU for a timer
//! thread (the kernel's tick is an interrupt for the same reason);
//! `scx-rt`'s `timer` module explains when the runtime uses it.
//!
//! # Protocol
//!
//! The owner thread publishes deadlines (absolute `CLOCK_MONOTONIC` ns,
//! `u64::MAX` for none; a deadline on the scheduling clock,
//! `clock::now_ns`, is one to within `clock::SKEW_NS`, and the timer
//! fires that much early or late) into an `AtomicU64` it owns, then calls
//! [`ExpiryHandle::published`]. The timer is one-shot and *lazy*: it stays
//! armed at the deadline it was last armed for (`armed`) and is re-armed
//! only when a published deadline is *earlier* than that. Deadlines of
//! successive slices only move later (each is "now + slice"), so the
//! common switch makes no system call: one load and one compare.
//!
//! ```text
//! owner (publish d)                    handler (the timer fired)
//! P1 deadline := d                     H1 armed := MAX        (consumed)
//! P2 if d < armed:                     H2 d := deadline
//!        armed := d; arm the timer     H3 d == MAX: nothing    (idle, INF)
//!                                         d <= now: expire (below)
//!                                         else armed := d; arm the timer
//! ```
//!
//! Expire: `if !pending.swap(true) { raise[0] := true; raise[1] := true }`,
//! the mark the runtime's timer thread makes for a CPU whose deadline
//! passed (`tick_pending`, then `need_resched`'s two halves).
//!
//! Never a deadline overslept: the invariant is "`armed != MAX` implies the
//! timer is armed at `armed` or its signal is on its way". The handler runs
//! on the owner thread between two of its instructions, so it sees either
//! the old deadline (P1 not yet done: whatever it decides, P2 then compares
//! the new deadline with the `armed` the handler left) or the new one (it
//! arms for it itself, and P2 finds `armed` no later than it). A timer that
//! fires for a deadline that has since moved later re-arms itself from the
//! handler: one signal per deadline extension, at most one per slice
//! length of run time, never one per switch. Idle and `SLICE_INF` publish
//! `MAX`, which never arms: the timer fires at most once more and stays
//! disarmed. [`ExpiryTimer::disarm`] stops that too (before a long sleep).
//!
//! # What the handler may touch
//!
//! It runs on the owner thread in the middle of any code, so it touches
//! atomics and calls only async-signal-safe functions (`clock_gettime`
//! through `clock::monotonic_ns`, never the thread-local scheduling clock,
//! `timer_settime`, `gettid`), saving and restoring `errno`. Its state is a
//! static slot table, as in `sigtimer`; `sigev_value` carries
//! `(slot, generation)` and a stale or foreign signal (`si_code` not
//! `SI_TIMER`, another generation) is ignored. The atomics a slot points to
//! belong to an `Arc` the [`ExpiryTimer`] holds, so they live as long as
//! the slot is in use; the handler also acts only on the owner thread
//! (`gettid` against the slot's), where it cannot interleave with the
//! timer's `Drop`: a signal forged with `SI_TIMER` and sent to another
//! thread cannot race the release of the owner's memory.
//!
//! The handler runs on the interrupted stack (no `SA_ONSTACK`): on a green
//! task's stack, the signal frame (1 to 3.5 KB, the CPU's `xsave` area)
//! counts like a function call; a task that close to its guard page gets
//! the stack-overflow report (`sigsegv`) a deeper call would give it.
//! `SA_ONSTACK` would spare the task that, but valgrind's callgrind, which
//! counts the runtime's instructions per switch, aborts on it.
//!
//! # `EINTR`
//!
//! The signal is installed with `SA_RESTART`; what Linux still interrupts
//! (sleeps and waits with a timeout, socket calls with a socket timeout)
//! fails with `EINTR`, as documented in `sigtimer`. A thread receives at
//! most one signal per deadline that passes plus one per deadline
//! extension (see above), and none while it publishes `MAX`.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Expiry timers that may exist at once in the process;
/// [`ExpiryTimer::new`] fails with `EAGAIN` beyond that.
pub const MAX_TIMERS: usize = 1024;

/// Offset of the signal above `SIGRTMIN` (`sigtimer` uses 3).
const SIGNAL_OFFSET: libc::c_int = 4;

/// Bits of the encoded `(slot, generation)` that carry the slot.
const SLOT_BITS: u32 = 16;
const _: () = assert!(MAX_TIMERS <= 1 << SLOT_BITS);

/// The atomics the handler reads and writes for one thread.
pub struct Target<'a> {
    /// The published deadline (ns, `CLOCK_MONOTONIC`; `u64::MAX`: none).
    pub deadline: &'a AtomicU64,
    /// Set by the expiry that finds the deadline passed; the flags below
    /// are raised only by the expiry that sets it (the owner clears it when
    /// it publishes the next deadline).
    pub pending: &'a AtomicBool,
    /// Raised, in this order, at an expiry that set `pending`.
    pub raise: [&'a AtomicBool; 2],
}

/// One slot of the table. `state` is `generation << 1 | used`; the other
/// fields are valid while the slot is used.
struct Slot {
    state: AtomicU64,
    /// The owner thread (`gettid`).
    tid: AtomicI32,
    /// The kernel timer (`timer_t` as an integer).
    id: AtomicUsize,
    /// The absolute deadline the timer is armed for (`MAX`: disarmed).
    armed: AtomicU64,
    deadline: AtomicPtr<AtomicU64>,
    pending: AtomicPtr<AtomicBool>,
    raise: [AtomicPtr<AtomicBool>; 2],
}

#[allow(clippy::declare_interior_mutable_const)] // only an array initialiser
const FREE_SLOT: Slot = Slot {
    state: AtomicU64::new(0),
    tid: AtomicI32::new(0),
    id: AtomicUsize::new(0),
    armed: AtomicU64::new(u64::MAX),
    deadline: AtomicPtr::new(std::ptr::null_mut()),
    pending: AtomicPtr::new(std::ptr::null_mut()),
    raise: [
        AtomicPtr::new(std::ptr::null_mut()),
        AtomicPtr::new(std::ptr::null_mut()),
    ],
};

static SLOTS: [Slot; MAX_TIMERS] = [FREE_SLOT; MAX_TIMERS];

/// The real-time signal the timers send (`SIGRTMIN + 4`).
pub fn signal() -> libc::c_int {
    libc::SIGRTMIN() + SIGNAL_OFFSET
}

/// What the handler does when the timer fires at time `now`, on the atomics
/// of `t` and the slot's `armed` (the protocol above): returns the deadline
/// to re-arm the timer for, if any. Public for tests of the logic; the
/// handler is its only other caller.
pub fn on_fire(t: &Target<'_>, armed: &AtomicU64, now: u64) -> Option<u64> {
    armed.store(u64::MAX, Ordering::SeqCst);
    let d = t.deadline.load(Ordering::SeqCst);
    if d == u64::MAX {
        return None;
    }
    if d <= now {
        if !t.pending.swap(true, Ordering::AcqRel) {
            for f in t.raise {
                f.store(true, Ordering::SeqCst);
            }
        }
        return None;
    }
    armed.store(d, Ordering::SeqCst);
    Some(d)
}

/// A per-thread expiry timer. Holds `owner`, whose memory holds the
/// [`Target`] atomics.
///
/// Not `Send`: it signals the thread that created it, and only that thread
/// may publish for it or delete it.
pub struct ExpiryTimer<T: ?Sized> {
    id: libc::timer_t,
    handle: ExpiryHandle,
    _owner: Arc<T>,
    _not_send: PhantomData<*const ()>,
}

/// Names an [`ExpiryTimer`] (its slot and generation) in a plain integer
/// the owner can keep in shared state. `Copy`; a handle whose timer is gone
/// does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryHandle(u64);

impl<T: ?Sized + Send + Sync + 'static> ExpiryTimer<T> {
    /// Creates a disarmed timer of the calling thread over the atomics
    /// `target(&owner, arg)` names (they are part of `owner`, or static),
    /// installing the process-wide handler on first use.
    ///
    /// Errors: the signal already has a handler that is not ours
    /// (`EBUSY`), all [`MAX_TIMERS`] slots are taken (`EAGAIN`), or
    /// `timer_create` failed.
    pub fn new<A>(owner: Arc<T>, arg: A, target: fn(&T, A) -> Target<'_>) -> io::Result<Self> {
        install_handler()?;
        let (slot, gen) = claim_slot().ok_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN))?;
        let s = &SLOTS[slot];
        {
            let t = target(&owner, arg);
            s.deadline.store(ptr(t.deadline), Ordering::Relaxed);
            s.pending.store(ptr(t.pending), Ordering::Relaxed);
            for (p, f) in s.raise.iter().zip(t.raise) {
                p.store(ptr(f), Ordering::Relaxed);
            }
        }
        s.armed.store(u64::MAX, Ordering::Relaxed);
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() };
        s.tid.store(tid, Ordering::Relaxed);
        // SAFETY: an all-zero `sigevent` is a valid value (integers and a
        // null pointer); the fields we need are set below.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = signal();
        sev.sigev_value = libc::sigval {
            sival_ptr: encode(slot, gen) as usize as *mut libc::c_void,
        };
        sev.sigev_notify_thread_id = tid;
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `sev` and `id` are valid for the call; SIGEV_THREAD_ID
        // names this thread, a thread of this process.
        let rc = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            release_slot(slot);
            return Err(e);
        }
        s.id.store(id as usize, Ordering::Relaxed);
        // The pointers and the id are published before a signal can name
        // the slot (none can before the timer is first armed).
        std::sync::atomic::fence(Ordering::Release);
        Ok(ExpiryTimer {
            id,
            handle: ExpiryHandle(encode(slot, gen)),
            _owner: owner,
            _not_send: PhantomData,
        })
    }
}

impl<T: ?Sized> ExpiryTimer<T> {
    /// The handle to publish through (on this thread only).
    pub fn handle(&self) -> ExpiryHandle {
        self.handle
    }

    /// The deadline the timer is armed for, if any.
    pub fn armed(&self) -> Option<u64> {
        let a = SLOTS[self.handle.slot()].armed.load(Ordering::SeqCst);
        (a != u64::MAX).then_some(a)
    }

    /// Disarms the timer (one system call if it was armed, none
    /// otherwise). A signal already sent is still handled; it finds the
    /// deadline the owner published and acts on it.
    pub fn disarm(&self) -> io::Result<()> {
        let s = &SLOTS[self.handle.slot()];
        if s.armed.load(Ordering::SeqCst) == u64::MAX {
            return Ok(());
        }
        settime(self.id, 0)?;
        s.armed.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }
}

impl<T: ?Sized> Drop for ExpiryTimer<T> {
    fn drop(&mut self) {
        // SAFETY: `self.id` is a live timer and is not used after this.
        unsafe { libc::timer_delete(self.id) };
        // The slot is freed before `_owner` drops (fields drop after
        // this body): a handler that still finds it used may dereference.
        release_slot(self.handle.slot());
    }
}

impl<T: ?Sized> std::fmt::Debug for ExpiryTimer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiryTimer")
            .field("handle", &self.handle)
            .finish()
    }
}

impl ExpiryHandle {
    /// The handle as an integer (never 0).
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// A handle from [`ExpiryHandle::to_raw`]; `None` for 0.
    pub fn from_raw(raw: u64) -> Option<ExpiryHandle> {
        (raw != 0).then_some(ExpiryHandle(raw))
    }

    fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }

    /// Owner side, after it stored `deadline` into its [`Target`]'s
    /// `deadline`: arms the timer for it if it is earlier than the
    /// deadline the timer is armed for. Returns whether it armed (one
    /// `timer_settime`); the common case is one load and one compare.
    /// Call it on the timer's thread only: from another thread it may arm
    /// the timer needlessly or leave a race with the handler unresolved
    /// (a deadline overslept), never touch freed memory.
    #[inline]
    pub fn published(self, deadline: u64) -> bool {
        let Some(s) = SLOTS.get(self.slot()) else {
            return false;
        };
        if deadline >= s.armed.load(Ordering::SeqCst) {
            return false;
        }
        self.arm_slow(s, deadline)
    }

    #[cold]
    fn arm_slow(self, s: &Slot, deadline: u64) -> bool {
        if s.state.load(Ordering::Acquire) != (self.0 >> SLOT_BITS) << 1 | 1 {
            return false; // the timer is gone
        }
        s.armed.store(deadline, Ordering::SeqCst);
        let id = s.id.load(Ordering::Relaxed) as libc::timer_t;
        if settime(id, deadline).is_err() {
            // Not armed after all: the next publication tries again.
            s.armed.store(u64::MAX, Ordering::SeqCst);
            return false;
        }
        true
    }
}

fn ptr<T>(r: &T) -> *mut T {
    r as *const T as *mut T
}

fn encode(slot: usize, gen: u64) -> u64 {
    gen << SLOT_BITS | slot as u64
}

/// Arms `id` for the absolute `CLOCK_MONOTONIC` time `at` ns (0:
/// disarm). Async-signal-safe (`timer_settime` is); leaves `errno` set on
/// failure.
fn settime(id: libc::timer_t, at: u64) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (at / 1_000_000_000) as libc::time_t,
            tv_nsec: (at % 1_000_000_000) as libc::c_long,
        },
    };
    let flags = if at == 0 { 0 } else { libc::TIMER_ABSTIME };
    // SAFETY: `id` is a timer created by `ExpiryTimer::new` (a deleted one
    // only makes the call fail with EINVAL); `spec` is a valid itimerspec
    // and the old value is not requested.
    let rc = unsafe { libc::timer_settime(id, flags, &spec, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes a free slot and returns `(slot, generation)`; generations start
/// at 1, so no encoded handle is 0.
fn claim_slot() -> Option<(usize, u64)> {
    crate::sigtimer::claim_gen_slot(SLOTS.iter().map(|s| &s.state), u64::MAX >> (SLOT_BITS + 1))
}

fn release_slot(slot: usize) {
    let s = &SLOTS[slot];
    crate::sigtimer::release_gen_slot(&s.state);
    s.armed.store(u64::MAX, Ordering::Relaxed);
}

/// Installs [`handler`] for [`signal`] once per process (never over
/// someone else's handler: `sigtimer::take_signal`). The handler is
/// async-signal-safe (module docs).
fn install_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = INSTALLED.get_or_init(|| crate::sigtimer::take_signal(signal(), handler));
    r.map_err(io::Error::from_raw_os_error)
}

/// The signal handler: runs [`on_fire`] for the timer named by
/// `sigev_value` if it still owns its slot and this is its thread, and
/// re-arms the timer if that says so.
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
    let v = unsafe { info.si_value() }.sival_ptr as usize as u64;
    let Some(s) = SLOTS.get((v & ((1 << SLOT_BITS) - 1)) as usize) else {
        return;
    };
    if s.state.load(Ordering::Acquire) != (v >> SLOT_BITS) << 1 | 1 {
        return; // the timer was deleted; its slot is free or reused
    }
    // SAFETY: `errno` is a thread-local the C library keeps; reading the
    // calling thread's is async-signal-safe.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: `gettid` has no preconditions.
    if unsafe { libc::gettid() } == s.tid.load(Ordering::Relaxed) {
        let (d, p) = (
            s.deadline.load(Ordering::Acquire),
            s.pending.load(Ordering::Acquire),
        );
        let (r0, r1) = (
            s.raise[0].load(Ordering::Acquire),
            s.raise[1].load(Ordering::Acquire),
        );
        // SAFETY: the slot is used by a timer of this thread (state and
        // tid checked), whose `Drop` frees the slot before releasing the
        // `Arc` that owns these atomics; `Drop` runs on this thread, which
        // this handler has interrupted, so it cannot release them before
        // the handler returns. `new` stored them before the timer existed.
        let t = unsafe {
            match (d.as_ref(), p.as_ref(), r0.as_ref(), r1.as_ref()) {
                (Some(deadline), Some(pending), Some(a), Some(b)) => Some(Target {
                    deadline,
                    pending,
                    raise: [a, b],
                }),
                _ => None,
            }
        };
        if let Some(t) = t {
            if let Some(at) = on_fire(&t, &s.armed, crate::clock::monotonic_ns()) {
                let id = s.id.load(Ordering::Relaxed) as libc::timer_t;
                if settime(id, at).is_err() {
                    s.armed.store(u64::MAX, Ordering::SeqCst);
                }
            }
        }
    }
    // SAFETY: as above; restores what the interrupted code may read.
    unsafe { *libc::__errno_location() = errno };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The atomics a runtime CPU would lend the timer.
    #[derive(Default)]
    struct Cpu {
        deadline: AtomicU64,
        pending: AtomicBool,
        resched: AtomicBool,
        need: AtomicBool,
    }

    fn cpu() -> Arc<Cpu> {
        let c = Cpu::default();
        c.deadline.store(u64::MAX, Ordering::Relaxed);
        Arc::new(c)
    }

    fn target(c: &Cpu, _: ()) -> Target<'_> {
        Target {
            deadline: &c.deadline,
            pending: &c.pending,
            raise: [&c.resched, &c.need],
        }
    }

    fn flags(c: &Cpu) -> (bool, bool, bool) {
        (
            c.pending.load(Ordering::SeqCst),
            c.resched.load(Ordering::SeqCst),
            c.need.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn on_fire_with_no_deadline_only_consumes_the_timer() {
        let c = cpu();
        let armed = AtomicU64::new(500);
        assert_eq!(on_fire(&target(&c, ()), &armed, 1_000), None);
        assert_eq!(armed.load(Ordering::SeqCst), u64::MAX);
        assert_eq!(flags(&c), (false, false, false));
    }

    #[test]
    fn on_fire_past_deadline_raises_once() {
        let c = cpu();
        let armed = AtomicU64::new(900);
        c.deadline.store(900, Ordering::SeqCst);
        assert_eq!(
            on_fire(&target(&c, ()), &armed, 900),
            None,
            "d == now expires"
        );
        assert_eq!(flags(&c), (true, true, true));
        assert_eq!(armed.load(Ordering::SeqCst), u64::MAX);
        // While `pending` stays set (the owner has not switched), a second
        // firing raises nothing: the flags the owner cleared stay clear.
        c.resched.store(false, Ordering::SeqCst);
        c.need.store(false, Ordering::SeqCst);
        assert_eq!(on_fire(&target(&c, ()), &armed, 2_000), None);
        assert_eq!(flags(&c), (true, false, false));
    }

    #[test]
    fn on_fire_before_a_moved_deadline_rearms_for_it() {
        let c = cpu();
        let armed = AtomicU64::new(1_000);
        c.deadline.store(5_000, Ordering::SeqCst);
        assert_eq!(on_fire(&target(&c, ()), &armed, 1_000), Some(5_000));
        assert_eq!(armed.load(Ordering::SeqCst), 5_000);
        assert_eq!(flags(&c), (false, false, false));
    }

    /// Spins until `f` or a hang guard (not a timing assertion).
    fn wait_for(f: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        while !f() {
            if t.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    fn publish(c: &Cpu, h: ExpiryHandle, d: u64) -> bool {
        c.deadline.store(d, Ordering::SeqCst);
        h.published(d)
    }

    #[test]
    fn expiry_fires_after_the_deadline_and_only_then() {
        let c = cpu();
        let t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        let h = t.handle();
        let d = crate::clock::monotonic_ns() + 300_000;
        assert!(publish(&c, h, d), "first deadline arms");
        assert_eq!(t.armed(), Some(d));
        assert!(wait_for(|| c.need.load(Ordering::SeqCst)), "never expired");
        assert!(
            crate::clock::monotonic_ns() >= d,
            "raised before the deadline"
        );
        assert_eq!(flags(&c), (true, true, true));
        assert_eq!(t.armed(), None, "one-shot: consumed");
    }

    #[test]
    fn later_deadlines_need_no_rearm_and_still_expire_on_time() {
        let c = cpu();
        let t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        let h = t.handle();
        let now = crate::clock::monotonic_ns();
        assert!(publish(&c, h, now + 1_000_000));
        // Later deadlines (the next slices) make no system call.
        for k in 2..=20u64 {
            assert!(!publish(&c, h, now + k * 1_000_000));
        }
        let last = now + 20_000_000;
        // The timer fires at the first deadline, re-arms for the last from
        // the handler, and raises only once that one has passed.
        assert!(wait_for(|| c.need.load(Ordering::SeqCst)), "never expired");
        assert!(
            crate::clock::monotonic_ns() >= last,
            "expired an old deadline"
        );
        // An earlier deadline than the armed one arms again.
        c.pending.store(false, Ordering::SeqCst);
        c.need.store(false, Ordering::SeqCst);
        let far = crate::clock::monotonic_ns() + 60_000_000_000;
        assert!(publish(&c, h, far));
        assert!(publish(&c, h, crate::clock::monotonic_ns() + 200_000));
        assert!(
            wait_for(|| c.need.load(Ordering::SeqCst)),
            "earlier one lost"
        );
    }

    #[test]
    fn no_deadline_and_disarm_raise_nothing() {
        let c = cpu();
        let t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        let h = t.handle();
        // Armed, then the CPU goes idle (MAX): the firing finds no deadline.
        assert!(publish(&c, h, crate::clock::monotonic_ns() + 100_000));
        assert!(!publish(&c, h, u64::MAX));
        assert!(wait_for(|| t.armed().is_none()), "never fired");
        // Armed, then disarmed: it never fires, not even after the armed
        // deadline (with a deadline that has passed by then). The armed
        // deadline is far enough ahead (100 ms) that a test thread the OS
        // holds back between the two calls does not see it fire first.
        assert!(publish(&c, h, crate::clock::monotonic_ns() + 100_000_000));
        t.disarm().unwrap();
        c.deadline.store(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(flags(&c), (false, false, false));
        // Dropping an armed timer deletes it; its handle does nothing more.
        assert!(publish(&c, h, crate::clock::monotonic_ns() + 100_000_000));
        drop(t);
        assert!(!publish(&c, h, 2));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(flags(&c), (false, false, false));
    }

    #[test]
    fn a_signal_that_interrupts_a_sleep_does_not_shorten_it() {
        // std's sleep retries EINTR with the time left: what the runtime's
        // own waits do too.
        let c = cpu();
        let t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        assert!(publish(
            &c,
            t.handle(),
            crate::clock::monotonic_ns() + 1_000_000
        ));
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(
            c.need.load(Ordering::SeqCst),
            "the signal came during the sleep"
        );
    }

    #[test]
    fn foreign_signals_are_ignored() {
        let c = cpu();
        let _t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        c.deadline.store(1, Ordering::SeqCst);
        // SAFETY: our handler is installed for this signal (by `new`), so
        // raising it does not kill the process.
        assert_eq!(unsafe { libc::raise(signal()) }, 0);
        assert_eq!(flags(&c), (false, false, false));
    }

    #[test]
    fn handles_round_trip_and_are_never_zero() {
        let c = cpu();
        let t = ExpiryTimer::new(c.clone(), (), target).unwrap();
        let raw = t.handle().to_raw();
        assert_ne!(raw, 0);
        assert_eq!(ExpiryHandle::from_raw(raw), Some(t.handle()));
        assert_eq!(ExpiryHandle::from_raw(0), None);
    }
}
