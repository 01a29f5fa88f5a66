//! Model 10: the per-CPU live-task count (`core::live`), on the real
//! counters and reads.
//!
//! - A false zero: a task on CPU 0 spawns a child, which runs and exits on
//!   CPU 1 while its parent keeps running; a reader on a third thread must
//!   never count fewer than the one task that is always live (reading
//!   spawns before exits can see the child's exit and miss its spawn).
//! - The last exit: two tasks, the last two, exit at once on two CPUs
//!   during shutdown; at least one of them must see the count at zero, or
//!   no worker is told to stop.
//! - Shutdown against the last exit: the runtime starts shutting down while
//!   its last task exits; the exit sees the flag, or the shutdown side sees
//!   the exit (then the workers it reschedules stop).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::LiveCount;

#[test]
fn a_reader_never_misses_a_live_parent() {
    model("a_reader_never_misses_a_live_parent", || {
        let live = Arc::new(LiveCount::new(2));
        // The parent, spawned from outside the runtime; it never exits here.
        live.spawned(None);
        let queued = Arc::new(AtomicBool::new(false));
        let (l1, q1) = (live.clone(), queued.clone());
        // CPU 0 runs the parent, which spawns the child (the enqueue's
        // lock release hands it to CPU 1).
        let parent = thread::spawn(move || {
            l1.spawned(Some(0));
            q1.store(true, Ordering::Release);
        });
        let (l2, q2) = (live.clone(), queued.clone());
        // CPU 1 runs the child once it is queued; the child exits.
        let child = thread::spawn(move || {
            if q2.load(Ordering::Acquire) {
                let shutdown = AtomicBool::new(true);
                assert!(!l2.exit(1, &shutdown), "the parent is live");
            }
        });
        let r = live.raw();
        assert!(r >= 1, "counted {r} live tasks while the parent runs");
        parent.join().unwrap();
        child.join().unwrap();
    });
}

#[test]
fn one_of_two_last_exits_sees_zero() {
    model("one_of_two_last_exits_sees_zero", || {
        let live = Arc::new(LiveCount::new(2));
        let shutdown = Arc::new(AtomicBool::new(true));
        live.spawned(None);
        live.spawned(None);
        let (l1, s1) = (live.clone(), shutdown.clone());
        let a = thread::spawn(move || l1.exit(0, &s1));
        let b = live.exit(1, &shutdown);
        let a = a.join().unwrap();
        assert!(a || b, "neither last exit saw the count reach zero");
        assert_eq!(live.raw(), 0);
    });
}

#[test]
fn shutdown_and_the_last_exit_see_each_other() {
    model("shutdown_and_the_last_exit_see_each_other", || {
        let live = Arc::new(LiveCount::new(2));
        let shutdown = Arc::new(AtomicBool::new(false));
        live.spawned(None);
        let (l1, s1) = (live.clone(), shutdown.clone());
        let exit = thread::spawn(move || l1.exit(0, &s1));
        let by_shutdown = live.begin_shutdown(&shutdown);
        let by_exit = exit.join().unwrap();
        assert!(
            by_exit || by_shutdown,
            "neither the last exit nor the shutdown saw the other: workers sleep for ever"
        );
    });
}
