//! The CPU main loop.
//!
//! Each worker thread is one CPU: pinned to its core, it loops
//!
//! ```text
//! loop {
//!     safe point: run the disable path if an exit is pending;
//!                 run this CPU's interrupt work (fired scheduler timers,
//!                 then its kick step); clear need_resched
//!     core::step(prev, why prev stopped)     rq locked inside
//!     finish the step: wake the tasks whose timers fired or whose block
//!                 was cancelled late, complete a hotplug move
//!     run the picked task until it reaches a switch point, or go idle
//! }
//! ```
//!
//! Every check of the safe point is a plain load first: a switch with
//! nothing pending (the common yield) performs no read-modify-write here.
//!
//! ```text
//! ```
//!
//! Going idle: poll (spin, marked POLLING, so a kick needs no syscall) for
//! the configured time, then sleep on the doorbell with a timeout at the
//! earliest sleep timer (the no-lost-wake-up argument is in `doorbell`).
//!
//! A green task stops running only at a switch point: it suspends its fiber
//! with a code telling why (`YIELD`, `PREEMPT`, `BLOCK`), or returns. A
//! `PREEMPT` stop for interrupt work alone is an interrupt, not a switch:
//! the worker runs the work and resumes the task (`interrupt_only`).

use std::rc::Rc;
use std::sync::Arc;

use crate::context::{WorkerTls, SW_BLOCK, SW_YIELD};
use crate::core::error::call;
use crate::core::step::{finish, step, After, Switch};
use crate::kick_state::KickState;
use crate::loom::Ordering;
use crate::ops::{Ctx, Shared};
use crate::task::TaskRef;

/// The loop of CPU `cpu`'s worker thread.
pub(crate) fn worker_main(
    sh: Arc<Shared>,
    blocking: Arc<crate::blocking::pool::BlockingPool>,
    cpu: usize,
) {
    // Sleep timers wake an idle worker by a futex timeout: no timer slack
    // (see `timer_main`).
    let _ = scx_rt_sys::sigtimer::set_timer_slack(1);
    // The stack-overflow report of a green task runs on this alternate
    // signal stack (scx_rt_sys::sigsegv); without one the process dies
    // silently. Best effort: a failure only loses the message.
    let _altstack = scx_rt_sys::sigsegv::AltStack::install().ok();
    crate::core::current::enter_worker(sh.rt_id, cpu, sh.cpus[cpu].shared.need_resched.clone());
    crate::context::enter(WorkerTls {
        sh: sh.clone(),
        blocking,
        cpu,
    });
    let mut slot: Rc<crate::core::slot::SchedSlot> = sh.cur_slot();
    let mut after = After::default();
    let mut prev: Option<(TaskRef, Switch)> = None;
    loop {
        safe_point(&sh, cpu);
        let next = step(&sh, cpu, &mut slot, prev.take(), &mut after);
        finish(&sh, cpu, &mut after);
        crate::kick::run_pending(&sh, Some(cpu));
        match next {
            Some(mut t) => {
                let sw = loop {
                    let (back, sw) = run_task(&sh, cpu, t);
                    t = back;
                    if sw != Switch::Preempt || !interrupt_only(&sh, cpu, &t) {
                        break sw;
                    }
                };
                prev = Some((t, sw));
            }
            None => {
                if sh.shutdown.load(Ordering::Acquire) && sh.live_tasks.load(Ordering::Acquire) == 0
                {
                    break;
                }
                idle(&sh, cpu);
            }
        }
    }
    crate::context::leave();
    crate::core::current::leave_worker();
}

/// The safe point before a step: no lock held. The disable path if an
/// exit is pending, the CPU's interrupt work, a pending `KICK_WAIT`, then
/// `need_resched` is cleared: the step below serves every request made so
/// far. Interrupt work raised since keeps `need_resched` set (`raise_irq`
/// stores `irq_pending` first), so the next task stops for it. A flag that
/// reads clear costs one load and no store.
#[inline]
fn safe_point(sh: &Shared, cpu: usize) {
    let s = &sh.cpus[cpu].shared;
    if sh.exit.pending.load(Ordering::Acquire) {
        crate::disable::disable(sh);
    }
    run_irq_work(sh, cpu);
    crate::kick::wait_for_targets(sh, cpu);
    // The clears are SeqCst stores, made only when set: a wake-up that
    // sets the flag after our load is never overwritten, and one before it
    // is ordered before the step's reads of the queues.
    if s.need_resched.load(Ordering::Relaxed) {
        s.need_resched.store(false, Ordering::SeqCst);
    }
    if s.remote.resched_req.load(Ordering::Relaxed) {
        s.remote.resched_req.store(false, Ordering::SeqCst);
    }
    if s.remote.irq_pending.load(Ordering::SeqCst) {
        s.need_resched.store(true, Ordering::SeqCst);
    }
}

