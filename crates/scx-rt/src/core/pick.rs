//! Pick, put prev and set next (SPEC.md §3.7), and `update_curr`.
//!
//! The switch moves references: prev's goes from the worker into whatever
//! DSQ the enqueue path links it into (or is dropped once the scheduler
//! owns the task), next's comes out of the head of the local DSQ, and a
//! kept prev stays where it is. `rq.curr` names next without a count
//! (`core::curr`), so a switch counts no reference.

use std::rc::Rc;

use crate::consts::SLICE_INF;
use crate::flags::EnqFlags;
use crate::loom::Ordering;
use crate::ops::{Ctx, Shared};
use crate::rq::{rqflags, RqGuard, RqSynced};
use crate::task::{tflags, TaskRef};

use crate::core::balance::{balance, refresh};
use crate::core::dsqs::dispatch_enqueue_local;
use crate::core::enqueue::do_enqueue_task;
use crate::core::error::call_op;
use crate::core::has_op::Op;
use crate::core::slot::SchedSlot;

/// `update_curr`: charges the time `p` ran since `exec_start`. Only the
/// CPU running `p` calls it, so the fields are updated with plain
/// load/store pairs.
#[inline]
pub(crate) fn update_curr(p: &TaskRef, now: u64) {
    let start = p.scx.exec_start.load(Ordering::Relaxed);
    let delta = now.saturating_sub(start);
    if delta == 0 {
        return;
    }
    p.scx.exec_start.store(now, Ordering::Relaxed);
    let sum = p.scx.sum_exec_runtime.load(Ordering::Relaxed);
    p.scx
        .sum_exec_runtime
        .store(sum.wrapping_add(delta), Ordering::Relaxed);
    let s = p.slice();
    if s != SLICE_INF {
        p.set_slice(s - s.min(delta));
    }
}

/// `put_prev_task_scx`: prev stops running and stays runnable. rq locked.
/// Takes prev's reference (the worker's), which the enqueue path links or
/// drops.
///
/// The kernel advances the pick sequence (`SCX_KICK_WAIT`) here and at the
/// start of every pick. Both callers advanced it already with the rq lock
/// held since (`pick_next_task`: at its start, and again after a balance
/// that dropped the lock; `release_cpu`), so nobody can tell the two
/// advances from one, and the put makes none.
#[inline(always)]
pub(crate) fn put_prev_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: TaskRef,
    next_is_task: bool,
    now: u64,
) {
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    if !p.is_queued() {
        return;
    }
    if slot.has.has(Op::Stopping) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "stopping", Some(&p));
        call_op(sh, slot, Op::Stopping, Some(&p), || {
            slot.ops.stopping(&ctx, &p, true)
        });
    }
    if p.has_flag(tflags::RESET_RUNNABLE_AT) {
        p.scx.runnable_at.store(now, Ordering::Relaxed);
        p.clear_flag(tflags::RESET_RUNNABLE_AT);
    }
    if p.slice() > 0 && !rq.bypassing() {
        // Preempted with slice left: back to the head, no scheduler call.
        dispatch_enqueue_local(sh, rq, p, EnqFlags::HEAD);
    } else if !next_is_task {
        do_enqueue_task(sh, slot, rq, p, EnqFlags::LAST);
    } else {
        do_enqueue_task(sh, slot, rq, p, EnqFlags::empty());
    }
}

/// `set_next_task_scx`: `p`, taken from the head of the local DSQ, starts
/// running. rq locked. Always inline: a few stores at every switch, where
/// the compiler, left to itself, sometimes made it a call (+20
/// instructions per switch, callgrind).
#[inline(always)]
pub(crate) fn set_next_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: &TaskRef,
    now: u64,
) {
    debug_assert_eq!(
        p.cpu(),
        rq.cpu,
        "task {} runs on a CPU that is not its rq's",
        p.id()
    );
    p.scx.exec_start.store(now, Ordering::Relaxed);
    p.set_flag(tflags::RESET_RUNNABLE_AT);
    p.scx.on_cpu.store(true, Ordering::Relaxed);
    if slot.has.has(Op::Running) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "running", Some(p));
        call_op(sh, slot, Op::Running, Some(p), || slot.ops.running(&ctx, p));
    }
}

/// Balance, pick, put prev, set next. Takes prev's reference (the
/// worker's) and returns next's (`None`: idle); `rq.curr` names it
/// (uncounted, `core::curr`).
/// rq locked on entry and return (dropped inside balance's hand-offs).
///
/// Next is taken off the local DSQ before prev is put: put may link prev
/// at the head (slice left), and the kernel's `set_next_task_scx`, which
/// runs after it, unlinks next wherever it then is. A running task stays
/// on its rq's runnable list (the kernel takes it off and puts it back at
/// every switch; here that would cost two stores per switch and buys
/// nothing: every reader of the list skips `curr`).
#[inline(always)]
pub(crate) fn pick_next_task(
    sh: &Shared,
    slot: &mut Rc<SchedSlot>,
    rq: &mut RqGuard<'_>,
    prev: Option<TaskRef>,
    now: u64,
) -> Option<TaskRef> {
    let c = rq.this_cpu();
    c.shared.kick.advance_pick();
    if balance(sh, slot, rq, prev.as_ref()) {
        // The lock may have been dropped in there: a `WAIT` kicker that
        // read the sequence meanwhile waits for prev to stop, which the
        // put below does (`put_prev_task`); and the rq may have switched
        // scheduler (the inline checks keep the lock: nothing to refresh).
        c.shared.kick.advance_pick();
        refresh(sh, rq, slot);
    }
    if rq.has(rqflags::BAL_KEEP) {
        let p = prev.expect("balance keeps only a prev");
        if p.slice() == 0 {
            p.set_slice(sh.cfg.slice_dfl);
            sh.events_of(rq.cpu).refill_slice_dfl.bump();
        }
        return Some(p);
    }
    // SPEC.md §11 invariant 9: a CPU starts only the head of its local
    // DSQ, or continues prev.
    let next = rq.local.pop();
    if let Some(n) = &next {
        c.shared
            .owner
            .local_nr
            .store(rq.local.len(), Ordering::Relaxed);
        if n.slice() == 0 {
            if !rq.zero_slice_warned && !rq.bypassing() {
                rq.zero_slice_warned = true;
            }
            n.set_slice(sh.cfg.slice_dfl);
            sh.events_of(rq.cpu).refill_slice_dfl.bump();
        }
    }
    if let Some(p) = prev {
        put_prev_task(sh, slot, rq, p, next.is_some(), now);
    }
    match &next {
        Some(n) => {
            set_next_task(sh, slot, rq, n, now);
            rq.curr = Some(crate::core::curr::Curr::new(n));
        }
        None => rq.curr = None,
    }
    next
}
