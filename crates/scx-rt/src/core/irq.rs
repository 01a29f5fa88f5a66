//! A CPU's safe point: the work a worker does between two tasks, before
//! its scheduling step, with no lock held. Shared by the worker loop and
//! the loom models, so the models check this code and not a copy.
//!
//! # Order
//!
//! ```text
//! safe_point(cpu) -> drain
//!   exit pending -> the disable path            (not in the loom build)
//!   irq_pending taken -> fired scheduler timers; drain := true
//!   the kick step
//!   need_resched clear -> done                  (the need_resched summary)
//!   KICK_WAIT: wait for the targets' pick sequences
//!   clear need_resched (fence), clear resched_req;
//!   irq_pending set again since -> need_resched set again
//! step(cpu, drain)                             (core::step)
//!   rq locked, clock read: drain -> the queued wake-ups (the wake list)
//!   are enqueued, then the rest of the step
//! ```
//!
//! The queued wake-ups of a safe point are carried out by the scheduling
//! step that follows it, under the rq lock the step takes anyway and at
//! the clock reading it makes anyway: the kernel's wake-list interrupt
//! (`sched_ttwu_pending`) followed at once by `schedule()`, with no
//! window between them. A wake-up queued after `irq_pending` was taken
//! and before the step's drain is carried out by that drain (the list is
//! taken whole), and its `irq_pending` makes the next safe point drain
//! again (an empty list at worst): none is left behind. The interrupt
//! taken elsewhere (`run_irq_work`: a running task stopped only for
//! interrupt work) drains the list itself.
//!
//! # Why the fences
//!
//! A waker queueing a wake-up (`Cpu::queue_wakeup`) stores `irq_pending`
//! and then reads `need_resched` to skip a redundant store; this CPU
//! stores `need_resched = false` and then reads `irq_pending`. That is the
//! store-buffering pattern: without a full fence on both sides each may
//! miss the other's store (x86 allows it), and the CPU would run its next
//! task with `need_resched` clear while a woken task waits on its wake
//! list, unseen by the policy, until that task's slice ends. The waker's
//! fence is in `Cpu::queue_wakeup`, between its `irq_pending` store and
//! its `need_resched` read; this side's is in [`clear_resched_on`], paid only
//! when the flag was set. (The loom model `wakelist` fails without either.)
//!
//! Every check is a plain load first: a switch with nothing pending (the
//! common yield) performs no read-modify-write and no fence here.
//!
//! # The need_resched summary
//!
//! Whoever sets `resched_req` (`RqShared::set_need_resched`, the expiry
//! timer's raise) or `sync_pending` (this CPU's own kick step) sets
//! `need_resched` after it, and only the clears below (and
//! `worker::interrupt_only`, which reads both flags after its clear) take
//! it down. So once the interrupt work and the kick step are done, a clear
//! `need_resched` means there is no `KICK_WAIT` to honour and nothing to
//! clear: the safe point stops at that one load. A flag whose
//! `need_resched` store is not seen yet is handled at the next safe point,
//! as one set a moment later would be. `irq_pending` is not folded in: it
//! is read on its own at every safe point, so a wake-up whose
//! `need_resched` store was skipped (the waker saw the flag set before
//! `interrupt_only` cleared it) is still drained at the next one.

use crate::core::error::call;
use crate::core::slot::SchedSlot;
use crate::kick_state::KickState;
use crate::loom::{fence, Ordering};
use crate::ops::{Ctx, Shared};
use crate::rq::Cpu;

/// The safe point of CPU `c` (module docs). No lock held. Callers hold
/// the `Cpu` (the worker loop, once): no index into `Shared::cpus` per
/// check. Returns whether the scheduling step that follows must drain the
/// wake list (`core::step::step`'s `drain`): interrupt work was taken
/// here, and the queued wake-ups are left to the step (module docs).
#[inline]
#[must_use = "the step that follows must drain the wake list when this says so"]
pub(crate) fn safe_point_on(sh: &Shared, c: &Cpu) -> bool {
    #[cfg(not(scx_rt_loom))]
    if sh.exit.pending.load(Ordering::Acquire) {
        crate::disable::disable(sh);
    }
    // A plain load first: the common switch has nothing queued.
    let drain = c.shared.remote.irq_pending.load(Ordering::Relaxed) && take_irq_work(sh, c.id);
    crate::kick::run_pending_on(sh, c);
    // Whoever sets `sync_pending` or `resched_req` sets `need_resched`
    // after it (module docs, "The need_resched summary"): with it clear
    // there is nothing to wait for and nothing to clear.
    if c.shared.remote.need_resched.load(Ordering::Relaxed) {
        resched_raised_on(sh, c);
    }
    drain
}

