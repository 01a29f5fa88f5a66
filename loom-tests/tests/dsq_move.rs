//! Model 9: `dsq_move` (a task a DSQ walk saw, moved by `ops.dispatch`)
//! racing with what else takes a task off a user DSQ, driven through the
//! real walk (`DsqIter`), move (`core::dsq_iter`), consume, dequeue,
//! enqueue and dispatch-buffer paths.
//!
//! A task sits on user DSQ `D`, on CPU 1's rq, and a walk of `D` began
//! while it was there. Concurrently:
//!
//! - its own CPU takes it off the runqueue and puts it back (an attribute
//!   change: the policy owns it again) — the move must then fail, or have
//!   happened before;
//! - CPU 0 consumes `D` (a remote consume: the `holding_cpu` hand-off)
//!   while CPU 1's `dispatch` moves the task to its own local DSQ — exactly
//!   one of them wins;
//! - the task is taken back and queued on `D` again, after the walk began
//!   — a move from that walk must fail (it came back later than the walk's
//!   start), or have happened before the task left.
//!
//! - CPU 0's `dispatch` moves the task to CPU 0's local DSQ while CPU 1
//!   consumes it and starts running it, which binds it to CPU 1 — the
//!   move must fail quietly (the task is lost to it), never report the
//!   target CPU as not allowed.
//!
//! Whatever the interleaving, the task ends in exactly one place, accounted
//! on the rq it names, with no transfer in flight (SPEC.md §11 invariants
//! 1, 2, 3).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{Task, TaskRef, DSQ_LOCAL};

/// The user DSQ.
const D: u64 = 0;

/// A runtime of 2 CPUs whose policy keeps what it is given, with task 1
/// on user DSQ `D` (enqueued on CPU 1, dispatched there by CPU 1), and
/// the DSQ's sequence with it queued.
fn setup() -> (Arc<Runtime>, TaskRef, u32) {
    setup_with(|_| Task::new_token(1))
}

/// [`setup`] with the task `make` returns.
fn setup_with(make: impl FnOnce(&Runtime) -> TaskRef) -> (Arc<Runtime>, TaskRef, u32) {
    let rt = Arc::new(Runtime::new(2));
    rt.create_dsq(D);
    let t = make(&rt);
    rt.enqueue(1, &t);
    rt.buffer_dispatch(1, &t, D);
    rt.flush(1);
    assert_eq!(rt.places(&t), vec![("user", D as usize)]);
    let seq = rt.dsq_seq(D);
    (rt, t, seq)
}

/// Exactly one place, counted on the rq the task names and nowhere else,
/// no transfer in flight.
fn check_one_place(rt: &Runtime, t: &TaskRef) -> (&'static str, usize) {
    let places = rt.places(t);
    assert_eq!(
        places.len(),
        1,
        "the task must be in exactly one place: {places:?}"
    );
    assert!(!rt.in_transit(t), "no transfer may be left in flight");
    let c = rt.task_cpu(t);
    assert_eq!(rt.nr_running(c), 1, "the task counts on its rq");
    assert_eq!(rt.nr_running(1 - c), 0, "and only there");
    places[0]
}

#[test]
fn dsq_move_racing_with_dequeue() {
    model("dsq_move_racing_with_dequeue", || {
        let (rt, t, seq) = setup();
        let rt2 = rt.clone();
        let mover = thread::spawn(move || {
            let mut it = rt2.dsq_iter_since(D, seq);
            match it.next() {
                Some(p) => rt2.dsq_move(0, &mut it, &p, DSQ_LOCAL),
                None => false,
            }
        });
        rt.requeue(&t);
        mover.join().unwrap();
        // The re-enqueue comes last either way: the move failed, or it
        // moved the task to CPU 0 first and the re-enqueue found it there.
        assert_eq!(check_one_place(&rt, &t), ("policy", 0));
    });
}

#[test]
fn dsq_move_racing_with_a_remote_consume() {
    model("dsq_move_racing_with_a_remote_consume", || {
        let (rt, t, seq) = setup();
        let rt2 = rt.clone();
        // CPU 1's dispatch moves the task to its own local DSQ.
        let mover = thread::spawn(move || {
            let mut it = rt2.dsq_iter_since(D, seq);
            match it.next() {
                Some(p) => rt2.dsq_move(1, &mut it, &p, DSQ_LOCAL),
                None => false,
            }
        });
        // CPU 0 consumes D: the task is on CPU 1's rq, so by hand-off.
        let consumed = rt.consume_user(0, D);
        let moved = mover.join().unwrap();
        assert!(
            moved != consumed,
            "exactly one wins (moved {moved}, consumed {consumed})"
        );
        let want = if moved { ("local", 1) } else { ("local", 0) };
        assert_eq!(check_one_place(&rt, &t), want);
        assert_eq!(rt.task_cpu(&t), want.1, "the task names the rq it is on");
    });
}

#[test]
fn dsq_move_of_a_task_queued_again_after_the_walk_began() {
    model(
        "dsq_move_of_a_task_queued_again_after_the_walk_began",
        || {
            let (rt, t, seq) = setup();
            let (rt2, t2) = (rt.clone(), t.clone());
            let mover = thread::spawn(move || {
                let mut it = rt2.dsq_iter_since(D, seq);
                rt2.dsq_move(0, &mut it, &t2, DSQ_LOCAL)
            });
            // Off the runqueue and back (the policy owns it), then queued on D
            // again by CPU 1: linked after the walk's start.
            rt.requeue(&t);
            rt.buffer_dispatch(1, &t, D);
            rt.flush(1);
            mover.join().unwrap();
            assert_eq!(
                check_one_place(&rt, &t),
                ("user", D as usize),
                "a move from a walk that began before the task came back must fail"
            );
        },
    );
}

#[test]
fn dsq_move_to_a_cpu_the_task_can_no_longer_use() {
    model("dsq_move_to_a_cpu_the_task_can_no_longer_use", || {
        // A task that is bound to the CPU it first runs on.
        let (rt, t, seq) = setup_with(|rt| rt.unmigratable_token(1));
        let rt2 = rt.clone();
        // CPU 0's dispatch moves the task (on CPU 1's rq) to CPU 0.
        let mover = thread::spawn(move || {
            let mut it = rt2.dsq_iter_since(D, seq);
            match it.next() {
                Some(p) => rt2.dsq_move(0, &mut it, &p, DSQ_LOCAL),
                None => false,
            }
        });
        // CPU 1 consumes D and runs the task: it is bound to CPU 1 now.
        let consumed = rt.consume_user(1, D);
        if consumed {
            rt.first_run(1, &t);
        }
        let moved = mover.join().unwrap();
        assert!(moved != consumed, "exactly one wins (moved {moved})");
        assert_eq!(rt.exit_msg(), None, "a move that lost the task is no error");
        let want = if moved { ("local", 0) } else { ("local", 1) };
        assert_eq!(check_one_place(&rt, &t), want);
    });
}
