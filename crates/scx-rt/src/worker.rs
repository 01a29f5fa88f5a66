//! The CPU main loop.
//!
//! Each worker thread is one CPU: pinned to its core, it loops
//!
//! ```text
//! loop {
//!     safe point (core::irq): the disable path if an exit is pending;
//!                 interrupt work (fired scheduler timers; queued
//!                 wake-ups are left to the step), the kick step; clear
//!                 need_resched if set
//!     core::step(prev, why prev stopped, drain)  rq locked inside: the
//!                 queued wake-ups first, then switch
//!     finish the step: wake the tasks whose timers fired or whose block
//!                 was cancelled late, complete a hotplug move
//!     run the picked task until it reaches a switch point, or run the
//!                 higher-class work the step released the CPU to
//!                 (`core::release`), or go idle
//! }
//! ```
//!
//! Every check of the safe point is a plain load first: a switch with
//! nothing pending (the common yield) performs no read-modify-write there.
//!
//! Going idle (`idle_wait`): poll (spin, marked POLLING, so a kick needs no
//! syscall) for the configured time, giving the OS CPU away every
//! `consts::IDLE_YIELD_NS` (another thread of the CPU runs at once), then
//! sleep on the doorbell with a timeout at the earliest sleep timer (the
//! no-lost-wake-up argument is in `doorbell`).
//! A CPU with I/O registered also looks at its reactor: every
//! `IO_POLL_INTERVAL_NS` between steps while busy, once before the poll,
//! every `IO_IDLE_PEEK_NS` during it, and sleeps in `epoll_wait`; in a
//! runtime whose tasks may migrate, a CPU with nothing to run also
//! collects its siblings' reactors (the protocol is in `io`, "Who
//! collects what" and "Who waits where"). The same busy look, and the
//! moment before a sleep, end the epochs of the CPU's task pool
//! (`task_pool`).
//!
//! Slice expiry (the `timer` module docs): a polled slice (`SliceTimer::Poll`,
//! and `Auto`'s short ones) is ended by the task's own preemption points,
//! which compare the clock with the deadline the step published; for the
//! others (`Signal`, `Auto`'s long slices) the worker owns a POSIX timer
//! that signals this thread; it is created before the
//! first pick and re-armed by the step's deadline publication only when a
//! deadline is earlier than the armed one. It is left armed across the
//! doorbell sleep: an idle CPU publishes no deadline, so if the sleep
//! outlasts the armed deadline the timer fires once, finds nothing to end
//! and stays disarmed (the sleep returns early once and goes on). Disarming
//! before each sleep and re-arming at the next pick cost two system calls
//! per sleep, which a CPU that sleeps between short bursts (an I/O server,
//! a cross-CPU hand-off) paid at every hop.
//!
//! A green task stops running only at a switch point: it suspends its fiber
//! with a code telling why (`YIELD`, `PREEMPT`, `BLOCK`), or returns. A
//! `PREEMPT` stop for interrupt work alone is an interrupt, not a switch:
//! the worker runs the work and resumes the task (`interrupt_only`).

use std::rc::Rc;
use std::sync::Arc;

