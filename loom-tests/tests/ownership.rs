//! Model 6 (and the transfer half of model 3): the ops-state/qseq
//! ownership word and the `holding_cpu` hand-off, driven through the real
//! enqueue, dispatch-buffer flush, consume and dequeue paths.
//!
//! A task the policy owns (QUEUED, qseq q) has a claim buffered in CPU 0's
//! dispatch buffer, or sits in the global DSQ; concurrently its own CPU
//! takes it off its runqueue and puts it back (an attribute change: a new
//! qseq, the policy owns it again). Whatever the interleaving, the task ends
//! in exactly one place — owned by the policy, since the re-enqueue always
//! happens — and no transfer is left in flight: a stale claim is ignored
//! (SPEC.md §11 invariants 1, 2, 3, 26).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{Task, DSQ_GLOBAL, DSQ_LOCAL};

fn check_owned_by_policy(rt: &Runtime, t: &scx_rt::TaskRef) {
    assert_eq!(
        rt.places(t),
        vec![("policy", 0)],
        "the task must be in exactly one place"
    );
    assert!(!rt.in_transit(t), "no transfer may be left in flight");
}

#[test]
fn buffered_dispatch_racing_with_dequeue() {
    model("buffered_dispatch_racing_with_dequeue", || {
        let rt = Arc::new(Runtime::new(2));
        let t = Task::new_token(1);
        rt.enqueue(1, &t);
        rt.buffer_dispatch(0, &t, DSQ_LOCAL);
        let rt2 = rt.clone();
        let dispatcher = thread::spawn(move || rt2.flush(0));
        rt.requeue(&t);
        dispatcher.join().unwrap();
        check_owned_by_policy(&rt, &t);
    });
}

#[test]
fn consume_racing_with_dequeue() {
    model("consume_racing_with_dequeue", || {
        let rt = Arc::new(Runtime::new(2));
        let t = Task::new_token(1);
        rt.enqueue(1, &t);
        rt.buffer_dispatch(1, &t, DSQ_GLOBAL);
        rt.flush(1);
        assert_eq!(rt.places(&t), vec![("global", 0)]);
        let (rt2, t2) = (rt.clone(), t.clone());
        let consumer = thread::spawn(move || {
            rt2.consume_global(0);
            drop(t2);
        });
        rt.requeue(&t);
        consumer.join().unwrap();
        check_owned_by_policy(&rt, &t);
    });
}
