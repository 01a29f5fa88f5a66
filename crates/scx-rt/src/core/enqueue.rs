//! The enqueue path (SPEC.md §3.3): `enqueue_task` and the rules of
//! `do_enqueue_task`, direct dispatch, the deferred remote direct
//! dispatches, and wake-up (`select_task_rq`, the fallback CPU).
//!
//! The path takes the task by value: the reference it carries is the one
//! that ends up linked into a DSQ (or parked, or dropped once the
//! scheduler owns the task), so a switch moves references instead of
//! counting them.

use crate::flags::{dsq_id, EnqFlags, WakeFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::{Ctx, EnqueueCtx, SelectCpuCtx, Shared};
use crate::rq::{rqflags, RqGuard, RqSynced};
use crate::task::{opss, tflags, TaskRef};

use crate::core::dispatch::dispatch_to_local_dsq;
use crate::core::dsqs::{
    activate, dispatch_enqueue_local, dispatch_enqueue_local_inline, dispatch_enqueue_nonlocal,
    find_dsq_for_dispatch, link_nonlocal, refused, Target,
};
use crate::core::errctx::err_ctx;
use crate::core::error::{call_cb, call_op};
use crate::core::has_op::Op;
use crate::core::slot::SchedSlot;

/// `enqueue_task_scx`. rq locked on entry and return.
pub(crate) fn enqueue_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: TaskRef,
    f: EnqFlags,
) {
    if p.is_queued() {
        return;
    }
    p.set_flag(tflags::QUEUED);
    activate(rq, &p);
    crate::trace::wake(sh, rq, &p, f);
    if slot.has.has(Op::Runnable) {
        let ctx = Ctx::for_op(sh, Some(rq.cpu), "runnable", Some(&p));
        call_op(sh, slot, Op::Runnable, Some(&p), || {
            slot.ops.runnable(&ctx, &p, f)
        });
    }
    do_enqueue_task(sh, slot, rq, p, f);
}

/// `do_enqueue_task`: the first matching rule places the task.
pub(crate) fn do_enqueue_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: TaskRef,
    f: EnqFlags,
) {
    let sticky = p.scx.sticky_cpu.load(Ordering::Relaxed);
    if sticky >= 0 {
        p.scx.sticky_cpu.store(-1, Ordering::Relaxed);
        if sticky == rq.cpu as i32 {
            return dispatch_enqueue_local(sh, rq, p, f);
        }
    }
    if !rq.online() {
        p.set_slice(sh.cfg.slice_dfl);
        sh.events_of(rq.cpu).refill_slice_dfl.bump();
        return dispatch_enqueue_local(sh, rq, p, f);
    }
    if rq.bypassing() {
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        p.set_slice(sh.cfg.slice_dfl);
        let ev = sh.events_of(rq.cpu);
        ev.bypass_dispatch.bump();
        ev.refill_slice_dfl.bump();
        return dispatch_enqueue_nonlocal(sh, &sh.global, p, f);
    }
    if p.scx.ddsp_dsq_id.load(Ordering::Relaxed) != DSQ_INVALID {
        if !slot.has.has(Op::SelectCpu) {
            // The default `select_cpu` found an idle CPU and gave the task
            // the default slice: the kernel's core does that itself when a
            // scheduler has no `select_cpu`, and counts it.
            sh.events_of(rq.cpu).refill_slice_dfl.bump();
        }
        crate::trace::direct_dispatch(sh, rq, &p, f);
        return direct_dispatch(sh, rq, p, f, "select_cpu");
    }
    let qseq = rq.ops_qseq << opss::QSEQ_SHIFT;
    rq.ops_qseq += 1;
    debug_assert_eq!(p.ops_state() & opss::STATE_MASK, opss::NONE);
    p.scx
        .ops_state
        .store(opss::QUEUEING | qseq, Ordering::Relaxed);
    let verdict = {
        let mut ctx = EnqueueCtx::new(sh, rq.cpu, &p, rq.curr.as_deref());
        call_cb(sh, "enqueue", Some(&p), || {
            slot.ops.enqueue(&mut ctx, &p, f)
        });
        ctx.verdict()
    };
    crate::trace::enqueue(sh, rq, &p, f, verdict);
    if let Some((id, extra)) = verdict {
        carry_out(sh, rq, p, f | extra, id, "enqueue");
    } else {
        // The scheduler owns the task now; our reference goes (the task
        // registry keeps the task alive).
        p.scx
            .ops_state
            .store(opss::QUEUED | qseq, Ordering::Release);
    }
}

