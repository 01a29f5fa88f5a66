//! The slice timer: what ends a task's slice when its deadline passes
//! (tickless, SPEC.md §3.8). Each worker publishes its current task's
//! deadline at every pick (`u64::MAX` for idle or `SLICE_INF`); once it
//! passes, the CPU is marked: `tick_pending` (the switch calls `ops.tick`
//! first) and `need_resched` (the task switches out at its next preemption
//! point). Three mechanisms mark it, chosen with `Builder::slice_timer`
//! (`SliceTimer`), and they set the same flags in the same order
//! (`RqShared::expire_slice`), so the scheduler sees no difference:
//!
//! - the preemption points themselves (`Poll`, and `Auto`, the default,
//!   for slices up to `consts::POLL_SLICE_MAX`): the deadline goes into
//!   the CPU's `poll_deadline`, which each `preempt_point()` compares
//!   with the clock (below, "Polled expiry");
//! - `Signal` (and `Auto` for longer slices): each worker's own one-shot
//!   POSIX timer (`scx_rt_sys::expiry`, which has the protocol), on
//!   `slice_deadline`, armed at the deadline
//!   and re-armed only when a newer deadline is *earlier* than the armed
//!   one (after an expiry, after idle) or, from its handler, when it fires
//!   for a deadline that has moved later. Successive slices' deadlines only
//!   move later, so the common switch makes no system call. The handler
//!   compares the published deadline with the clock and sets the flags.
//! - `Thread` (and `RealtimeThread`, the same at `SCHED_FIFO` priority 1
//!   where the process may have it): this module's thread sleeps until the
//!   earliest `slice_deadline` of all CPUs and marks those that passed.
//!
//! A pick publishes to one of the two words and `u64::MAX` to the other
//! (`core::step::publish_deadline`), so a polled slice arms no timer.
//!
//! The thread runs in every mode: it fires the scheduler's timers
//! (`ops_timer`), runs the watchdog every half timeout (`watchdog`), and
//! watches the deadlines of the CPUs whose worker has no expiry timer
//! (`owner.expiry == 0`: the thread modes, or a worker that could not
//! create one because the signal, `SIGRTMIN + 4`, has another handler or
//! the process reached the timer limit), except in `Poll` mode.
//!
//! # Where the thread runs
//!
//! When every worker is pinned and the process may run on CPUs no worker
//! takes, the thread is confined to those (the kernel's housekeeping CPUs
//! under `nohz_full`): its wake-ups then never preempt a worker, which
//! matters with a scheduler timer of tens of µs (scx_central's, as the
//! `bimodal` benchmark runs it: 33,000 wake-ups a second, each a context
//! switch pair on the CPU it lands on) and with `SliceTimer::Thread`.
//! Otherwise it is unpinned, as before.
//!
//! # Why a timer signal per worker, re-armed lazily
//!
//! The kernel's tick is an interrupt: it needs no CPU of its own. A timer
//! thread does: when every CPU runs a busy worker, the OS runs the thread
//! when it gets round to it, so slices ended late exactly under load (the
//! `hog` and `preempt` figures of issue 13). A per-worker timer re-armed at
//! every pick would fix that at one `timer_settime` per switch (about
//! 1 µs, more than the whole green switch). Armed lazily it costs a load
//! and a compare per switch. `scx-rt-bench slice-timer`, `preempt` and
//! `hog` measure the modes side by side; four runs on the 2-vCPU EPYC VM
//! with load averages of 4 to 7 from other jobs (p50, p99 in brackets;
//! lateness is from the deadline to the moment a spinning task sees the
//! flag):
//!
//! | | `Signal` | `Thread` | `RealtimeThread` | raw limit |
//! |---|---|---|---|---|
//! | publishing a deadline, timer armed earlier (most switches) | 30 ns (40–50 ns) | 30 ns (0.53–0.71 µs) | as `Thread` | `timer_settime` per switch 1.0–1.1 µs (1.4–2.0 µs) |
//! | publishing after an expiry (nothing armed) | 2.5–2.7 µs: one `timer_settime` | 8.3–9.2 µs: one futex wake | as `Thread` | 2.5–2.7 µs |
//! | expiry lateness, 10 µs slices | 6.4–6.6 µs (18–20 µs) | 9.6–11 µs (21 µs–1.1 ms) | 2.9–16 µs (17–36 µs) | signal 6.3–6.6 µs (15–22 µs) |
//! | expiry lateness, 100 µs slices | 6.6–8.8 µs | 10–10.4 µs | 9.4–12 µs | signal 6.4–7.4 µs |
//! | expiry lateness, 1 ms slices | 6.7–8.6 µs | 11–22 µs | 15–19 µs | signal 7.1–12 µs |
//! | `preempt` lateness, 10 µs slices | 6.2–6.8 µs (19–41 µs) | 9.2–11 µs (25 µs–1.8 ms) | 7.1–9.3 µs (24–31 µs) | – |
//! | `hog` round trip, 50 µs slices | 113–116 µs | 135–144 µs | 134–139 µs | – |
//!
//! At 100 µs and 1 ms slices every p99 of these runs, the raw signal's
//! included, is 2 to 20 ms: multiples of the host's 4 ms tick, the time the
//! OS took the worker's own vCPU away for other jobs, which no expiry
//! mechanism can see past. Where the worker ran, `Signal` ends slices
//! within the raw limit (a signal delivered to the spinning thread, 6–7 µs
//! on this VM), 1.5–3x sooner than the thread at p50.
//!
//! What an expiry costs the *worker's* CPU is the other side, and there the
//! signal loses: the timer interrupt, the signal frame and `sigreturn` and
//! the re-arm at the next pick cost the worker about 10 µs per expiry on
//! this VM, against about 2.5 µs for the thread mode's futex ring (the
//! thread's own wake-up runs on another CPU). Two spinners on one CPU,
//! useful spin time as a share of the worker thread's CPU time (two runs
//! each, same load, a scratch program; then `scx-rt-bench slice-timer`'s
//! `expiry-overhead-*` cases, the share of wall time, one run):
//!
//! | slice | `Signal` | `Thread` | bench `Signal` | bench `Thread` |
//! |---|---|---|---|---|
//! | 5 µs | 11–12% | 82–88% (the thread's lateness stretches slices to ~15 µs) | 1.0% | 70.0% |
//! | 10 µs | 19–24% | 55–64% | 15.7% | 87.9% |
//! | 30 µs | 66–67% | 71–75% | 54.4% | 85.7% |
//! | 100 µs | 87–88% | 90–91% | 82.5% | 95.6% |
//!
//! With the default 20 ms slice that is 0.05% of a CPU-bound task's time,
//! and tasks that block before their slice ends pay nothing; `Signal` is
//! what the default does for such slices for that reason and because it
//! needs no spare CPU. Short slices are another matter: the timer thread
//! is late under load, and the signal takes most of the CPU (below,
//! "Polled expiry", which the default uses for them instead). The
//! real-time thread helps the thread's tail but not its p50 (it still
//! crosses CPUs and wakes from a futex), needs a privilege most
//! deployments do not give, and takes a CPU from a worker at every expiry.
//! A periodic per-worker tick would save only the re-arm (a fraction of the
//! cost above: the interrupt and the signal frame remain, once per period
//! rather than once per expiry) and be late by up to a period. A hybrid
//! (the thread normally, a worker timer while the thread is late) would
//! need the worker timer's cost anyway plus a hand-over protocol.
//!
//! # Polled expiry
//!
//! A green task leaves its CPU only at a switch point: the flags above do
//! nothing until the task's next `preempt_point()` reads them. So the
//! preemption point can read the clock instead, and the slice ends at the
//! very preemption point a timer that fired on time would have ended it
//! at, with nothing else on the worker's CPU: no interrupt, no signal
//! frame, no re-arm, no futex ring, no `EINTR`, and no spare CPU. Go's
//! compiler-inserted checks and the kernel's `cond_resched()` read a flag
//! because a tick or `sysmon` sets it; here a clock read is cheap enough
//! (the TSC, `scx_rt_sys::clock::now_ns`) to be the tick.
//!
//! ```text
//! pick (worker)                         preempt_point (same thread)
//! poll_deadline := now + slice          if need_resched: switch
//!   (u64::MAX: idle, SLICE_INF, or a    d := poll_deadline
//!    slice a timer ends)                if d != MAX and clock >= d:
//!                                           poll_deadline := MAX   (once)
//!                                           expire_slice()         (the marks)
//!                                           switch
//! ```
//!
//! The word is written and read by the worker thread only (a task's
//! preemption point runs on its CPU's worker), so plain relaxed accesses
//! suffice; `expire_slice` makes the same marks the timer thread makes,
//! so the switch that follows is the expiry switch (`ops.tick`, the slice
//! charged and spent).
//!
//! The price moves from the expiry to the preemption points: a
//! `preempt_point()` reads the clock while the running task's slice is
//! polled. `scx-rt-bench slice-timer` and `preempt`, one run each on the
//! 2-vCPU EPYC VM, 2026-12-08 (p50, p99 in brackets):
//!
//! | | polled | `Signal` | `Thread` |
//! |---|---|---|---|
//! | one `preempt_point()`, slice not running out | 11.5 ns | 2.9 ns | 3.0 ns |
//! | expiry lateness, 10 µs slices | 49 ns (89 ns) | 16.0 µs (37 µs) | 21.4 µs (38 µs) |
//! | expiry lateness, 100 µs slices | 56 ns (437 ns) | 16.2 µs (36 µs) | 30.4 µs (91 µs) |
//! | expiry lateness, 1 ms slices | 64 ns (170 ns) | 16.8 µs (35 µs) | 35.0 µs (105 µs) |
//! | `preempt` lateness, 10 µs / 100 µs / 1 ms slices, p99 | 0.32 / 1.4 / 1.5–4.0 µs | 30 / 41 / 49–56 µs | 46 / 73 / 88–97 µs |
//! | two spinners on one CPU, useful share, 5 / 10 / 30 / 100 µs slices | 95.6 / 96.7 / 97.8 / 98.3% | 0.0 / 7.4 / 46.4 / 77.6% | 90.9 / 93.5 / 98.0 / 98.2% |
//!
//! (This host's signal now costs more than in the runs of the tables
//! above: 16–25 µs an expiry, against 10.) A polled slice ends within a
//! loop turn of its deadline, about 50 ns here; the p99s above that are
//! the OS taking the vCPU away. The cost is the 9 ns per preemption point
//! while such a slice runs: a loop that passes one every 100 ns runs 9%
//! slower, one that passes one every 10 µs 0.1%.
//!
//! # Which slices are polled (`Auto`, the default)
//!
//! Per slice, at the pick: a polled slice costs its task a clock read per
//! preemption point, a timed one costs its CPU one expiry and ends as late
//! as the signal arrives. `consts::POLL_SLICE_MAX` (1 ms, the kernel's
//! tick at `HZ=1000`) is about where the two meet on this VM for a task
//! passing a preemption point every 500 ns; a task that passes them less
//! often pays less for polling, one that blocks before its slice ends
//! pays for neither. The default 20 ms slice is signalled (0.1% of a
//! CPU-bound task's time at 20 µs an expiry), the tens of µs slices of a
//! latency-bound server are polled. `Poll` polls every slice (a program
//! that wants no signal at all), `Signal` none.
//!
//! # What `Signal` costs task code: `EINTR`
//!
//! The expiry signal (`Signal`, and `Auto`'s slices longer than
//! `consts::POLL_SLICE_MAX`) interrupts whatever the worker runs, green
//! task code included. It is installed with `SA_RESTART`, so reads, writes and waits
//! without a timeout restart transparently. Linux never restarts sleeps and
//! waits with a timeout (`nanosleep`, `clock_nanosleep`, `poll`,
//! `epoll_wait`, `select`, timed futex waits, `sigtimedwait`) nor socket
//! calls while `SO_RCVTIMEO`/`SO_SNDTIMEO` is set: a task's *raw* call of
//! one of those can fail with `EINTR` when its slice ends during it. At
//! most one signal arrives per deadline that passes, plus one per deadline
//! extension (at most one per slice length of run time), and while the
//! worker is idle or runs a `SLICE_INF` task at most one, the timer armed
//! before (it finds no deadline and stays disarmed; the worker does not
//! disarm it before sleeping, which would cost two system calls per
//! sleep). std retries `EINTR` in
//! `thread::sleep`, `read_exact`/`write_all` and its connect timeout; code
//! that calls the OS directly (or through C libraries that do not retry)
//! must retry or use `SliceTimer::Thread` or `SliceTimer::Poll`. The
//! runtime's own waits never
//! see it: green blocking (channels, locks, `scx_rt::sleep`,
//! `spawn_blocking`'s join) makes no system call, the blocking pool's
//! threads and the timer thread get no signal (the timer is
//! `SIGEV_THREAD_ID`, aimed at its worker), a worker's doorbell sleep
//! re-checks its condition after any return, and parking_lot and std
//! retry their futex waits.
//!
//! Each worker and the thread set their timer slack to 1 ns
//! (`scx_rt_sys::sigtimer::set_timer_slack`): Linux otherwise fires a
//! thread's futex timeouts up to 50 µs late (the `raw-futex` rows).
//!
//! # Protocol (the thread)
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
//! CPUs with an expiry timer are skipped by the scan and never ring.

