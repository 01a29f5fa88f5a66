//! Model 3: rq-lock ordering (SPEC.md §11 invariants 1, 20, 26; the lock
//! table in `rq`).
//!
//! No path holds two rq locks: a task moves between CPUs by the
//! `holding_cpu` hand-off (drop our rq lock, take the source's, re-check,
//! drop it, take the destination's). Here two CPUs move tasks across each
//! other at the same time, through the real dispatch-buffer flush
//! (`dispatch_to_local_dsq`) and the real consume of the global DSQ
//! (`consume_dispatch_q`), with kicks in flight whose kick step takes the
//! other CPU's rq lock. If any path took two rq locks in opposite orders,
//! some interleaving deadlocks and loom reports it. Afterwards every task is
//! in exactly one local DSQ, on the rq it names, with no transfer in flight
//! and the runnable counts moved with it.
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{KickFlags, Task, TaskRef, DSQ_GLOBAL, DSQ_LOCAL_ON};

/// `t` sits in exactly one place, CPU `cpu`'s local DSQ, belongs to that
/// CPU, and no transfer of it is in flight.
fn check_landed(rt: &Runtime, t: &TaskRef, cpu: usize) {
    assert_eq!(rt.places(t), vec![("local", cpu)], "task {}", t.id());
    assert_eq!(rt.task_cpu(t), cpu, "task {} names another rq", t.id());
    assert!(!rt.in_transit(t), "task {} still in transit", t.id());
}

/// CPU 0 dispatches its task P to `DSQ_LOCAL_ON | 1` while CPU 1 dispatches
/// its task Q to `DSQ_LOCAL_ON | 0` (moves 0 -> 1 and 1 -> 0 at once), and
/// each then kicks the other (`PREEMPT` one way, a plain kick the other) and
/// runs its kick step.
#[test]
fn crossing_remote_dispatches_with_kicks() {
    model("crossing_remote_dispatches_with_kicks", || {
        let rt = Arc::new(Runtime::new(2));
        let p = Task::new_token(1);
        let q = Task::new_token(2);
        rt.enqueue(0, &p);
        rt.enqueue(1, &q);
        rt.buffer_dispatch(0, &p, DSQ_LOCAL_ON | 1);
        rt.buffer_dispatch(1, &q, DSQ_LOCAL_ON);
        let rt1 = rt.clone();
        let cpu1 = thread::spawn(move || {
            rt1.flush(1);
            rt1.kick(1, 0, KickFlags::empty());
            rt1.kick_step(1);
        });
        rt.flush(0);
        rt.kick(0, 1, KickFlags::PREEMPT);
        rt.kick_step(0);
        cpu1.join().unwrap();
        check_landed(&rt, &p, 1);
        check_landed(&rt, &q, 0);
        assert_eq!((rt.nr_running(0), rt.nr_running(1)), (1, 1));
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
        assert!(rt.need_resched(0) && rt.need_resched(1));
    });
}

/// The global DSQ holds A (of CPU 0) and B (of CPU 1); both CPUs consume it
/// at once, so each may pull the other's task (a crossing pair of
/// `holding_cpu` hand-offs) or find its own.
#[test]
fn crossing_consumes() {
    model("crossing_consumes", || {
        let rt = Arc::new(Runtime::new(2));
        let a = Task::new_token(1);
        let b = Task::new_token(2);
        rt.enqueue(0, &a);
        rt.enqueue(1, &b);
        rt.buffer_dispatch(1, &b, DSQ_GLOBAL);
        rt.flush(1);
        rt.buffer_dispatch(0, &a, DSQ_GLOBAL);
        rt.flush(0);
        let rt1 = rt.clone();
        let cpu1 = thread::spawn(move || rt1.consume_global(1));
        let got0 = rt.consume_global(0);
        let got1 = cpu1.join().unwrap();
        assert!(got0 && got1, "each CPU finds a task: {got0} {got1}");
        let on0 = rt.local_len(0);
        assert_eq!((on0, rt.local_len(1)), (1, 1));
        for t in [&a, &b] {
            let cpu = rt.task_cpu(t);
            check_landed(&rt, t, cpu);
        }
        assert_eq!((rt.nr_running(0), rt.nr_running(1)), (1, 1));
    });
}

/// The two kinds of hand-off crossing each other: CPU 0 consumes the global
/// DSQ, where CPU 1's task B waits (a pull 1 -> 0), while CPU 1 dispatches
/// CPU 0's task A to its own local DSQ (`DSQ_LOCAL_ON | 1`, a pull 0 -> 1)
/// and then `PREEMPT`-kicks CPU 0.
#[test]
fn consume_crossing_a_remote_dispatch() {
    model("consume_crossing_a_remote_dispatch", || {
        let rt = Arc::new(Runtime::new(2));
        let a = Task::new_token(1);
        let b = Task::new_token(2);
        rt.enqueue(0, &a);
        rt.enqueue(1, &b);
        rt.buffer_dispatch(1, &b, DSQ_GLOBAL);
        rt.flush(1);
        rt.buffer_dispatch(1, &a, DSQ_LOCAL_ON | 1);
        let rt1 = rt.clone();
        let cpu1 = thread::spawn(move || {
            rt1.flush(1);
            rt1.kick(1, 0, KickFlags::PREEMPT);
            rt1.kick_step(1);
        });
        assert!(rt.consume_global(0), "B waits in the global DSQ");
        cpu1.join().unwrap();
        check_landed(&rt, &a, 1);
        check_landed(&rt, &b, 0);
        assert_eq!((rt.nr_running(0), rt.nr_running(1)), (1, 1));
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
    });
}
