//! The slice timer: what ends a task's slice when its deadline passes
//! (tickless, SPEC.md §3.8). Each worker publishes its current task's
//! deadline at every pick (`slice_deadline`, `u64::MAX` for idle or
//! `SLICE_INF`); once it passes, the CPU is marked: `tick_pending` (the
//! switch calls `ops.tick` first) and `need_resched` (the task switches out
//! at its next preemption point). Two mechanisms mark it, chosen with
//! `Builder::slice_timer` (`SliceTimer`), and they set the same flags in
//! the same order, so the scheduler sees no difference:
//!
//! - `Signal`, the default: each worker's own one-shot POSIX timer
//!   (`scx_rt_sys::expiry`, which has the protocol), armed at the deadline
//!   and re-armed only when a newer deadline is *earlier* than the armed
//!   one (after an expiry, after idle) or, from its handler, when it fires
//!   for a deadline that has moved later. Successive slices' deadlines only
//!   move later, so the common switch makes no system call. The handler
//!   compares the published deadline with the clock and sets the flags.
//! - `Thread` (and `RealtimeThread`, the same at `SCHED_FIFO` priority 1
//!   where the process may have it): this module's thread sleeps until the
//!   earliest deadline of all CPUs and marks those that passed.
//!
//! The thread runs in every mode: it fires the scheduler's timers
//! (`ops_timer`), runs the watchdog every half timeout (`watchdog`), and
//! watches the deadlines of the CPUs whose worker has no expiry timer
//! (`owner.expiry == 0`: the thread modes, or a worker that could not
//! create one because the signal, `SIGRTMIN + 4`, has another handler or
//! the process reached the timer limit).
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
//! and tasks that block before their slice ends pay nothing; `Signal` stays
//! the default for that reason and because it needs no spare CPU. Programs
//! that run slices of 10 µs or less on a VM get more work done with
//! `SliceTimer::Thread`, at the price of late expiries under load. The
//! real-time thread helps the thread's tail but not its p50 (it still
//! crosses CPUs and wakes from a futex), needs a privilege most
//! deployments do not give, and takes a CPU from a worker at every expiry.
//! A periodic per-worker tick would save only the re-arm (a fraction of the
//! cost above: the interrupt and the signal frame remain, once per period
//! rather than once per expiry) and be late by up to a period. A hybrid
//! (the thread normally, a worker timer while the thread is late) would
//! need the worker timer's cost anyway plus a hand-over protocol.
//!
//! # What `Signal` costs task code: `EINTR`
//!
//! The expiry signal interrupts whatever the worker runs, green task code
//! included. It is installed with `SA_RESTART`, so reads, writes and waits
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
//! must retry or use `SliceTimer::Thread`. The runtime's own waits never
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
