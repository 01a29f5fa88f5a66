//! The dispatch buffer, consume and the cross-CPU transfers (SPEC.md
//! §2.6, §2.7, §3.9): a task moves between CPUs by the `holding_cpu`
//! hand-off, never with two rq locks held.
//!
//! A consume moves one task (`consume_dispatch_q`, the kernel's); the
//! batched consume (`consume_dsq_batch`, behind
//! `DispatchCtx::dsq_move_to_local_batch`, no kfunc) moves up to 32 in
//! one pass, each other rq's lock taken once per run of its tasks: a thief
//! taking half of a busy CPU's queue otherwise pays three lock round
//! trips per task, against a victim taking its own rq lock at every
//! spawn.

use crate::dsq::Dsq;
use crate::flags::{EnqFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::RqGuard;
use crate::task::{opss, tflags, TaskRef};

use crate::core::dsqs::{
    activate, deactivate, dispatch_enqueue_local, dispatch_enqueue_nonlocal, find_dsq_for_dispatch,
    Target,
};
use crate::core::errctx::err_ctx;

/// Performs the buffered dispatches in order. rq locked on entry and return.
#[inline]
pub(crate) fn flush_dispatch_buf(
    sh: &Shared,
    _cpu: usize,
    rq: &mut RqGuard<'_>,
    nr_tasks: &mut u32,
) {
    // Usually empty (a policy that consumes and dispatches nothing).
    if !rq.dispatch_buf.is_empty() {
        flush_dispatch_buf_slow(sh, rq, nr_tasks);
    }
}

#[inline(never)]
fn flush_dispatch_buf_slow(sh: &Shared, rq: &mut RqGuard<'_>, nr_tasks: &mut u32) {
    let buf = std::mem::take(&mut rq.dispatch_buf);
    *nr_tasks += buf.len() as u32;
    for e in buf {
        finish_dispatch(sh, rq, e.task, e.qseq, e.dsq_id, e.enq_flags);
    }
}

pub(crate) fn finish_dispatch(
    sh: &Shared,
    rq: &mut RqGuard<'_>,
    p: TaskRef,
    qseq: u64,
    id: u64,
    f: EnqFlags,
) {
    let _ctx = err_ctx("dispatch", Some(&p), Some(rq.cpu));
    loop {
        let s = p.ops_state();
        match s & opss::STATE_MASK {
            // Someone else owns or already moved it.
            opss::NONE | opss::DISPATCHING => return,
            opss::QUEUED => {
                if s & !opss::STATE_MASK != qseq {
                    return; // stale claim: the task was re-enqueued since
                }
                if p.scx
                    .ops_state
                    .compare_exchange(
                        s,
                        opss::DISPATCHING | qseq,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    break;
                }
            }
            // An enqueue is in progress on another CPU that holds that
            // task's rq lock and needs nothing we hold.
            _ => crate::loom::spin_loop(),
        }
    }
    crate::trace::dispatch(sh, rq, &p, id, f);
    match find_dsq_for_dispatch(sh, rq.cpu, id) {
        Target::Local(c) => dispatch_to_local_dsq(sh, rq, c, p, f),
        Target::Global => dispatch_enqueue_nonlocal(sh, &sh.global, p, f | EnqFlags::CLEAR_OPSS),
        Target::User(d) => dispatch_enqueue_nonlocal(sh, &d, p, f | EnqFlags::CLEAR_OPSS),
    }
}

/// Why a task may not move to a CPU (`can_run_on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CannotRun {
    /// The CPU is offline (the kernel counts an explicit dispatch refused
    /// for it as `SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE`).
    Offline,
    /// The task may not run there (bound elsewhere, or not allowed).
    NotAllowed,
}

