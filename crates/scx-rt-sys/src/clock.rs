//! Monotonic time in nanoseconds: the scheduling clock and the exact one.
//!
//! `std::time::Instant` is opaque; the runtime wants plain `u64`
//! nanoseconds it can store in atomics (slice accounting, `runnable_at`,
//! the watchdog, sleep deadlines). Two clocks give them:
//!
//! - [`monotonic_ns`]: `clock_gettime(CLOCK_MONOTONIC)`, served by the
//!   vDSO. Exact, async-signal-safe, and about 30 ns a reading on the
//!   2-vCPU EPYC VM, a third of a whole task switch there.
//! - [`now_ns`]: the scheduling clock, read at every scheduling step. Where
//!   the kernel's own clocksource is the TSC (so the kernel has checked
//!   that it is invariant and synchronized across CPUs), it is the TSC
//!   scaled to nanoseconds and anchored to `CLOCK_MONOTONIC`, about 12 ns a
//!   reading there; elsewhere (another clocksource, another architecture,
//!   `SCX_RT_CLOCK=monotonic` in the environment, the TSC disabled for the
//!   process by `prctl`) it is [`monotonic_ns`]. The kernel's scheduler
//!   does the same: it charges run time on `sched_clock`, a TSC reading
//!   scaled by a multiplier, not on the timekeeping clock.
//!
//! # The TSC clock
//!
//! ```text
//! now_ns:    t := rdtsc
//!            a := this thread's anchor (tsc, ns, floor, mult)
//!            t - a.tsc < PERIOD:  max(a.ns + (t - a.tsc) * a.mult / 2^32, a.floor)
//!            else re-anchor:
//!              (t, ns) := a paired reading of the TSC and CLOCK_MONOTONIC
//!              mult    := (ns - base.ns) * 2^32 / (t - base.tsc)
//!              floor   := the most the old anchor could have returned
//!              anchor  := (t, ns, floor, mult); return max(ns, floor)
//! ```
//!
//! - **Agreement with `CLOCK_MONOTONIC`.** Each thread re-anchors to an
//!   exact reading every `PERIOD` cycles (2^21: under a millisecond at any
//!   TSC above 2.1 GHz, 2 ms at 1 GHz). Between anchors the error is the
//!   multiplier's error times the time since the anchor. The multiplier
//!   is measured over everything since the process's first reading (the
//!   base), so it gets more exact as the process runs: at 1 ms its error
//!   is about 6e-5 (two 30 ns readings over 1 ms), at one second 6e-8. An
//!   NTP slew (at most 500 ppm) that the kernel applies to
//!   `CLOCK_MONOTONIC` but the TSC does not see is bounded the same way:
//!   at most 0.5 µs by the next anchor. The two clocks therefore agree to
//!   within about a microsecond, which is what the runtime assumes where
//!   a deadline on this clock arms an OS timer on `CLOCK_MONOTONIC` (the
//!   slice-expiry timer, `expiry`).
//! - **Monotonic per thread.** Within a period the reading grows with the
//!   TSC. A re-anchor may land below what the old anchor returned (its
//!   multiplier ran a little fast); the floor, the old anchor's value at
//!   the end of its period, holds the clock still until the exact time
//!   passes it (at most one period's error, under a microsecond). Across
//!   threads, readings differ by that error (CLOCK_MONOTONIC itself
//!   agrees across CPUs); the runtime already compares times taken on
//!   different CPUs with saturating arithmetic.
//! - **Calibration.** The first reading in the process takes the base.
//!   Until the base is `CALIBRATE_NS` (1 ms) old there is no multiplier
//!   to trust, and `now_ns` returns exact readings (the re-anchor path,
//!   about 40 ns); from then on each thread's first reading anchors it.
//! - **Signal handlers** use [`monotonic_ns`]: the anchor is a
//!   thread-local that a handler could interrupt halfway through its
//!   update.

/// How far apart [`now_ns`] and [`monotonic_ns`] may read at the same
/// moment, with a wide margin: the bound the module docs derive is about a
/// microsecond. Code that compares a time on one clock with a time on the
/// other allows this much.
pub const SKEW_NS: u64 = 10_000;

/// `CLOCK_MONOTONIC` in nanoseconds, exact (the vDSO's
/// `clock_gettime`). Async-signal-safe.
pub fn monotonic_ns() -> u64 {
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

/// The scheduling clock: `CLOCK_MONOTONIC` in nanoseconds, to within about
/// a microsecond, from the TSC where the kernel trusts it (module docs).
/// Monotonic per thread. Not for signal handlers ([`monotonic_ns`]).
#[inline]
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if tsc::enabled() {
        return tsc::now();
    }
    monotonic_ns()
}

