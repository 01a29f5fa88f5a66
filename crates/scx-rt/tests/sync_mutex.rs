//! `scx_rt::sync::Mutex`: exact counts under contention, mutual exclusion
//! across switch points (yield, sleep), OS threads and tasks on one lock,
//! `try_lock`, and that a contended lock blocks the task, not its worker.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scx_rt::sync::Mutex;
use scx_rt::Runtime;

mod common;
use common::with_timeout;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// Marks a critical section; panics if two holders ever overlap.
struct Inside(AtomicBool);

impl Inside {
    fn enter(&self) {
        assert!(
            !self.0.swap(true, Ordering::SeqCst),
            "two holders inside the critical section at once"
        );
    }
    fn leave(&self) {
        assert!(self.0.swap(false, Ordering::SeqCst), "left twice");
    }
}

#[test]
fn sixteen_tasks_increment_exactly_on_4_unpinned_cpus() {
    with_timeout("counter", 60, || {
        const TASKS: u64 = 16;
        const ITERS: u64 = 10_000;
        let rt = rt(4);
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..TASKS)
            .map(|_| {
                let m = m.clone();
                rt.spawn(move || {
                    for i in 0..ITERS {
                        let mut g = m.lock();
                        // Read-modify-write split by a switch point now and
                        // then: a second holder would lose an update.
                        let v = *g;
                        if i % 256 == 0 {
                            scx_rt::yield_now();
                        }
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        drop(rt);
        let m = Arc::try_unwrap(m).ok().expect("all tasks finished");
        assert_eq!(m.into_inner(), TASKS * ITERS);
    });
}

#[test]
fn holding_across_yield_and_sleep_excludes_everyone() {
    with_timeout("exclusion", 60, || {
        const TASKS: usize = 8;
        const ITERS: usize = 40;
        let rt = rt(3);
        let m = Arc::new(Mutex::new(Vec::new()));
        let inside = Arc::new(Inside(AtomicBool::new(false)));
        let hs: Vec<_> = (0..TASKS)
            .map(|id| {
                let (m, inside) = (m.clone(), inside.clone());
                rt.spawn(move || {
                    for i in 0..ITERS {
                        let mut g = m.lock();
                        inside.enter();
                        if i % 2 == 0 {
                            scx_rt::yield_now();
                            scx_rt::yield_now();
                        } else {
                            scx_rt::sleep(Duration::from_micros(200));
                        }
                        g.push(id);
                        inside.leave();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let log = m.lock();
        assert_eq!(log.len(), TASKS * ITERS);
        for id in 0..TASKS {
            assert_eq!(log.iter().filter(|&&x| x == id).count(), ITERS);
        }
    });
}

#[test]
fn os_threads_and_tasks_share_one_lock() {
    with_timeout("threads-and-tasks", 60, || {
        const ITERS: u64 = 5_000;
        let rt = rt(2);
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(Inside(AtomicBool::new(false)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                rt.spawn(move || {
                    for i in 0..ITERS {
                        let mut g = m.lock();
                        inside.enter();
                        if i % 500 == 0 {
                            scx_rt::yield_now();
                        }
                        *g += 1;
                        inside.leave();
                    }
                })
            })
            .collect();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                std::thread::spawn(move || {
                    for i in 0..ITERS {
                        let mut g = m.lock();
                        inside.enter();
                        if i % 500 == 0 {
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        *g += 1;
                        inside.leave();
                    }
                })
            })
            .collect();
        for h in tasks {
            h.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 10 * ITERS);
    });
}

#[test]
fn an_os_thread_blocked_on_the_lock_is_woken_by_a_task() {
    with_timeout("thread-waits-for-task", 60, || {
        let rt = rt(1);
        let m = Arc::new(Mutex::new(0u32));
        let locked = Arc::new(AtomicBool::new(false));
        let (m2, l2) = (m.clone(), locked.clone());
        let h = rt.spawn(move || {
            let mut g = m2.lock();
            l2.store(true, Ordering::SeqCst);
            scx_rt::sleep(Duration::from_millis(50));
            *g = 1;
        });
        while !locked.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Parks this OS thread until the task unlocks.
        let g = m.lock();
        assert_eq!(*g, 1, "got the lock before the holder released it");
        drop(g);
        h.join().unwrap();
    });
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    with_timeout("try-lock", 60, || {
        let m = Mutex::new(5);
        {
            let g = m.try_lock().expect("free");
            assert_eq!(*g, 5);
            assert!(m.try_lock().is_none(), "try_lock on a held lock");
        }
        assert!(m.try_lock().is_some(), "released on drop");

        let rt = rt(2);
        let m = Arc::new(Mutex::new(0));
        let held = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (m2, h2, r2) = (m.clone(), held.clone(), release.clone());
        let holder = rt.spawn(move || {
            let mut g = m2.lock();
            h2.store(true, Ordering::SeqCst);
            while !r2.load(Ordering::SeqCst) {
                scx_rt::sleep(Duration::from_millis(1));
            }
            *g += 1;
        });
        while !held.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let m3 = m.clone();
        let in_task = rt.spawn(move || m3.try_lock().is_none());
        assert!(
            in_task.join().unwrap(),
            "try_lock in a task got a held lock"
        );
        assert!(
            m.try_lock().is_none(),
            "try_lock on an OS thread got a held lock"
        );
        // A blocked waiter is woken by the release that follows a try_lock.
        let m4 = m.clone();
        let waiter = rt.spawn(move || *m4.lock());
        release.store(true, Ordering::SeqCst);
        holder.join().unwrap();
        assert_eq!(waiter.join().unwrap(), 1);
        let g = m.try_lock().expect("free after everyone released");
        assert_eq!(*g, 1);
    });
}

#[test]
fn contention_blocks_the_task_not_the_worker() {
    with_timeout("one-cpu-contention", 60, || {
        // One CPU: if a contended lock blocked the worker thread, the holder
        // could never run again to release it.
        let rt = Runtime::builder().nr_cpus(1).build().unwrap();
        let m = Arc::new(Mutex::new(Vec::new()));
        let holding = Arc::new(AtomicBool::new(false));
        let (m1, hold1) = (m.clone(), holding.clone());
        let a = rt.spawn(move || {
            let mut g = m1.lock();
            hold1.store(true, Ordering::SeqCst);
            scx_rt::sleep(Duration::from_millis(30));
            g.push("a");
        });
        let waiters = Arc::new(AtomicUsize::new(0));
        let bs: Vec<_> = (0..4)
            .map(|_| {
                let (m, holding, waiters) = (m.clone(), holding.clone(), waiters.clone());
                rt.spawn(move || {
                    while !holding.load(Ordering::SeqCst) {
                        scx_rt::yield_now();
                    }
                    waiters.fetch_add(1, Ordering::SeqCst);
                    m.lock().push("b");
                })
            })
            .collect();
        a.join().unwrap();
        for b in bs {
            b.join().unwrap();
        }
        let log = m.lock();
        assert_eq!(log[0], "a", "a waiter got the lock while it was held");
        assert_eq!(log.len(), 5);
        assert_eq!(waiters.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn default_and_into_inner() {
    let m: Mutex<Vec<u8>> = Mutex::default();
    m.lock().push(9);
    assert_eq!(m.into_inner(), vec![9]);
}