/// Whether `p` may move to CPU `dst` (`task_can_run_on_remote_rq`).
/// `explicit`: the scheduler named the CPU (violations are errors).
///
/// A task bound to its CPU by the runtime's migration rule (crate docs) is
/// the kernel's migration-disabled task, with one deviation: a verdict that
/// would move it is not an error here. In the kernel such tasks are rare;
/// here every started task is one, and a policy written for sched_ext
/// (dispatching whatever it queued to `DSQ_LOCAL`) would be ejected
/// constantly. The task silently goes to the global DSQ, where only its CPU
/// takes it. Violating an affinity the user asked for stays an error.
pub(crate) fn can_run_on(
    sh: &Shared,
    p: &TaskRef,
    dst: usize,
    explicit: bool,
) -> Result<(), CannotRun> {
    if let Some(b) = p.bound_cpu() {
        return if b == dst {
            Ok(())
        } else {
            Err(CannotRun::NotAllowed)
        };
    }
    // An offline CPU takes no task that could run elsewhere (the kernel's
    // `task_can_run_on_remote_rq` refuses an offline rq without an error).
    if !sh.cpu_online(dst) && p.single_cpu() != Some(dst) {
        return Err(CannotRun::Offline);
    }
    if !p.allowed_on(dst) {
        if explicit {
            sh.ops_error(format!(
                "SCX_DSQ_LOCAL[_ON] verdict target cpu {dst} not allowed for task {}",
                p.id()
            ));
        }
        return Err(CannotRun::NotAllowed);
    }
    Ok(())
}

/// Moves a task the caller owns (DISPATCHING, or parked) into CPU `dst`'s
/// local DSQ. rq (of the dispatching CPU) locked on entry and return; it is
/// dropped in between for a remote move, and at no point are two rq locks
/// held (hand-off through `holding_cpu`).
pub(crate) fn dispatch_to_local_dsq(
    sh: &Shared,
    rq: &mut RqGuard<'_>,
    dst: usize,
    p: TaskRef,
    f: EnqFlags,
) {
    let me = rq.cpu;
    let src = p.cpu();
    if src == me && dst == me {
        return dispatch_enqueue_local(sh, rq, p, f | EnqFlags::CLEAR_OPSS);
    }
    if src != dst {
        if let Err(why) = can_run_on(sh, &p, dst, true) {
            if why == CannotRun::Offline {
                sh.events_of(me).dispatch_local_dsq_offline.bump();
            }
            return dispatch_enqueue_nonlocal(sh, &sh.global, p, f | EnqFlags::CLEAR_OPSS);
        }
    }
    // Ownership now rides on holding_cpu.
    p.scx.holding_cpu.store(me as i32, Ordering::Release);
    p.scx.ops_state.store(opss::NONE, Ordering::Release);
    RqGuard::unlocked(rq, move || {
        let mut srq = sh.cpus[src].lock();
        if p.scx.holding_cpu.load(Ordering::Acquire) != me as i32 || p.cpu() != src {
            return; // a dequeue cancelled the transfer
        }
        p.scx.holding_cpu.store(-1, Ordering::Release);
        if src == dst {
            dispatch_enqueue_local(sh, &mut srq, p, f);
            return;
        }
        deactivate(&mut srq, &p);
        p.set_flag(tflags::MIGRATING);
        p.scx.cpu.store(dst as u32, Ordering::Release);
        drop(srq);
        let mut drq = sh.cpus[dst].lock();
        activate(&mut drq, &p);
        crate::trace::migrate_in(sh, &mut drq, &p, src);
        p.clear_flag(tflags::MIGRATING);
        dispatch_enqueue_local(sh, &mut drq, p, f);
    });
}

/// Moves the first task of `dsq` that may run on this CPU into its local DSQ
/// (`consume_dispatch_q`). rq locked on entry and return.
#[inline]
pub(crate) fn consume_dispatch_q(sh: &Shared, rq: &mut RqGuard<'_>, dsq: &Dsq) -> bool {
    // The lock-free emptiness peek, in the caller (usually empty: the
    // global DSQ at every balance).
    dsq.nr_queued() != 0 && consume_dsq(sh, rq, dsq, false)
}

