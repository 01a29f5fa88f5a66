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
use crate::kick_state::KickState;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::{rqflags, CpuCounters, RqSynced};

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
        if sh.cpus[me].shared.mostly.bypassing.load(Ordering::Acquire) {
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
    let k = &sh.cpus[me].shared.kick;
    if flags.contains(KickFlags::IDLE) {
        if let Some(mut rq) = sh.cpus[cpu].try_lock() {
            if can_skip_idle_kick(&rq) {
                rq.stats.idle_kicks_skipped += 1;
                crate::trace::kick(sh, &mut rq, from, KickFlags::IDLE, true);
                return;
            }
        }
        k.to_kick_if_idle.set(cpu);
    } else {
        k.to_kick.set(cpu);
        if flags.contains(KickFlags::PREEMPT) {
            k.to_preempt.set(cpu);
        }
        if flags.contains(KickFlags::WAIT) {
            k.to_wait.set(cpu);
        }
    }
    CpuCounters::bump(&sh.cpus[me].shared.owner.stats.kicks_sent);
    k.pending.store(true, Ordering::Release);
}

/// `kick_one_cpu`. No rq lock held on entry. Returns whether the kicker
/// must wait for the target (`WAIT` and the target runs a task).
fn kick_one_cpu(sh: &Shared, me: Option<usize>, cpu: usize, preempt: bool, wait: bool) -> bool {
    let target = &sh.cpus[cpu];
    let mut rq = target.rq.lock();
    let mut must_wait = false;
    if rq.online() || Some(cpu) == me {
        crate::trace::kick(sh, &mut rq, me, kick_flags(preempt, wait), false);
        if preempt {
            if let Some(c) = &rq.curr {
                c.set_slice(0);
                rq.stats.preemptions += 1;
            }
        }
        if wait && rq.curr.is_some() && Some(cpu) != me {
            let seq = target.shared.kick.pick_seq();
            match me {
                Some(m) => sh.cpus[m].shared.kick.seen_seq[cpu].store(seq, Ordering::Relaxed),
                None => {
                    rq.stats.kicks_received += 1;
                    drop(rq);
                    target.resched();
                    wait_foreign(sh, cpu, seq);
                    return false;
                }
            }
            must_wait = true;
        }
        rq.stats.kicks_received += 1;
        drop(rq);
        target.resched();
    }
    must_wait
}

/// `kick_one_cpu_if_idle`. No rq lock held on entry.
fn kick_one_cpu_if_idle(sh: &Shared, me: Option<usize>, cpu: usize) {
    let target = &sh.cpus[cpu];
    let mut rq = target.rq.lock();
    if can_skip_idle_kick(&rq) {
        rq.stats.idle_kicks_skipped += 1;
        crate::trace::kick(sh, &mut rq, me, KickFlags::IDLE, true);
    } else if rq.online() || Some(cpu) == me {
        rq.stats.kicks_received += 1;
        crate::trace::kick(sh, &mut rq, me, KickFlags::IDLE, false);
        drop(rq);
        target.resched();
    }
}

/// The flags of a plain kick, for its trace record.
fn kick_flags(preempt: bool, wait: bool) -> KickFlags {
    let mut f = KickFlags::empty();
    if preempt {
        f |= KickFlags::PREEMPT;
    }
    if wait {
        f |= KickFlags::WAIT;
    }
    f
}

/// A thread that is no worker waits by spinning: it runs no tasks, so no
/// one waits on it.
fn wait_foreign(sh: &Shared, cpu: usize, seq: u64) {
    while sh.cpus[cpu].shared.kick.pick_seq() == seq && !sh.shutdown.load(Ordering::Relaxed) {
        crate::loom::spin_loop();
    }
}

/// The kick step of CPU `c` (`kick_cpus_irq_workfn`). Holds no rq lock on
/// entry; the doorbells of the targets are rung after their rq locks are
/// released (the lock table's rule 5).
#[inline]
pub(crate) fn run_pending_on(sh: &Shared, c: &crate::rq::Cpu) {
    // The common case: nothing pending, one load.
    if c.shared.kick.pending.load(Ordering::Relaxed) {
        run_pending_slow(sh, Some(c.id));
    }
}

/// [`run_pending_on`] by CPU number, or the kick step of the calling
/// foreign thread (`None`).
#[inline]
pub(crate) fn run_pending(sh: &Shared, me: Option<usize>) {
    match me {
        // The common case: nothing pending, one load.
        Some(me) if !sh.cpus[me].shared.kick.pending.load(Ordering::Relaxed) => {}
        _ => run_pending_slow(sh, me),
    }
}

#[cold]
fn run_pending_slow(sh: &Shared, me: Option<usize>) {
    let Some(me) = me else {
        // This runtime's kicks, in order, taken one at a time so that the
        // borrow is released around each kick; other runtimes' stay
        // queued. The list keeps its buffer (a spawn from outside the
        // runtime queues a kick and runs this each time: rebuilding the
        // list allocated and freed at every spawn). Bounded by the length
        // seen first, so a kick queued meanwhile waits for the next call.
        let mut budget = FOREIGN.with(|f| f.borrow().len());
        let mut at = 0;
        while budget > 0 {
            budget -= 1;
            let next = FOREIGN.with(|f| {
                let mut f = f.borrow_mut();
                let i = at + f.get(at..)?.iter().position(|k| k.0 == sh.rt_id)?;
                at = i;
                Some(f.remove(i))
            });
            let Some((_, cpu, flags)) = next else {
                break;
            };
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
    let k = &sh.cpus[me].shared.kick;
    if !KickState::take(&k.pending) {
        return;
    }
    let mut any_wait = false;
    for cpu in k.to_kick.iter() {
        let preempt = k.to_preempt.test_and_clear(cpu);
        let wait = k.to_wait.test(cpu);
        if kick_one_cpu(sh, Some(me), cpu, preempt, wait) {
            any_wait = true;
        } else if wait {
            k.to_wait.clear(cpu);
        }
        k.to_kick.clear(cpu);
        k.to_kick_if_idle.clear(cpu);
    }
    for cpu in k.to_kick_if_idle.iter() {
        kick_one_cpu_if_idle(sh, Some(me), cpu);
        k.to_kick_if_idle.clear(cpu);
    }
    if any_wait {
        k.sync_pending.store(true, Ordering::Release);
        sh.cpus[me].shared.set_need_resched();
    }
}

/// The `WAIT` side, run by CPU `me`'s worker at a safe point (no lock
/// held): waits until every target in `to_wait` moved its pick sequence,
/// advancing our own so that whoever waits on us is released.
pub(crate) fn wait_for_targets(sh: &Shared, me: usize) {
    let s = &sh.cpus[me].shared;
    let k = &s.kick;
    if !KickState::take(&k.sync_pending) {
        return;
    }
    for cpu in k.to_wait.iter() {
        let seq = k.seen_seq[cpu].load(Ordering::Relaxed);
        while sh.cpus[cpu].shared.kick.pick_seq_for_wait() == seq
            && !sh.shutdown.load(Ordering::Relaxed)
        {
            k.advance_pick();
            crate::loom::spin_loop();
        }
        k.to_wait.clear(cpu);
        CpuCounters::bump(&s.owner.stats.kick_waits);
    }
}
