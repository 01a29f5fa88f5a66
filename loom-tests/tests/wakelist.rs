//! Model 8: queued remote wake-ups (the wake list; the kernel's
//! `ttwu_queue_wakelist`).
//!
//! Tasks bound to CPU 1 are asleep and CPU 1 is idle. A waker wakes one:
//! CPU 1 looks idle, so the waker takes no lock of CPU 1's rq but calls
//! `Cpu::queue_wakeup` (push on CPU 1's wake list, set `irq_pending`, set
//! `need_resched`, ring the doorbell). CPU 1 meanwhile runs its worker loop
//! from the top:
//!
//! ```text
//! safe point   take irq_pending (the drain is left to the step) -> kick
//!              step -> if need_resched is set: clear need_resched and
//!              resched_req -> set need_resched again if irq_pending
//! step         core::step: drain the wake list (enqueue each task under the
//!              rq lock the step holds) if the safe point took irq_pending,
//!              balance, pick                          (Runtime::schedule)
//! idle         idle_wait with the worker's condition: poll, publish
//!              SLEEPING, re-check, sleep on the doorbell
//! ```
//!
//! `Runtime::safe_point` mirrors `worker::safe_point`, and the condition of
//! `Runtime::idle` is a copy of `worker::idle`'s (worker.rs is not compiled
//! under loom); everything else is the code the workers run: `wake_up`,
//! `queue_wakeup`, `KickState::take`, `drain_wake_list_locked`, `core::step`,
//! `idle_wait` and the doorbell.
//!
//! 1. `queued_wakeup_reaches_an_idle_cpu`: the wake-up may land before,
//!    during or after the drain, the clears, the step and each phase of the
//!    idle wait. If it could be lost, some interleaving leaves CPU 1 asleep
//!    with the task on its wake list (loom: deadlock). CPU 1 ends up running
//!    the task, which the policy was asked to enqueue exactly once, as a
//!    wake-up, and which is on no queue while it runs.
//! 2. `wakeup_queued_during_the_drain_is_enqueued`: task A's wake-up is
//!    already queued; B's waker (the real `wake_up`) races with CPU 1
//!    handling A's (drain, clears, step), so it may find CPU 1 idle (queue)
//!    or running A (enqueue under the rq lock), and may find `irq_pending`
//!    and `need_resched` already set. Once B's waker returned, B waits in
//!    CPU 1's local DSQ or on its wake list with `irq_pending` set; A then
//!    blocks and CPU 1 runs B. `…_stops_the_next_task` also asks that a B
//!    still on the wake list has `need_resched` set, so that A stops for it
//!    at its next preemption point (the store-buffering race the README's
//!    reliability section describes; it failed before the fences in
//!    `queue_wakeup` and `core::irq::clear_resched`).
//! 3. `two_wakers_both_tasks_run`: two wakers (three threads) queue the
//!    wake-ups of A and B concurrently while CPU 1 runs its loop; CPU 1
//!    runs one, then the other once the first blocks, each enqueued once.
//!    The search grows too fast for CI beyond preemption bound 2 (186 318
//!    interleavings at 3, 1.7 million at 4), so it is capped there.
#![cfg(scx_rt_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, model_capped};
use scx_rt::model::Runtime;
use scx_rt::TaskRef;

/// CPU `cpu`'s worker loop from the top until its step picks a task,
/// which it then runs.
fn worker_until_running(rt: &Runtime, cpu: usize) -> TaskRef {
    loop {
        rt.safe_point(cpu);
        if let Some(t) = rt.schedule(cpu, None) {
            return t;
        }
        rt.idle(cpu);
    }
}