/// Executes a recorded direct-dispatch verdict (SPEC.md §2.5). rq locked.
/// `op` is the callback that gave the verdict (named in errors).
pub(crate) fn direct_dispatch(
    sh: &Shared,
    rq: &mut RqSynced,
    p: TaskRef,
    f: EnqFlags,
    op: &'static str,
) {
    let id = p.scx.ddsp_dsq_id.load(Ordering::Relaxed);
    p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
    let extra = p.scx.ddsp_enq_flags.load(Ordering::Relaxed);
    if extra != 0 {
        p.scx.ddsp_enq_flags.store(0, Ordering::Relaxed);
    }
    carry_out(sh, rq, p, f | EnqFlags(extra), id, op);
}

/// Carries out the verdict "DSQ `id`, flags `f`" (the call's and the
/// verdict's together) for `p`, whose `ddsp_*` fields are clear. rq locked.
#[inline(always)]
fn carry_out(sh: &Shared, rq: &mut RqSynced, p: TaskRef, f: EnqFlags, id: u64, op: &'static str) {
    let f = f | EnqFlags::CLEAR_OPSS;
    if id == dsq_id::LOCAL && !f.contains(EnqFlags::DSQ_PRIQ) {
        // The common verdict, which cannot fail: this CPU's local DSQ.
        return dispatch_enqueue_local_inline(sh, rq, p, f);
    }
    direct_dispatch_to(sh, rq, id, p, f, op);
}

/// A verdict for any DSQ but this CPU's local one (`direct_dispatch`).
#[inline(never)]
fn direct_dispatch_to(
    sh: &Shared,
    rq: &mut RqSynced,
    id: u64,
    p: TaskRef,
    f: EnqFlags,
    op: &'static str,
) {
    if let Some(d) = sh.dense_user_dsq(id) {
        // A live user DSQ of the dense table (the verdict of a policy that
        // moves every task through shared DSQs): the lookup cannot fail,
        // and the error context is set only if the insertion does.
        if let Err((why, p)) = link_nonlocal(sh, d, false, p, f) {
            let _ctx = err_ctx(op, Some(&p), Some(rq.cpu));
            refused(sh, d, why, p, f);
        }
        return;
    }
    // Errors carrying out the verdict name the callback that gave it.
    let _ctx = err_ctx(op, Some(&p), Some(rq.cpu));
    match find_dsq_for_dispatch(sh, rq.cpu, id) {
        Target::Local(c) if c == rq.cpu => dispatch_enqueue_local(sh, rq, p, f),
        Target::Local(c) => {
            // Another CPU's local DSQ: we hold this rq and may not take a
            // second one, so park the task and finish once this rq lock can
            // be dropped (process_ddsp_deferred_locals).
            p.scx.ops_state.store(opss::NONE, Ordering::Release);
            rq.ddsp_deferred_locals
                .push((p, c, f.without(EnqFlags::CLEAR_OPSS)));
        }
        Target::Global => dispatch_enqueue_nonlocal(sh, &sh.global, p, f),
        Target::User(d) => dispatch_enqueue_nonlocal(sh, &d, p, f),
    }
}

