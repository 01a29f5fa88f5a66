//! CPU binding: without `allow_migration` a started task stays on the CPU
//! that first ran it (through yields, sleeps and blocking); `spawn_on` pins a
//! task; with the unsafe opt-in tasks still complete exactly once.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scx_rt::sync::channel;
use scx_rt::Runtime;

mod common;
use common::with_timeout;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// Spawns `n` tasks that keep the CPUs busy with `yields` yields each.
///
/// They stop after a fixed count rather than on a flag set once the tasks
/// under test finish: a never-started task can starve behind started
/// yielders (see `a_new_task_is_not_starved_by_yielding_tasks`), and a flag
/// would turn that into a hang of every test here.
fn busy_tasks(rt: &Runtime, n: usize, yields: u64) -> Vec<scx_rt::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            rt.spawn(move || {
                for _ in 0..yields {
                    scx_rt::yield_now();
                }
                yields
            })
        })
        .collect()
}

fn join_busy(busy: Vec<scx_rt::JoinHandle<u64>>, yields: u64) {
    for b in busy {
        assert_eq!(b.join().unwrap(), yields);
    }
}

#[test]
fn a_started_task_stays_on_its_first_cpu_through_yields() {
    with_timeout("bound-yield", 60, || {
        let rt = rt(2);
        let busy = busy_tasks(&rt, 6, 2000);
        let watchers: Vec<_> = (0..8)
            .map(|_| {
                rt.spawn(|| {
                    let first = scx_rt::current_cpu().expect("in a task");
                    for k in 0..1000 {
                        scx_rt::yield_now();
                        let now = scx_rt::current_cpu().expect("in a task");
                        assert_eq!(now, first, "moved from cpu {first} to {now} at yield {k}");
                    }
                    first
                })
            })
            .collect();
        let mut firsts = Vec::new();
        for w in watchers {
            firsts.push(w.join().unwrap());
        }
        join_busy(busy, 2000);
        assert!(firsts.iter().all(|&c| c < 2), "{firsts:?}");
    });
}

#[test]
fn a_started_task_stays_on_its_cpu_through_sleeps_and_blocking() {
    with_timeout("bound-block", 60, || {
        let rt = rt(2);
        let busy = busy_tasks(&rt, 4, 2000);
        let (tx, rx) = channel::<u32>(0);
        let receiver = rt.spawn(move || {
            let first = scx_rt::current_cpu().unwrap();
            let mut n = 0;
            while let Ok(v) = rx.recv() {
                assert_eq!(scx_rt::current_cpu(), Some(first), "moved after recv {v}");
                n += 1;
            }
            n
        });
        let sleeper = rt.spawn(move || {
            let first = scx_rt::current_cpu().unwrap();
            for i in 0..50 {
                scx_rt::sleep(Duration::from_micros(200));
                assert_eq!(scx_rt::current_cpu(), Some(first), "moved after sleep {i}");
                tx.send(i).unwrap();
                assert_eq!(scx_rt::current_cpu(), Some(first), "moved after send {i}");
            }
        });
        sleeper.join().unwrap();
        assert_eq!(receiver.join().unwrap(), 50);
        join_busy(busy, 2000);
    });
}

#[test]
fn spawn_on_runs_only_on_that_cpu() {
    with_timeout("spawn-on", 60, || {
        let rt = rt(3);
        let busy = busy_tasks(&rt, 4, 2000);
        let pinned: Vec<_> = (0..12)
            .map(|i| {
                let cpu = if i % 2 == 0 { 1 } else { i % 3 };
                let h = rt.spawn_on(cpu, move || {
                    let mut seen = Vec::new();
                    for k in 0..200 {
                        seen.push(scx_rt::current_cpu().unwrap());
                        if k % 20 == 0 {
                            scx_rt::sleep(Duration::from_micros(100));
                        } else {
                            scx_rt::yield_now();
                        }
                    }
                    seen
                });
                (cpu, h)
            })
            .collect();
        for (cpu, h) in pinned {
            let seen = h.join().unwrap();
            assert!(
                seen.iter().all(|&c| c == cpu),
                "spawn_on({cpu}) task ran on {:?}",
                seen.iter().filter(|&&c| c != cpu).collect::<Vec<_>>()
            );
        }
        // A child spawned from a spawn_on task starts wherever the scheduler
        // puts it, but only on a CPU of this runtime.
        let c = rt
            .spawn_on(2, || scx_rt::spawn(scx_rt::current_cpu).join().unwrap())
            .join()
            .unwrap();
        assert!(matches!(c, Some(0..=2)), "{c:?}");
        join_busy(busy, 2000);
    });
}

