//! Models 4 and 5: `KICK_PREEMPT` and `KICK_WAIT`, driven through the real
//! kick call side, kick step, wait and pick path (SPEC.md §4, §11
//! invariants 14, 21).
//!
//! A CPU that runs a task is modelled by `Runtime::run_until_resched`: the
//! task runs until one of its preemption points sees `need_resched`, and in
//! these models nothing but the kick under test sets that flag (no self-kick,
//! no slice timer). A kick that forgets to reschedule its target leaves the
//! target running forever: loom reports it blocked. Tasks start running
//! through the real dispatch and pick path, so every CPU's pick sequence has
//! already moved once when the kicks come (a waiter comparing against a stale
//! sequence is told apart from one comparing against the current one).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{KickFlags, Task, TaskRef, DSQ_LOCAL};

/// Makes task `t` runnable on `cpu` and dispatches it to that CPU's local
/// DSQ (the policy's `dispatch` to `DSQ_LOCAL`, flushed).
fn queue_local(rt: &Runtime, cpu: usize, t: &TaskRef) {
    rt.enqueue(cpu, t);
    rt.buffer_dispatch(cpu, t, DSQ_LOCAL);
    rt.flush(cpu);
}

/// Task `id`, queued on `cpu` and picked by it through the real pick path:
/// the CPU runs it, with a full slice, and no reschedule is pending.
fn start_running(rt: &Runtime, cpu: usize, id: u64) -> TaskRef {
    let t = Task::new_token(id);
    queue_local(rt, cpu, &t);
    assert_eq!(rt.schedule(cpu, None).map(|t| t.id()), Some(id));
    rt.clear_need_resched(cpu);
    t
}

/// The part of CPU `cpu`'s worker loop after its running task `prev`
/// stopped: the real safe point (interrupt work, kick step, the
/// `KICK_WAIT` wait, `need_resched` cleared), then the scheduling pass with
/// `prev`. Returns the task it picks.
fn reschedule(rt: &Runtime, cpu: usize, prev: &TaskRef) -> Option<u64> {
    rt.safe_point(cpu);
    rt.schedule(cpu, Some(prev)).map(|t| t.id())
}

/// Invariant 14. CPU 1 runs X with a full slice while Y waits behind it in
/// its local DSQ; CPU 0 `PREEMPT`-kicks CPU 1 and runs its kick step. CPU 1
/// has no other reason to stop X: it must stop because of the kick (its
/// `need_resched` was set), find X's slice zeroed when it does, and switch to
/// Y (a slice left would keep X: balance keeps a prev with slice first). No
/// kick bit is left behind.
#[test]
fn preempt_kick_reschedules_the_victim() {
    model("preempt_kick_reschedules_the_victim", || {
        let rt = Arc::new(Runtime::new(2));
        let x = start_running(&rt, 1, 1);
        queue_local(&rt, 1, &Task::new_token(2));
        assert!(
            !rt.need_resched(1),
            "Y queued behind a running X: no resched"
        );
        let (rt1, x1) = (rt.clone(), x.clone());
        let victim = thread::spawn(move || {
            rt1.run_until_resched(1);
            assert_eq!(x1.slice(), 0, "X stopped with its slice left");
            reschedule(&rt1, 1, &x1)
        });
        rt.kick(0, 1, KickFlags::PREEMPT);
        rt.kick_step(0);
        assert_eq!(victim.join().unwrap(), Some(2), "CPU 1 did not switch to Y");
        assert_eq!(rt.curr(1).map(|t| t.id()), Some(2));
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
    });
}

/// Invariant 21, first half. CPU 1 runs X; CPU 0 `KICK_WAIT`s it and waits
/// at its safe point. The wait may return only once CPU 1 re-entered its
/// pick path after the kick: CPU 1's pick sequence, read before the kick,
/// has moved when the wait returns. CPU 1 stops X only because of the kick
/// and, X's slice being left, keeps running it (a re-pick of the same task
/// counts, SPEC.md §4.3).
#[test]
fn kick_wait_returns_after_the_target_picks() {
    model("kick_wait_returns_after_the_target_picks", || {
        let rt = Arc::new(Runtime::new(2));
        let x = start_running(&rt, 1, 1);
        let (rt1, x1) = (rt.clone(), x.clone());
        let target = thread::spawn(move || {
            rt1.run_until_resched(1);
            reschedule(&rt1, 1, &x1)
        });
        let before = rt.pick_seq(1);
        rt.kick(0, 1, KickFlags::WAIT);
        rt.kick_step(0);
        rt.wait_step(0);
        assert!(
            rt.pick_seq(1) > before,
            "the KICK_WAIT returned before CPU 1 re-entered its pick path"
        );
        assert_eq!(target.join().unwrap(), Some(1));
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
    });
}

/// Invariant 21, both halves. Two CPUs, each running a task, `KICK_WAIT`
/// each other at once. Neither wait returns before the other CPU's pick
/// sequence moved past the value it had before the kick, and both waits
/// complete, because a waiting CPU keeps advancing its own pick sequence
/// (the 2026 deadlock fix, SPEC.md §4.3). Each thread plays a worker whose
/// task issued the kick: kick, then its safe point and scheduling pass.
#[test]
fn mutual_kick_waits_complete() {
    model("mutual_kick_waits_complete", || {
        let rt = Arc::new(Runtime::new(2));
        let t0 = start_running(&rt, 0, 1);
        let t1 = start_running(&rt, 1, 2);
        let cpu = |rt: &Runtime, me: usize, other: usize, t: &TaskRef| {
            let before = rt.pick_seq(other);
            rt.kick(me, other, KickFlags::WAIT);
            rt.kick_step(me);
            rt.wait_step(me);
            assert!(
                rt.pick_seq(other) > before,
                "CPU {me}'s KICK_WAIT returned before CPU {other} re-entered its pick path"
            );
            rt.clear_need_resched(me);
            rt.schedule(me, Some(t)).map(|t| t.id())
        };
        let rt1 = rt.clone();
        let other = thread::spawn(move || cpu(&rt1, 1, 0, &t1));
        assert_eq!(cpu(&rt, 0, 1, &t0), Some(1));
        assert_eq!(other.join().unwrap(), Some(2));
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
    });
}
