//! The scheduling step: what a CPU does between two tasks, from "prev
//! stopped, and why" to "next runs" (or idle). The worker loop runs it
//! (`worker`), and so do the loom models (`model`), so they check this
//! code and not a copy.
//!
//! ```text
//! step(prev, why, drain)               rq locked, except where noted
//!   drain: the wake-ups queued for this CPU are enqueued (`core::irq`)
//!   fire sleep timers that are due (their tasks are woken after unlock)
//!   charge prev (update_curr), then by why:
//!     yield   -> ops.yield (absent: slice 0)        prev stays runnable
//!     preempt -> ops.tick if the slice timer fired   prev stays runnable
//!     block   -> dequeue (SLEEP) unless a wake-up beat the block
//!     exit    -> dequeue, exit_task, the task leaves the registry
//!   offline CPU: a prev that may run elsewhere leaves (migrate_out)
//!   pick_next_task: balance, next off the local DSQ, put prev, set next
//!     (higher-class work pending instead: put prev, cpu_release; the
//!     worker runs the work after the step, `core::release`)
//!   idle transitions: ops.update_idle, the idle mask
//!   deferred remote direct dispatches (drop the lock per task)
//! unlocked:
//!   publish the slice deadline (polled by the preemption points, or the
//!   worker's expiry timer, or the timer thread's word)
//!   (`finish`) drop the exited task (its result's drop may run any
//!   code); finish a hotplug move; wake the tasks found above
//! ```
//!
//! The step holds the scheduler slot it calls for its whole length (one
//! lookup per step), refreshed when the rq switches generation under it.

use std::rc::Rc;

use crate::consts::SLICE_INF;
use crate::flags::{DeqFlags, WakeFlags};
use crate::loom::Ordering;
use crate::ops::{Ctx, Shared};
use crate::rq::{Cpu, RqSynced};
use crate::task::TaskRef;

use crate::core::clock::now;
use crate::core::dequeue::{dequeue_task, task_leave_scheduler_locked};
use crate::core::enqueue::{drain_wake_list_locked, process_ddsp_deferred_locals, wake_up};
use crate::core::error::call_op;
use crate::core::has_op::Op;
use crate::core::slot::{SchedSlot, SlotHint};

/// What is left of a slice when its timer fires and still counts as spent
/// (the step's Preempt arm): above the difference of the two clocks
/// (`scx_rt_sys::clock`, about a microsecond at most), far below any
/// slice a scheduler would set.
const TICK_ROUNDING_NS: u64 = 2_000;

/// Why a task stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    /// `yield_now`: its slice ends (`sched_yield`).
    Yield,
    /// A preemption point with a reschedule pending.
    Preempt,
    /// It blocks (a wait queue parked it).
    Block,
    /// Its body returned (or it could never start).
    Exit,
}

/// What the step found to do after releasing the rq lock.
#[derive(Default)]
pub(crate) struct After {
    /// Tasks whose sleep timers fired: woken if still asleep.
    pub timers: Vec<TaskRef>,
    /// A block that a wake-up raced with: the task is runnable again and
    /// this CPU enqueues it (the wake-state protocol in `task`).
    pub raced: Option<TaskRef>,
    /// A task leaving an offline CPU, and where it goes.
    pub moved: Option<(TaskRef, usize)>,
    /// The last task exited during shutdown: every worker must look.
    pub shutdown_done: bool,
    /// The clock reading of the step (for the worker's periodic work).
    pub now: u64,
    /// Higher-class work took the CPU (`core::release`): the worker runs
    /// it before its next step.
    pub higher_class: bool,
    /// The task that exited in this step, for [`finish`] to drop after
    /// the rq lock (its last reference, often: its result's drop runs
    /// then).
    pub exited: Option<TaskRef>,
    /// One of `timers`, `raced`, `moved` or `shutdown_done` holds work for
    /// [`finish`]: the common step tests this one flag.
    pub work: bool,
}

/// Fires the sleep timers that are due, collecting their tasks. rq locked.
/// Returns whether it found any.
fn fire_timers(c: &Cpu, rq: &mut RqSynced, out: &mut Vec<TaskRef>, now: u64) -> bool {
    let next_timer = &c.shared.owner.next_timer;
    if now < next_timer.load(Ordering::Relaxed) {
        return false;
    }
    let mut found = false;
    while let Some(std::cmp::Reverse(t)) = rq.timers.peek() {
        if t.deadline > now {
            break;
        }
        if let Some(std::cmp::Reverse(t)) = rq.timers.pop() {
            out.push(t.task);
        }
        found = true;
    }
    next_timer.store(rq.next_timer().unwrap_or(u64::MAX), Ordering::Relaxed);
    found
}

