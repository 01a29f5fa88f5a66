//! Higher-class work and the CPU release/acquire protocol (SPEC.md §3.11):
//! `ops.cpu_release`, `ops.cpu_acquire`, `scx_bpf_reenqueue_local`.
//!
//! In the kernel a CPU running a sched_ext task can be taken by a task of
//! a higher scheduling class (real-time, deadline, stop). The userspace
//! analogue is work the runtime runs on a CPU's worker ahead of every
//! green task ([`Runtime::run_on_cpu`](crate::Runtime::run_on_cpu)): per-CPU
//! work that preempts the running task, as the kernel's stop class does.
//!
//! ```text
//! run_on_cpu(cpu, reason, f)       any thread, no lock held
//!   queue (reason, f) on the CPU's higher-class queue, set hc_pending
//!   resched the CPU (the running task stops at its next preemption point)
//! step(prev) on that CPU           rq locked
//!   hc_pending: instead of pick_next_task
//!     put prev (stopping; head of the local DSQ if slice is left, else
//!       through enqueue), as put_prev_task_scx does for a higher-class next
//!     switch_class: if a task was running and the CPU is not released yet,
//!       ops.cpu_release(cpu, {reason}) [reenqueue_local allowed], released
//!     the CPU counts as busy (not idle) while the work runs
//! worker, no lock held
//!   take the queue (hc_pending cleared under its lock), run each f
//! next step: balance
//!   released: ops.cpu_acquire(cpu), released cleared, then balance as usual
//! ```
//!
//! `cpu_released` is set only when the scheduler may implement
//! `cpu_release` or `cpu_acquire` (the kernel's `scx_ops_cpu_preempt`
//! key); an attach or a detach clears it, so a new scheduler never gets a
//! `cpu_acquire` without its `cpu_release`.
//!
//! The queue is closed when the worker exits: work queued then is dropped
//! and its caller told (no caller waits forever).
//!
//! No loom model queues higher-class work, so the loom build's step does
//! not read `hc_pending` (the models' interleavings are the pick path's).
//! The release is the pick path's put-prev followed by one callback under
//! the same rq lock; what it may race with is covered by the models of
//! that path.

use std::rc::Rc;

use crate::flags::EnqFlags;
use crate::loom::Ordering;
use crate::ops::{CpuAcquireArgs, CpuPreemptReason, CpuReleaseArgs, CpuReleaseCtx, Ctx, Shared};
use crate::rq::RqSynced;
use crate::task::TaskRef;

use crate::core::balance::refresh;
use crate::core::dsqs::sync_local_nr;
use crate::core::enqueue::do_enqueue_task;
use crate::core::error::call_op;
use crate::core::has_op::Op;
use crate::core::slot::SchedSlot;

/// A piece of higher-class work.
pub(crate) type Work = Box<dyn FnOnce() + Send>;

/// A CPU's queue of higher-class work (`RqRemote::hc`).
#[derive(Default)]
pub(crate) struct HigherClassQueue {
    /// The work, with the class each stands for, in submission order.
    pub work: Vec<(CpuPreemptReason, Work)>,
    /// The worker exited: nothing more will run.
    pub closed: bool,
}

/// Queues `f` to run on CPU `cpu`'s worker ahead of its tasks, and makes
/// the CPU look. No lock held. `Err(f)` if the worker has exited.
pub(crate) fn submit(
    sh: &Shared,
    cpu: usize,
    reason: CpuPreemptReason,
    f: Work,
) -> Result<(), Work> {
    let c = &sh.cpus[cpu];
    {
        let mut q = c.shared.remote.hc.lock();
        if q.closed {
            return Err(f);
        }
        q.work.push((reason, f));
        c.shared.remote.hc_pending.store(true, Ordering::Release);
    }
    c.resched();
    Ok(())
}

/// The worker of CPU `cpu` runs its queued higher-class work. No lock
/// held.
pub(crate) fn run_higher_class(sh: &Shared, cpu: usize) {
    let r = &sh.cpus[cpu].shared.remote;
    let work = {
        let mut q = r.hc.lock();
        r.hc_pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut q.work)
    };
    for (_, f) in work {
        f();
    }
}