/// Runs the parked remote-local direct dispatches. rq locked on entry and
/// return; dropped in between.
pub(crate) fn process_ddsp_deferred_locals(sh: &Shared, rq: &mut RqGuard<'_>) {
    // Pop one at a time: the list may change while the lock is dropped.
    while let Some((p, dst, f)) = rq.ddsp_deferred_locals.pop() {
        dispatch_to_local_dsq(sh, rq, dst, p, f);
    }
}

/// Wakes a task that was off its runqueue (`try_to_wake_up`): `select_cpu`
/// in the waker's context, then the enqueue on the chosen CPU. No lock held
/// on entry or return. `from` is the waker's CPU (None: not a worker).
///
/// # Queued remote wake-ups
///
/// When the chosen CPU is another one and it is idle, the waker does not
/// take that CPU's rq lock: it queues the task on the CPU's wake list and
/// raises interrupt work there (`Cpu::queue_wakeup`), and the CPU runs the
/// enqueue itself (`enqueue_task` with the same flags, so `runnable` and
/// `enqueue` see what they would) before its next pick. This is the
/// kernel's `ttwu_queue_wakelist`, which queues wake-ups for an idle
/// remote CPU the same way; the difference in timing is the one the
/// kernel has too: `enqueue` runs on the target a moment later, not in
/// the waker's context. The waker then touches the wake list, the flags
/// and the doorbell word of the target, not its rq lock and rq. A busy
/// target gets the enqueue at once, under its rq lock, so that the
/// scheduler decides about the task (place it elsewhere, preempt)
/// without waiting for the busy task's next preemption point.
#[inline]
pub(crate) fn wake_up(sh: &Shared, p: TaskRef, wake_flags: WakeFlags, from: Option<usize>) {
    wake_up_in(sh, None, p, wake_flags, from);
}

/// `wake_up` by a caller that holds the current scheduler's slot
/// (`given`, a spawn): its callbacks then cost no slot lookup.
pub(crate) fn wake_up_in(
    sh: &Shared,
    given: Option<&SchedSlot>,
    p: TaskRef,
    wake_flags: WakeFlags,
    from: Option<usize>,
) {
    let cpu = select_task_rq(sh, given, &p, wake_flags, from);
    p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
    let enq = if wake_flags.contains(WakeFlags::FORK) {
        EnqFlags::empty()
    } else {
        EnqFlags::WAKEUP
    };
    let target = &sh.cpus[cpu];
    if from != Some(cpu) && target.shared.owner.idle.load(Ordering::Relaxed) {
        target.queue_wakeup(p, enq);
    } else {
        let mut rq = target.lock();
        match given.filter(|s| s.gen == rq.sched_gen) {
            Some(slot) => enqueue_woken(sh, slot, target, &mut rq, p, enq),
            None => {
                let slot = sh.slot_of(rq.sched_gen);
                enqueue_woken(sh, &slot, target, &mut rq, p, enq);
            }
        }
        process_ddsp_deferred_locals(sh, &mut rq);
    }
    crate::kick::run_pending(sh, from);
}

/// The enqueue of a wake-up, on the task's rq (`ttwu_do_activate`). rq
/// locked.
fn enqueue_woken(
    sh: &Shared,
    slot: &SchedSlot,
    target: &crate::rq::Cpu,
    rq: &mut RqSynced,
    p: TaskRef,
    enq: EnqFlags,
) {
    rq.flags |= rqflags::IN_WAKEUP;
    enqueue_task(sh, slot, rq, p, enq);
    rq.flags &= !rqflags::IN_WAKEUP;
    // The core's wake-up rule: a task arriving on an idle CPU's rq
    // reschedules it, even if the task now sits with the scheduler.
    if rq.curr.is_none() {
        target.resched_locked(rq);
    }
}