/// `consume_dispatch_q`, optionally limited to the tasks that may run on
/// this CPU only (`pinned_only`, for an offline CPU).
pub(crate) fn consume_dsq(sh: &Shared, rq: &mut RqGuard<'_>, dsq: &Dsq, pinned_only: bool) -> bool {
    let me = rq.cpu;
    loop {
        if dsq.nr_queued() == 0 {
            return false;
        }
        let mut q = dsq.q.lock();
        let p = if pinned_only {
            q.pop_pinned(me)
        } else {
            q.pop_first_for(me, |p| p.allowed_on(me))
        };
        let Some(p) = p else {
            return false;
        };
        dsq.sync_nr(&q);
        if p.cpu() == me {
            drop(q);
            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
            dispatch_enqueue_local(sh, rq, p, EnqFlags::empty());
            return true;
        }
        // Remote task: mark it in transit while the DSQ lock is held, so a
        // racing dequeue on its rq finds it and cancels us.
        p.scx.holding_cpu.store(me as i32, Ordering::Release);
        drop(q);
        if consume_remote(sh, rq, p) {
            return true;
        }
        // Lost the race with a dequeue: rescan.
    }
}

/// The second half of consuming a task of another rq, taken off the DSQ
/// and marked in transit (`holding_cpu`): the hand-off of SPEC.md §3.9.
/// Whether the task arrived (false: a dequeue cancelled the transfer).
/// rq locked on entry and return, dropped in between.
#[inline(never)]
fn consume_remote(sh: &Shared, rq: &mut RqGuard<'_>, p: TaskRef) -> bool {
    let me = rq.cpu;
    let src = p.cpu();
    let won = RqGuard::unlocked(rq, || {
        let mut srq = sh.cpus[src].lock();
        if p.scx.holding_cpu.load(Ordering::Acquire) != me as i32 || p.cpu() != src {
            return false;
        }
        p.scx.holding_cpu.store(-1, Ordering::Release);
        p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
        deactivate(&mut srq, &p);
        p.set_flag(tflags::MIGRATING);
        p.scx.cpu.store(me as u32, Ordering::Release);
        true
    });
    if won {
        activate(rq, &p);
        crate::trace::migrate_in(sh, rq, &p, src);
        p.clear_flag(tflags::MIGRATING);
        dispatch_enqueue_local(sh, rq, p, EnqFlags::empty());
    }
    won
}

/// The most tasks one pass of [`consume_dsq_batch`] takes off a DSQ (its
/// buffer is on the stack); the default scheduler steals at most as many
/// at a time. The kernel's fair-class load balancer bounds its moves the
/// same way: at most `sched_nr_migrate` (32) tasks are detached per hold
/// of the busiest rq's lock, which also bounds how long that CPU waits
/// for its own lock.
pub(crate) const BATCH_MAX: usize = 32;

/// Moves up to `max` of the first tasks of `dsq` that may run on this CPU
/// into its local DSQ, in the DSQ's order; how many arrived. What `max`
/// calls of [`consume_dsq`] in a row move, but in passes of up to
/// [`BATCH_MAX`] tasks, each taking the DSQ lock once and, for the tasks
/// of other rqs, each such rq's lock once per run of its tasks, instead
/// of all three locks once per task. rq locked on entry and return,
/// dropped in between when a pass holds a task of another rq.
///
/// ```text
/// pass:  rq + DSQ locked   pop up to BATCH_MAX, holding_cpu = me on each
///        (rq locked)       the DSQ lock dropped
///        unlocked          per run of tasks of one other rq src:
///                            lock src; each task still held by us and
///                            still on src leaves it (the hand-off of
///                            `consume_remote`); unlock src
///        rq locked         in order: each task still ours -> local DSQ
/// ```
///
/// Every popped task, this rq's own included, is marked in transit
/// (`holding_cpu`) because the rq lock may drop before it arrives: a
/// dequeue meanwhile (under the task's rq lock, `dispatch_dequeue`)
/// clears the mark, and the pass leaves that task alone, as
/// `consume_remote` does. No two rq locks are held at once.
pub(crate) fn consume_dsq_batch(sh: &Shared, rq: &mut RqGuard<'_>, dsq: &Dsq, max: usize) -> usize {
    let mut moved = 0;
    while moved < max && dsq.nr_queued() != 0 {
        let (popped, won) = consume_pass(sh, rq, dsq, (max - moved).min(BATCH_MAX));
        moved += won;
        if popped == 0 {
            break;
        }
    }
    moved
}