/// The worker of CPU `cpu` exits: its queue takes no more work, and work
/// still queued is dropped (its callers see that it never ran).
pub(crate) fn close_higher_class(sh: &Shared, cpu: usize) {
    let r = &sh.cpus[cpu].shared.remote;
    let left = {
        let mut q = r.hc.lock();
        q.closed = true;
        r.hc_pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut q.work)
    };
    drop(left);
}

/// The step's path when higher-class work is pending (module docs): puts
/// `prev` as for a higher-class next task and, if a task was running
/// (`was_running`: `prev` stopped, whether or not it is still runnable),
/// releases the CPU. rq locked.
pub(crate) fn release_cpu(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    was_running: bool,
    prev: Option<TaskRef>,
    now: u64,
) {
    let c = &sh.cpus[rq.cpu];
    c.shared.kick.advance_pick();
    if let Some(p) = prev {
        crate::core::pick::put_prev_task(sh, slot, rq, p, true, now);
    }
    rq.curr = None;
    if was_running {
        let reason = c
            .shared
            .remote
            .hc
            .lock()
            .work
            .first()
            .map_or(CpuPreemptReason::Unknown, |w| w.0);
        switch_class(sh, slot, rq, reason);
    }
}

/// `switch_class` to a higher class: `ops.cpu_release` once per release
/// period. rq locked.
fn switch_class(sh: &Shared, slot: &SchedSlot, rq: &mut RqSynced, reason: CpuPreemptReason) {
    if rq.cpu_released || !(slot.has.has(Op::CpuRelease) || slot.has.has(Op::CpuAcquire)) {
        return;
    }
    if slot.has.has(Op::CpuRelease) {
        let cpu = rq.cpu;
        let mut ctx = CpuReleaseCtx {
            ctx: Ctx::for_op(sh, Some(cpu), "cpu_release", None),
            rq: &mut *rq,
            slot,
        };
        call_op(sh, slot, Op::CpuRelease, None, || {
            slot.ops
                .cpu_release(&mut ctx, cpu, CpuReleaseArgs { reason })
        });
    }
    rq.cpu_released = true;
}

/// Balance's step 2: a released CPU is the scheduler's again
/// (`ops.cpu_acquire`). rq locked.
#[cold]
pub(crate) fn cpu_acquire(sh: &Shared, slot: &mut Rc<SchedSlot>, rq: &mut RqSynced) {
    rq.cpu_released = false;
    refresh(sh, rq, slot);
    if slot.has.has(Op::CpuAcquire) {
        let cpu = rq.cpu;
        let ctx = Ctx::for_op(sh, Some(cpu), "cpu_acquire", None);
        call_op(sh, slot, Op::CpuAcquire, None, || {
            slot.ops.cpu_acquire(&ctx, cpu, CpuAcquireArgs::default())
        });
    }
}

impl CpuReleaseCtx<'_> {
    /// Takes every task off this CPU's local DSQ and hands each to the
    /// scheduler again through `enqueue`, with [`EnqFlags::REENQ`]
    /// (`scx_bpf_reenqueue_local`): the released CPU's waiting tasks can
    /// then run elsewhere. Returns how many. Each goes through the enqueue
    /// path's rules (a bypassing CPU sends them to the global DSQ); one the
    /// scheduler puts back on `DSQ_LOCAL` waits for the CPU again.
    pub fn reenqueue_local(&mut self) -> u32 {
        let sh = self.ctx.sh;
        let mut tasks = Vec::with_capacity(self.rq.local.len());
        while let Some(p) = self.rq.local.pop() {
            tasks.push(p);
        }
        sync_local_nr(sh, self.rq);
        let n = tasks.len() as u32;
        for p in tasks {
            do_enqueue_task(sh, self.slot, self.rq, p, EnqFlags::REENQ);
        }
        n
    }
}
