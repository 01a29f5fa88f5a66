//! Dequeue (SPEC.md §3.5): taking a task back from the scheduler
//! (`ops_dequeue`), off its DSQ or out of a transfer, and the per-task
//! exit from a scheduler (`disable`, `exit_task`).

use crate::dsq::Dsq;
use crate::flags::{dsq_id, DeqFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::{Ctx, Shared};
use crate::rq::RqSynced;
use crate::task::{opss, tflags, TaskRef};

use crate::core::dsqs::{deactivate, sync_local_nr};
use crate::core::enqueue::task_rq_lock;
use crate::core::error::call_op;
use crate::core::has_op::Op;
use crate::core::slot::{SchedSlot, SlotHint};

/// `ops_dequeue`: takes the task back from the scheduler if it owns it.
pub(crate) fn ops_dequeue(sh: &Shared, slot: &SchedSlot, rq: &RqSynced, p: &TaskRef, f: DeqFlags) {
    loop {
        let s = p.ops_state();
        match s & opss::STATE_MASK {
            opss::NONE => return,
            opss::QUEUEING => {
                debug_assert!(false, "QUEUEING seen under the task's rq lock");
                crate::loom::spin_loop();
            }
            opss::QUEUED => {
                if slot.has.has(Op::Dequeue) {
                    let ctx = Ctx::for_op(sh, Some(rq.cpu), "dequeue", Some(p));
                    call_op(sh, slot, Op::Dequeue, Some(p), || {
                        slot.ops.dequeue(&ctx, p, f)
                    });
                }
                if p.scx
                    .ops_state
                    .compare_exchange(s, opss::NONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                // A dispatcher won; wait for it below.
                wait_ops_dispatching(p);
                return;
            }
            _ => {
                wait_ops_dispatching(p);
                return;
            }
        }
    }
}

pub(crate) fn wait_ops_dispatching(p: &TaskRef) {
    while p.ops_state() & opss::STATE_MASK == opss::DISPATCHING {
        crate::loom::spin_loop();
    }
}

/// Unlinks `p` from whatever DSQ it is on, or cancels its transfer.
/// The task's rq (`rq`) locked.
pub(crate) fn dispatch_dequeue(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) {
    let id = p.scx.dsq.load(Ordering::Acquire);
    if id == DSQ_INVALID {
        if let Some(i) = rq
            .ddsp_deferred_locals
            .iter()
            .position(|(q, _, _)| q.id() == p.id())
        {
            rq.ddsp_deferred_locals.remove(i);
        }
        if p.scx.holding_cpu.load(Ordering::Acquire) >= 0 {
            p.scx.holding_cpu.store(-1, Ordering::Release);
        }
        return;
    }
    if id & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
        let removed = rq.local.remove(p);
        debug_assert!(removed, "task {} not on the local DSQ it names", p.id());
        sync_local_nr(sh, rq);
    } else {
        let d = if id == dsq_id::GLOBAL {
            None
        } else {
            sh.find_user_dsq(id)
        };
        let dsq: &Dsq = d.as_deref().unwrap_or(&sh.global);
        let mut q = dsq.q.lock();
        if p.scx.holding_cpu.load(Ordering::Acquire) < 0 {
            if q.remove(p) {
                dsq.sync_nr(&q);
            }
        } else {
            // A consumer already unlinked it: tell it that it lost.
            p.scx.holding_cpu.store(-1, Ordering::Release);
        }
    }
    p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
}

/// `dequeue_task_scx` for a task leaving the runqueue. `is_curr`: it is the
/// task this CPU was running. rq locked.
pub(crate) fn dequeue_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: &TaskRef,
    f: DeqFlags,
    is_curr: bool,
) {
    if !p.is_queued() {
        return;
    }
    ops_dequeue(sh, slot, rq, p, f);
    if is_curr && slot.has.has(Op::Stopping) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "stopping", Some(p));
        call_op(sh, slot, Op::Stopping, Some(p), || {
            slot.ops.stopping(&ctx, p, false)
        });
    }
    if slot.has.has(Op::Quiescent) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "quiescent", Some(p));
        call_op(sh, slot, Op::Quiescent, Some(p), || {
            slot.ops.quiescent(&ctx, p, f)
        });
    }
    if f.contains(DeqFlags::SLEEP) {
        p.set_flag(tflags::DEQD_FOR_SLEEP);
    } else {
        p.clear_flag(tflags::DEQD_FOR_SLEEP);
    }
    p.clear_flag(tflags::QUEUED);
    deactivate(rq, p);
    dispatch_dequeue(sh, rq, p);
}

/// `p` leaves the scheduler of generation `gen` (if that is the one it was
/// initialized by and it has not left yet): `disable` when enabled, then
/// `exit_task`. Takes the task's rq lock; no lock held on entry.
pub(crate) fn task_leave_scheduler(sh: &Shared, p: &TaskRef, gen: u64, cancelled: bool) {
    let rq = task_rq_lock(sh, p);
    task_leave_scheduler_locked(sh, &mut SlotHint::new(None), &rq, p, gen, cancelled);
}

/// `task_leave_scheduler` with the task's rq already locked.
pub(crate) fn task_leave_scheduler_locked(
    sh: &Shared,
    slots: &mut SlotHint<'_>,
    rq: &RqSynced,
    p: &TaskRef,
    gen: u64,
    cancelled: bool,
) {
    if p.scx.sched_gen.load(Ordering::Acquire) != gen || p.state() == crate::task::TaskState::None {
        return;
    }
    let slot = slots.get(sh, gen);
    if slot.gen != gen {
        return; // that scheduler is gone (cannot happen while it is prev)
    }
    if p.state() == crate::task::TaskState::Enabled {
        if slot.has.has(Op::Disable) {
            let ctx = Ctx::for_op(sh, Some(rq.cpu), "disable", Some(p));
            call_op(sh, slot, Op::Disable, Some(p), || slot.ops.disable(&ctx, p));
        }
        p.set_state(crate::task::TaskState::Ready);
    }
    if slot.has.has(Op::ExitTask) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "exit_task", Some(p));
        call_op(sh, slot, Op::ExitTask, Some(p), || {
            slot.ops
                .exit_task(&ctx, p, crate::ops::ExitTaskArgs { cancelled })
        });
    }
    p.set_state(crate::task::TaskState::None);
    p.scx.sched_gen.store(0, Ordering::Release);
    p.clear_data();
}
