//! `balance` with sched_ext's exact decision order (SPEC.md §3.6).

use std::rc::Rc;

use crate::consts::DSP_MAX_LOOPS;
use crate::flags::OpsFlags;
use crate::loom::Ordering;
use crate::ops::{DispatchCtx, Shared};
use crate::rq::{rqflags, RqGuard, RqSynced};
use crate::task::TaskRef;

use crate::core::dispatch::{consume_dispatch_q, consume_pinned, flush_dispatch_buf};
use crate::core::error::call_op;
use crate::core::has_op::Op;
use crate::core::slot::SchedSlot;

pub use crate::rq::BalanceStep;

/// Most steps kept per CPU before older ones are dropped.
pub(crate) const BALANCE_TRACE_MAX: usize = 1 << 20;

/// Records a decision when `Builder::record_balance` is on.
#[inline]
pub(crate) fn note(rq: &mut RqSynced, s: BalanceStep) {
    if let Some(t) = &mut rq.balance_trace {
        if t.len() < BALANCE_TRACE_MAX {
            t.push(s);
        }
    }
}

pub(crate) fn keep_prev_with_slice(rq: &RqSynced, prev: Option<&TaskRef>) -> bool {
    prev.is_some_and(|p| {
        p.is_queued()
            && p.slice() > 0
            && !rq.bypassing()
            && (rq.online() || p.single_cpu() == Some(rq.cpu))
    })
}

/// Balance's first two checks, made again after each `ops.dispatch`:
/// `prev` keeps running with slice left (`BAL_KEEP`), or the local DSQ
/// has a task. rq locked.
#[inline(always)]
fn prev_or_local(rq: &mut RqSynced, prev: Option<&TaskRef>) -> bool {
    if keep_prev_with_slice(rq, prev) {
        rq.flags |= rqflags::BAL_KEEP;
        note(rq, BalanceStep::KeepPrev);
        return true;
    }
    if !rq.local.is_empty() {
        note(rq, BalanceStep::Local);
        return true;
    }
    false
}

/// The scheduler `rq` calls now: `slot`, refreshed if the rq switched
/// generation while its lock was dropped (a hand-off inside balance). The
/// old scheduler gets no callback of an rq that left it.
#[inline]
pub(crate) fn refresh(sh: &Shared, rq: &RqSynced, slot: &mut Rc<SchedSlot>) {
    if slot.gen != rq.sched_gen {
        *slot = sh.slot(rq.sched_gen);
    }
}

/// `balance_one`: afterwards `BAL_KEEP` says prev keeps running, or the
/// head of the local DSQ runs next, or the CPU goes idle. rq locked on
/// entry and return (dropped inside hand-offs); `IN_BALANCE` is set for the
/// whole step and cleared at its single exit. Returns whether the step
/// left the inline checks (and so may have dropped the lock).
///
/// The common step (prev keeps running, or the local DSQ has a task, and
/// the CPU was not released) is decided inline: no callback runs there,
/// and the rq lock is held throughout, so nobody can see `IN_BALANCE`
/// missing.
#[inline(always)]
pub(crate) fn balance(
    sh: &Shared,
    slot: &mut Rc<SchedSlot>,
    rq: &mut RqGuard<'_>,
    prev: Option<&TaskRef>,
) -> bool {
    rq.flags &= !(rqflags::BAL_PENDING | rqflags::BAL_KEEP);
    if !rq.cpu_released && prev_or_local(rq, prev) {
        return false;
    }
    balance_slow(sh, slot, rq, prev)
}

/// [`balance`] past its inline checks.
#[inline(never)]
fn balance_slow(
    sh: &Shared,
    slot: &mut Rc<SchedSlot>,
    rq: &mut RqGuard<'_>,
    prev: Option<&TaskRef>,
) -> bool {
    rq.flags |= rqflags::IN_BALANCE;
    // SPEC.md §3.6 step 2: the CPU is back from higher-class work.
    if rq.cpu_released {
        crate::core::release::cpu_acquire(sh, slot, rq);
    }
    balance_inner(sh, slot, rq, prev);
    rq.flags &= !rqflags::IN_BALANCE;
    true
}

fn balance_inner(
    sh: &Shared,
    slot: &mut Rc<SchedSlot>,
    rq: &mut RqGuard<'_>,
    prev: Option<&TaskRef>,
) {
    if prev_or_local(rq, prev) {
        return;
    }
    if !rq.online() {
        // An offline CPU runs only what is pinned to it (module docs of
        // `Runtime::cpu_offline`); the scheduler is not asked.
        if consume_pinned(sh, rq) {
            note(rq, BalanceStep::Global);
            return;
        }
        // Only a pinned prev reaches here (the worker moved any other).
        if prev.is_some_and(|p| p.is_queued()) {
            rq.flags |= rqflags::BAL_KEEP;
            sh.events_of(rq.cpu).dispatch_keep_last.bump();
            note(rq, BalanceStep::KeepPrevLast);
            return;
        }
        note(rq, BalanceStep::Idle);
        return;
    }
    if consume_dispatch_q(sh, rq, &sh.global) {
        note(rq, BalanceStep::Global);
        return;
    }
    refresh(sh, rq, slot);
    // SPEC.md §3.6 step 6: no dispatch loop without `ops.dispatch`.
    if !rq.bypassing() && rq.online() && slot.has.has(Op::Dispatch) {
        let prev_q = prev.filter(|p| p.is_queued());
        let mut loops = 0;
        loop {
            refresh(sh, rq, slot);
            if rq.bypassing() || sh.exit.pending.load(Ordering::Relaxed) {
                break;
            }
            note(rq, BalanceStep::Dispatch);
            let cpu = rq.cpu;
            let s: &SchedSlot = slot;
            let mut ctx = DispatchCtx::new(sh, cpu, rq, s.max_batch);
            call_op(sh, s, Op::Dispatch, None, || {
                s.ops.dispatch(&mut ctx, cpu, prev_q)
            });
            let mut nr_tasks = ctx.nr_tasks;
            flush_dispatch_buf(sh, cpu, rq, &mut nr_tasks);
            if prev_or_local(rq, prev_q) {
                return;
            }
            if consume_dispatch_q(sh, rq, &sh.global) {
                note(rq, BalanceStep::Global);
                return;
            }
            if nr_tasks == 0 {
                break;
            }
            loops += 1;
            if loops >= DSP_MAX_LOOPS {
                // Let the next (probably idle) pick run, then retry.
                note(rq, BalanceStep::LoopCap);
                sh.cpus[cpu].shared.set_need_resched();
                break;
            }
        }
    }
    refresh(sh, rq, slot);
    if let Some(p) = prev {
        if p.is_queued() && (!slot.flags.contains(OpsFlags::ENQ_LAST) || rq.bypassing()) {
            rq.flags |= rqflags::BAL_KEEP;
            sh.events_of(rq.cpu).dispatch_keep_last.bump();
            note(rq, BalanceStep::KeepPrevLast);
            return;
        }
    }
    note(rq, BalanceStep::Idle);
}
