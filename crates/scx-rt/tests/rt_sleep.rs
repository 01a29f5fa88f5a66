//! `scx_rt::sleep` / `sleep_until`: a sleep lasts at least its duration,
//! many concurrent sleepers all wake, a sleeping task leaves its CPU to
//! others, and sleeping outside a task sleeps the thread.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::Runtime;

mod common;
use common::with_timeout;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// A small deterministic PRNG (xorshift64*), so no extra dependency.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn a_sleep_in_a_task_lasts_at_least_its_duration() {
    with_timeout("sleep-min", 60, || {
        let rt = rt(2);
        for ms in [0u64, 1, 5, 20, 60] {
            let d = Duration::from_millis(ms);
            let (in_task, slept) = rt.block_on(move || {
                let t0 = Instant::now();
                scx_rt::sleep(d);
                (scx_rt::in_task(), t0.elapsed())
            });
            assert!(in_task);
            assert!(slept >= d, "sleep({d:?}) returned after {slept:?}");
        }
    });
}

#[test]
fn sleep_until_wakes_no_earlier_than_the_deadline() {
    with_timeout("sleep-until", 60, || {
        let rt = rt(1);
        let late = rt.block_on(|| {
            let deadline = Instant::now() + Duration::from_millis(25);
            scx_rt::sleep_until(deadline);
            let woke = Instant::now();
            // A deadline in the past returns at once (and must not hang).
            scx_rt::sleep_until(deadline - Duration::from_millis(10));
            woke.checked_duration_since(deadline)
        });
        assert!(late.is_some(), "sleep_until woke before its deadline");
    });
}

#[test]
fn a_thousand_random_sleepers_on_2_cpus_all_wake_on_time() {
    with_timeout("many-sleepers", 60, || {
        let rt = rt(2);
        let mut next = rng(0x5eed);
        let hs: Vec<_> = (0..1000u64)
            .map(|i| {
                let us = next() % 20_000;
                let rounds = 1 + next() % 3;
                rt.spawn(move || {
                    for _ in 0..rounds {
                        let d = Duration::from_micros(us);
                        let t0 = Instant::now();
                        scx_rt::sleep(d);
                        let slept = t0.elapsed();
                        assert!(slept >= d, "task {i}: sleep({d:?}) lasted {slept:?}");
                    }
                    i
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64);
        }
        rt.shutdown();
        assert_eq!(rt.stats().live_tasks, 0);
    });
}

#[test]
fn sleepers_with_one_deadline_all_wake() {
    with_timeout("same-deadline", 60, || {
        let rt = rt(2);
        let deadline = Instant::now() + Duration::from_millis(30);
        let hs: Vec<_> = (0..300)
            .map(|_| {
                rt.spawn(move || {
                    scx_rt::sleep_until(deadline);
                    Instant::now() >= deadline
                })
            })
            .collect();
        for h in hs {
            assert!(h.join().unwrap(), "woke before the shared deadline");
        }
    });
}

#[test]
fn a_sleeping_task_does_not_block_its_cpu() {
    with_timeout("sleep-yields-cpu", 60, || {
        // One pinned CPU: B can only run if A's sleep gave the CPU up.
        let rt = Runtime::builder().nr_cpus(1).build().unwrap();
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let la = log.clone();
        let a = rt.spawn(move || {
            let t0 = Instant::now();
            scx_rt::sleep(Duration::from_millis(200));
            la.lock().push("a woke");
            t0.elapsed()
        });
        let lb = log.clone();
        let b = rt.spawn(move || {
            let mut x = 0u64;
            for i in 0..1000 {
                x = x.wrapping_add(i);
            }
            lb.lock().push("b done");
            x
        });
        assert_eq!(b.join().unwrap(), 499_500);
        let slept = a.join().unwrap();
        assert!(slept >= Duration::from_millis(200), "slept {slept:?}");
        assert_eq!(
            *log.lock(),
            vec!["b done", "a woke"],
            "B did not run while A slept"
        );
    });
}

#[test]
fn many_sleepers_share_one_cpu_with_a_busy_task() {
    with_timeout("sleep-with-busy", 60, || {
        let rt = Runtime::builder().nr_cpus(1).build().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        // Keeps the CPU busy with yields; timers must still fire.
        let busy = rt.spawn(move || {
            let mut n = 0u64;
            while !s2.load(std::sync::atomic::Ordering::SeqCst) {
                scx_rt::yield_now();
                n += 1;
            }
            n
        });
        let sleepers: Vec<_> = (0..50u64)
            .map(|i| {
                rt.spawn(move || {
                    let d = Duration::from_millis(1 + i % 10);
                    let t0 = Instant::now();
                    scx_rt::sleep(d);
                    t0.elapsed() >= d
                })
            })
            .collect();
        for s in sleepers {
            assert!(s.join().unwrap(), "woke early");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(busy.join().unwrap() > 0);
    });
}

#[test]
fn sleep_outside_a_task_sleeps_the_thread() {
    assert!(!scx_rt::in_task());
    let d = Duration::from_millis(20);
    let t0 = Instant::now();
    scx_rt::sleep(d);
    assert!(t0.elapsed() >= d);
    let deadline = Instant::now() + Duration::from_millis(10);
    scx_rt::sleep_until(deadline);
    assert!(Instant::now() >= deadline);
    // A deadline already past returns.
    scx_rt::sleep_until(Instant::now() - Duration::from_millis(1));
    scx_rt::sleep(Duration::ZERO);
}
