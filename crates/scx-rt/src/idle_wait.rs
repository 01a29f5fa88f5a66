//! The idle wait of a CPU's worker: what it does after a scheduling step
//! found nothing to run, until work, a sleep timer or I/O readiness ends
//! it.
//!
//! ```text
//! state := POLLING                    (a kick needs no system call)
//! poll phase, for `idle_poll`:
//!     need_resched or other pending work  -> RUNNING, return
//!     earliest sleep timer due           -> RUNNING, return
//!     every IDLE_YIELD_NS: sched_yield   (the OS CPU's other threads run
//!                                         now, not at the OS slice's end)
//!     every IO_IDLE_PEEK_NS, with I/O:   peek the reactor; events -> return
//!     spin IDLE_SPIN_BATCH hints, checking need_resched between each
//! before_sleep (housekeeping off the quick path)
//! sleep on the doorbell (futex), or in the reactor's epoll wait with the
//! doorbell's eventfd in it, until a ring, the earliest sleep timer or I/O
//! ```
//!
//! The sleep's no-lost-wake-up argument is the doorbell's (`doorbell`):
//! `need_resched` is re-checked after `SLEEPING` is published. The yield
//! keeps the state `POLLING`: a kick made while the worker is off its CPU
//! is seen when the yield returns, which with no other runnable thread is
//! at once, and otherwise when the OS runs the worker again
//! (`consts::IDLE_YIELD_NS` weighs the two).

use crate::loom::Ordering;
use crate::rq::{Cpu, CpuCounters};

impl Cpu {
    /// The idle wait of this CPU's worker, after its scheduling step found
    /// nothing to run: poll `need_resched` (state POLLING) for `poll_ns`,
    /// yielding the OS CPU every `consts::IDLE_YIELD_NS` of it, then sleep
    /// on the doorbell (state SLEEPING) until a resched, the earliest sleep
    /// timer, or `extra` (other pending work) says so.
    /// `need_resched` is re-checked after SLEEPING is published, which is
    /// what makes a racing `resched` impossible to lose.
    /// `before_sleep` runs once the poll phase found nothing, before the
    /// doorbell sleep (housekeeping that should not delay a quick wake-up).
    #[cfg(scx_rt_loom)]
    pub(crate) fn idle_wait(
        &self,
        poll_ns: u64,
        extra: impl Fn() -> bool,
        before_sleep: impl FnOnce(),
    ) {
        self.idle_wait_with(
            poll_ns,
            crate::core::clock::now(),
            extra,
            before_sleep,
            None,
        );
    }

