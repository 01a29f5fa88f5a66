//! The slice timer: one runtime thread that sleeps until the earliest slice
//! deadline of any CPU (tickless, SPEC.md §3.8), then marks the CPUs whose
//! current task's slice ran out: `need_resched` (the task switches out at
//! its next preemption point) and `tick_pending` (that switch calls
//! `ops.tick` first).
//!
//! # Why one timer thread, not a timer signal per worker
//!
//! The alternative is a POSIX timer per worker (`timer_create` with
//! `SIGEV_THREAD_ID`, `scx_rt_sys::sigtimer`) re-armed at every pick, whose
//! signal handler sets the worker's `need_resched`. `scx-rt-bench
//! slice-timer` measures both in one run; three runs on the busy 2-vCPU
//! EPYC VM CI uses (load average about 4; p50, p99 in brackets):
//!
//! | | timer thread (this module) | per-worker signal |
//! |---|---|---|
//! | publishing a deadline, timer already armed earlier (most switches) | 30–40 ns (41–50 ns) | 730–890 ns (1.0–1.1 µs): one `timer_settime` |
//! | publishing after an expiry (the timer thread must be woken) | 5.9–10.4 µs: one futex wake | 2.5–3.3 µs |
//! | expiry lateness, 10 µs slices | 8.6–10 µs (27–39 µs) | 6.0–7.3 µs (26–32 µs) |
//! | expiry lateness, 100 µs slices | 10–13 µs (41–48 µs) | 6.3–8.7 µs (24–45 µs) |
//! | expiry lateness, 1 ms slices | 20–26 µs (0.6–1.9 ms) | 6.5–13 µs (20–43 µs) |
//!
//! Lateness is from the deadline to the moment a task spinning on the flag
//! sees it; the signal's includes the signal delivery on the worker. A bare
//! copy of this protocol with one spinner (`raw-futex` rows) pays Linux's
//! default timer slack on its futex timeout, about 60 µs; with a slack of
//! 1 ns it and the runtime agree (6–14 µs at 10 and 100 µs, 20 µs at 1 ms,
//! where the timer thread's CPU wakes from a deeper idle state).
//!
//! The timer thread stays, for these reasons:
//!
//! - A green runtime switches far more often than slices expire (tasks
//!   block on channels and locks every few µs; the default slice is
//!   20 ms). The common switch publishes its deadline with an atomic store
//!   and a load (30–40 ns); a signal timer needs a system call on every
//!   switch (0.7–0.9 µs), more than doubling the 350–450 ns green switch.
//!   The signal path is cheaper only at a switch that follows an expiry.
//! - Signals are better by a few µs at p50 (1.3–1.6x at 10–100 µs slices,
//!   2–3x at 1 ms on this VM), both well inside the target of "one timer period
//!   plus one preemption-point interval"; that is not worth the costs
//!   below. The p99 of the 1 ms case is the busy VM descheduling the timer
//!   thread (both vCPUs were loaded by other jobs).
//! - A signal interrupts whatever the worker runs, including user code in
//!   green tasks: `SA_RESTART` does not restart sleeps with timeouts,
//!   `poll`/`epoll_wait`, or socket calls with timeouts, which then fail
//!   with `EINTR`, and C libraries that do not retry break. A handler may
//!   only touch async-signal-safe state, so it cannot run `ops.tick` or
//!   look at the runqueue; it could only set the flag, as the thread does.
//! - One thread costs one wake-up per earliest deadline, and its O(nr_cpus)
//!   scan runs only when it wakes; a worker whose task blocks before its
//!   slice ends pays nothing. It also fires the scheduler's timers
//!   (`ops_timer`), which per-worker signals would need a second mechanism
//!   for.
//!
//! The cost of this choice is the timer thread's wake-up after an expiry
//! (the 6–10 µs futex wake, paid by the worker in `schedule`), and that the
//! thread needs a CPU to run on: on a machine whose every CPU is busy, its
//! wake-up latency is the OS scheduler's. The thread sets its timer slack to
//! 1 ns (`scx_rt_sys::sigtimer::set_timer_slack`, in `timer_main`), which
//! removes the up to 50 µs the kernel would otherwise add to each expiry;
//! workers do the same for their sleep-timer timeouts.
//!
//! # Protocol
//!
//! Each worker publishes its current task's deadline (`slice_deadline`,
//! `u64::MAX` for idle or `SLICE_INF`) whenever it picks a task, and rings
//! the timer only when that deadline is earlier than the one the timer
//! sleeps until (`next`). The timer reads the doorbell word, publishes
//! `next = MAX` ("scanning": every worker rings), scans, publishes the
//! earliest future deadline, and sleeps on the word until then. A deadline
//! stored after the scan read it is therefore either rung (the worker saw
//! MAX, or a later `next`) or not earlier than `next` (the timer wakes by
//! then and sees it): a deadline is never overslept. The fences make the
//! store-then-load pairs on both sides ordered (as in `doorbell`).
//!
//! The same thread fires the scheduler's own timers (`ops_timer`) and runs
//! the watchdog every half timeout (`watchdog`).

