//! Model 7: claiming a CPU through the atomic cpumask hands it to exactly
//! one caller (SPEC.md §11 invariant 24).
#![cfg(scx_rt_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::cpumask::AtomicCpumask;

#[test]
fn test_and_clear_has_one_winner() {
    model("test_and_clear_has_one_winner", || {
        let m = Arc::new(AtomicCpumask::new(2));
        m.set(1);
        let wins = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                let wins = wins.clone();
                thread::spawn(move || {
                    if m.test_and_clear(1) {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1);
        assert!(!m.test(1));
    });
}
