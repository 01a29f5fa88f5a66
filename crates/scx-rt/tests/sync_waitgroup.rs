//! `scx_rt::sync::WaitGroup`: waiting for N tasks from an OS thread and from
//! a task, several waiters, reuse, and `done` past zero panicking.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scx_rt::sync::WaitGroup;
use scx_rt::Runtime;

mod common;
use common::with_timeout;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// Spawns `n` tasks that each sleep a little, count, and call `done`.
fn spawn_workers(rt: &Runtime, wg: &WaitGroup, n: usize, count: &Arc<AtomicUsize>) {
    wg.add(n);
    for i in 0..n {
        let (wg, count) = (wg.clone(), count.clone());
        // Detached: only the wait group says when they are done.
        let _ = rt.spawn(move || {
            scx_rt::sleep(Duration::from_micros(50 * (i % 20) as u64));
            count.fetch_add(1, Ordering::SeqCst);
            wg.done();
        });
    }
}

#[test]
fn os_thread_waits_for_n_tasks() {
    with_timeout("wait-os", 60, || {
        let rt = rt(2);
        let wg = WaitGroup::new();
        let count = Arc::new(AtomicUsize::new(0));
        spawn_workers(&rt, &wg, 500, &count);
        wg.wait();
        assert_eq!(count.load(Ordering::SeqCst), 500, "wait returned early");
        assert_eq!(wg.count(), 0);
    });
}

#[test]
fn task_waits_for_n_tasks_on_one_cpu() {
    with_timeout("wait-task", 60, || {
        // One CPU: a wait that blocked the worker would never see its
        // children run.
        let rt = Runtime::builder().nr_cpus(1).build().unwrap();
        let n = rt.block_on(|| {
            let wg = WaitGroup::new();
            let count = Arc::new(AtomicUsize::new(0));
            wg.add(200);
            for _ in 0..200 {
                let (wg, count) = (wg.clone(), count.clone());
                let _ = scx_rt::spawn(move || {
                    scx_rt::yield_now();
                    count.fetch_add(1, Ordering::SeqCst);
                    wg.done();
                });
            }
            wg.wait();
            count.load(Ordering::SeqCst)
        });
        assert_eq!(n, 200, "wait returned early");
    });
}

#[test]
fn wait_on_zero_returns_at_once() {
    with_timeout("wait-zero", 60, || {
        let wg = WaitGroup::default();
        wg.wait();
        let rt = rt(1);
        let wg2 = wg.clone();
        rt.block_on(move || wg2.wait());
        assert_eq!(wg.count(), 0);
    });
}

#[test]
fn every_waiter_is_released_tasks_and_threads() {
    with_timeout("many-waiters", 60, || {
        let rt = rt(3);
        let wg = WaitGroup::new();
        wg.add(1);
        let released = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (wg, released) = (wg.clone(), released.clone());
                rt.spawn(move || {
                    wg.wait();
                    released.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (wg, released) = (wg.clone(), released.clone());
                std::thread::spawn(move || {
                    wg.wait();
                    released.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            released.load(Ordering::SeqCst),
            0,
            "a waiter passed a non-zero count"
        );
        let wg2 = wg.clone();
        rt.spawn(move || wg2.done()).join().unwrap();
        for t in tasks {
            t.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(released.load(Ordering::SeqCst), 23);
    });
}

#[test]
fn a_group_can_be_reused() {
    with_timeout("reuse", 60, || {
        let rt = rt(2);
        let wg = WaitGroup::new();
        let count = Arc::new(AtomicUsize::new(0));
        for round in 1..=5 {
            spawn_workers(&rt, &wg, 50, &count);
            wg.wait();
            assert_eq!(count.load(Ordering::SeqCst), round * 50);
        }
    });
}

#[test]
fn done_past_zero_panics_in_a_task() {
    with_timeout("done-panics-task", 60, || {
        let rt = rt(1);
        let wg = WaitGroup::new();
        wg.add(1);
        let wg2 = wg.clone();
        let e = rt
            .spawn(move || {
                wg2.done();
                wg2.done();
            })
            .join()
            .unwrap_err();
        assert!(e.is_panic());
        assert!(
            e.panic_message().contains("more often than add"),
            "message: {}",
            e.panic_message()
        );
        assert_eq!(wg.count(), 0, "the failed done changed the count");
        // The group and the worker are still usable.
        wg.wait();
        assert_eq!(rt.spawn(|| 1).join().unwrap(), 1);
    });
}

#[test]
#[should_panic(expected = "WaitGroup::done called more often than add")]
fn done_past_zero_panics_on_an_os_thread() {
    WaitGroup::new().done();
}
