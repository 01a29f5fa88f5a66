//! Pick, put prev and set next (SPEC.md §3.7), and `update_curr`.

use crate::consts::SLICE_INF;
use crate::flags::{EnqFlags, DSQ_INVALID};
use crate::loom::{MutexGuard, Ordering};
use crate::ops::{Ctx, Shared};
use crate::rq::{rqflags, RqSynced};
use crate::task::{tflags, TaskRef};

use crate::core::balance::{balance, BalanceStep};
use crate::core::dsqs::*;
use crate::core::enqueue::do_enqueue_task;
use crate::core::error::call_task;

/// `update_curr`: charges the time `p` ran since `exec_start`.
pub(crate) fn update_curr(p: &TaskRef, now: u64) {
    let start = p.scx.exec_start.swap(now, Ordering::Relaxed);
    let delta = now.saturating_sub(start);
    if delta == 0 {
        return;
    }
    p.scx.sum_exec_runtime.fetch_add(delta, Ordering::Relaxed);
    let s = p.slice();
    if s != SLICE_INF {
        p.set_slice(s - s.min(delta));
    }
}

/// `put_prev_task_scx`: prev stops running and stays runnable. rq locked.
pub(crate) fn put_prev_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    next_is_task: bool,
    now: u64,
) {
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    sh.cpus[rq.cpu]
        .shared
        .pnt_seq
        .fetch_add(1, Ordering::Release);
    if !p.is_queued() {
        return;
    }
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    call_task(sh, "stopping", p, || slot.ops.stopping(&ctx, p, true));
    if p.has_flag(tflags::RESET_RUNNABLE_AT) {
        p.scx.runnable_at.store(now, Ordering::Relaxed);
        p.clear_flag(tflags::RESET_RUNNABLE_AT);
    }
    rq.runnable.add(p);
    if p.slice() > 0 && !rq.bypassing() {
        // Preempted with slice left: back to the head, no scheduler call.
        dispatch_enqueue_local(sh, rq, p, EnqFlags::HEAD);
    } else if !next_is_task {
        do_enqueue_task(sh, rq, p, EnqFlags::LAST);
    } else {
        do_enqueue_task(sh, rq, p, EnqFlags::empty());
    }
}

/// `set_next_task_scx`: `p`, picked from the head of the local DSQ,
/// starts running. `put_prev_task` ran in between and may have put prev
/// back at the head (slice left, as on a CPU that went offline while its
/// balance had the rq lock dropped), so `p` is unlinked from wherever it
/// is now, as the kernel's `set_next_task_scx` does. rq locked.
pub(crate) fn set_next_task(sh: &Shared, rq: &mut MutexGuard<'_, RqSynced>, p: &TaskRef, now: u64) {
    debug_assert_eq!(
        p.scx.dsq.load(Ordering::Relaxed),
        rq.local.id,
        "cpu {} starting task {} that is not on its local DSQ",
        rq.cpu,
        p.id()
    );
    debug_assert_eq!(
        p.cpu(),
        rq.cpu,
        "task {} runs on a CPU that is not its rq's",
        p.id()
    );
    if rq.local.remove(p) {
        p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
        sync_local_nr(sh, rq);
    }
    p.scx.exec_start.store(now, Ordering::Relaxed);
    rq.runnable.remove(p);
    p.set_flag(tflags::RESET_RUNNABLE_AT);
    p.scx.on_cpu.store(true, Ordering::Relaxed);
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    call_task(sh, "running", p, || slot.ops.running(&ctx, p));
}

/// The CPU entered its pick path: releases `KICK_WAIT`ers (SPEC.md §4.3).
pub(crate) fn enter_pick(sh: &Shared, cpu: usize) {
    sh.cpus[cpu].shared.pnt_seq.fetch_add(1, Ordering::Release);
}

/// Balance, pick, put prev, set next. Returns the task to run (`None`:
/// idle). rq locked on entry and return.
pub(crate) fn pick_next_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
    now: u64,
) -> Option<TaskRef> {
    enter_pick(sh, rq.cpu);
    balance(sh, rq, prev, trace);
    let next = if rq.has(rqflags::BAL_KEEP) {
        let p = prev.cloned();
        if let Some(p) = &p {
            if p.slice() == 0 {
                p.set_slice(sh.cfg.slice_dfl);
            }
        }
        p
    } else {
        // SPEC.md §11 invariant 9: a CPU starts only the head of its local
        // DSQ, or continues prev.
        let n = rq.local.peek().cloned();
        if let Some(n) = &n {
            if n.slice() == 0 {
                if !rq.zero_slice_warned && !rq.bypassing() {
                    rq.zero_slice_warned = true;
                }
                n.set_slice(sh.cfg.slice_dfl);
            }
        }
        n
    };
    let same = matches!((prev, &next), (Some(a), Some(b)) if a.id() == b.id());
    if !same {
        if let Some(p) = prev {
            put_prev_task(sh, rq, p, next.is_some(), now);
        }
        if let Some(n) = &next {
            set_next_task(sh, rq, n, now);
        }
    }
    rq.curr = next.clone();
    next
}