#[test]
#[should_panic(expected = "no cpu 2")]
fn spawn_on_a_missing_cpu_panics() {
    let rt = rt(2);
    let _ = rt.spawn_on(2, || ());
}

#[test]
fn with_allow_migration_tasks_complete_exactly_once() {
    with_timeout("migration", 60, || {
        // SAFETY: the tasks below hold no thread-bound value (no
        // thread-local reference, `Rc`, `RefCell` borrow or std
        // `MutexGuard`) across a switch point: across `yield_now`, `sleep`
        // and channel operations they hold only `Arc`s, atomics, integers,
        // `Vec`s and scx-rt channel halves, all `Send`.
        let builder = unsafe { Runtime::builder().allow_migration() };
        let rt = builder.nr_cpus(3).pin(false).build().unwrap();
        const N: usize = 300;
        let runs: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
        let (tx, rx) = channel::<usize>(8);
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (runs, tx) = (runs.clone(), tx.clone());
                rt.spawn(move || {
                    let mut cpus = Vec::new();
                    for k in 0..50 {
                        cpus.push(scx_rt::current_cpu().unwrap());
                        if k % 10 == 0 {
                            scx_rt::sleep(Duration::from_micros(50));
                        } else {
                            scx_rt::yield_now();
                        }
                    }
                    tx.send(i).unwrap();
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    cpus
                })
            })
            .collect();
        drop(tx);
        let collector = rt.spawn(move || {
            let mut got: Vec<usize> = rx.collect();
            got.sort_unstable();
            got
        });
        for (i, h) in hs.into_iter().enumerate() {
            let cpus = h.join().unwrap();
            assert_eq!(cpus.len(), 50, "task {i}");
            assert!(cpus.iter().all(|&c| c < 3), "task {i} on {cpus:?}");
        }
        assert_eq!(collector.join().unwrap(), (0..N).collect::<Vec<_>>());
        rt.shutdown();
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(
                r.load(Ordering::SeqCst),
                1,
                "task {i} completed a wrong number of times"
            );
        }
    });
}

/// Runs `victim` while `nr_busy` tasks spin with `point` until the victim
/// sets their stop flag; `true` when the victim ran.
fn runs_beside_spinners(nr_cpus: usize, nr_busy: usize, point: fn()) -> bool {
    let rt = rt(nr_cpus);
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..nr_busy)
        .map(|_| {
            let stop = stop.clone();
            rt.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    point();
                }
            })
        })
        .collect();
    // Every spinner has started (and is bound to its CPU).
    std::thread::sleep(Duration::from_millis(50));
    let s2 = stop.clone();
    let victim = rt.spawn(move || s2.store(true, Ordering::Relaxed));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !victim.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ran = victim.is_finished();
    // Let the spinners go either way, so the runtime can shut down.
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
    victim.join().unwrap();
    ran
}

#[test]
fn a_new_task_is_not_starved_by_yielding_tasks() {
    with_timeout("starvation-yield", 60, || {
        // 2 CPUs, 4 started tasks in `while !stop { yield_now() }`: each CPU
        // has 2 bound tasks bouncing through its local DSQ, which is always
        // consumed before the global DSQ holding the new task.
        assert!(
            runs_beside_spinners(2, 4, scx_rt::yield_now),
            "a newly spawned task did not run within 5 s beside 4 yielding tasks on 2 CPUs"
        );
    });
}

#[test]
fn preempt_point_switches_out_after_the_slice() {
    with_timeout("starvation-preempt-point", 60, || {
        // One CPU, one task spinning on preempt_point(); its 20 ms default
        // slice should run out and let the second task run.
        assert!(
            runs_beside_spinners(1, 1, scx_rt::preempt_point),
            "a task looping on preempt_point() kept its CPU for 5 s (slice 20 ms)"
        );
    });
}
