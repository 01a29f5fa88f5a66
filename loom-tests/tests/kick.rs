//! Models 4 and 5: `KICK_PREEMPT` and `KICK_WAIT`, driven through the real
//! kick call side, kick step and wait (SPEC.md §4, §11 invariants 14, 21).
#![cfg(scx_rt_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Runtime;
use scx_rt::{KickFlags, Task};

/// Once the kick step ran, the victim's slice is 0, its CPU has
/// `need_resched` set, and no kick bit survives — also while the victim's
/// CPU concurrently kicks itself.
#[test]
fn preempt_kick_zeroes_the_slice_and_leaves_no_stale_bits() {
    model(
        "preempt_kick_zeroes_the_slice_and_leaves_no_stale_bits",
        || {
            let rt = Arc::new(Runtime::new(2));
            let victim = Task::new_token(1);
            rt.set_curr(1, &victim);
            let rt2 = rt.clone();
            let kicker = thread::spawn(move || {
                rt2.kick(0, 1, KickFlags::PREEMPT);
                rt2.kick_step(0);
            });
            rt.kick(1, 1, KickFlags::empty());
            rt.kick_step(1);
            kicker.join().unwrap();
            assert_eq!(victim.slice(), 0);
            assert!(rt.need_resched(1));
            assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
        },
    );
}

/// Two CPUs, each running a task, `KICK_WAIT` each other at once: both
/// waits complete, because a waiting CPU keeps advancing its own pick
/// sequence (the 2026 deadlock fix, SPEC.md §4.3). Each thread plays a
/// worker: kick, kick step, wait at the safe point, then the pick path.
#[test]
fn mutual_kick_waits_complete() {
    model("mutual_kick_waits_complete", || {
        let rt = Arc::new(Runtime::new(2));
        rt.set_curr(0, &Task::new_token(1));
        rt.set_curr(1, &Task::new_token(2));
        let rt2 = rt.clone();
        let other = thread::spawn(move || {
            rt2.kick(1, 0, KickFlags::WAIT);
            rt2.kick_step(1);
            rt2.wait_step(1);
            rt2.enter_pick(1);
        });
        rt.kick(0, 1, KickFlags::WAIT);
        rt.kick_step(0);
        rt.wait_step(0);
        rt.enter_pick(0);
        other.join().unwrap();
        assert!(!rt.kicks_pending(0) && !rt.kicks_pending(1));
    });
}