/// One scheduling step of CPU `c` (the caller holds it: no index into
/// `Shared::cpus`), whose task `prev` stopped for `why`. Returns the next
/// task (its reference is the caller's until the next step). `slot` is
/// the caller's cached scheduler slot. `drain`: the safe
/// point before took interrupt work, and the wake-ups queued for this CPU
/// are the step's to enqueue (`core::irq::safe_point_on`). No lock held
/// on entry or return.
pub(crate) fn step(
    sh: &Shared,
    c: &Cpu,
    slot: &mut Rc<SchedSlot>,
    prev: Option<(TaskRef, Switch)>,
    drain: bool,
    after: &mut After,
) -> Option<TaskRef> {
    let mut rq = c.lock();
    let cpu = rq.cpu;
    crate::core::balance::refresh(sh, &rq, slot);
    let now = now();
    after.now = now;
    // The rq clock, valid until the lock is dropped (`RqOwner::clock`;
    // under loom time does not move, and no clock is kept).
    #[cfg(not(scx_rt_loom))]
    c.shared.owner.clock.store(now, Ordering::Relaxed);
    rq.clock = now;
    if drain {
        drain_wake_list_locked(sh, slot, &mut rq, true);
    }
    if fire_timers(c, &mut rq, &mut after.timers, now) {
        after.work = true;
    }
    let mut prev_task = None;
    let was_running = prev.is_some();
    if let Some((p, sw)) = prev {
        crate::trace::stop(&mut rq, &p, sw);
        crate::core::pick::update_curr(&p, now);
        match sw {
            Switch::Yield => {
                if rq.bypassing() || !slot.has.has(Op::Yield) {
                    // The default `ops.yield` (and bypass): the slice ends.
                    p.set_slice(0);
                } else {
                    let ctx = Ctx::for_op(sh, Some(cpu), "yield", Some(&p));
                    let s: &SchedSlot = slot;
                    call_op(sh, s, Op::Yield, Some(&p), || s.ops.yield_(&ctx, &p, None));
                }
                prev_task = Some(p);
            }
            Switch::Preempt => {
                let tick = &c.shared.remote.tick_pending;
                if tick.load(Ordering::Relaxed) && tick.swap(false, Ordering::AcqRel) {
                    crate::trace::slice_expired(sh, &mut rq, &p);
                    // The signal-mode expiry timer fires on
                    // `CLOCK_MONOTONIC`, the charge above is on the
                    // scheduling clock (`scx_rt_sys::clock`): a slice the
                    // timer ended may show the clocks' difference left
                    // (tens of ns). It is spent, or the task would run on
                    // for another timer round.
                    if p.slice() <= TICK_ROUNDING_NS {
                        p.set_slice(0);
                    }
                    // The slice timer fired (task_tick): bypass rotates
                    // every tick; otherwise the scheduler sees the tick.
                    if rq.bypassing() {
                        p.set_slice(0);
                    } else if slot.has.has(Op::Tick) {
                        let ctx = Ctx::for_op(sh, Some(cpu), "tick", Some(&p));
                        let s: &SchedSlot = slot;
                        call_op(sh, s, Op::Tick, Some(&p), || s.ops.tick(&ctx, &p));
                    }
                }
                prev_task = Some(p);
            }
            Switch::Block => {
                if p.block_begin() {
                    crate::trace::block(sh, &mut rq, &p);
                    dequeue_task(sh, slot, &mut rq, &p, DeqFlags::SLEEP, true);
                    p.scx.on_cpu.store(false, Ordering::Relaxed);
                    c.shared.kick.advance_pick();
                    rq.curr = None;
                    if !p.block_finish() {
                        after.raced = Some(p);
                        after.work = true;
                    }
                } else {
                    prev_task = Some(p);
                }
            }
            Switch::Exit => {
                dequeue_task(sh, slot, &mut rq, &p, DeqFlags::SLEEP, true);
                p.scx.on_cpu.store(false, Ordering::Relaxed);
                c.shared.kick.advance_pick();
                rq.curr = None;
                let gen = p.scx.sched_gen.load(Ordering::Acquire);
                let mut slots = SlotHint::new(Some(slot));
                task_leave_scheduler_locked(sh, &mut slots, &rq, &p, gen, false);
                sh.tasks.remove(&p);
                if sh.live.exit(cpu, &sh.shutdown) {
                    after.shutdown_done = true;
                    after.work = true;
                }
                // Dropped (or its block kept, `task_pool`) once the lock
                // is released: the drop of what a detached task returned
                // may run any code, a wake-up of a task on this CPU (which
                // takes this rq lock) included.
                after.exited = Some(p);
            }
        }
    }
    // A CPU that went offline under a task that may run elsewhere sends it
    // away at its first switch (the kernel's `migrate_tasks`).
    if !rq.online() {
        if let Some(p) = prev_task.take_if(|p| p.is_queued() && p.single_cpu() != Some(cpu)) {
            let dst = crate::core::migrate::migrate_out_curr(sh, slot, &mut rq, &p);
            after.moved = Some((p, dst));
            after.work = true;
        }
    }
    // Higher-class work (`Runtime::run_on_cpu`) takes the CPU: no pick;
    // the worker runs the work once the lock is dropped.
    // (No loom model queues such work: the loom build does not look, so
    // the models' interleavings are those of the pick path alone.)
    let higher = cfg!(not(scx_rt_loom)) && c.shared.remote.hc_pending.load(Ordering::Acquire);
    let next = if higher {
        crate::core::release::release_cpu(sh, slot, &mut rq, was_running, prev_task, now);
        after.higher_class = true;
        None
    } else {
        crate::core::pick::pick_next_task(sh, slot, &mut rq, prev_task, now)
    };
    crate::trace::switch(sh, &mut rq, next.as_ref());
    idle_transition(sh, c, slot, &mut rq, next.is_some() || higher);
    if !rq.ddsp_deferred_locals.is_empty() {
        process_ddsp_deferred_locals(sh, &mut rq);
        // A direct dispatch to another CPU's local DSQ that CPU can no
        // longer take (it went offline) falls back to the global DSQ. The
        // kernel runs these dispatches before the pick, in `balance_scx`,
        // so the fallen task is consumed by the same balance; here they
        // run after it (those `put_prev`'s enqueue made included), and a
        // CPU going idle would sleep with the task left for nobody: every
        // other CPU may be asleep too, until the watchdog. Such a CPU
        // balances again at once instead.
        if next.is_none() && !higher && sh.global.nr_queued() > 0 {
            c.resched_locked(&mut rq);
        }
    }
    #[cfg(not(scx_rt_loom))]
    c.shared.owner.clock.store(0, Ordering::Relaxed);
    rq.clock = 0;
    drop(rq);
    let slice = next.as_ref().map_or(SLICE_INF, |t| t.slice());
    let deadline = match slice {
        SLICE_INF => u64::MAX,
        s => now.saturating_add(s),
    };
    let tick = &c.shared.remote.tick_pending;
    if tick.load(Ordering::Relaxed) {
        tick.store(false, Ordering::Relaxed);
    }
    #[cfg(not(scx_rt_loom))]
    publish_deadline(sh, c, deadline, slice);
    #[cfg(scx_rt_loom)]
    let _ = deadline;
    next
}

