//! Model 12: the batched consume (`DispatchCtx::dsq_move_to_local_batch`,
//! `core::dispatch::consume_dsq_batch`): one pass takes several tasks off
//! a user DSQ, marks each in transit (`holding_cpu`), and moves the tasks
//! of another rq with one hold of that rq's lock, the consuming CPU's own
//! rq lock dropped meanwhile. Driven through the real consume, dequeue,
//! enqueue and dispatch-buffer paths.
//!
//! Two tasks sit on user DSQ `D`. CPU 0 consumes both in one batch while,
//! concurrently, a task's own CPU takes it off its runqueue and puts it
//! back (an attribute change: the policy owns it again):
//!
//! - both tasks on CPU 1's rq, the second one requeued: the dequeue may
//!   land before the pass, while the task is in transit (between the DSQ
//!   and CPU 1's lock), or after it arrived on CPU 0;
//! - one task on CPU 0's own rq and one on CPU 1's, the one on CPU 0
//!   requeued: its dequeue may land while CPU 0 has dropped its own lock
//!   to take CPU 1's, with the task off the DSQ and not yet in the local
//!   DSQ.
//!
//! Whatever the interleaving, each task ends in exactly one place, counted
//! on the rq it names, with no transfer in flight, and the requeued task
//! ends with the policy (SPEC.md §11 invariants 1, 2, 3).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{Task, TaskRef};

/// The user DSQ.
const D: u64 = 0;

/// A runtime of 2 CPUs whose policy keeps what it is given, with tasks 1
/// and 2 queued on `D` in that order, task `i` enqueued (and dispatched
/// to `D`) on CPU `cpus[i - 1]`.
fn setup(cpus: [usize; 2]) -> (Arc<Runtime>, TaskRef, TaskRef) {
    let rt = Arc::new(Runtime::new(2));
    rt.create_dsq(D);
    let a = Task::new_token(1);
    let b = Task::new_token(2);
    for (t, cpu) in [(&a, cpus[0]), (&b, cpus[1])] {
        rt.enqueue(cpu, t);
        rt.buffer_dispatch(cpu, t, D);
        rt.flush(cpu);
    }
    assert_eq!(rt.places(&a), vec![("user", D as usize)]);
    assert_eq!(rt.places(&b), vec![("user", D as usize)]);
    (rt, a, b)
}

/// Exactly one place, counted on the rq the task names (CPU `c`'s
/// `nr_running` counts it), no transfer in flight.
fn check_one_place(rt: &Runtime, t: &TaskRef) -> (&'static str, usize) {
    let places = rt.places(t);
    assert_eq!(
        places.len(),
        1,
        "task {} must be in exactly one place: {places:?}",
        t.id()
    );
    assert!(
        !rt.in_transit(t),
        "no transfer of task {} may be left in flight",
        t.id()
    );
    places[0]
}

/// Both tasks in one place each, the `requeued` one with the policy, the
/// other in CPU 0's local DSQ; every CPU's count is the tasks naming it.
fn check(rt: &Runtime, moved: usize, requeued: &TaskRef, other: &TaskRef) {
    assert_eq!(check_one_place(rt, requeued), ("policy", 0));
    assert_eq!(check_one_place(rt, other), ("local", 0));
    assert_eq!(
        rt.task_cpu(other),
        0,
        "a consumed task names the consumer's rq"
    );
    for c in 0..2 {
        let named = [requeued, other]
            .iter()
            .filter(|t| rt.task_cpu(t) == c)
            .count();
        assert_eq!(rt.nr_running(c) as usize, named, "CPU {c} counts its tasks");
    }
    // The other task always arrives; the requeued one either arrived first
    // (and was then taken back) or was cancelled.
    assert!((1..=2).contains(&moved), "moved {moved}");
}

#[test]
fn batch_of_a_remote_rq_racing_with_dequeue() {
    model("batch_of_a_remote_rq_racing_with_dequeue", || {
        let (rt, a, b) = setup([1, 1]);
        let rt2 = rt.clone();
        let consumer = thread::spawn(move || rt2.consume_user_batch(0, D, 2));
        rt.requeue(&b);
        let moved = consumer.join().unwrap();
        check(&rt, moved, &b, &a);
    });
}

#[test]
fn own_task_of_a_batch_racing_with_dequeue() {
    model("own_task_of_a_batch_racing_with_dequeue", || {
        let (rt, a, b) = setup([0, 1]);
        let rt2 = rt.clone();
        let consumer = thread::spawn(move || rt2.consume_user_batch(0, D, 2));
        rt.requeue(&a);
        let moved = consumer.join().unwrap();
        check(&rt, moved, &a, &b);
    });
}
