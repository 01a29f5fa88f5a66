//! Model 11: the fork lock (`core::fork_lock`), per-CPU readers against
//! the exclusive pass, on the real lock.
//!
//! - A spawn on a worker and a pass: never inside at once (each side
//!   marks itself inside with a read-modify-write on one word, which
//!   loom orders, and checks the other is not); the spawn either runs
//!   before the pass or waits for it. Fails with either SeqCst fence of
//!   the protocol removed.
//! - A spawn from outside the runtime (the shared lock) and a pass: the
//!   same.
//! - A spawn nested in a spawn's callback on the same worker, with a pass
//!   on its way: no deadlock, and still no overlap with the pass.
//! - Two workers spawning and a pass (three threads, capped at bound 2).
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, model_capped};
use scx_rt::model::ForkLock;

/// The pass's mark on `inside` (readers add 1 each).
const PASS: usize = 1 << 16;

fn spawn_side(lock: &ForkLock, cpu: Option<usize>, inside: &AtomicUsize) {
    lock.read(cpu, || {
        let seen = inside.fetch_add(1, Ordering::Relaxed);
        assert!(seen < PASS, "a spawn inside the lock while a pass is");
        inside.fetch_sub(1, Ordering::Relaxed);
    });
}

fn pass_side(lock: &ForkLock, inside: &AtomicUsize) {
    lock.write(|| {
        let seen = inside.fetch_add(PASS, Ordering::Relaxed);
        assert_eq!(seen, 0, "a pass inside the lock while a spawn is");
        inside.fetch_sub(PASS, Ordering::Relaxed);
    });
}

#[test]
fn a_worker_spawn_and_a_pass_exclude_each_other() {
    model("a_worker_spawn_and_a_pass_exclude_each_other", || {
        let lock = Arc::new(ForkLock::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let (l, i) = (lock.clone(), inside.clone());
        let spawner = thread::spawn(move || spawn_side(&l, Some(0), &i));
        pass_side(&lock, &inside);
        spawner.join().unwrap();
        // Both fast again: a later spawn takes the per-CPU path.
        spawn_side(&lock, Some(1), &inside);
    });
}

#[test]
fn a_foreign_spawn_and_a_pass_exclude_each_other() {
    model("a_foreign_spawn_and_a_pass_exclude_each_other", || {
        let lock = Arc::new(ForkLock::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let (l, i) = (lock.clone(), inside.clone());
        let spawner = thread::spawn(move || spawn_side(&l, None, &i));
        pass_side(&lock, &inside);
        spawner.join().unwrap();
    });
}

#[test]
fn a_nested_spawn_does_not_wait_for_a_pending_pass() {
    model("a_nested_spawn_does_not_wait_for_a_pending_pass", || {
        let lock = Arc::new(ForkLock::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let (l, i) = (lock.clone(), inside.clone());
        let spawner = thread::spawn(move || {
            l.read(Some(0), || {
                assert!(i.fetch_add(1, Ordering::Relaxed) < PASS);
                // A callback of the spawn spawns on the same worker.
                spawn_side(&l, Some(0), &i);
                i.fetch_sub(1, Ordering::Relaxed);
            })
        });
        pass_side(&lock, &inside);
        spawner.join().unwrap();
    });
}

#[test]
fn two_workers_spawning_and_a_pass() {
    model_capped("two_workers_spawning_and_a_pass", 2, || {
        let lock = Arc::new(ForkLock::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let (l0, i0) = (lock.clone(), inside.clone());
        let a = thread::spawn(move || spawn_side(&l0, Some(0), &i0));
        let (l1, i1) = (lock.clone(), inside.clone());
        let b = thread::spawn(move || spawn_side(&l1, Some(1), &i1));
        pass_side(&lock, &inside);
        a.join().unwrap();
        b.join().unwrap();
    });
}