/// Publishes the slice deadline of the task CPU `c` switches to
/// (`u64::MAX`: none), whose slice is `slice`, to what will end it: the
/// word its preemption points compare the clock with, or the slice timer
/// (`TimerState::set_deadline`: the worker's expiry timer or the timer
/// thread), which is told `u64::MAX` for a polled slice. On the CPU's
/// worker thread only. A switch between slices of one kind writes one
/// word: the other already holds `u64::MAX`.
#[cfg(not(scx_rt_loom))]
#[inline]
pub(crate) fn publish_deadline(sh: &Shared, c: &Cpu, deadline: u64, slice: u64) {
    // `SLICE_INF` (no deadline) is never below the bound.
    let (poll, timer) = if slice < sh.cfg.poll_below {
        (deadline, u64::MAX)
    } else {
        (u64::MAX, deadline)
    };
    let w = &c.shared.poll_deadline;
    if w.load(Ordering::Relaxed) != poll {
        w.store(poll, Ordering::Relaxed);
    }
    let o = &c.shared.owner;
    sh.timer.set_deadline(&o.slice_deadline, &o.expiry, timer);
}

/// The work the step leaves for after the rq lock: drop the task that
/// exited, finish a hotplug move, wake the tasks it found, and on the
/// shutdown of the last task make every worker look. `from` is the calling worker's CPU.
#[inline]
pub(crate) fn finish(sh: &Shared, from: usize, after: &mut After) {
    if let Some(p) = after.exited.take() {
        // Its block, if unreferenced, stays with this CPU.
        #[cfg(not(scx_rt_loom))]
        crate::task_pool::retire(p);
        #[cfg(scx_rt_loom)]
        drop(p);
    }
    if after.work {
        finish_slow(sh, from, after);
    }
}