use std::sync::Arc;
use std::time::Duration;

use crate::core::clock::now;
use crate::core::timer_word::SliceTimer;
use crate::loom::{fence, Ordering};
use crate::ops::Shared;

/// The timer thread's loop.
pub(crate) fn timer_main(sh: Arc<Shared>) {
    let t = &sh.timer;
    // The kernel may fire a thread's futex timeouts up to its timer slack
    // late (50 µs by default): that would be the floor of slice-expiry
    // lateness. 1 ns makes the deadline the deadline.
    let _ = scx_rt_sys::sigtimer::set_timer_slack(1);
    if sh.cfg.slice_timer == SliceTimer::RealtimeThread {
        // Best effort: without the privilege this is `SliceTimer::Thread`.
        let _ = scx_rt_sys::affinity::set_current_thread_fifo(1);
    }
    let mut watchdog = crate::watchdog::Watchdog::new(sh.nr_cpus);
    loop {
        let w = t.word.load(Ordering::SeqCst);
        if t.stop.load(Ordering::SeqCst) {
            return;
        }
        t.next.store(u64::MAX, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let now = now();
        let mut next = u64::MAX;
        for c in sh.cpus.iter() {
            if c.shared.owner.expiry.load(Ordering::Relaxed) != 0 {
                continue; // the worker's own expiry timer ends its slices
            }
            let d = c.shared.owner.slice_deadline.load(Ordering::SeqCst);
            if d == u64::MAX {
                continue;
            }
            if d <= now {
                if !c.shared.remote.tick_pending.swap(true, Ordering::AcqRel) {
                    // The CPU runs a task: no doorbell needed, it sees the
                    // flag at its next preemption point.
                    c.shared.set_need_resched();
                }
            } else {
                next = next.min(d);
            }
        }
        next = next.min(fire_ops_timers(&sh, now));
        next = next.min(watchdog.round(&sh, now));
        t.next.store(next, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let timeout = (next != u64::MAX).then(|| Duration::from_nanos(next - now));
        scx_rt_sys::futex::wait(&t.word, w, timeout);
    }
}

/// Fires the scheduler timers whose deadline passed (module
/// `ops_timer`); returns the earliest deadline still armed.
fn fire_ops_timers(sh: &Shared, now: u64) -> u64 {
    let mut next = u64::MAX;
    for (id, t) in sh.ops_timers.timers.iter().enumerate() {
        let d = t.deadline.load(Ordering::SeqCst);
        if d == u64::MAX {
            continue;
        }
        if d > now {
            next = next.min(d);
            continue;
        }
        if t.deadline
            .compare_exchange(d, u64::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // Re-armed or cancelled meanwhile: look again next round.
            next = now;
            continue;
        }
        if t.gen.load(Ordering::Relaxed) != sh.sched_gen.load(Ordering::Acquire) {
            continue; // armed by a scheduler that is gone
        }
        // A timer pinned to an offline CPU runs on an online one, as the
        // kernel migrates the timers of a CPU going down.
        let mut cpu = t.cpu.load(Ordering::Relaxed);
        if !sh.cpus[cpu].shared.mostly.online.load(Ordering::Acquire) {
            cpu = sh
                .cpus
                .iter()
                .position(|c| c.shared.mostly.online.load(Ordering::Acquire))
                .unwrap_or(cpu);
        }
        let c = &sh.cpus[cpu];
        c.shared
            .remote
            .ops_timers_fired
            .fetch_or(1 << id, Ordering::AcqRel);
        c.raise_irq();
    }
    next
}