/// Whether [`now_ns`] reads the TSC (once calibrated) rather than calling
/// `clock_gettime` (module docs: when it may).
pub fn uses_tsc() -> bool {
    #[cfg(target_arch = "x86_64")]
    return tsc::enabled();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::OnceLock;

    /// Whether `now_ns` reads the TSC: [`UNKNOWN`] until the first reading
    /// decides (`base`). One relaxed load on every reading, so that where
    /// the TSC is not used a reading costs what `clock_gettime` does and no
    /// TSC read or anchor lookup besides.
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);
    const UNKNOWN: u8 = 0;
    const ON: u8 = 1;
    const OFF: u8 = 2;

    #[inline(always)]
    pub(super) fn enabled() -> bool {
        match MODE.load(Ordering::Relaxed) {
            ON => true,
            OFF => false,
            _ => decide(),
        }
    }

    #[cold]
    #[inline(never)]
    fn decide() -> bool {
        let on = base().is_some();
        MODE.store(if on { ON } else { OFF }, Ordering::Relaxed);
        on
    }

    /// TSC cycles between re-anchors (module docs).
    pub(super) const PERIOD: u64 = 1 << 21;
    /// TSC cycles a paired reading may span and be kept at once (about 1 µs
    /// at 1 GHz: a `clock_gettime` between two TSC reads takes 30 to 100 ns).
    const PAIR_TIGHT: u64 = 1_024;
    /// How old the base must be before its multiplier is trusted.
    pub(super) const CALIBRATE_NS: u64 = 1_000_000;
    /// Multipliers at or past this (a TSC under 4 MHz) are not believed:
    /// the TSC is then not used. It also keeps `PERIOD * mult` within 64
    /// bits.
    const MULT_MAX: u64 = 1 << 40;

    /// A thread's anchor: at TSC `tsc` the exact time was `ns`; `mult` is
    /// nanoseconds per cycle in 32.32 fixed point; the clock reads no less
    /// than `floor`.
    #[derive(Clone, Copy)]
    struct Anchor {
        tsc: u64,
        ns: u64,
        floor: u64,
        mult: u64,
    }

    /// No anchor: every TSC reading is `PERIOD` or more past `tsc` (it would
    /// take the TSC two centuries to come within `PERIOD` of it).
    const NONE: Anchor = Anchor {
        tsc: u64::MAX - PERIOD,
        ns: 0,
        floor: 0,
        mult: 0,
    };

    std::thread_local! {
        /// This thread's anchor: a plain cell (no destructor, so no lazy
        /// registration to check on the fast path).
        static ANCHOR: Cell<Anchor> = const { Cell::new(NONE) };
    }

    /// The process's first paired reading, or `None` when the TSC is not
    /// to be used.
    #[derive(Clone, Copy)]
    struct Base {
        tsc: u64,
        ns: u64,
    }

    static BASE: OnceLock<Option<Base>> = OnceLock::new();

    fn base() -> Option<Base> {
        *BASE.get_or_init(|| usable().then(|| paired().into()))
    }

    impl From<(u64, u64)> for Base {
        fn from((tsc, ns): (u64, u64)) -> Self {
            Base { tsc, ns }
        }
    }

    #[inline(always)]
    fn rdtsc() -> u64 {
        // SAFETY: RDTSC reads a counter and has no memory effects; every
        // x86_64 CPU has it, and `usable` checked that the process may
        // execute it (it faults only under `PR_TSC_SIGSEGV`). Reached
        // before that check only in `paired`, called after it.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }

    /// Whether the TSC may serve as the scheduling clock: the kernel's
    /// clocksource is `tsc`, the environment does not say otherwise, and
    /// the process may read the TSC.
    fn usable() -> bool {
        if std::env::var_os("SCX_RT_CLOCK").is_some_and(|v| v == "monotonic") {
            return false;
        }
        let cs = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        );
        if cs.map_or(true, |s| s.trim() != "tsc") {
            return false;
        }
        let mut mode: libc::c_int = 0;
        // SAFETY: PR_GET_TSC writes one int through the pointer, which
        // points at `mode` on our stack.
        let rc = unsafe { libc::prctl(libc::PR_GET_TSC, &mut mode as *mut libc::c_int) };
        rc == 0 && mode == libc::PR_TSC_ENABLE
    }

    /// A TSC reading and the exact time at it: the TSC is read on both
    /// sides of `clock_gettime` and the midpoint taken. An interrupt or a
    /// hypervisor exit between the two would put the pair off by its
    /// length, so a pair wider than [`PAIR_TIGHT`] cycles is read again,
    /// up to four times, and the tightest kept (one try in the common case:
    /// a re-anchor costs about one `clock_gettime`).
    fn paired() -> (u64, u64) {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..4 {
            let a = rdtsc();
            let ns = super::monotonic_ns();
            let b = rdtsc();
            let w = b.wrapping_sub(a);
            if w < best.0 {
                best = (w, a.wrapping_add(w / 2), ns);
            }
            if w <= PAIR_TIGHT {
                break;
            }
        }
        (best.1, best.2)
    }

    /// `(t * mult) >> 32` without overflow for any `t`.
    #[inline(always)]
    fn scale(t: u64, mult: u64) -> u64 {
        ((t as u128 * mult as u128) >> 32) as u64
    }

    #[inline]
    pub(super) fn now() -> u64 {
        let t = rdtsc();
        let a = ANCHOR.with(Cell::get);
        let d = t.wrapping_sub(a.tsc);
        if d < PERIOD {
            // `d < 2^21` and `mult < 2^40`: the product fits in 64 bits.
            return (a.ns + ((d * a.mult) >> 32)).max(a.floor);
        }
        reanchor()
    }

    #[cold]
    #[inline(never)]
    fn reanchor() -> u64 {
        let Some(base) = base() else {
            return super::monotonic_ns();
        };
        let (t, ns) = paired();
        let (Some(span), Some(cycles)) = (ns.checked_sub(base.ns), t.checked_sub(base.tsc)) else {
            return ns;
        };
        if span < CALIBRATE_NS || cycles == 0 {
            // Still calibrating: exact readings, no anchor.
            return ns;
        }
        let mult = ((span as u128) << 32) / cycles as u128;
        if mult == 0 || mult >= MULT_MAX as u128 {
            return ns;
        }
        let old = ANCHOR.with(Cell::get);
        let mut floor = old.floor;
        if old.mult != 0 {
            if let Some(d) = t.checked_sub(old.tsc) {
                // The most the old anchor returned: its value at the end of
                // its period, or now if that came first.
                floor = floor.max(old.ns.saturating_add(scale(d.min(PERIOD), old.mult)));
            }
        }
        ANCHOR.with(|a| {
            a.set(Anchor {
                tsc: t,
                ns,
                floor,
                mult: mult as u64,
            })
        });
        ns.max(floor)
    }

    #[cfg(test)]
    pub(super) fn anchored() -> bool {
        ANCHOR.with(Cell::get).mult != 0
    }
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
        // The scheduling clock may trail the exact one by its error bound
        // (module docs) at either end.
        assert!(b - a >= 10_000_000 - 20_000, "{}", b - a);
    }

    #[test]
    fn exact_clock_advances() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(10));
        assert!(monotonic_ns() - a >= 10_000_000);
    }

    /// The scheduling clock stays monotonic across many re-anchors and
    /// within its bound of `CLOCK_MONOTONIC` (a generous 200 µs here:
    /// the documented bound is about a microsecond; a wrong multiplier or
    /// a lost anchor would be off by far more).
    #[test]
    fn tsc_clock_tracks_the_exact_one() {
        let mut prev = now_ns();
        let end = monotonic_ns() + 30_000_000;
        let mut worst = 0u64;
        loop {
            let e0 = monotonic_ns();
            let n = now_ns();
            let e1 = monotonic_ns();
            assert!(n >= prev, "went back: {prev} then {n}");
            prev = n;
            let off = if n < e0 { e0 - n } else { n.saturating_sub(e1) };
            worst = worst.max(off);
            if e1 >= end {
                break;
            }
        }
        assert!(worst < 200_000, "off CLOCK_MONOTONIC by {worst} ns");
        #[cfg(target_arch = "x86_64")]
        if uses_tsc() {
            assert!(tsc::anchored(), "30 ms in, the thread reads the TSC");
        }
    }

    #[test]
    fn threads_agree() {
        // Another thread's readings fall between two of this one's, give
        // or take the bound.
        for _ in 0..50 {
            let a = now_ns();
            let b = std::thread::spawn(now_ns).join().unwrap();
            let c = now_ns();
            assert!(b + 200_000 >= a && b <= c + 200_000, "{a} {b} {c}");
        }
    }
}