use crate::context::{WorkerTls, SW_BLOCK, SW_YIELD};
use crate::core::slot::SchedSlot;
use crate::core::step::{finish, step, After, Switch};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::task::TaskRef;
use scx_rt_sys::stack_cache::StackCache;

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
    let expiry = expiry_timer(&sh, cpu);
    let s = &sh.cpus[cpu].shared;
    crate::core::current::enter_worker(sh.rt_id, cpu, s.remote.clone(), s.poll_deadline.clone());
    crate::context::enter(WorkerTls {
        sh: sh.clone(),
        blocking,
        cpu,
    });
    let mut slot: Rc<crate::core::slot::SchedSlot> = sh.cur_slot();
    // This CPU's own stack cache: a task's first run takes its stack from
    // it and its exit gives the stack back, with no thread-local lookup.
    let mut stacks = sh.stacks.cache();
    let mut after = After::default();
    let mut prev: Option<(TaskRef, Switch)> = None;
    let mut next_io_poll = 0u64;
    let look = crate::io::look::Looker::new(&sh, cpu);
    // The loop works on the runtime itself, not on its `Arc`: no pointer
    // adjustment from the `Arc` to its contents at each use.
    let sh: &Shared = &sh;
    let c: &crate::rq::Cpu = &sh.cpus[cpu];
    loop {
        let drain = crate::core::irq::safe_point_on(sh, c);
        let next = step(sh, c, &mut slot, prev.take(), drain, &mut after);
        finish(sh, cpu, &mut after);
        if after.now >= next_io_poll {
            // A busy CPU looks at its reactor every so often (`io`), and
            // ends its task pool's epoch when due (`task_pool`); the
            // common step pays one compare.
            next_io_poll = after.now.saturating_add(crate::consts::IO_POLL_INTERVAL_NS);
            look.busy();
            let _ = crate::task_pool::tick(after.now, crate::consts::TASK_POOL_BUSY_RELEASE);
        }
        crate::kick::run_pending_on(sh, c);
        match next {
            Some(mut t) => {
                let sw = loop {
                    let (back, sw) = run_task(sh, cpu, &mut stacks, t);
                    t = back;
                    if sw != Switch::Preempt || !interrupt_only(sh, cpu, &t, &slot) {
                        break sw;
                    }
                };
                prev = Some((t, sw));
            }
            None => {
                if std::mem::take(&mut after.higher_class) {
                    // The CPU was released to higher-class work
                    // (`core::release`): it runs now, ahead of every task.
                    crate::core::release::run_higher_class(sh, cpu);
                    continue;
                }
                if sh.shutdown.load(Ordering::Acquire) && sh.live.live() == 0 {
                    break;
                }
                if idle(sh, cpu, &mut stacks, after.now, &look) {
                    // The wait ended with a fresh look at this CPU's
                    // reactor (an epoll sleep returned, or the first look
                    // found events): the busy look is due an interval from now,
                    // not at the first step after a long sleep (which put
                    // a second, empty `epoll_wait` between an I/O wake-up
                    // and its task).
                    next_io_poll = crate::core::clock::now()
                        .saturating_add(crate::consts::IO_POLL_INTERVAL_NS);
                }
            }
        }
    }
    drop(stacks);
    crate::core::release::close_higher_class(sh, cpu);
    sh.cpus[cpu].shared.owner.expiry.store(0, Ordering::Relaxed);
    drop(expiry);
    crate::context::leave();
    crate::core::current::leave_worker();
}

/// This worker's slice-expiry timer (`SliceTimer::Signal`), over the CPU's
/// `slice_deadline`, `tick_pending` and the two halves of `need_resched`
/// (what the timer thread sets for an expired CPU, in the same order),
/// published in `owner.expiry` before the worker picks its first task.
/// `None` in the thread modes, and when the timer cannot be created: the
/// timer thread then watches this CPU (it reads `owner.expiry` at each
/// scan).
fn expiry_timer(sh: &Arc<Shared>, cpu: usize) -> Option<ExpiryTimer> {
    if !matches!(
        sh.cfg.slice_timer,
        crate::SliceTimer::Signal | crate::SliceTimer::Auto
    ) {
        return None;
    }
    let t = scx_rt_sys::expiry::ExpiryTimer::new(sh.clone(), cpu, expiry_target).ok()?;
    let o = &sh.cpus[cpu].shared.owner;
    o.expiry.store(t.handle().to_raw(), Ordering::Relaxed);
    Some(t)
}

type ExpiryTimer = scx_rt_sys::expiry::ExpiryTimer<Shared>;

fn expiry_target(sh: &Shared, cpu: usize) -> scx_rt_sys::expiry::Target<'_> {
    let s = &sh.cpus[cpu].shared;
    scx_rt_sys::expiry::Target {
        deadline: &s.owner.slice_deadline,
        pending: &s.remote.tick_pending,
        raise: [&s.remote.resched_req, &s.remote.need_resched],
    }
}

/// The running task `t` stopped at a preemption point. If only interrupt
/// work was pending (no kick, no expired or zeroed slice, no exit), runs it
/// and returns true: the task resumes without a scheduling pass, so the
/// scheduler sees no `stopping`/`running` pair for an interrupt. The
/// `need_resched` clear comes before the `resched_req` read, so a request
/// racing with this either is seen here or sets `need_resched` again after
/// the clear (both SeqCst).
fn interrupt_only(sh: &Shared, cpu: usize, t: &TaskRef, slot: &SchedSlot) -> bool {
    let s = &sh.cpus[cpu].shared;
    s.remote.need_resched.store(false, Ordering::SeqCst);
    if s.remote.resched_req.swap(false, Ordering::SeqCst) {
        return false;
    }
    crate::core::irq::run_irq_work(sh, cpu, Some(slot));
    !(s.remote.resched_req.swap(false, Ordering::SeqCst)
        || s.remote.tick_pending.load(Ordering::Acquire)
        || s.kick.sync_pending.load(Ordering::Acquire)
        || t.slice() == 0
        || sh.exit.pending.load(Ordering::Acquire))
}

