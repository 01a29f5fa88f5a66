//! `spawn_blocking`: blocking code runs on the blocking pool while the
//! calling green task waits green-ly, so its CPU keeps running other tasks;
//! values and panics come back; many calls complete under the thread cap;
//! idle threads exit after the keep-alive; shutdown joins the pool.
//!
//! Progress is asserted by ordering and counters: a test that would
//! deadlock if a blocking call held its CPU is run under a hang guard.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use scx_rt::Runtime;

mod common;
use common::{guard, wait_until};

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// A blocking `read` on a socket, inside a task on a 1-CPU runtime: the
/// only thing that can satisfy it is another green task on that same CPU,
/// which must therefore run (100 switches of it, counted) while the read
/// blocks. If `spawn_blocking` held the CPU, this would deadlock.
#[test]
fn blocking_read_leaves_the_cpu_to_other_tasks() {
    guard("blocking read", || {
        let rt = rt(1);
        let (mut rd, mut wr) = UnixStream::pair().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let (s, p) = (started.clone(), progress.clone());
        let reader = rt.spawn(move || {
            let cpu = scx_rt::current_cpu();
            let (buf, thread) = scx_rt::spawn_blocking(move || {
                s.store(true, Ordering::SeqCst);
                let mut buf = [0u8; 4];
                rd.read_exact(&mut buf).unwrap();
                (buf, std::thread::current().name().map(str::to_owned))
            })
            .join()
            .unwrap();
            // The writer made all its progress while we were blocked.
            assert_eq!(p.load(Ordering::SeqCst), 100);
            assert_eq!(scx_rt::current_cpu(), cpu);
            (buf, thread)
        });
        let (s, p) = (started.clone(), progress.clone());
        let writer = rt.spawn(move || {
            while !s.load(Ordering::SeqCst) {
                scx_rt::yield_now();
            }
            for _ in 0..100 {
                p.fetch_add(1, Ordering::SeqCst);
                scx_rt::yield_now();
            }
            wr.write_all(b"ping").unwrap();
        });
        writer.join().unwrap();
        let (buf, thread) = reader.join().unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(thread.as_deref(), Some("scx-rt-blocking"));
    });
}

/// `std::thread::sleep` in a loop inside the blocking closure, released
/// only by a green task on the same (only) CPU after it counted 50 yields.
#[test]
fn blocking_sleep_leaves_the_cpu_to_other_tasks() {
    guard("blocking sleep", || {
        let rt = rt(1);
        let release = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(AtomicUsize::new(0));
        let (r, c) = (release.clone(), counted.clone());
        let sleeper = rt.spawn(move || {
            scx_rt::spawn_blocking(move || {
                let mut naps = 0u64;
                while !r.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                    naps += 1;
                }
                naps
            })
            .join()
            .unwrap();
            c.load(Ordering::SeqCst)
        });
        let (r, c) = (release.clone(), counted.clone());
        rt.spawn(move || {
            for _ in 0..50 {
                c.fetch_add(1, Ordering::SeqCst);
                scx_rt::yield_now();
            }
            r.store(true, Ordering::SeqCst);
        })
        .join()
        .unwrap();
        assert_eq!(sleeper.join().unwrap(), 50);
    });
}

#[test]
fn values_and_panics_come_back() {
    guard("values and panics", || {
        let rt = rt(2);
        let (v, msg, after) = rt.block_on(|| {
            let v = scx_rt::spawn_blocking(|| 6 * 7).join().unwrap();
            let e = scx_rt::spawn_blocking(|| -> u32 { panic!("boom in the pool") })
                .join()
                .unwrap_err();
            assert!(e.is_panic());
            // The task and the pool go on.
            let after = scx_rt::spawn_blocking(|| String::from("still here"))
                .join()
                .unwrap();
            (v, e.panic_message(), after)
        });
        assert_eq!(v, 42);
        assert_eq!(msg, "boom in the pool");
        assert_eq!(after, "still here");

        // From outside any task: the OS thread parks on the handle.
        let h = rt.spawn_blocking(|| vec![1, 2, 3]);
        assert_eq!(h.join().unwrap(), vec![1, 2, 3]);
        let e = rt
            .spawn_blocking(|| -> () { panic!("outside") })
            .join()
            .unwrap_err();
        assert_eq!(e.panic_message(), "outside");
        let h = rt.spawn_blocking(|| 1);
        wait_until("is_finished", || h.is_finished());
        assert_eq!(h.join().unwrap(), 1);
    });
}