/// Carries out the wake-ups queued for CPU `cpu` (its interrupt work; no
/// lock held on entry or return). `given`: the worker's cached scheduler
/// slot, used when it is the rq's generation (no lookup).
pub(crate) fn drain_wake_list(sh: &Shared, cpu: usize, given: Option<&SchedSlot>) {
    let target = &sh.cpus[cpu];
    let mut rq = target.lock();
    let looked;
    let slot = match given.filter(|s| s.gen == rq.sched_gen) {
        Some(s) => s,
        None => {
            looked = sh.slot(rq.sched_gen);
            &*looked
        }
    };
    if drain_wake_list_locked(sh, slot, &mut rq, false) {
        process_ddsp_deferred_locals(sh, &mut rq);
    }
}

/// Carries out the wake-ups queued for the CPU of `rq`, which is locked
/// (on entry and return) by that CPU's worker; `slot` is the scheduler of
/// the rq's generation. `in_step`: the caller is the CPU's scheduling
/// step, which picks next anyway, so a wake-up onto the idle CPU needs no
/// reschedule (`core::irq` docs). Returns whether any wake-up was
/// carried out; the parked remote direct dispatches they left are the
/// caller's (`process_ddsp_deferred_locals`).
///
/// The list is swapped with the rq's empty spare buffer (the wake list is
/// a leaf lock, taken here under the rq lock), and the drained buffer,
/// emptied in place, becomes the spare, its capacity kept: a steady stream
/// of wake-ups allocates nothing. A spare grown past [`WAKE_SPARE_KEEP`]
/// by a burst is released. The buffer is reversed and popped (oldest
/// first, no iterator to set up and drop); nothing the enqueue path calls
/// touches the spare.
pub(crate) fn drain_wake_list_locked(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqGuard<'_>,
    in_step: bool,
) -> bool {
    let target = rq.this_cpu();
    std::mem::swap(
        &mut rq.wake_spare,
        &mut *target.shared.remote.wake_list.lock(),
    );
    let any = !rq.wake_spare.is_empty();
    if any {
        crate::core::slot::set_working_for(sh.rt_id, slot.gen);
        rq.picking = in_step;
        rq.wake_spare.reverse();
        while let Some((p, enq)) = rq.wake_spare.pop() {
            rq.flags |= rqflags::IN_WAKEUP;
            enqueue_task(sh, slot, rq, p, enq);
            rq.flags &= !rqflags::IN_WAKEUP;
        }
        rq.picking = false;
        // The core's wake-up rule (`enqueue_woken`), once for them all.
        if !in_step && rq.curr.is_none() {
            target.resched_locked(rq);
        }
        if rq.wake_spare.capacity() > WAKE_SPARE_KEEP {
            rq.wake_spare = Vec::new();
        }
    }
    any
}

/// The largest wake-list buffer a CPU keeps for reuse (entries).
const WAKE_SPARE_KEEP: usize = 1024;

/// `select_task_rq_scx`: where a waking task goes. A task that may run on
/// one CPU only (bound after its first run, or pinned) goes there without
/// asking the scheduler; the kernel does the same for tasks with a single
/// allowed CPU.
pub(crate) fn select_task_rq(
    sh: &Shared,
    given: Option<&SchedSlot>,
    p: &TaskRef,
    wake_flags: WakeFlags,
    from: Option<usize>,
) -> usize {
    let prev = p.cpu();
    if let Some(b) = p.bound_cpu() {
        return b;
    }
    if p.nr_cpus_allowed(sh.nr_cpus) == 1 {
        return fallback_cpu(sh, p, prev);
    }
    // The lock-free mirror: a try-lock that lost a race would have read
    // "not bypassing" and called the scheduler.
    let bypass = sh.cpus[prev]
        .shared
        .mostly
        .bypassing
        .load(Ordering::Acquire);
    let cpu = if bypass {
        // The runtime's own placement: the default selection itself, not
        // the `select_cpu_dfl` helper, which a scheduler without built-in
        // idle tracking may not call (SPEC.md §6.1: bypass must not depend
        // on anything the scheduler chose). Its direct-dispatch verdict
        // would be overridden at enqueue anyway.
        let (c, _) = crate::idle::select_cpu_dfl(sh, from, p, prev, wake_flags);
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        c as i64
    } else {
        let gen = sh.sched_gen.load(Ordering::Acquire);
        let looked;
        let slot = match given.filter(|s| s.gen == gen) {
            Some(s) => s,
            None => {
                looked = sh.slot(gen);
                &*looked
            }
        };
        let mut ctx = SelectCpuCtx::new(sh, from, p);
        let r = call_op(sh, slot, Op::SelectCpu, Some(p), || {
            slot.ops.select_cpu(&mut ctx, p, prev, wake_flags)
        });
        ctx.publish_verdict();
        match r {
            Some(c) => c as i64,
            None => prev as i64,
        }
    };
    if cpu < 0 || cpu as usize >= sh.nr_cpus {
        let _ctx = err_ctx("select_cpu", Some(p), from);
        sh.ops_error(format!("select_cpu returned invalid CPU {cpu}"));
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        return select_fallback(sh, p, prev, None);
    }
    let cpu = cpu as usize;
    if p.allowed_on(cpu) && sh.cpu_online(cpu) {
        cpu
    } else {
        select_fallback(sh, p, prev, Some(cpu))
    }
}

