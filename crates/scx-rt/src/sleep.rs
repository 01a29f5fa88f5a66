//! Task sleeps and timed waits: a task's timer lives on its CPU's rq
//! (`RqSynced::timers`), fired by that CPU's scheduling step, which wakes
//! the task if it still sleeps. An idle CPU sleeps until its earliest timer
//! (`RqOwner::next_timer`), so no thread polls for timers.
//!
//! A timer that fires after its task already woke for another reason (a
//! timed I/O wait whose fd became ready first) wakes the task spuriously
//! wherever it blocks next; every wait loop in the crate re-checks its
//! condition after `park`, so that costs one extra pass, never a wrong
//! result.

use std::time::{Duration, Instant};

use crate::{context, rq, sync};

/// Sleeps for `d`: blocks only the green task (its CPU keeps a timer and
/// wakes on time without a polling thread); outside a task, sleeps the
/// thread. Zero returns at once; a duration past what the clock can
/// represent (such as `Duration::MAX`) sleeps forever, as
/// `std::thread::sleep` does (and keeps shutdown waiting, as any task
/// blocked forever does).
pub fn sleep(d: Duration) {
    match Instant::now().checked_add(d) {
        Some(deadline) => sleep_until(deadline),
        None => loop {
            // A century at a time: each deadline is representable.
            sleep(Duration::from_secs(100 * 365 * 24 * 3600));
        },
    }
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        let Some((sh, cpu, Some(t))) = context::current() else {
            std::thread::sleep(left);
            continue;
        };
        let when =
            crate::core::clock::now().saturating_add(left.as_nanos().min(u64::MAX as u128) as u64);
        push_timer(&sh, cpu, t, when);
        drop(sh);
        sync::wait::park();
    }
}

/// Arms a timer that wakes the calling task at `when` (runtime clock,
/// `core::clock::now`); the task then parks. Outside a task, nothing to
/// arm (the caller waits in a system call with its own timeout).
pub(crate) fn arm_wake_timer(when: u64) {
    let Some((sh, cpu, Some(t))) = context::current() else {
        return;
    };
    push_timer(&sh, cpu, t, when);
}

fn push_timer(sh: &crate::ops::Shared, cpu: usize, t: crate::task::TaskRef, when: u64) {
    let mut rq = sh.cpus[cpu].rq.lock();
    rq.timer_seq += 1;
    let seq = rq.timer_seq;
    rq.timers.push(std::cmp::Reverse(rq::Timer {
        deadline: when,
        seq,
        task: t,
    }));
    let next = rq.next_timer().unwrap_or(u64::MAX);
    sh.cpus[cpu]
        .shared
        .owner
        .next_timer
        .store(next, std::sync::atomic::Ordering::Relaxed);
}
