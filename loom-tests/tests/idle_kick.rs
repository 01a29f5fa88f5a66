//! Model 2: `KICK_IDLE` against `IN_BALANCE` (SPEC.md §11 invariants 16,
//! 17; `can_skip_idle_kick`).
//!
//! CPU 1 runs task X whose slice ran out; the policy (`Runtime::with_stash`:
//! a private FIFO with `ENQ_LAST` in front of a shared user DSQ) has nothing
//! in its FIFO, and task R of CPU 0 waits in the shared DSQ. CPU 1 enters its
//! pick path with X as prev: balance finds nothing local or global, calls
//! `ops.dispatch`, which consumes R from the shared DSQ — a remote task, so
//! CPU 1 drops its rq lock for the `holding_cpu` hand-off while `IN_BALANCE`
//! is set and its `curr` is still X.
//!
//! Concurrently CPU 0 takes R off its runqueue and puts it back (an attribute
//! change). That cancels CPU 1's pull; the policy's `enqueue` queues R in
//! its FIFO, and CPU 0 `IDLE`-kicks CPU 1 to come and get it (the kick call
//! right after the enqueue returns, see `Runtime::with_stash`), then runs its
//! kick step. If the kick were skipped because CPU 1
//! "is busy" (it has a `curr`), CPU 1 would find its pull cancelled, leave
//! balance with nothing (X is handed back with `ENQ_LAST`) and sleep while
//! the policy holds work for it: loom reports the worker blocked forever.
//! Whatever the interleaving, CPU 1 must end up running a task.
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::{Runtime, STASH_SHARED_DSQ};
use scx_rt::{KickFlags, Task, TaskRef};

/// CPU `cpu`'s worker loop from a switch point with `prev`, until it picks
/// a task: safe point (kick step), clear `need_resched`, schedule, kick
/// step, then run the task or wait idle.
fn worker_until_running(rt: &Runtime, cpu: usize, prev: TaskRef) -> TaskRef {
    let mut prev = Some(prev);
    loop {
        rt.kick_step(cpu);
        rt.clear_need_resched(cpu);
        let next = rt.schedule(cpu, prev.take().as_ref());
        rt.kick_step(cpu);
        if let Some(t) = next {
            return t;
        }
        rt.idle(cpu);
    }
}

#[test]
fn idle_kick_racing_with_balance_is_not_skipped() {
    model("idle_kick_racing_with_balance_is_not_skipped", || {
        let rt = Arc::new(Runtime::with_stash(2));
        // CPU 1 runs X (picked through the real path), and its slice ran out.
        let x = Task::new_token(1);
        rt.enqueue(1, &x);
        assert_eq!(rt.schedule(1, None).map(|t| t.id()), Some(1));
        x.set_slice(0);
        // R belongs to CPU 0 and waits in the shared user DSQ.
        let r = Task::new_token(2);
        rt.enqueue(0, &r);
        let r2 = rt.take_stashed().expect("the policy queued R");
        rt.buffer_dispatch(0, &r2, STASH_SHARED_DSQ);
        rt.flush(0);
        assert_eq!(rt.stashed(), 0);

        let (rt0, r0) = (rt.clone(), r.clone());
        let cpu0 = thread::spawn(move || {
            rt0.requeue(&r0);
            rt0.kick(0, 1, KickFlags::IDLE);
            rt0.kick_step(0);
        });
        let ran = worker_until_running(&rt, 1, x);
        cpu0.join().unwrap();
        assert!(ran.id() == 1 || ran.id() == 2);
        assert_eq!(rt.curr(1).map(|t| t.id()), Some(ran.id()));
    });
}
