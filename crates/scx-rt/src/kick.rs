//! Kicking CPUs (`scx_bpf_kick_cpu`, SPEC.md §4).
//!
//! # Call side (any callback, or any thread through the runtime)
//!
//! 1. An invalid CPU is an ops error (from a callback; `Runtime::kick_cpu`
//!    returns a bad CPU or flag combination to its caller as a `KickError`
//!    before it gets here). A kick from a CPU that is bypassing is
//!    dropped (as the kernel drops kicks while its irq work may not run;
//!    here, because the policy issuing it is being ejected).
//! 2. `IDLE` with `PREEMPT` or `WAIT` is an ops error; the kick proceeds as
//!    an idle kick. `IDLE` try-locks the target and returns early when
//!    [`can_skip_idle_kick`] says the target is busy; otherwise the target's
//!    bit goes into the *calling* CPU's `cpus_to_kick_if_idle`.
//! 3. Other kicks set the bit in `cpus_to_kick` (and `cpus_to_preempt`,
//!    `cpus_to_wait`).
//! 4. The calling CPU's kick step ("irq work") is marked pending. It runs
//!    on that CPU as soon as it holds no rq lock: at the end of the outer
//!    operation (a wake-up, a spawn) or at the worker's next safe point, so
//!    many kicks in one callback are one pass, a CPU kicked twice before the
//!    pass is kicked once, and a plain kick absorbs an idle kick of the same
//!    CPU. A thread that is no worker keeps its kicks in a thread-local list
//!    run the same way.
//!
//! # The kick step
//!
//! Plain kicks first (`kick_one_cpu`: under the target's rq lock, if it is
//! online or the kicker itself, `PREEMPT` zeroes the current task's slice,
//! `WAIT` records the target's pick sequence if it runs a task, and the
//! target is rescheduled; offline targets only lose their preempt and wait
//! bits), then idle kicks (`kick_one_cpu_if_idle`).
//!
//! # `WAIT` (SPEC.md §4.3, the newest form)
//!
//! The waiter returns only after the task that was current on the target at
//! kick time was switched out or the target entered its pick path (its
//! `pnt_seq` moved). The wait does not happen inside the kick step: the step
//! marks `kick_sync_pending` and reschedules the kicker, whose worker waits
//! at its next safe point, holding no lock and bumping its *own* pick
//! sequence on every round — so two CPUs waiting on each other, or a ring,
//! all complete.

use std::cell::RefCell;

use crate::flags::KickFlags;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::{rqflags, RqSynced};

std::thread_local! {
    /// Kicks requested from a thread that is not a worker of `rt_id`.
    static FOREIGN: RefCell<Vec<(u64, usize, KickFlags)>> = const { RefCell::new(Vec::new()) };
}

/// `can_skip_idle_kick`: a busy CPU that is not inside balance will pass
/// through a full scheduling cycle before idling. Target rq locked.
pub(crate) fn can_skip_idle_kick(rq: &RqSynced) -> bool {
    rq.curr.is_some() && !rq.has(rqflags::IN_BALANCE)
}

