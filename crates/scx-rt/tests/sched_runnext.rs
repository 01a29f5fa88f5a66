//! The default scheduler's runnext rule (`schedulers::work_stealing`,
//! "Runnext"): a task woken by the task running on its CPU runs before the
//! tasks queued there, on the rest of its waker's slice; one such wakee
//! per CPU at a time; a chain of hand-offs lives on one slice; and a task
//! spinning beside a ping-pong pair still gets its turns.
//!
//! Each scenario runs on a one-CPU runtime and records the order in which
//! tasks ran. The slices are long enough that none ends inside a scenario
//! unless the scenario waits for it, so the orders are exact. Tried by
//! breaking each rule in a scratch change: no head insertion (every order
//! test fails), no one-runnext check (`one_wakee_per_cpu_jumps_the_queue`
//! fails: `[x2, x1, h]`), no cap at the chain's end
//! (`a_late_wakee_passes_no_slice_on` fails: `[x, y, h]`), and a fresh
//! slice for every same-CPU wakee with no chain end at all
//! (`the_spinner_gets_turns_beside_a_ping_pong_pair` fails: the spinner
//! starves until the watchdog ejects the scheduler after 30 s).

#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::guard;
use scx_rt::Runtime;

/// A one-CPU runtime under the default scheduler with slice `slice`.
fn one_cpu(slice: Duration) -> Runtime {
    Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .slice(slice)
        .build()
        .expect("runtime build")
}

type Log = Arc<Mutex<Vec<&'static str>>>;

/// A task that waits for one value on a fresh channel, then logs `name`;
/// the sender wakes it.
fn waiter(log: &Log, name: &'static str) -> scx_rt::sync::Sender<()> {
    let (tx, rx) = scx_rt::sync::channel::<()>(1);
    let log = log.clone();
    scx_rt::spawn(move || {
        rx.recv().expect("sender alive");
        log.lock().unwrap().push(name);
    });
    tx
}

/// A task that logs `name` when it runs.
fn logger(log: &Log, name: &'static str) {
    let log = log.clone();
    scx_rt::spawn(move || log.lock().unwrap().push(name));
}

#[test]
fn one_wakee_per_cpu_jumps_the_queue() {
    let order = guard("one runnext", || {
        let rt = one_cpu(Duration::from_secs(60));
        let log: Log = Arc::default();
        let l = log.clone();
        rt.spawn_on(0, move || {
            let x1 = waiter(&l, "x1");
            let x2 = waiter(&l, "x2");
            // Both run and block in `recv` (the yield queues us last).
            scx_rt::yield_now();
            logger(&l, "h");
            // x1 goes to the head, ahead of h; x2, woken while x1's
            // chain is open, queues behind h.
            x1.send(()).unwrap();
            x2.send(()).unwrap();
        })
        .join()
        .unwrap();
        rt.shutdown();
        let v = log.lock().unwrap().clone();
        v
    });
    assert_eq!(order, ["x1", "h", "x2"]);
}

#[test]
fn a_late_wakee_passes_no_slice_on() {
    let order = guard("chain end", || {
        let rt = one_cpu(Duration::from_millis(50));
        let log: Log = Arc::default();
        let l = log.clone();
        rt.spawn_on(0, move || {
            let x_ran = Arc::new(AtomicBool::new(false));
            let (tx_x, rx_x) = scx_rt::sync::channel::<()>(1);
            let y = waiter(&l, "y");
            let (lx, xr) = (l.clone(), x_ran.clone());
            scx_rt::spawn(move || {
                rx_x.recv().expect("sender alive");
                lx.lock().unwrap().push("x");
                xr.store(true, Ordering::Relaxed);
                // x runs only after our slice ran out, past the end of
                // the slice it inherited: y gets nothing from it.
                y.send(()).unwrap();
            });
            scx_rt::yield_now();
            logger(&l, "h");
            tx_x.send(()).unwrap();
            // Keep the CPU until the slice ends: x runs next.
            while !x_ran.load(Ordering::Relaxed) {
                scx_rt::preempt_point();
            }
        })
        .join()
        .unwrap();
        rt.shutdown();
        let v = log.lock().unwrap().clone();
        v
    });
    assert_eq!(order, ["x", "h", "y"]);
}

#[test]
fn the_spinner_gets_turns_beside_a_ping_pong_pair() {
    const TURNS: u64 = 5;
    let (turns, rounds) = guard("spinner turns", || {
        let rt = one_cpu(Duration::from_millis(1));
        let rounds = Arc::new(AtomicU64::new(0));
        let turns = Arc::new(AtomicU64::new(0));
        let (r, t) = (rounds.clone(), turns.clone());
        rt.spawn_on(0, move || {
            let (tx_ab, rx_ab) = scx_rt::sync::channel::<u64>(1);
            let (tx_ba, rx_ba) = scx_rt::sync::channel::<u64>(1);
            let echo = scx_rt::spawn(move || {
                while let Ok(v) = rx_ab.recv() {
                    if tx_ba.send(v).is_err() {
                        break;
                    }
                }
            });
            let stop = Arc::new(AtomicBool::new(false));
            let (s, r2, t2) = (stop.clone(), r.clone(), t.clone());
            let spinner = scx_rt::spawn(move || {
                // A turn: the pair made round trips since the last pass.
                let mut seen = r2.load(Ordering::Relaxed);
                while !s.load(Ordering::Relaxed) {
                    let now = r2.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        t2.fetch_add(1, Ordering::Relaxed);
                    }
                    scx_rt::preempt_point();
                }
            });
            // Round trips until the spinner has had its turns; if it
            // starved, the guard reports a hang.
            let mut i = 0;
            while t.load(Ordering::Relaxed) < TURNS {
                tx_ab.send(i).unwrap();
                rx_ba.recv().unwrap();
                i += 1;
                r.store(i, Ordering::Relaxed);
            }
            stop.store(true, Ordering::Relaxed);
            drop(tx_ab);
            spinner.join().unwrap();
            echo.join().unwrap();
        })
        .join()
        .unwrap();
        // A starved spinner is found by the watchdog (runnable for 30 s),
        // which ejects the scheduler: the fallback FIFO would then let the
        // spinner run and the loop end.
        let ejections = rt.stats().ejections;
        rt.shutdown();
        assert_eq!(
            ejections, 0,
            "the spinner starved until the watchdog ejected the scheduler"
        );
        (
            turns.load(Ordering::Relaxed),
            rounds.load(Ordering::Relaxed),
        )
    });
    assert!(turns >= TURNS, "{turns} turns in {rounds} round trips");
    // Round trips ran between the spinner's turns, many per turn: the
    // pair was not sent behind the spinner at every hop.
    assert!(rounds > 2 * turns, "{turns} turns in {rounds} round trips");
}