use std::sync::Arc;
use std::time::Duration;

use crate::core::clock::now;
use crate::loom::{fence, Ordering};
use crate::ops::Shared;
use crate::SliceTimer;

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
        // Polled expiry: the preemption points end the slices.
        let watch = sh.cfg.slice_timer != SliceTimer::Poll;
        for c in sh.cpus.iter().filter(|_| watch) {
            if c.shared.owner.expiry.load(Ordering::Relaxed) != 0 {
                continue; // the worker's own expiry timer ends its slices
            }
            let d = c.shared.owner.slice_deadline.load(Ordering::SeqCst);
            if d == u64::MAX {
                continue;
            }
            if d <= now {
                c.shared.expire_slice();
            } else {
                next = next.min(d);
            }
        }
        let mut raise = [usize::MAX; crate::ops_timer::MAX_OPS_TIMERS as usize];
        next = next.min(fire_ops_timers(&sh, now, &mut raise));
        next = next.min(watchdog.round(&sh, now));
        t.next.store(next, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // The fired timers' CPUs learn of them only now that `next`, which
        // includes the expected re-arms, is published: a callback's re-arm
        // then finds it and rings nobody (`ops_timer` docs).
        for &cpu in raise.iter().take_while(|&&c| c != usize::MAX) {
            sh.cpus[cpu].raise_irq();
        }
        let timeout = (next != u64::MAX).then(|| Duration::from_nanos(next - now));
        scx_rt_sys::futex::wait(&t.word, w, timeout);
    }
}

/// Fires the scheduler timers whose deadline passed (module
/// `ops_timer`): sets their bits on their CPUs and lists those CPUs in
/// `raise` (from the front, each once), whose interrupt work the caller
/// raises. Returns the earliest deadline still armed, or, if earlier,
/// when a fired timer's re-arm is expected (its last delay plus
/// `REARM_SLACK_NS` from now: `ops_timer` docs).
fn fire_ops_timers(sh: &Shared, now: u64, raise: &mut [usize]) -> u64 {
    let mut next = u64::MAX;
    let mut nr_raise = 0;
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
        if !raise[..nr_raise].contains(&cpu) {
            raise[nr_raise] = cpu;
            nr_raise += 1;
        }
        let rearm = now
            .saturating_add(t.period.load(Ordering::Relaxed))
            .saturating_add(crate::ops_timer::REARM_SLACK_NS);
        next = next.min(rearm);
    }
    next
}