/// The core overrides `chosen`, the CPU chosen for a wake-up (`None`: not
/// a CPU of the runtime), with a fallback CPU. If that is another CPU, it
/// counts `SCX_EV_SELECT_CPU_FALLBACK` on the fallback CPU, whose rq the
/// wake-up is enqueued on (the kernel counts it in that enqueue, comparing
/// the rq with `selected_cpu`). Here the count takes that rq lock for
/// itself: done in the enqueue, it would cost every wake-up a check. No
/// lock held on entry or return.
#[cold]
#[inline(never)]
fn select_fallback(sh: &Shared, p: &TaskRef, prev: usize, chosen: Option<usize>) -> usize {
    let cpu = fallback_cpu(sh, p, prev);
    if chosen != Some(cpu) {
        let _rq = sh.cpus[cpu].lock();
        sh.events_of(cpu).select_cpu_fallback.bump();
    }
    cpu
}

/// Any online CPU the task may use, preferring `prev`
/// (`select_fallback_rq`). A task allowed only on offline CPUs gets one of
/// them: the runtime never breaks an affinity the user set, where the
/// kernel would (its worker still runs tasks pinned to it, see
/// `Runtime::cpu_offline`).
pub(crate) fn fallback_cpu(sh: &Shared, p: &TaskRef, prev: usize) -> usize {
    if p.allowed_on(prev) && sh.cpu_online(prev) {
        return prev;
    }
    if let Some(c) = p.single_cpu() {
        return c;
    }
    let start = sh.spread_hint();
    let ok = |c: usize| p.allowed_on(c) && sh.cpu_online(c);
    (0..sh.nr_cpus)
        .map(|i| (start + i) % sh.nr_cpus)
        .find(|&c| ok(c))
        .or_else(|| (0..sh.nr_cpus).find(|&c| p.allowed_on(c)))
        .unwrap_or(prev)
}

/// `task_rq_lock`: locks the rq the task belongs to, retrying if it moved
/// while we waited for the lock.
/// A task in flight between two rqs (`MIGRATING`) belongs to neither:
/// wait until it lands. (Found by the loom model `ownership`: without the
/// wait, a dequeue that locked the destination first saw a task that was on
/// no runnable list yet.)
pub(crate) fn task_rq_lock<'a>(sh: &'a Shared, p: &TaskRef) -> RqGuard<'a> {
    loop {
        let cpu = p.scx.cpu.load(Ordering::Acquire) as usize;
        let rq = sh.cpus[cpu].lock();
        if p.scx.cpu.load(Ordering::Acquire) as usize == cpu && !p.has_flag(tflags::MIGRATING) {
            return rq;
        }
        drop(rq);
        crate::loom::spin_loop();
    }
}