#[cold]
fn finish_slow(sh: &Shared, from: usize, after: &mut After) {
    after.work = false;
    if let Some((p, dst)) = after.moved.take() {
        crate::core::migrate::migrate_in(sh, p, dst);
    }
    if let Some(t) = after.raced.take() {
        wake_up(sh, t, WakeFlags::TTWU, Some(from));
    }
    for t in after.timers.drain(..) {
        if t.wake_claim() {
            wake_up(sh, t, WakeFlags::TTWU, Some(from));
        }
    }
    if std::mem::take(&mut after.shutdown_done) {
        for c in sh.cpus.iter() {
            c.resched();
        }
    }
}

/// The idle half of the step: `ops.update_idle` on real transitions (not
/// while bypassing) and the idle mask. rq locked.
fn idle_transition(sh: &Shared, c: &Cpu, slot: &SchedSlot, rq: &mut RqSynced, busy: bool) {
    let cpu = rq.cpu;
    if !busy && !rq.online() {
        // Offline: not an idle CPU for anyone (SPEC.md §3.12).
        c.shared.owner.idle.store(true, Ordering::Relaxed);
        return;
    }
    if rq.idle_notified == busy {
        // A real transition.
        rq.idle_notified = !busy;
        if !rq.bypassing() && slot.has.has(Op::UpdateIdle) {
            let ctx = Ctx::for_op(sh, Some(cpu), "update_idle", None);
            call_op(sh, slot, Op::UpdateIdle, None, || {
                slot.ops.update_idle(&ctx, cpu, !busy)
            });
        }
    }
    if busy {
        // Only this CPU sets its idle-mask bit, and only with `idle`: a CPU
        // that was busy at its last step cleared the bit then (a claim by
        // another CPU only clears it too), and a busy step costs one load.
        if c.shared.owner.idle.load(Ordering::Relaxed) {
            if sh.idle.cpu.test(cpu) {
                sh.idle.cpu.clear(cpu);
            }
            c.shared.owner.idle.store(false, Ordering::Relaxed);
        }
    } else {
        // Re-asserted on every idle pick, so a claimed CPU that got no
        // work shows up again (SPEC.md §5, idle->idle refresh). Kept even
        // when the scheduler turned built-in idle tracking off: the kernel
        // then stops maintaining the masks, but here bypass placement uses
        // them (the scheduler still cannot read them: its idle helpers are
        // errors).
        if !sh.idle.cpu.test(cpu) {
            sh.idle.cpu.set(cpu);
        }
        c.shared.owner.idle.store(true, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use crate::consts::{POLL_SLICE_MAX, SLICE_DFL, SLICE_INF};
    use crate::SliceTimer;

    /// Whether a slice of `slice` ns is polled in mode `m`, as
    /// `publish_deadline` decides.
    fn polled(m: SliceTimer, slice: u64) -> bool {
        slice < m.poll_below()
    }

    /// `Auto` polls up to the bound and times longer slices; the explicit
    /// modes do what they say whatever the length; no mode polls
    /// `SLICE_INF` (no deadline).
    #[test]
    fn which_slices_are_polled() {
        assert!(polled(SliceTimer::Auto, 30_000));
        assert!(polled(SliceTimer::Auto, POLL_SLICE_MAX));
        assert!(!polled(SliceTimer::Auto, POLL_SLICE_MAX + 1));
        assert!(!polled(SliceTimer::Auto, SLICE_DFL));
        assert!(polled(SliceTimer::Poll, SLICE_DFL));
        for m in [
            SliceTimer::Auto,
            SliceTimer::Signal,
            SliceTimer::Thread,
            SliceTimer::RealtimeThread,
            SliceTimer::Poll,
        ] {
            assert!(!polled(m, SLICE_INF), "{m:?}");
            if !matches!(m, SliceTimer::Auto | SliceTimer::Poll) {
                assert!(!polled(m, 5_000), "{m:?}");
            }
        }
    }
}
