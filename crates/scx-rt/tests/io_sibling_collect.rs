//! Readiness collected by a CPU other than the one the fd registered with
//! (`scx_rt::io`, "Who collects what"): in a runtime whose tasks may
//! migrate, a CPU with nothing to run looks at its siblings' reactors too,
//! so a connection whose registering CPU is held by a CPU-bound task is
//! still served, on the idle CPU.
//!
//! The registering CPU runs a task that never reaches a switch point under
//! endless slices: it takes no scheduling step, so it never looks at its
//! reactor until that task ends. The task ends when the read completes or,
//! failing that, after [`GIVE_UP`]; it says which. Without the sibling's
//! look the read can only complete after the give-up, and the test fails.
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use scx_rt::io::GreenFd;
use scx_rt::Runtime;

mod common;
use common::guard;

/// Rounds: each a byte written while the registering CPU is held.
const ROUNDS: u32 = 3;

/// How long the CPU-bound task holds its CPU at most (well inside the
/// guard's hang limit, so that a failure reads as one, not as a hang).
const GIVE_UP: Duration = Duration::from_secs(10);

/// The idle CPU polls for an hour: its peeks, not a wake-up from its
/// sleep, must find the readiness (a sleeping CPU watches only its own
/// reactor).
const ENDLESS_POLL: Duration = Duration::from_secs(3600);

#[test]
fn readiness_is_served_while_its_cpu_runs_a_cpu_bound_task() {
    guard("a read whose registering CPU is held", || {
        // SAFETY: the tasks below hold no thread-bound value across a
        // switch point: across the blocking read they hold a `GreenFd`
        // over a pipe, an `Arc` of atomics and an mpsc sender, all `Send`;
        // the spinning task has no switch point at all.
        let builder = unsafe { Runtime::builder().allow_migration() };
        let rt = builder
            .nr_cpus(2)
            .pin(false)
            .slice(Duration::MAX)
            .idle_poll(ENDLESS_POLL)
            .build()
            .unwrap();
        let (r, mut w) = std::io::pipe().unwrap();
        let read = Arc::new(AtomicU32::new(0));
        // Before each read the reader sends the CPU it runs on (the first
        // one is the CPU its pipe registers with: its first blocking call).
        let (cpu_tx, cpu_rx) = mpsc::channel::<usize>();
        let reader = {
            let read = read.clone();
            rt.spawn(move || {
                let r = GreenFd::new(r).unwrap();
                let mut got = Vec::new();
                for _ in 0..ROUNDS {
                    cpu_tx.send(scx_rt::current_cpu().unwrap()).unwrap();
                    let mut b = [0u8; 1];
                    (&r).read_exact(&mut b).unwrap();
                    got.push(b[0]);
                    read.fetch_add(1, Ordering::SeqCst);
                }
                got
            })
        };
        let home = cpu_rx.recv().unwrap();
        let other = 1 - home;
        for i in 0..ROUNDS {
            if i > 0 {
                cpu_rx.recv().unwrap();
            }
            // Let the reader park (it said it is about to read).
            std::thread::sleep(Duration::from_millis(20));
            let started = Arc::new(AtomicBool::new(false));
            let hog = {
                let (read, started) = (read.clone(), started.clone());
                rt.spawn_on(home, move || {
                    started.store(true, Ordering::SeqCst);
                    let end = Instant::now() + GIVE_UP;
                    // No switch point: the CPU takes no step until this
                    // returns.
                    while read.load(Ordering::SeqCst) <= i {
                        if Instant::now() >= end {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                })
            };
            while !started.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            w.write_all(&[i as u8]).unwrap();
            assert!(
                hog.join().unwrap(),
                "round {i}: the read did not complete while CPU {home} was held"
            );
        }
        assert_eq!(
            reader.join().unwrap(),
            (0..ROUNDS).map(|i| i as u8).collect::<Vec<_>>()
        );
        let st = rt.stats();
        assert!(
            st.cpus[other].io_wakeups_sibling >= u64::from(ROUNDS),
            "CPU {other} did not collect CPU {home}'s readiness: {:?}",
            st.cpus[other]
        );
        assert_eq!(st.cpus[home].io_wakeups_sibling, 0, "{:?}", st.cpus[home]);
        rt.shutdown();
    });
}

/// Without `allow_migration` a started task is bound to its CPU: nobody
/// else could run it, so no CPU collects another's readiness.
#[test]
fn bound_tasks_are_collected_by_their_own_cpu_only() {
    guard("bound tasks' readiness", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .idle_poll(Duration::ZERO)
            .build()
            .unwrap();
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (r, w) = std::io::pipe().unwrap();
                let reader = rt.spawn(move || {
                    let r = GreenFd::new(r).unwrap();
                    let mut b = [0u8; 1];
                    for _ in 0..20 {
                        (&r).read_exact(&mut b).unwrap();
                    }
                    b[0]
                });
                (i, reader, w)
            })
            .collect();
        for (i, reader, mut w) in hs {
            for _ in 0..20 {
                w.write_all(&[i]).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(reader.join().unwrap(), i);
        }
        for c in &rt.stats().cpus {
            assert_eq!(c.io_wakeups_sibling, 0, "{c:?}");
        }
        rt.shutdown();
    });
}
