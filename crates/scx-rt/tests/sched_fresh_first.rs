//! `schedulers::FreshFirst`: on one CPU, a task spawned while long tasks
//! take turns runs as soon as the running one's slice ends, not after
//! every queued long task (the global FIFO, checked beside it, makes it
//! wait for all of them); and arrivals cannot starve a task whose slice
//! ran out. Yields stand in for slice expiries: both end the slice
//! (`slice() == 0` at the enqueue), so the order is deterministic.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::schedulers::fresh_first::FRESH_BURST;
use scx_rt::schedulers::{Fifo, FreshFirst};
use scx_rt::Scheduler;

type Log = Arc<Mutex<Vec<char>>>;

/// One CPU under `sched`: a spawner task starts three long tasks `0`,
/// `1`, `2` (each logs its name and yields, six rounds); in its third
/// round `0` spawns the short task `S`. Returns the log.
fn newcomer_among_long_tasks<S: Scheduler + 'static>(sched: S) -> Vec<char> {
    guard("a newcomer among long tasks", move || {
        let rt = scx_rt::Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .scheduler(sched)
            .build()
            .unwrap();
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let mk = |name: char| {
            let log = log.clone();
            move || {
                let mut short = None;
                for r in 0..6 {
                    log.lock().push(name);
                    if name == '0' && r == 2 {
                        let log = log.clone();
                        short = Some(scx_rt::spawn(move || log.lock().push('S')));
                    }
                    scx_rt::yield_now();
                }
                if let Some(s) = short {
                    s.join().unwrap();
                }
            }
        };
        // Spawned by one task with no switch point in between: all three
        // are queued before any runs.
        let longs = [mk('0'), mk('1'), mk('2')];
        rt.spawn(move || {
            let hs: Vec<_> = longs.into_iter().map(scx_rt::spawn).collect();
            for h in hs {
                h.join().unwrap();
            }
        })
        .join()
        .unwrap();
        rt.shutdown();
        assert!(rt.exit_info().is_none(), "{:?}", rt.exit_info());
        let l = log.lock().clone();
        l
    })
}

/// What ran between `0`'s third turn (the spawn) and `S`.
fn ran_before_the_newcomer(log: &[char]) -> String {
    let spawn = log
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == '0')
        .nth(2)
        .map(|(i, _)| i)
        .expect("task 0 had a third turn");
    let s = log.iter().position(|&c| c == 'S').expect("S ran");
    assert!(s > spawn, "S ran before it was spawned: {log:?}");
    log[spawn + 1..s].iter().collect()
}

#[test]
fn a_newcomer_runs_before_long_tasks_whose_slices_ran_out() {
    let log = newcomer_among_long_tasks(FreshFirst::new());
    assert_eq!(log.len(), 19, "{log:?}");
    assert_eq!(ran_before_the_newcomer(&log), "", "{log:?}");
    // The long tasks keep their round robin.
    let longs: String = log.iter().filter(|&&c| c != 'S').collect();
    assert_eq!(longs, "012".repeat(6), "{log:?}");
    // The global FIFO, same scenario: S waits for both other long tasks
    // (the scenario does exercise the order).
    let fifo = newcomer_among_long_tasks(Fifo);
    assert_eq!(ran_before_the_newcomer(&fifo), "12", "{fifo:?}");
}

#[test]
fn arrivals_do_not_starve_a_task_whose_slice_ran_out() {
    // One CPU: `L` spawns 3 * FRESH_BURST short tasks `c` at once, then
    // yields five times. Fresh first, but L gets a turn after at most
    // FRESH_BURST of them.
    let n = 3 * FRESH_BURST as usize;
    let log = guard("arrivals and an expired task", move || {
        let rt = scx_rt::Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .scheduler(FreshFirst::new())
            .build()
            .unwrap();
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        rt.spawn(move || {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let log = l2.clone();
                    scx_rt::spawn(move || log.lock().push('c'))
                })
                .collect();
            for _ in 0..5 {
                l2.lock().push('L');
                scx_rt::yield_now();
            }
            for h in hs {
                h.join().unwrap();
            }
        })
        .join()
        .unwrap();
        rt.shutdown();
        let l = log.lock().clone();
        l
    });
    assert_eq!(log.len(), n + 5, "{log:?}");
    let s: String = log.iter().collect();
    // L's first turn is before any c; then every FRESH_BURST c's, one L.
    let burst = "c".repeat(FRESH_BURST as usize);
    let want = format!("L{burst}L{burst}L{burst}LL");
    assert_eq!(s, want);
}
