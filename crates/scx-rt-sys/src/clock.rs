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
//! One anchor for the whole process, under a sequence lock (the vDSO's
//! own scheme): every thread computes the same function of the TSC, so
//! readings on different CPUs agree as well as their TSCs do (the kernel
//! checked that). An anchor per thread, tried first, gave each thread its
//! own small offset from the others (its own exact reading, paired with
//! its own TSC read).
//!
//! ```text
//! now_ns:    the anchor (tsc, ns, floor, mult): this thread's copy while
//!            the shared sequence says it is current, else read under the
//!            sequence and copied
//!            t := rdtsc
//!            t - a.tsc < PERIOD:  max(a.ns + (t - a.tsc) * a.mult / 2^32, a.floor)
//!            else re-anchor (one thread: the sequence's compare-and-swap;
//!            the others wait for it, a few dozen ns):
//!              (t, ns) := a paired reading of the TSC and CLOCK_MONOTONIC
//!              mult    := (ns - base.ns) * 2^32 / (t - base.tsc)
//!              floor   := the most the old anchor could have returned
//!              anchor  := (t, ns, floor, mult); return max(ns, floor)
//! ```
//!
//! - **Agreement with `CLOCK_MONOTONIC`.** The anchor follows an exact
//!   reading every `PERIOD` cycles (2^21: under a millisecond at any TSC
//!   above 2.1 GHz, 2 ms at 1 GHz) of a process that reads the clock.
//!   Between anchors the error is the multiplier's error times the time
//!   since the anchor. The multiplier is measured over everything since
//!   the process's first reading (the base), so it gets more exact as the
//!   process runs: at 1 ms its error is about 6e-5 (two 30 ns readings
//!   over 1 ms), at one second 6e-8. An NTP slew (at most 500 ppm) that
//!   the kernel applies to `CLOCK_MONOTONIC` but the TSC does not see is
//!   bounded the same way: at most 0.5 µs by the next anchor. The two
//!   clocks therefore agree to within about a microsecond, which is what
//!   the runtime assumes where a deadline on this clock arms an OS timer on
//!   `CLOCK_MONOTONIC` (the slice-expiry timer, `expiry`).
//! - **Monotonic.** Within a period the reading grows with the TSC. A
//!   re-anchor may land below what the old anchor returned (its
//!   multiplier ran a little fast); the floor, the old anchor's value at
//!   the end of its period (or at the re-anchor, if sooner), holds the
//!   clock still until the exact time passes it (at most one period's
//!   error, under a microsecond). A reader that took the old anchor just
//!   before a re-anchor and read the TSC just after the writer did can
//!   still come out above the new anchor's floor, by the multiplier's error
//!   over that instant (nanoseconds at most). Across CPUs there is one
//!   more way: RDTSC is not ordered with the loads before it (the vDSO's
//!   `clock_gettime` puts an LFENCE in front, which would double the
//!   read's cost here), so a reading made after a CPU saw another CPU's
//!   reading (through a cache line) can come out below it by as long as
//!   that load took: up to 1.5 µs measured between the VM's two vCPUs,
//!   readings on one thread excepted. The runtime does not order events
//!   of two CPUs by their times: it compares times with saturating
//!   arithmetic, and the trace rings stamp no record earlier than the one
//!   before.
//! - **Calibration.** The first reading in the process takes the base.
//!   Until the base is `CALIBRATE_NS` (1 ms) old there is no multiplier
//!   to trust, and `now_ns` returns exact readings (about 40 ns); the
//!   first reading after that publishes the first anchor.
//! - **Signal handlers** use [`monotonic_ns`]: a handler that interrupted
//!   the re-anchoring thread inside its sequence would wait for itself.

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
/// Monotonic on a thread; across CPUs, ordered only to within about
/// 1.5 µs (module docs: the TSC read is not fenced). Not for signal handlers ([`monotonic_ns`]).
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
    use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
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
    /// Spins a reader waits for a re-anchoring thread before it reads the
    /// exact clock instead (the writer was descheduled inside its
    /// sequence: some µs at least).
    const WAIT_SPINS: u32 = 1 << 12;

    /// The process's anchor: at TSC `tsc` the exact time was `ns`; `mult`
    /// is nanoseconds per cycle in 32.32 fixed point (0: none yet); the
    /// clock reads no less than `floor`. `seq` is odd while a thread
    /// re-anchors. On a line of its own: written once per period, read by
    /// every reading on every CPU.
    #[repr(C, align(64))]
    struct Anchor {
        seq: AtomicU64,
        tsc: AtomicU64,
        ns: AtomicU64,
        floor: AtomicU64,
        mult: AtomicU64,
    }

    /// No anchor yet: every TSC reading is `PERIOD` or more past `tsc` (it
    /// would take the TSC two centuries to come within `PERIOD` of it).
    static ANCHOR: Anchor = Anchor {
        seq: AtomicU64::new(0),
        tsc: AtomicU64::new(u64::MAX - PERIOD),
        ns: AtomicU64::new(0),
        floor: AtomicU64::new(0),
        mult: AtomicU64::new(0),
    };

    std::thread_local! {
        /// This thread's copy of the anchor, current while its `seq` is the
        /// anchor's: a reading loads the shared sequence once and the rest
        /// from here (a plain cell: no destructor, no lazy registration).
        /// An odd `seq` never matches a published one.
        static COPY: Cell<Snap> = const {
            Cell::new(Snap {
                seq: u64::MAX,
                tsc: 0,
                ns: 0,
                floor: 0,
                mult: 0,
            })
        };
    }

    /// A consistent copy of the anchor's fields.
    #[derive(Clone, Copy)]
    struct Snap {
        seq: u64,
        tsc: u64,
        ns: u64,
        floor: u64,
        mult: u64,
    }

    impl Snap {
        /// The reading at TSC `t`, `t - self.tsc < PERIOD`. `d < 2^21`
        /// and `mult < 2^40`: the product fits in 64 bits.
        #[inline(always)]
        fn at(&self, t: u64) -> u64 {
            let d = t.wrapping_sub(self.tsc);
            (self.ns + ((d * self.mult) >> 32)).max(self.floor)
        }
    }

    /// The anchor's fields, if no re-anchor overlapped the reads (the
    /// sequence lock's reader side).
    #[inline(always)]
    fn snap() -> Option<Snap> {
        let seq = ANCHOR.seq.load(Ordering::Acquire);
        let s = Snap {
            seq,
            tsc: ANCHOR.tsc.load(Ordering::Relaxed),
            ns: ANCHOR.ns.load(Ordering::Relaxed),
            floor: ANCHOR.floor.load(Ordering::Relaxed),
            mult: ANCHOR.mult.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (seq & 1 == 0 && ANCHOR.seq.load(Ordering::Relaxed) == seq).then_some(s)
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
        *BASE.get_or_init(|| {
            usable().then(|| {
                let (tsc, ns) = paired();
                Base { tsc, ns }
            })
        })
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
        let seq = ANCHOR.seq.load(Ordering::Acquire);
        let a = COPY.with(Cell::get);
        if a.seq == seq {
            let t = rdtsc();
            if t.wrapping_sub(a.tsc) < PERIOD {
                return a.at(t);
            }
        }
        reanchor()
    }

    #[cold]
    #[inline(never)]
    fn reanchor() -> u64 {
        let Some(base) = base() else {
            return super::monotonic_ns();
        };
        let mut spins = 0u32;
        loop {
            let Some(a) = snap() else {
                // Another thread re-anchors: wait for it, within reason.
                spins += 1;
                if spins > WAIT_SPINS {
                    return super::monotonic_ns().max(ANCHOR.floor.load(Ordering::Relaxed));
                }
                std::hint::spin_loop();
                continue;
            };
            COPY.with(|c| c.set(a));
            let t = rdtsc();
            let d = t.wrapping_sub(a.tsc);
            if d < PERIOD {
                // Re-anchored by another thread since this one's copy.
                return a.at(t);
            }
            if a.mult != 0 && t < a.tsc {
                // This CPU's TSC read a little behind the anchor's (the
                // TSCs agree, up to the order of two reads): the anchor's
                // own time, held by its floor.
                return a.ns.max(a.floor);
            }
            if ANCHOR
                .seq
                .compare_exchange(a.seq, a.seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // The odd sequence before the fields (the sequence lock's writer
            // side): a reader that sees a field written below sees, at its
            // acquire fence, a sequence other than the one it began with.
            fence(Ordering::Release);
            let (t, ns) = paired();
            let published = publish(base, a, t, ns);
            // Release: the fields above before the even sequence.
            ANCHOR.seq.store(a.seq + 2, Ordering::Release);
            if let Some(b) = snap() {
                COPY.with(|c| c.set(b));
            }
            return published;
        }
    }

    /// Writes the anchor at the pair `(t, ns)` after `old` (the caller
    /// holds the sequence odd) and returns the reading at `t`. Before the
    /// base is `CALIBRATE_NS` old, or with a multiplier past belief, writes
    /// nothing and returns the exact reading (no lower than the floor).
    fn publish(base: Base, old: Snap, t: u64, ns: u64) -> u64 {
        let (Some(span), Some(cycles)) = (ns.checked_sub(base.ns), t.checked_sub(base.tsc)) else {
            return ns.max(old.floor);
        };
        let mult = if span < CALIBRATE_NS || cycles == 0 {
            0
        } else {
            ((span as u128) << 32) / cycles as u128
        };
        if mult == 0 || mult >= MULT_MAX as u128 {
            return ns.max(old.floor);
        }
        let mut floor = old.floor;
        if old.mult != 0 {
            if let Some(d) = t.checked_sub(old.tsc) {
                // The most the old anchor returned: its value at the end
                // of its period, or now if that came first.
                floor = floor.max(old.ns.saturating_add(scale(d.min(PERIOD), old.mult)));
            }
        }
        ANCHOR.tsc.store(t, Ordering::Relaxed);
        ANCHOR.ns.store(ns, Ordering::Relaxed);
        ANCHOR.floor.store(floor, Ordering::Relaxed);
        ANCHOR.mult.store(mult as u64, Ordering::Relaxed);
        ns.max(floor)
    }

    #[cfg(test)]
    pub(super) fn anchored() -> bool {
        ANCHOR.mult.load(Ordering::Relaxed) != 0
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