/// One pass of [`consume_dsq_batch`], of at most `want` (≤ [`BATCH_MAX`])
/// tasks: how many it popped, and how many of them arrived (the others
/// lost to a dequeue, and the caller goes on as `consume_dsq` rescans).
#[inline(never)]
fn consume_pass(sh: &Shared, rq: &mut RqGuard<'_>, dsq: &Dsq, want: usize) -> (usize, usize) {
    let me = rq.cpu;
    let mut taken: [Option<TaskRef>; BATCH_MAX] = [const { None }; BATCH_MAX];
    let mut src = [0u32; BATCH_MAX];
    let mut n = 0;
    let mut remote = false;
    {
        let mut q = dsq.q.lock();
        while n < want {
            let Some(p) = q.pop_first_for(me, |p| p.allowed_on(me)) else {
                break;
            };
            p.scx.holding_cpu.store(me as i32, Ordering::Release);
            src[n] = p.cpu() as u32;
            remote |= src[n] as usize != me;
            taken[n] = Some(p);
            n += 1;
        }
        dsq.sync_nr(&q);
    }
    // Which of the other rqs' tasks left their rq for this one.
    let mut left = [false; BATCH_MAX];
    if remote {
        RqGuard::unlocked(rq, || {
            let mut i = 0;
            while i < n {
                let from = src[i] as usize;
                if from == me {
                    i += 1;
                    continue;
                }
                let mut srq = sh.cpus[from].lock();
                while i < n && src[i] as usize == from {
                    if let Some(p) = &taken[i] {
                        if p.scx.holding_cpu.load(Ordering::Acquire) == me as i32 && p.cpu() == from
                        {
                            p.scx.holding_cpu.store(-1, Ordering::Release);
                            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
                            deactivate(&mut srq, p);
                            p.set_flag(tflags::MIGRATING);
                            p.scx.cpu.store(me as u32, Ordering::Release);
                            left[i] = true;
                        }
                    }
                    i += 1;
                }
            }
        });
    }
    let mut won = 0;
    for (i, slot) in taken.iter_mut().enumerate().take(n) {
        let Some(p) = slot.take() else {
            continue;
        };
        let from = src[i] as usize;
        if from == me {
            // A dequeue while the lock was dropped took it back.
            if p.scx.holding_cpu.load(Ordering::Acquire) != me as i32 || p.cpu() != me {
                continue;
            }
            p.scx.holding_cpu.store(-1, Ordering::Release);
            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
        } else if left[i] {
            activate(rq, &p);
            crate::trace::migrate_in(sh, rq, &p, from);
            p.clear_flag(tflags::MIGRATING);
        } else {
            continue;
        }
        dispatch_enqueue_local(sh, rq, p, EnqFlags::empty());
        won += 1;
    }
    (n, won)
}

/// An offline CPU takes the tasks pinned to it out of the global and user
/// DSQs (they can run nowhere else). rq locked on entry and return.
pub(crate) fn consume_pinned(sh: &Shared, rq: &mut RqGuard<'_>) -> bool {
    if consume_dsq(sh, rq, &sh.global, true) {
        return true;
    }
    sh.user_dsq_ids()
        .into_iter()
        .filter_map(|id| sh.find_user_dsq(id))
        .any(|d| consume_dsq(sh, rq, &d, true))
}
