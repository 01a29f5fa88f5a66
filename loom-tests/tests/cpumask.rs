//! Model 7: the atomic cpumask. Claiming a CPU hands it to exactly one
//! caller (SPEC.md §11 invariant 24), and concurrent writes of different
//! CPUs' bits in one word lose neither (the idle mask: each CPU sets and
//! clears its own bit while others claim theirs).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

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

/// CPU 0's bit is set while CPU 1's bit, in the same word, is cleared: both
/// writes land (a read-modify-write split into a load and a store would
/// bring CPU 1's bit back or drop CPU 0's).
#[test]
fn neighbour_bits_are_not_lost() {
    model("neighbour_bits_are_not_lost", || {
        let m = Arc::new(AtomicCpumask::new(2));
        m.set(1);
        let m2 = m.clone();
        let setter = thread::spawn(move || m2.set(0));
        m.clear(1);
        setter.join().unwrap();
        assert!(m.test(0), "CPU 0's bit was lost");
        assert!(!m.test(1), "CPU 1's bit came back");
    });
}
