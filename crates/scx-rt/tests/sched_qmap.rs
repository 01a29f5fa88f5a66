//! The `scx_qmap` port (`schedulers::Qmap`): exactly-once completion of
//! mixed-weight workloads on 1, 2 and 4 unpinned CPUs; weighted batches
//! (counted dispatches, 1:2:4:8:16 per round); high-priority boosting
//! through the DSQ iterator moves; `cpu_release` re-enqueueing the local
//! DSQ through `reenqueue_local` without losing a task; the queue state in
//! the dump.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use scx_rt::schedulers::qmap::{queue_of, QmapStats, HIGHPRI_WEIGHT, NR_QUEUES};
use scx_rt::schedulers::Qmap;
use scx_rt::{CpuPreemptReason, Runtime};

/// A weight for each FIFO (0..5), and one above `HIGHPRI_WEIGHT`.
const WEIGHTS: [u32; 6] = [1, 30, 100, 300, 1000, 10_000];

fn rt(n: usize, q: Qmap) -> (Arc<Runtime>, Arc<QmapStats>) {
    let stats = q.stats();
    (Arc::new(rt_with(n, q)), stats)
}

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// `top` tasks of the weights in `WEIGHTS`, spawned from outside; every
/// third yields a few times, every fifth spawns and joins two children.
/// Checks that each ran exactly once.
fn mixed_weights(rt: &Arc<Runtime>, top: usize) {
    let counts = Counts::new(top * 3);
    let hs: Vec<_> = (0..top)
        .map(|i| {
            let counts = counts.clone();
            let w = WEIGHTS[i % WEIGHTS.len()];
            rt.spawn_weighted(w, move || {
                counts.hit(i);
                if i % 3 == 0 {
                    for _ in 0..3 {
                        scx_rt::yield_now();
                    }
                }
                if i % 5 == 0 {
                    let kids: Vec<_> = (0..2)
                        .map(|k| {
                            let counts = counts.clone();
                            let idx = top + 2 * i + k;
                            scx_rt::spawn(move || {
                                counts.hit(idx);
                                scx_rt::yield_now();
                            })
                        })
                        .collect();
                    for h in kids {
                        h.join().unwrap();
                    }
                } else {
                    counts.hit(top + 2 * i);
                    counts.hit(top + 2 * i + 1);
                }
                i
            })
            .unwrap()
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().expect("task panicked"), i);
    }
    counts.assert_exactly_once("qmap mixed weights");
}

#[test]
fn every_task_runs_exactly_once_with_mixed_weights_on_1_2_and_4_cpus() {
    for (n, batch, boost) in [(1, 1, false), (2, 1, true), (2, 8, false), (4, 4, true)] {
        let (stats, exit) = guard("qmap mixed weights", move || {
            let (rt, stats) = rt(n, Qmap::new().batch(batch).highpri_boosting(boost));
            mixed_weights(&rt, 600);
            rt.shutdown();
            (stats, rt.exit_info())
        });
        assert!(exit.is_none(), "{n} cpus: unexpected exit: {exit:?}");
        for q in 0..NR_QUEUES {
            assert!(
                load(&stats.enqueued[q]) > 0,
                "{n} cpus: FIFO {q} was used (weights choose the FIFO)"
            );
        }
    }
}

/// From inside one task of a one-CPU runtime whose tasks never lose the
/// CPU (`SLICE_INF`), spawns `(weight, tag)` tasks in order; each pushes
/// its tag to the returned log when it runs. Returns once all ran.
fn run_in_order(rt: &Arc<Runtime>, tasks: Vec<(u32, usize)>) -> Vec<usize> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (r, l) = (rt.clone(), log.clone());
    let hs = rt.block_on(move || {
        tasks
            .into_iter()
            .map(|(w, tag)| {
                let l = l.clone();
                r.spawn_weighted(w, move || l.lock().push(tag)).unwrap()
            })
            .collect::<Vec<_>>()
    });
    for h in hs {
        h.join().unwrap();
    }
    let log = log.lock().clone();
    log
}