pub(crate) fn kick_cpu(sh: &Shared, from: Option<usize>, cpu: usize, mut flags: KickFlags) {
    if !sh.check_cpu(cpu, "kick_cpu") {
        return;
    }
    if let Some(me) = from {
        if sh.cpus[me].shared.bypassing.load(Ordering::Acquire) {
            return;
        }
    }
    if flags.contains(KickFlags::IDLE) && flags.intersects(KickFlags::PREEMPT | KickFlags::WAIT) {
        sh.ops_error("kick_cpu: IDLE cannot be combined with PREEMPT or WAIT".to_string());
        flags = KickFlags::IDLE;
    }
    let Some(me) = from else {
        FOREIGN.with(|f| f.borrow_mut().push((sh.rt_id, cpu, flags)));
        return;
    };
    let s = &sh.cpus[me].shared;
    if flags.contains(KickFlags::IDLE) {
        if let Some(rq) = sh.cpus[cpu].rq.try_lock() {
            if can_skip_idle_kick(&rq) {
                sh.cpus[cpu]
                    .shared
                    .stats
                    .idle_kicks_skipped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        s.cpus_to_kick_if_idle.set(cpu);
    } else {
        s.cpus_to_kick.set(cpu);
        if flags.contains(KickFlags::PREEMPT) {
            s.cpus_to_preempt.set(cpu);
        }
        if flags.contains(KickFlags::WAIT) {
            s.cpus_to_wait.set(cpu);
        }
    }
    s.stats.kicks_sent.fetch_add(1, Ordering::Relaxed);
    s.kick_pending.store(true, Ordering::Release);
}

/// `kick_one_cpu`. No rq lock held on entry. Returns whether the kicker
/// must wait for the target (`WAIT` and the target runs a task).
fn kick_one_cpu(sh: &Shared, me: Option<usize>, cpu: usize, preempt: bool, wait: bool) -> bool {
    let target = &sh.cpus[cpu];
    let rq = target.rq.lock();
    let mut must_wait = false;
    if rq.online() || Some(cpu) == me {
        if preempt {
            if let Some(c) = &rq.curr {
                c.set_slice(0);
                target
                    .shared
                    .stats
                    .preemptions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if wait && rq.curr.is_some() && Some(cpu) != me {
            let seq = target.shared.pnt_seq.load(Ordering::Acquire);
            match me {
                Some(m) => sh.cpus[m].shared.pseqs[cpu].store(seq, Ordering::Relaxed),
                None => {
                    drop(rq);
                    target.resched();
                    wait_foreign(sh, cpu, seq);
                    target
                        .shared
                        .stats
                        .kicks_received
                        .fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
            must_wait = true;
        }
        target
            .shared
            .stats
            .kicks_received
            .fetch_add(1, Ordering::Relaxed);
        target.resched();
    }
    must_wait
}

/// `kick_one_cpu_if_idle`. No rq lock held on entry.
fn kick_one_cpu_if_idle(sh: &Shared, me: Option<usize>, cpu: usize) {
    let target = &sh.cpus[cpu];
    let rq = target.rq.lock();
    if can_skip_idle_kick(&rq) {
        target
            .shared
            .stats
            .idle_kicks_skipped
            .fetch_add(1, Ordering::Relaxed);
    } else if rq.online() || Some(cpu) == me {
        target
            .shared
            .stats
            .kicks_received
            .fetch_add(1, Ordering::Relaxed);
        target.resched();
    }
}

/// A thread that is no worker waits by spinning: it runs no tasks, so no
/// one waits on it.
fn wait_foreign(sh: &Shared, cpu: usize, seq: u64) {
    while sh.cpus[cpu].shared.pnt_seq.load(Ordering::Acquire) == seq
        && !sh.shutdown.load(Ordering::Relaxed)
    {
        crate::loom::spin_loop();
    }
}

/// The kick step of CPU `me` (`kick_cpus_irq_workfn`), or of the calling
/// foreign thread when `me` is None. Holds no rq lock on entry.
pub(crate) fn run_pending(sh: &Shared, me: Option<usize>) {
    let Some(me) = me else {
        let mine: Vec<(u64, usize, KickFlags)> = FOREIGN.with(|f| {
            let mut f = f.borrow_mut();
            let (mine, rest): (Vec<_>, Vec<_>) = f.drain(..).partition(|k| k.0 == sh.rt_id);
            *f = rest;
            mine
        });
        for (_, cpu, flags) in mine {
            if flags.contains(KickFlags::IDLE) {
                kick_one_cpu_if_idle(sh, None, cpu);
            } else {
                kick_one_cpu(
                    sh,
                    None,
                    cpu,
                    flags.contains(KickFlags::PREEMPT),
                    flags.contains(KickFlags::WAIT),
                );
            }
        }
        return;
    };
    let s = &sh.cpus[me].shared;
    if !s.kick_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let mut any_wait = false;
    for cpu in s.cpus_to_kick.iter() {
        let preempt = s.cpus_to_preempt.test_and_clear(cpu);
        let wait = s.cpus_to_wait.test(cpu);
        if kick_one_cpu(sh, Some(me), cpu, preempt, wait) {
            any_wait = true;
        } else if wait {
            s.cpus_to_wait.clear(cpu);
        }
        s.cpus_to_kick.clear(cpu);
        s.cpus_to_kick_if_idle.clear(cpu);
    }
    for cpu in s.cpus_to_kick_if_idle.iter() {
        kick_one_cpu_if_idle(sh, Some(me), cpu);
        s.cpus_to_kick_if_idle.clear(cpu);
    }
    if any_wait {
        s.kick_sync_pending.store(true, Ordering::Release);
        s.set_need_resched();
    }
}

/// The target's pick sequence, as a spin-wait reads it. Under loom the read
/// is a read-modify-write: loom lets a plain load keep returning a stale
/// value forever (it does not model eventual visibility), which turns every
/// spin-wait into an unbounded model; an RMW always reads the latest value.
#[inline]
fn read_seq(sh: &Shared, cpu: usize) -> u64 {
    #[cfg(not(scx_rt_loom))]
    return sh.cpus[cpu].shared.pnt_seq.load(Ordering::Acquire);
    #[cfg(scx_rt_loom)]
    return sh.cpus[cpu].shared.pnt_seq.fetch_add(0, Ordering::AcqRel);
}

/// The `WAIT` side, run by CPU `me`'s worker at a safe point (no lock
/// held): waits until every target in `cpus_to_wait` moved its pick
/// sequence, advancing our own so that whoever waits on us is released.
pub(crate) fn wait_for_targets(sh: &Shared, me: usize) {
    let s = &sh.cpus[me].shared;
    if !s.kick_sync_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    for cpu in s.cpus_to_wait.iter() {
        let seq = s.pseqs[cpu].load(Ordering::Relaxed);
        while read_seq(sh, cpu) == seq && !sh.shutdown.load(Ordering::Relaxed) {
            s.pnt_seq.fetch_add(1, Ordering::Release);
            crate::loom::spin_loop();
        }
        s.cpus_to_wait.clear(cpu);
        s.stats.kick_waits.fetch_add(1, Ordering::Relaxed);
    }
}