/// Runs `t` until it reaches a switch point; returns it with the reason it
/// stopped.
fn run_task(sh: &Shared, cpu: usize, stacks: &mut StackCache, t: TaskRef) -> (TaskRef, Switch) {
    // The bound CPU first: a started task of the default kind (not
    // migratable) is bound already, and this one load settles it.
    if t.bound_cpu.load(Ordering::Relaxed) < 0 && !t.migratable {
        t.bound_cpu.store(cpu as i32, Ordering::Relaxed);
        // One writer (this worker): a load and a store.
        let n = &sh.cpus[cpu].shared.owner.nr_bound;
        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    // The body lock is held only by the CPU running the task; it guards the
    // fiber, whose resume is the switch itself. The task is lent to its
    // fiber for the run (`context::current_task`).
    // A finished fiber stays in its task until the task is dropped: it
    // holds nothing (its stack went back when the body returned).
    let r = {
        let mut body = t.body.lock();
        match body.as_mut() {
            Some(f) => f.resume_cached(stacks, t.id(), &t),
            None => Ok(scx_rt_sys::fiber::Resumed::Finished),
        }
    };
    let sw = match r {
        Ok(scx_rt_sys::fiber::Resumed::Suspended(SW_YIELD)) => Switch::Yield,
        Ok(scx_rt_sys::fiber::Resumed::Suspended(SW_BLOCK)) => Switch::Block,
        Ok(scx_rt_sys::fiber::Resumed::Suspended(_)) => Switch::Preempt,
        Ok(scx_rt_sys::fiber::Resumed::Finished) => {
            if t.bound_cpu.load(Ordering::Relaxed) == cpu as i32 {
                // Bound here at its first run (above); it exits here.
                let n = &sh.cpus[cpu].shared.owner.nr_bound;
                n.store(
                    n.load(Ordering::Relaxed).saturating_sub(1),
                    Ordering::Relaxed,
                );
            }
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

/// The idle wait of CPU `cpu` after a step that found nothing to run, at
/// clock reading `now` (the step's); `look` is the CPU's looks at the
/// reactors (`io::look`). Returns whether it ended with a look at this
/// CPU's own reactor that is as good as the busy one (`Looker::busy`):
/// the first look found events, or an epoll sleep returned.
fn idle(
    sh: &Shared,
    cpu: usize,
    stacks: &mut StackCache,
    now: u64,
    look: &crate::io::look::Looker<'_>,
) -> bool {
    let io = look.prepare();
    // Ready I/O first, without blocking (Go's `findrunnable`).
    if io && look.dry() > 0 {
        return look.has_own();
    }
    let end = sh.cpus[cpu].idle_wait_with(
        sh.cfg.idle_poll_ns,
        now,
        || crate::core::irq::idle_wake(sh, cpu),
        || {
            // Release the memory of stacks cached after a burst, off the
            // hot path (scx_rt_sys::stack docs), and the task blocks no
            // spawn took for an epoch (`task_pool`: the rest stay while
            // the CPU sleeps).
            stacks.trim(crate::consts::STACKS_KEEP_RESIDENT);
            // The CPU shows as polling here: a wake-up is seen after the
            // batch in hand, not after the whole release.
            let s = &sh.cpus[cpu].shared;
            // Each round releases one batch (not a busy wait).
            while crate::task_pool::tick(now, crate::consts::TASK_POOL_BUSY_RELEASE) {
                if s.remote.need_resched.load(Ordering::SeqCst)
                    || crate::core::irq::idle_wake(sh, cpu)
                {
                    break;
                }
            }
            // The expiry timer stays armed (module docs).
        },
        io.then_some(look as &dyn crate::idle_wait::IdleIo),
    );
    if io {
        // The events the idle looks collected, woken now that the CPU is
        // RUNNING (a wake-up made during the sleep would ring itself),
        // with `SYNC`: this CPU has nothing else to run.
        let n = look.wake(crate::flags::WakeFlags::TTWU | crate::flags::WakeFlags::SYNC);
        let st = &sh.cpus[cpu].shared.owner.stats;
        match end {
            crate::idle_wait::IdleEnd::IoWhilePolling => add(&st.io_wakeups_polling, n),
            crate::idle_wait::IdleEnd::Slept => add(&st.io_wakeups_slept, n),
            _ => {}
        }
        // (A look that found events while polling may have been a
        // sibling's: not counted.)
        return look.has_own() && matches!(end, crate::idle_wait::IdleEnd::Slept);
    }
    false
}

/// Adds `n` to an owner-written counter (`CpuCounters`: one writer).
fn add(c: &crate::loom::AtomicU64, n: usize) {
    if n > 0 {
        c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
    }
}