#[test]
fn weighted_batches_give_heavier_fifos_more_dispatches_per_round() {
    // FIFO q holds 4 rounds' worth: 4 * 2^q tasks, spawned interleaved.
    let (log, stats, exit) = guard("qmap weighted batches", || {
        let (rt, stats) = rt(1, Qmap::new().slice(Duration::MAX));
        let mut tasks = Vec::new();
        for i in 0..64 {
            for (q, &w) in WEIGHTS[..NR_QUEUES].iter().enumerate() {
                if i < 4 << q {
                    tasks.push((w, q));
                }
            }
        }
        let log = run_in_order(&rt, tasks);
        rt.shutdown();
        (log, stats, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(log.len(), 124);
    // While every FIFO has work, any 31 consecutive dispatches form one
    // round: 2^q from FIFO q. Two rounds from the start:
    for (r, round) in log[..62].chunks(31).enumerate() {
        let per_q: Vec<usize> = (0..NR_QUEUES)
            .map(|q| round.iter().filter(|&&t| t == q).count())
            .collect();
        assert_eq!(
            per_q,
            vec![1, 2, 4, 8, 16],
            "dispatches per FIFO in round {r}: {log:?}"
        );
    }
    for q in 0..NR_QUEUES {
        assert_eq!(load(&stats.enqueued[q]), (4 << q) as u64 + (q == 2) as u64);
        assert_eq!(load(&stats.dispatched[q]), load(&stats.enqueued[q]));
    }
}

#[test]
fn highpri_boosting_moves_high_priority_tasks_ahead_on_the_shared_dsq() {
    // Sixteen default-weight tasks, then four of nice -20's weight. A
    // batch of 32 moves all twenty to SHARED_DSQ in one refill, in the
    // weighted round-robin's order: FIFO 2's turn of four default ones,
    // the four heavy ones (FIFO 4), the rest. The first of them runs at
    // once; at the next dispatch the walk of SHARED_DSQ moves the heavy
    // ones to HIGHPRI_DSQ, and they run next.
    let heavy = HIGHPRI_WEIGHT + 100;
    assert_eq!(queue_of(heavy), 4);
    let mut tasks: Vec<(u32, usize)> = (0..16).map(|i| (100, i)).collect();
    tasks.extend((16..20).map(|i| (heavy, i)));
    for boost in [true, false] {
        let tasks = tasks.clone();
        let (log, stats, exit) = guard("qmap boosting", move || {
            let q = Qmap::new()
                .slice(Duration::MAX)
                .batch(32)
                .highpri_boosting(boost);
            let (rt, stats) = rt(1, q);
            let log = run_in_order(&rt, tasks);
            rt.shutdown();
            (log, stats, rt.exit_info())
        });
        assert!(exit.is_none(), "unexpected exit: {exit:?}");
        let mut heavy_at: Vec<usize> = (0..log.len()).filter(|&i| log[i] >= 16).collect();
        heavy_at.sort_unstable();
        if boost {
            assert_eq!(heavy_at, vec![1, 2, 3, 4], "boosted: {log:?}");
            assert_eq!(load(&stats.boosted), 4);
            assert_eq!(load(&stats.highpri_dispatched), 4);
        } else {
            assert_eq!(heavy_at, vec![4, 5, 6, 7], "FIFO order: {log:?}");
            assert_eq!(load(&stats.boosted), 0);
        }
        assert_eq!(log[0], 0, "the first default-weight task ran first");
    }
}

/// The ids listed on CPU `cpu`'s `local_dsq:` line of a dump.
fn local_dsq_len(dump: &str, cpu: usize) -> usize {
    let head = format!("CPU {cpu:<4}:");
    let Some(start) = dump.find(&head) else {
        return 0;
    };
    let section = &dump[start + head.len()..];
    let section = &section[..section.find("\nCPU ").unwrap_or(section.len())];
    section
        .lines()
        .find_map(|l| l.trim().strip_prefix("local_dsq: ["))
        .map_or(0, |ids| ids.trim_end_matches(']').split(", ").count())
}

#[test]
fn cpu_release_reenqueues_the_local_dsq_and_loses_no_task() {
    const N: usize = 6;
    let (stats, cpus, exit) = guard("qmap cpu_release", || {
        let (rt, stats) = rt(2, Qmap::new().slice(Duration::MAX));
        // A spinner holds CPU 0 (infinite slice).
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (s, st) = (stop.clone(), started.clone());
        let spinner = rt.spawn_on(0, move || {
            st.store(true, Ordering::SeqCst);
            while !s.load(Ordering::SeqCst) {
                scx_rt::preempt_point();
            }
        });
        wait_until("the spinner to run", || started.load(Ordering::SeqCst));
        // Tasks pinned to CPU 0 wait in FIFO 2. A heavy unpinned task
        // wakes CPU 1, whose dispatch pops them and inserts them into CPU
        // 0's local DSQ, behind the spinner.
        let pinned: Vec<_> = (0..N)
            .map(|_| rt.spawn_on(0, || scx_rt::current_cpu().unwrap()))
            .collect();
        rt.spawn_weighted(1000, || ()).unwrap().join().unwrap();
        wait_until("CPU 0's local DSQ to hold the pinned tasks", || {
            local_dsq_len(&rt.dump(), 0) == N
        });
        // Higher-class work takes CPU 0: cpu_release re-enqueues the
        // spinner (back at the head of the local DSQ) and the N tasks.
        rt.run_on_cpu(0, CpuPreemptReason::Rt, || ()).unwrap();
        wait_until("CPU 0 to be acquired again", || {
            load(&stats.cpu_acquired) == 1
        });
        stop.store(true, Ordering::SeqCst);
        spinner.join().unwrap();
        let cpus: Vec<usize> = pinned.into_iter().map(|h| h.join().unwrap()).collect();
        rt.shutdown();
        (stats, cpus, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(cpus, vec![0; N], "the pinned tasks ran, on CPU 0");
    assert_eq!(load(&stats.cpu_released), 1);
    assert_eq!(load(&stats.cpu_acquired), 1);
    assert_eq!(
        load(&stats.reenqueued),
        N as u64 + 1,
        "reenqueue_local handed back the spinner and the waiting tasks"
    );
}

#[test]
fn repeated_cpu_release_under_load_loses_no_task() {
    let (stats, exit) = guard("qmap cpu_release under load", || {
        let (rt, stats) = rt(2, Qmap::new().batch(4).highpri_boosting(true));
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (rt.clone(), done.clone());
        // Higher-class work on both CPUs while the workload runs.
        let interrupter = std::thread::spawn(move || {
            let mut i = 0usize;
            while !d.load(Ordering::SeqCst) {
                r.run_on_cpu(i % 2, CpuPreemptReason::Dl, || ()).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        mixed_weights(&rt, 1000);
        // The release is counted when a task was running; make sure at
        // least one happened before stopping.
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let spinner = rt.spawn_on(0, move || {
            while !s.load(Ordering::SeqCst) {
                scx_rt::preempt_point();
            }
        });
        wait_until("a cpu_release", || load(&stats.cpu_released) > 0);
        stop.store(true, Ordering::SeqCst);
        spinner.join().unwrap();
        done.store(true, Ordering::SeqCst);
        interrupter.join().unwrap();
        rt.shutdown();
        (stats, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert!(load(&stats.reenqueued) > 0, "reenqueue_local ran");
}

#[test]
fn dump_shows_each_fifo_and_the_dsqs() {
    let (first, last, exit) = guard("qmap dump", || {
        let (rt, _stats) = rt(1, Qmap::new().slice(Duration::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (s, st) = (stop.clone(), started.clone());
        let spinner = rt.spawn(move || {
            st.store(true, Ordering::SeqCst);
            while !s.load(Ordering::SeqCst) {
                scx_rt::preempt_point();
            }
        });
        wait_until("the spinner to run", || started.load(Ordering::SeqCst));
        // While it holds the CPU: 3 + 2 + 0 + 1 + 4 tasks wait per FIFO.
        let hs: Vec<_> = [(10, 3), (30, 2), (300, 1), (9000, 4)]
            .into_iter()
            .flat_map(|(w, n)| (0..n).map(move |_| w))
            .map(|w| rt.spawn_weighted(w, || ()).unwrap())
            .collect();
        let first = rt.dump();
        stop.store(true, Ordering::SeqCst);
        spinner.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        let last = rt.dump();
        rt.shutdown();
        (first, last, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    for line in [
        "qmap: slice=18446744073709551615ns batch=1 highpri_boosting=false",
        "qmap: queue0 weight=1-25 queued=3 enqueued=3 dispatched=0 head_wait=",
        "qmap: queue1 weight=26-50 queued=2 enqueued=2 dispatched=0 head_wait=",
        // The spinner went through FIFO 2.
        "qmap: queue2 weight=51-199 queued=0 enqueued=1 dispatched=1\n",
        "qmap: queue3 weight=200-399 queued=1 enqueued=1 dispatched=0 head_wait=",
        "qmap: queue4 weight=400-10000 queued=4 enqueued=4 dispatched=0 head_wait=",
        "qmap: shared_dsq queued=0 tail_first=[]",
        "qmap: highpri_dsq queued=0",
        "  qmap: cursor queue2 left=3",
        "    qmap: weight=100 queue=2",
    ] {
        assert!(first.contains(line), "missing {line:?} in:\n{first}");
    }
    for (q, n) in [(0, 3), (1, 2), (3, 1), (4, 4)] {
        let w = ["1-25", "26-50", "", "200-399", "400-10000"][q];
        let line = format!("qmap: queue{q} weight={w} queued=0 enqueued={n} dispatched={n}\n");
        assert!(last.contains(&line), "missing {line:?} in:\n{last}");
    }
    assert!(
        last.contains("cpu_released=0 cpu_acquired=0"),
        "the counters line: {last}"
    );
}