/// Once every waker returned and CPU 1 runs `first`: `other` waits in CPU
/// 1's local DSQ, or on its wake list with interrupt work raised (and, if
/// `strict`, `need_resched` set, so that `first` stops for it at its next
/// preemption point). Then `first` blocks, and CPU 1 goes round its loop
/// and must run `other`.
fn other_runs_next(rt: &Runtime, first: TaskRef, other: &TaskRef, strict: bool) {
    if rt.wake_list_len(1) == 0 {
        assert_eq!(rt.places(other), vec![("local", 1)]);
    } else {
        assert!(rt.irq_pending(1), "a queued wake-up without interrupt work");
        if strict {
            assert!(
                rt.need_resched(1),
                "a wake-up queued for CPU 1 does not stop the task it runs"
            );
        }
    }
    rt.safe_point(1);
    let next = rt.schedule_after_block(1, &first);
    assert_eq!(next.as_ref().map(|t| t.id()), Some(other.id()));
    check_ran(rt, &[first, next.unwrap()]);
}

/// What must hold once CPU 1 ran the woken tasks `ran` (each blocked
/// again after it ran, but the last, which CPU 1 still runs).
fn check_ran(rt: &Runtime, ran: &[TaskRef]) {
    let last = ran.last().unwrap();
    assert_eq!(rt.curr(1).map(|t| t.id()), Some(last.id()));
    for p in ran {
        assert_eq!(rt.places(p), vec![], "task {} is on a queue", p.id());
        assert_eq!(
            rt.enqueues(p),
            (1, 0),
            "task {} was not enqueued exactly once, as a wake-up",
            p.id()
        );
    }
    assert_eq!(rt.wake_list_len(1), 0);
    assert_eq!(rt.local_len(1), 0);
    assert_eq!(rt.nr_running(1), 1);
}

#[test]
fn queued_wakeup_reaches_an_idle_cpu() {
    model("queued_wakeup_reaches_an_idle_cpu", || {
        let rt = Arc::new(Runtime::with_local(2));
        let p = rt.asleep_on(1, 7);
        let (rt0, p0) = (rt.clone(), p.clone());
        let waker = thread::spawn(move || rt0.wake(Some(0), &p0));
        let ran = worker_until_running(&rt, 1);
        waker.join().unwrap();
        assert_eq!(ran.id(), 7);
        check_ran(&rt, &[ran]);
    });
}

/// Model 2: A's wake-up is queued, B's waker (a thread that is no worker)
/// races with CPU 1's loop.
fn wakeup_during_the_drain(strict: bool) {
    let rt = Arc::new(Runtime::with_local(2));
    let a = rt.asleep_on(1, 1);
    let b = rt.asleep_on(1, 2);
    rt.wake(Some(0), &a);
    assert_eq!(rt.wake_list_len(1), 1);
    let (rt1, b1) = (rt.clone(), b.clone());
    let waker = thread::spawn(move || rt1.wake(None, &b1));
    let first = worker_until_running(&rt, 1);
    waker.join().unwrap();
    let other = if first.id() == a.id() { &b } else { &a };
    other_runs_next(&rt, first, other, strict);
}

#[test]
fn wakeup_queued_during_the_drain_is_enqueued() {
    model("wakeup_queued_during_the_drain_is_enqueued", || {
        wakeup_during_the_drain(false)
    });
}

#[test]
fn wakeup_queued_during_the_drain_stops_the_next_task() {
    model("wakeup_queued_during_the_drain_stops_the_next_task", || {
        wakeup_during_the_drain(true)
    });
}

#[test]
fn two_wakers_both_tasks_run() {
    model_capped("two_wakers_both_tasks_run", 2, || {
        let rt = Arc::new(Runtime::with_local(2));
        let a = rt.asleep_on(1, 1);
        let b = rt.asleep_on(1, 2);
        let (rt0, a0) = (rt.clone(), a.clone());
        let waker_a = thread::spawn(move || rt0.wake_queued(1, &a0));
        let (rt1, b1) = (rt.clone(), b.clone());
        let waker_b = thread::spawn(move || rt1.wake_queued(1, &b1));
        let first = worker_until_running(&rt, 1);
        waker_a.join().unwrap();
        waker_b.join().unwrap();
        let other = if first.id() == a.id() { &b } else { &a };
        other_runs_next(&rt, first, other, false);
    });
}