/// 32 closures that can only finish together (a barrier of 32): the pool
/// must grow to at least 32 threads on demand.
#[test]
fn pool_grows_on_demand() {
    guard("grow", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .blocking_keep_alive(Duration::from_secs(3600))
            .build()
            .unwrap();
        const N: usize = 32;
        let barrier = Arc::new(Barrier::new(N));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let b = barrier.clone();
                rt.spawn(move || {
                    scx_rt::spawn_blocking(move || {
                        b.wait();
                        i * 3
                    })
                    .join()
                    .unwrap()
                })
            })
            .collect();
        let sum: usize = tasks.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 3 * N * (N - 1) / 2);
        assert!(rt.blocking_threads() >= N, "{}", rt.blocking_threads());
    });
}

/// Many more calls than the cap, from many tasks: every one completes, and
/// never more than `cap` closures run at once.
#[test]
fn many_calls_complete_under_the_cap() {
    guard("cap", || {
        const CAP: usize = 4;
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .max_blocking_threads(CAP)
            .build()
            .unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50u64)
            .map(|t| {
                let (a, p) = (active.clone(), peak.clone());
                rt.spawn(move || {
                    let handles: Vec<_> = (0..4u64)
                        .map(|k| {
                            let (a, p) = (a.clone(), p.clone());
                            scx_rt::spawn_blocking(move || {
                                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                                p.fetch_max(now, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(1));
                                a.fetch_sub(1, Ordering::SeqCst);
                                t * 4 + k
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
            .collect();
        let sum: u64 = tasks.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..200u64).sum::<u64>());
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=CAP).contains(&peak), "peak {peak}");
        assert!(rt.blocking_threads() <= CAP);
        assert_eq!(active.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn threads_are_reused_and_idle_ones_exit() {
    guard("keep-alive", || {
        // A long keep-alive: sequential calls reuse one thread.
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .blocking_keep_alive(Duration::from_secs(3600))
            .build()
            .unwrap();
        let ids: Vec<_> = (0..20)
            .map(|_| {
                rt.spawn_blocking(|| std::thread::current().id())
                    .join()
                    .unwrap()
            })
            .collect();
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        assert_eq!(rt.blocking_threads(), 1);
        drop(rt);

        // A short one: the idle thread goes away on its own.
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .blocking_keep_alive(Duration::from_millis(10))
            .build()
            .unwrap();
        rt.block_on(|| scx_rt::spawn_blocking(|| ()).join().unwrap());
        wait_until("idle blocking thread exits", || rt.blocking_threads() == 0);
        // And a new call starts a new one.
        assert_eq!(rt.spawn_blocking(|| 5).join().unwrap(), 5);
    });
}

/// Counts the exits of the threads whose thread-local holds one.
struct OnExit(Arc<AtomicUsize>);

impl Drop for OnExit {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

std::thread_local! {
    static EXIT_COUNTER: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
}

/// Detached closures (handles dropped), one running and one queued behind
/// the cap: shutdown runs both and joins the pool thread (its thread-local
/// destructors have run), after which spawning is refused.
#[test]
fn shutdown_runs_queued_closures_and_joins_the_pool() {
    guard("shutdown", || {
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .max_blocking_threads(1)
            .blocking_keep_alive(Duration::from_secs(3600))
            .build()
            .unwrap();
        let exited = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let (e, d) = (exited.clone(), done.clone());
        drop(rt.spawn_blocking(move || {
            EXIT_COUNTER.with(|c| *c.borrow_mut() = Some(OnExit(e)));
            std::thread::sleep(Duration::from_millis(20));
            d.fetch_add(1, Ordering::SeqCst);
        }));
        let d = done.clone();
        drop(rt.spawn_blocking(move || {
            d.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(rt.blocking_threads(), 1);
        rt.shutdown();
        assert_eq!(done.load(Ordering::SeqCst), 2, "queued closures ran");
        assert_eq!(exited.load(Ordering::SeqCst), 1, "pool thread joined");
        assert_eq!(rt.blocking_threads(), 0);
        let refused =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.spawn_blocking(|| 1)));
        assert!(refused.is_err(), "spawn_blocking after shutdown must panic");
    });
}

#[test]
fn spawn_blocking_outside_a_task_panics() {
    let r = std::panic::catch_unwind(|| scx_rt::spawn_blocking(|| 1));
    assert!(r.is_err());
}
