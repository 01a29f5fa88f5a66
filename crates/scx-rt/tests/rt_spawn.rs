//! Spawning, joining, panics, nesting, and exactly-once completion on 1, 2
//! and 8 (unpinned, more than the cores) workers.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use scx_rt::Runtime;

mod common;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

#[test]
fn spawn_join_returns_value() {
    let rt = rt(2);
    let h = rt.spawn(|| 6 * 7);
    assert_eq!(h.join().unwrap(), 42);
    assert_eq!(rt.block_on(|| "hi".to_string()), "hi");
}

/// Closures and results too large to be kept inside the task (its entry is
/// then boxed beside it) run and join like small ones, from a green task
/// and from an OS thread, and `is_finished` turns true before the join.
#[test]
fn large_closures_and_results_join() {
    let rt = rt(2);
    let big = [3u64; 64];
    let h = rt.spawn(move || big.map(|x| x * 2));
    assert_eq!(h.join().unwrap(), [6u64; 64]);
    let sum = rt.block_on(move || {
        let hs: Vec<_> = (0..100u64)
            .map(|i| scx_rt::spawn(move || big.iter().sum::<u64>() + i))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, 100 * 64 * 3 + (0..100u64).sum::<u64>());
    let h = rt.spawn(|| vec![1u8; 10]);
    while !h.is_finished() {
        std::thread::yield_now();
    }
    assert_eq!(h.join().unwrap(), vec![1u8; 10]);
    let h = rt.spawn(move || -> [u64; 64] { panic!("big {}", big[0]) });
    assert_eq!(h.join().unwrap_err().panic_message(), "big 3");
}

fn exactly_once(nr_cpus: usize, n: usize) {
    let rt = rt(nr_cpus);
    let runs: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let runs = runs.clone();
            rt.spawn(move || {
                runs[i].fetch_add(1, Ordering::Relaxed);
                i
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
    rt.shutdown();
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.load(Ordering::Relaxed),
            1,
            "task {i} ran a wrong number of times"
        );
    }
}

#[test]
fn hundred_k_tasks_run_once_on_1_cpu() {
    exactly_once(1, 100_000);
}

#[test]
fn hundred_k_tasks_run_once_on_2_cpus() {
    exactly_once(2, 100_000);
}

#[test]
fn hundred_k_tasks_run_once_on_8_unpinned_cpus() {
    exactly_once(8, 100_000);
}

#[test]
fn nested_spawns_and_green_join() {
    let rt = rt(2);
    let total = rt.block_on(|| {
        let hs: Vec<_> = (0..100u64)
            .map(|i| {
                scx_rt::spawn(move || {
                    let inner: Vec<_> = (0..10u64)
                        .map(|j| scx_rt::spawn(move || i * 10 + j))
                        .collect();
                    inner.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, (0..1000u64).sum());
}

#[test]
fn panics_are_captured_and_the_worker_keeps_running() {
    let rt = rt(1);
    let h = rt.spawn(|| -> u32 { panic!("boom {}", 7) });
    let e = h.join().unwrap_err();
    assert!(e.is_panic());
    assert_eq!(e.panic_message(), "boom 7");
    assert_eq!(rt.spawn(|| 5).join().unwrap(), 5, "the worker survived");
}

#[test]
fn yields_interleave_on_one_cpu() {
    let rt = rt(1);
    let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let l = log.clone();
    // Spawned from inside a task on the only CPU: both are queued before
    // either runs, so the order depends on the yields alone.
    rt.block_on(move || {
        let hs: Vec<_> = (0..2)
            .map(|id| {
                let log = l.clone();
                scx_rt::spawn(move || {
                    for k in 0..3 {
                        log.lock().push((id, k));
                        scx_rt::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let log = log.lock().clone();
    assert_eq!(log.len(), 6);
    // FIFO with yields on one CPU: strict alternation.
    assert_eq!(
        log,
        vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)],
        "yield did not switch"
    );
}

#[test]
fn skynet_1m() {
    fn skynet(num: u64, size: u64) -> u64 {
        if size == 1 {
            return num;
        }
        let hs: Vec<_> = (0..10)
            .map(|i| {
                let sub = size / 10;
                scx_rt::spawn(move || skynet(num + i * sub, sub))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    }
    let rt = rt(2);
    let sum = rt.block_on(|| skynet(0, 1_000_000));
    assert_eq!(sum, 499_999_500_000);
    let st = rt.stats();
    assert!(
        st.stacks_allocated < 200_000,
        "stacks: {}",
        st.stacks_allocated
    );
}

#[test]
fn current_cpu_is_in_range() {
    let rt = rt(3);
    let cpus = AtomicUsize::new(0);
    let _ = &cpus;
    for _ in 0..20 {
        let c = rt.block_on(|| scx_rt::current_cpu().unwrap());
        assert!(c < 3);
    }
    assert!(scx_rt::current_cpu().is_none());
}

/// A task that exits unreferenced (its handle dropped) leaves its control
/// block to its CPU, and the next spawns there build in it: each such task
/// still has its own id, closure and result, and what a detached task
/// returned is dropped when it exits, not when its block is reused.
#[test]
fn recycled_task_blocks_start_fresh_and_drop_results_at_exit() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    const ROUNDS: usize = 200;
    let rt = rt(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let ids = rt.block_on(move || {
        let mut ids = Vec::new();
        for round in 0..ROUNDS {
            let d2 = d.clone();
            let (tx, rx) = scx_rt::sync::channel(1);
            drop(scx_rt::spawn(move || {
                tx.send(scx_rt::task_id().unwrap()).unwrap();
                Counted(d2)
            }));
            ids.push(rx.recv().unwrap());
            let mut spins = 0;
            while d.load(Ordering::SeqCst) != round + 1 {
                scx_rt::yield_now();
                spins += 1;
                assert!(
                    spins < 1000,
                    "round {round}: the result was not dropped at exit"
                );
            }
        }
        let hs: Vec<_> = (0..100u64).map(|i| scx_rt::spawn(move || i * 3)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 3 * (0..100u64).sum::<u64>());
        ids
    });
    assert_eq!(dropped.load(Ordering::SeqCst), ROUNDS);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ROUNDS, "every task has its own id");
}

/// What a detached task returns is dropped at its exit, and that drop may
/// run any code: here it wakes a task blocked on the same CPU (the last
/// `Sender` of a channel goes, so the receiver wakes with an error). The
/// drop must not run while the CPU's scheduling step holds its rq lock
/// (the wake-up of a task on that CPU takes that lock: a deadlock on a
/// lock that does not nest).
#[test]
fn a_detached_result_whose_drop_wakes_a_task_on_its_cpu() {
    common::guard("a detached result's drop wakes a same-CPU task", || {
        let rt = rt(1);
        rt.block_on(|| {
            for _ in 0..50 {
                let (tx, rx) = scx_rt::sync::channel::<u8>(1);
                let receiver = scx_rt::spawn(move || rx.recv().is_err());
                // Let the receiver block first.
                scx_rt::yield_now();
                drop(scx_rt::spawn(move || tx));
                assert!(receiver.join().unwrap(), "the receiver saw the sender go");
            }
        });
    });
}

/// Join handles dropped on a worker after their tasks exited leave the
/// tasks' blocks to that worker, and later spawns there are built in them.
/// Across many such reuses, handles of finished tasks held all along keep
/// their own ids and results, every task runs once with its own closure,
/// and every result is dropped exactly once: when it is joined and
/// dropped, or with its handle when that is dropped unjoined.
#[test]
fn joined_handles_recycle_blocks_without_touching_held_ones() {
    struct Counted(Arc<AtomicUsize>, u64);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    const HELD: u64 = 64;
    const ROUNDS: u64 = 20;
    const BURST: u64 = 200;
    for cpus in [1, 2] {
        let rt = rt(cpus);
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        rt.block_on(move || {
            let held: Vec<_> = (0..HELD)
                .map(|i| scx_rt::spawn(move || vec![i; 3]))
                .collect();
            let held_ids: Vec<_> = held.iter().map(|h| h.id()).collect();
            let mut ran = 0;
            for round in 0..ROUNDS {
                let hs: Vec<_> = (0..BURST)
                    .map(|i| {
                        let d = d.clone();
                        scx_rt::spawn(move || Counted(d, round * BURST + i))
                    })
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    if i % 3 == 0 {
                        // Dropped unjoined, once finished: the result goes
                        // with the handle.
                        while !h.is_finished() {
                            scx_rt::yield_now();
                        }
                        drop(h);
                    } else {
                        let c = h.join().unwrap();
                        assert_eq!(c.1, round * BURST + i as u64);
                    }
                    ran += 1;
                }
                // A task on another CPU may not have exited yet: its
                // result then goes with that CPU's last reference.
                assert!(d.load(Ordering::SeqCst) <= ran, "round {round}");
            }
            for (i, h) in held.into_iter().enumerate() {
                assert_eq!(h.id(), held_ids[i]);
                assert_eq!(h.join().unwrap(), vec![i as u64; 3]);
            }
        });
        drop(rt);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            (ROUNDS * BURST) as usize,
            "{cpus} CPUs"
        );
    }
}
