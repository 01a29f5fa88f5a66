//! `balance` with sched_ext's exact decision order (SPEC.md §3.6).

use crate::consts::DSP_MAX_LOOPS;
use crate::flags::OpsFlags;
use crate::loom::{MutexGuard, Ordering};
use crate::ops::{DispatchCtx, Shared};
use crate::rq::{rqflags, RqSynced};
use crate::task::TaskRef;

use crate::core::dispatch::{consume_dispatch_q, consume_pinned, flush_dispatch_buf};
use crate::core::error::call;

pub(crate) fn keep_prev_with_slice(rq: &RqSynced, prev: Option<&TaskRef>) -> bool {
    prev.is_some_and(|p| {
        p.is_queued()
            && p.slice() > 0
            && !rq.bypassing()
            && (rq.online() || p.single_cpu() == Some(rq.cpu))
    })
}

/// `balance_one`. Returns whether the CPU has a task to run. rq locked on
/// entry and return (dropped inside hand-offs); `IN_BALANCE` is set for the
/// whole step and cleared at its single exit.
pub(crate) fn balance(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
) -> bool {
    rq.flags |= rqflags::IN_BALANCE;
    rq.flags &= !(rqflags::BAL_PENDING | rqflags::BAL_KEEP);
    let r = balance_inner(sh, rq, prev, trace);
    rq.flags &= !rqflags::IN_BALANCE;
    r
}

pub use crate::rq::BalanceStep;

/// Most steps kept per CPU before older ones are dropped.
pub(crate) const BALANCE_TRACE_MAX: usize = 1 << 20;

pub(crate) fn note(trace: &mut Option<Vec<BalanceStep>>, s: BalanceStep) {
    if let Some(t) = trace {
        if t.len() < BALANCE_TRACE_MAX {
            t.push(s);
        }
    }
}

pub(crate) fn balance_inner(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
) -> bool {
    if keep_prev_with_slice(rq, prev) {
        rq.flags |= rqflags::BAL_KEEP;
        note(trace, BalanceStep::KeepPrev);
        return true;
    }
    if !rq.local.is_empty() {
        note(trace, BalanceStep::Local);
        return true;
    }
    if !rq.online() {
        // An offline CPU runs only what is pinned to it (module docs of
        // `Runtime::cpu_offline`); the scheduler is not asked.
        if consume_pinned(sh, rq) {
            note(trace, BalanceStep::Global);
            return true;
        }
        // Only a pinned prev reaches here (the worker moved any other).
        if prev.is_some_and(|p| p.is_queued()) {
            rq.flags |= rqflags::BAL_KEEP;
            note(trace, BalanceStep::KeepPrevLast);
            return true;
        }
        note(trace, BalanceStep::Idle);
        return false;
    }
    if consume_dispatch_q(sh, rq, &sh.global) {
        note(trace, BalanceStep::Global);
        return true;
    }
    let slot = sh.slot(rq.sched_gen);
    if !rq.bypassing() && rq.online() {
        let prev_q = prev.filter(|p| p.is_queued());
        let mut loops = 0;
        loop {
            if rq.bypassing() || sh.exit.pending.load(Ordering::Relaxed) {
                break;
            }
            note(trace, BalanceStep::Dispatch);
            let cpu = rq.cpu;
            let slot = sh.slot(rq.sched_gen);
            let mut ctx = DispatchCtx::new(sh, cpu, rq, slot.max_batch);
            call(sh, "dispatch", || slot.ops.dispatch(&mut ctx, cpu, prev_q));
            let mut nr_tasks = ctx.nr_tasks;
            flush_dispatch_buf(sh, cpu, rq, &mut nr_tasks);
            if keep_prev_with_slice(rq, prev_q) {
                rq.flags |= rqflags::BAL_KEEP;
                note(trace, BalanceStep::KeepPrev);
                return true;
            }
            if !rq.local.is_empty() {
                note(trace, BalanceStep::Local);
                return true;
            }
            if consume_dispatch_q(sh, rq, &sh.global) {
                note(trace, BalanceStep::Global);
                return true;
            }
            if nr_tasks == 0 {
                break;
            }
            loops += 1;
            if loops >= DSP_MAX_LOOPS {
                // Let the next (probably idle) pick run, then retry.
                note(trace, BalanceStep::LoopCap);
                sh.cpus[cpu].shared.set_need_resched();
                break;
            }
        }
    }
    if let Some(p) = prev {
        if p.is_queued() && (!slot.flags.contains(OpsFlags::ENQ_LAST) || rq.bypassing()) {
            rq.flags |= rqflags::BAL_KEEP;
            note(trace, BalanceStep::KeepPrevLast);
            return true;
        }
    }
    note(trace, BalanceStep::Idle);
    false
}