    /// `idle_wait` of a CPU with I/O registered when `io` is given: the
    /// poll phase also looks at `io` (without blocking) every
    /// `consts::IO_IDLE_PEEK_NS`, at the clock read that ends a spin batch,
    /// and the sleep is `io`'s (the CPU's reactor: an epoll wait with the
    /// doorbell's eventfd in it, `Doorbell::sleep_io`) instead of the futex.
    /// Returns early, RUNNING, when `io` has events (kept for the caller).
    /// Without `io` the poll phase is exactly the plain `idle_wait`'s: no
    /// peek, no extra compare. Returns how the wait ended.
    ///
    /// `now` is the clock reading of the scheduling step that found nothing
    /// to run (`core::step::After::now`, a moment ago): the poll phase is
    /// timed from it and its first round compares it with the earliest
    /// sleep timer (whose due timers that step fired), so a CPU that goes
    /// to sleep at once (`poll_ns` 0) reads no clock here.
    pub(crate) fn idle_wait_with(
        &self,
        poll_ns: u64,
        now: u64,
        extra: impl Fn() -> bool,
        before_sleep: impl FnOnce(),
        io: Option<&dyn IdleIo>,
    ) -> IdleEnd {
        let s = &self.shared;
        let db = &s.remote.doorbell;
        let stats = &s.owner.stats;
        let pending = || s.remote.need_resched.load(Ordering::SeqCst) || extra();
        db.set_state(crate::doorbell::POLLING);
        let poll_until = now.saturating_add(poll_ns);
        // The caller looked at `io` just before this wait: the first peek
        // is one interval in.
        let mut next_peek = now.saturating_add(crate::consts::IO_IDLE_PEEK_NS);
        let mut next_yield = now.saturating_add(crate::consts::IDLE_YIELD_NS);
        let mut t = now;
        loop {
            if pending() {
                db.set_state(crate::doorbell::RUNNING);
                CpuCounters::bump(&stats.wakes_while_polling);
                return IdleEnd::Resched;
            }
            if t >= s.owner.next_timer.load(Ordering::Relaxed) {
                db.set_state(crate::doorbell::RUNNING);
                return IdleEnd::Timer;
            }
            if t >= poll_until {
                break;
            }
            if t >= next_yield {
                // Other threads of this OS CPU run now, not at the end of
                // the OS slice (`consts::IDLE_YIELD_NS`); the CPU stays
                // POLLING meanwhile (a kick made during the yield is seen
                // when it returns).
                crate::loom::thread_yield();
                t = crate::core::clock::now();
                next_yield = t.saturating_add(crate::consts::IDLE_YIELD_NS);
                continue;
            }
            if let Some(r) = io {
                if t >= next_peek {
                    next_peek = t.saturating_add(crate::consts::IO_IDLE_PEEK_NS);
                    if r.peek() {
                        db.set_state(crate::doorbell::RUNNING);
                        return IdleEnd::IoWhilePolling;
                    }
                }
            }
            // `need_resched` is checked between every two spin hints (a
            // PAUSE is ~140 cycles on recent Intel cores, ~40 ns on the
            // 2-vCPU EPYC); the clock only once per batch.
            for _ in 0..crate::consts::IDLE_SPIN_BATCH {
                if pending() {
                    db.set_state(crate::doorbell::RUNNING);
                    CpuCounters::bump(&stats.wakes_while_polling);
                    return IdleEnd::Resched;
                }
                crate::loom::spin_loop();
            }
            t = crate::core::clock::now();
        }
        before_sleep();
        let next_timer = s.owner.next_timer.load(Ordering::Relaxed);
        let timeout = (next_timer != u64::MAX).then(|| {
            std::time::Duration::from_nanos(
                next_timer.saturating_sub(crate::core::clock::now()).max(1),
            )
        });
        match io {
            Some(r) if r.epoll_sleep() => {
                if db.sleep_io(timeout, pending, |t| r.sleep(t)) {
                    CpuCounters::bump(&stats.io_doorbell_wakes);
                }
            }
            _ => {
                if db.sleep(timeout, pending) {
                    CpuCounters::bump(&stats.doorbell_syscalls);
                }
            }
        }
        IdleEnd::Slept
    }
}

/// How an idle wait (`Cpu::idle_wait_with`) ended: what the worker counts
/// the I/O events it then handles as (`CpuStats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdleEnd {
    /// `need_resched` or other pending work, seen while polling.
    Resched,
    /// The earliest sleep timer came due while polling.
    Timer,
    /// A peek at the reactor found events while polling (kept in it).
    IoWhilePolling,
    /// The poll phase ran out and the CPU slept (futex or epoll); whatever
    /// the epoll sleep returned is kept in the reactor.
    Slept,
}

/// What an idle CPU with I/O registered looks at and sleeps in: its
/// reactor (`io::reactor`; the loom model's stand-in has no events).
pub(crate) trait IdleIo {
    /// A non-blocking look: whether events are ready (kept for whoever
    /// handles them after the idle wait).
    fn peek(&self) -> bool;
    /// The sleep: waits up to `timeout` (`None`: until an event), the
    /// doorbell's eventfd included.
    fn sleep(&self, timeout: Option<std::time::Duration>);
    /// Whether the sleep is `sleep` (an epoll wait with the doorbell's
    /// eventfd in it); false: the CPU only peeks here (it collects other
    /// CPUs' readiness but has no reactor of its own) and sleeps on the
    /// futex.
    fn epoll_sleep(&self) -> bool {
        true
    }
}