/// The rest of the safe point when `need_resched` was seen set: the
/// `KICK_WAIT` wait, then the clears. Out of line: the common yield has
/// nothing raised.
#[cold]
#[inline(never)]
fn resched_raised_on(sh: &Shared, c: &Cpu) {
    if c.shared.kick.sync_pending.load(Ordering::Relaxed) {
        crate::kick::wait_for_targets(sh, c.id);
    }
    clear_resched_on(c);
}

/// Clears `need_resched` and `resched_req` after the safe point's work,
/// then sets `need_resched` again if interrupt work was raised since.
/// The clears are SeqCst stores made only when set: a request that sets a
/// flag after our load is never overwritten, and one before it is ordered
/// before the step's reads of the queues.
#[inline]
pub(crate) fn clear_resched_on(c: &Cpu) {
    let s = &c.shared;
    if s.remote.need_resched.load(Ordering::Relaxed) {
        s.remote.need_resched.store(false, Ordering::SeqCst);
        // Orders the clear before the `irq_pending` read below (module
        // docs: the waker's side is `Doorbell::ring`'s fence).
        fence(Ordering::SeqCst);
    }
    if s.remote.resched_req.load(Ordering::Relaxed) {
        s.remote.resched_req.store(false, Ordering::SeqCst);
    }
    if s.remote.irq_pending.load(Ordering::SeqCst) {
        s.remote.need_resched.store(true, Ordering::SeqCst);
    }
}

/// The CPU's interrupt work, at a point where it holds no lock: the queued
/// wake-ups and the scheduler timers that fired for it, then its kick
/// step.
#[inline]
pub(crate) fn run_irq_work(sh: &Shared, cpu: usize, slot: Option<&SchedSlot>) {
    run_irq_work_on(sh, &sh.cpus[cpu], slot);
}

/// [`run_irq_work`] of CPU `c`.
#[inline]
pub(crate) fn run_irq_work_on(sh: &Shared, c: &Cpu, slot: Option<&SchedSlot>) {
    // A plain load first: the common switch has nothing queued.
    if c.shared.remote.irq_pending.load(Ordering::Relaxed) {
        run_queued_irq_work(sh, c.id, slot);
    }
    crate::kick::run_pending_on(sh, c);
}

/// The queued half of [`run_irq_work`]: wake-ups and fired timers.
#[cold]
fn run_queued_irq_work(sh: &Shared, cpu: usize, slot: Option<&SchedSlot>) {
    if take_irq_work(sh, cpu) {
        crate::core::enqueue::drain_wake_list(sh, cpu, slot);
    }
}

/// Takes CPU `cpu`'s `irq_pending` and runs the scheduler timers that
/// fired; whether it took the flag (the wake list is then the caller's
/// to drain). No lock held.
#[inline]
fn take_irq_work(sh: &Shared, cpu: usize) -> bool {
    let s = &sh.cpus[cpu].shared;
    if !KickState::take(&s.remote.irq_pending) {
        return false;
    }
    // A load first: a timer sets its bit before it raises `irq_pending`
    // (`timer`), so a bit set before the flag we took is seen here, and
    // one set after raises the flag again. No swap when none fired (a
    // queued wake-up alone).
    if s.remote.ops_timers_fired.load(Ordering::Acquire) != 0 {
        run_fired_timers(sh, cpu);
    }
    true
}

/// Runs the scheduler timers that fired for CPU `cpu` (`ops.timer`, with
/// no lock held).
#[cold]
#[inline(never)]
fn run_fired_timers(sh: &Shared, cpu: usize) {
    let mut fired = sh.cpus[cpu]
        .shared
        .remote
        .ops_timers_fired
        .swap(0, Ordering::AcqRel);
    let slot = sh.cur_slot();
    let ctx = Ctx::new_unlocked(sh, Some(cpu));
    while fired != 0 {
        let id = fired.trailing_zeros();
        fired &= fired - 1;
        call(sh, "timer", || slot.ops.timer(&ctx, id));
    }
}

/// Whether an idle CPU `cpu` has something to do: a kick, interrupt work,
/// a pending exit, or a shutdown with no task left. Its idle wait (poll,
/// then doorbell sleep) ends when this holds.
#[inline]
pub(crate) fn idle_wake(sh: &Shared, cpu: usize) -> bool {
    let s = &sh.cpus[cpu].shared;
    s.kick.pending.load(Ordering::Relaxed)
        || s.remote.irq_pending.load(Ordering::Relaxed)
        || sh.exit.pending.load(Ordering::Relaxed)
        || (sh.shutdown.load(Ordering::Relaxed) && sh.live.live() == 0)
}
