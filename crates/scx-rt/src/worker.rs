//! The CPU main loop.
//!
//! Each worker thread is one CPU: pinned to its core, it loops
//!
//! ```text
//! loop {
//!     safe point: run the disable path if an exit is pending;
//!                 run this CPU's interrupt work (fired scheduler timers,
//!                 then its kick step)
//!     clear need_resched
//!     schedule(prev, why prev stopped)       rq locked inside
//!     wake the tasks whose timers fired or whose block was cancelled late
//!     run the picked task until it reaches a switch point, or go idle
//! }
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

use std::cmp::Reverse;
use std::sync::Arc;

use crate::context::{set_task, wake_task, WorkerTls, SW_BLOCK, SW_YIELD};
use crate::core::clock::now;
use crate::core::error::{call, call_task};
use crate::flags::{DeqFlags, WakeFlags};
use crate::loom::Ordering;
use crate::ops::Ctx;
use crate::ops::Shared;
use crate::rq::RqSynced;
use crate::task::TaskRef;

/// Why a task stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    Yield,
    Preempt,
    Block,
    Exit,
}

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
        task: None,
    });
    let c = &sh.cpus[cpu];
    let mut prev: Option<(TaskRef, Switch)> = None;
    loop {
        if sh.exit.pending.load(Ordering::Acquire) {
            crate::disable::disable(&sh);
        }
        run_irq_work(&sh, cpu);
        crate::kick::wait_for_targets(&sh, cpu);
        // The pass below serves every request made so far. Interrupt work
        // raised since `run_irq_work` keeps `need_resched` set (raise_irq
        // stores `irq_pending` first), so the next task stops for it.
        c.shared.need_resched.store(false, Ordering::SeqCst);
        c.shared.resched_req.store(false, Ordering::SeqCst);
        if c.shared.irq_pending.load(Ordering::SeqCst) {
            c.shared.need_resched.store(true, Ordering::SeqCst);
        }
        let (next, wakeups) = schedule(&sh, cpu, prev.take());
        for t in wakeups {
            crate::core::enqueue::wake_up(&sh, &t, WakeFlags::TTWU, Some(cpu));
        }
        crate::kick::run_pending(&sh, Some(cpu));
        match next {
            Some(t) => {
                let sw = loop {
                    let sw = run_task(&sh, cpu, &t);
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

/// The CPU's interrupt work, at a point where it holds no lock: the
/// scheduler timers that fired for it, then its kick step.
fn run_irq_work(sh: &Shared, cpu: usize) {
    let s = &sh.cpus[cpu].shared;
    if s.irq_pending.swap(false, Ordering::SeqCst) {
        let mut fired = s.ops_timers_fired.swap(0, Ordering::AcqRel);
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
    if s.resched_req.swap(false, Ordering::SeqCst) {
        return false;
    }
    run_irq_work(sh, cpu);
    !(s.resched_req.swap(false, Ordering::SeqCst)
        || s.tick_pending.load(Ordering::Acquire)
        || s.kick_sync_pending.load(Ordering::Acquire)
        || t.slice() == 0
        || sh.exit.pending.load(Ordering::Acquire))
}

fn fire_timers(sh: &Shared, rq: &mut RqSynced, out: &mut Vec<TaskRef>, now: u64) {
    if now < sh.cpus[rq.cpu].shared.next_timer.load(Ordering::Relaxed) {
        return;
    }
    while let Some(Reverse(t)) = rq.timers.peek() {
        if t.deadline > now {
            break;
        }
        if let Some(Reverse(t)) = rq.timers.pop() {
            out.push(t.task);
        }
    }
    sh.cpus[rq.cpu]
        .shared
        .next_timer
        .store(rq.next_timer().unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// One scheduling step. Returns the next task and tasks to wake once the rq
/// lock is released. No lock held on entry or return.
fn schedule(
    sh: &Shared,
    cpu: usize,
    prev: Option<(TaskRef, Switch)>,
) -> (Option<TaskRef>, Vec<TaskRef>) {
    let c = &sh.cpus[cpu];
    let mut rq = c.rq.lock();
    let now = now();
    let mut timer_wakeups = Vec::new();
    fire_timers(sh, &mut rq, &mut timer_wakeups, now);
    let mut self_wakeups = Vec::new();
    let mut prev_task = None;
    if let Some((p, sw)) = prev {
        crate::core::pick::update_curr(&p, now);
        let slot = sh.slot(rq.sched_gen);
        let ctx = Ctx::new(sh, Some(cpu));
        match sw {
            Switch::Yield => {
                if rq.bypassing() {
                    p.set_slice(0);
                } else {
                    call_task(sh, "yield", &p, || slot.ops.yield_(&ctx, &p, None));
                }
                prev_task = Some(p);
            }
            Switch::Preempt => {
                if c.shared.tick_pending.swap(false, Ordering::AcqRel) {
                    // The slice timer fired (task_tick): bypass rotates
                    // every tick; otherwise the scheduler sees the tick.
                    if rq.bypassing() {
                        p.set_slice(0);
                    } else {
                        call_task(sh, "tick", &p, || slot.ops.tick(&ctx, &p));
                    }
                }
                prev_task = Some(p);
            }
            Switch::Block => {
                if p.block_begin() {
                    crate::core::dequeue::dequeue_task(sh, &mut rq, &p, DeqFlags::SLEEP, true);
                    p.scx.on_cpu.store(false, Ordering::Relaxed);
                    c.shared.pnt_seq.fetch_add(1, Ordering::Release);
                    rq.curr = None;
                    if !p.block_finish() {
                        self_wakeups.push(p);
                    }
                } else {
                    prev_task = Some(p);
                }
            }
            Switch::Exit => {
                crate::core::dequeue::dequeue_task(sh, &mut rq, &p, DeqFlags::SLEEP, true);
                p.scx.on_cpu.store(false, Ordering::Relaxed);
                c.shared.pnt_seq.fetch_add(1, Ordering::Release);
                rq.curr = None;
                let gen = p.scx.sched_gen.load(Ordering::Acquire);
                crate::core::dequeue::task_leave_scheduler_locked(sh, &rq, &p, gen, false);
                sh.tasks.remove(&p);
                if sh.live_tasks.fetch_sub(1, Ordering::AcqRel) == 1
                    && sh.shutdown.load(Ordering::Acquire)
                {
                    for c in sh.cpus.iter() {
                        c.resched();
                    }
                }
            }
        }
    }
    // A CPU that went offline under a task that may run elsewhere sends it
    // away at its first switch (the kernel's `migrate_tasks`).
    let mut moved = None;
    if !rq.online() {
        if let Some(p) = prev_task.take_if(|p| p.is_queued() && p.single_cpu() != Some(cpu)) {
            let dst = crate::core::migrate::migrate_out_curr(sh, &mut rq, &p);
            moved = Some((p, dst));
        }
    }
    let mut trace = rq.balance_trace.take();
    let next = crate::core::pick::pick_next_task(sh, &mut rq, prev_task.as_ref(), &mut trace, now);
    rq.balance_trace = trace;
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(cpu));
    match &next {
        None if !rq.online() => {
            // Offline: not an idle CPU for anyone (SPEC.md §3.12).
            c.shared.idle.store(true, Ordering::Relaxed);
        }
        None => {
            if !rq.idle_notified {
                rq.idle_notified = true;
                if !rq.bypassing() {
                    call(sh, "update_idle", || slot.ops.update_idle(&ctx, cpu, true));
                }
            }
            // Re-asserted on every idle pick, so a claimed CPU that got no
            // work shows up again (SPEC.md §5, idle->idle refresh). Kept
            // even when the scheduler turned built-in idle tracking off:
            // the kernel then stops maintaining the masks, but here bypass
            // placement uses them (the scheduler still cannot read them,
            // its idle helpers are errors).
            if !sh.idle.cpu.test(cpu) {
                sh.idle.cpu.set(cpu);
            }
            c.shared.idle.store(true, Ordering::Relaxed);
        }
        Some(_) => {
            if rq.idle_notified {
                rq.idle_notified = false;
                if !rq.bypassing() {
                    call(sh, "update_idle", || slot.ops.update_idle(&ctx, cpu, false));
                }
            }
            if sh.idle.cpu.test(cpu) {
                sh.idle.cpu.clear(cpu);
            }
            c.shared.idle.store(false, Ordering::Relaxed);
        }
    }
    crate::core::enqueue::process_ddsp_deferred_locals(sh, &mut rq);
    self_wakeups.append(&mut rq.deferred_wakeups);
    drop(rq);
    let deadline = match &next {
        Some(t) if t.slice() != crate::consts::SLICE_INF => now.saturating_add(t.slice()),
        _ => u64::MAX,
    };
    c.shared.tick_pending.store(false, Ordering::Relaxed);
    sh.timer.set_deadline(&c.shared.slice_deadline, deadline);
    if let Some((p, dst)) = moved {
        crate::core::migrate::migrate_in(sh, &p, dst);
    }
    for t in timer_wakeups {
        wake_task(sh, &t);
    }
    (next, self_wakeups)
}

fn run_task(sh: &Arc<Shared>, cpu: usize, t: &TaskRef) -> Switch {
    if !t.migratable && t.bound_cpu.load(Ordering::Relaxed) < 0 {
        t.bound_cpu.store(cpu as i32, Ordering::Relaxed);
    }
    set_task(Some(t.clone()));
    scx_rt_sys::sigsegv::set_current_task(t.id());
    let r = {
        let mut body = t.body.lock();
        match body.as_mut() {
            Some(f) => f.resume(&sh.stacks),
            None => Ok(scx_rt_sys::fiber::Resumed::Finished),
        }
    };
    scx_rt_sys::sigsegv::set_current_task(0);
    set_task(None);
    match r {
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
            crate::spawn::fail_unstarted(sh, t, e);
            Switch::Exit
        }
    }
}

fn idle(sh: &Shared, cpu: usize) {
    let s = &sh.cpus[cpu].shared;
    sh.cpus[cpu].idle_wait(
        sh.cfg.idle_poll_ns,
        || {
            s.kick_pending.load(Ordering::Relaxed)
                || s.irq_pending.load(Ordering::Relaxed)
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