/// The CPU's interrupt work, at a point where it holds no lock: the
/// scheduler timers that fired for it, then its kick step.
fn run_irq_work(sh: &Shared, cpu: usize) {
    let s = &sh.cpus[cpu].shared;
    if KickState::take(&s.remote.irq_pending) {
        crate::core::enqueue::drain_wake_list(sh, cpu);
        let mut fired = s.remote.ops_timers_fired.swap(0, Ordering::AcqRel);
        if fired != 0 {
            let slot = sh.cur_slot();
            let ctx = Ctx::new(sh, Some(cpu));
            while fired != 0 {
                let id = fired.trailing_zeros();
                fired &= fired - 1;
                call(sh, "timer", || slot.ops.timer(&ctx, id));
            }
        }
    }
    crate::kick::run_pending(sh, Some(cpu));
}

/// The running task `t` stopped at a preemption point. If only interrupt
/// work was pending (no kick, no expired or zeroed slice, no exit), runs it
/// and returns true: the task resumes without a scheduling pass, so the
/// scheduler sees no `stopping`/`running` pair for an interrupt. The
/// `need_resched` clear comes before the `resched_req` read, so a request
/// racing with this either is seen here or sets `need_resched` again after
/// the clear (both SeqCst).
fn interrupt_only(sh: &Shared, cpu: usize, t: &TaskRef) -> bool {
    let s = &sh.cpus[cpu].shared;
    s.need_resched.store(false, Ordering::SeqCst);
    if s.remote.resched_req.swap(false, Ordering::SeqCst) {
        return false;
    }
    run_irq_work(sh, cpu);
    !(s.remote.resched_req.swap(false, Ordering::SeqCst)
        || s.remote.tick_pending.load(Ordering::Acquire)
        || s.kick.sync_pending.load(Ordering::Acquire)
        || t.slice() == 0
        || sh.exit.pending.load(Ordering::Acquire))
}

/// Runs `t` until it reaches a switch point; returns it with the reason it
/// stopped.
fn run_task(sh: &Arc<Shared>, cpu: usize, t: TaskRef) -> (TaskRef, Switch) {
    if !t.migratable && t.bound_cpu.load(Ordering::Relaxed) < 0 {
        t.bound_cpu.store(cpu as i32, Ordering::Relaxed);
    }
    // The body lock is held only by the CPU running the task; it guards the
    // fiber, whose resume is the switch itself. The task is lent to its
    // fiber for the run (`context::current_task`).
    let r = {
        let mut body = t.body.lock();
        match body.as_mut() {
            Some(f) => f.resume_with(&sh.stacks, t.id(), &t),
            None => Ok(scx_rt_sys::fiber::Resumed::Finished),
        }
    };
    let sw = match r {
        Ok(scx_rt_sys::fiber::Resumed::Suspended(SW_YIELD)) => Switch::Yield,
        Ok(scx_rt_sys::fiber::Resumed::Suspended(SW_BLOCK)) => Switch::Block,
        Ok(scx_rt_sys::fiber::Resumed::Suspended(_)) => Switch::Preempt,
        Ok(scx_rt_sys::fiber::Resumed::Finished) => {
            *t.body.lock() = None;
            Switch::Exit
        }
        Err(e) => {
            // No stack for its first run: retrying would spin on the same
            // refusal, so the task fails instead (its `join` says why) and
            // leaves like a finished one.
            crate::spawn::fail_unstarted(sh, &t, e);
            Switch::Exit
        }
    };
    (t, sw)
}

fn idle(sh: &Shared, cpu: usize) {
    let s = &sh.cpus[cpu].shared;
    sh.cpus[cpu].idle_wait(
        sh.cfg.idle_poll_ns,
        || {
            s.kick.pending.load(Ordering::Relaxed)
                || s.remote.irq_pending.load(Ordering::Relaxed)
                || sh.exit.pending.load(Ordering::Relaxed)
                || (sh.shutdown.load(Ordering::Relaxed)
                    && sh.live_tasks.load(Ordering::Relaxed) == 0)
        },
        // Release the memory of stacks cached after a burst, off the hot
        // path (scx_rt_sys::stack docs).
        || {
            sh.stacks.trim(crate::consts::STACKS_KEEP_RESIDENT);
        },
    );
}
