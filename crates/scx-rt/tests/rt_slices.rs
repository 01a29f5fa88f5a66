//! Slice expiry through the public API, in each `SliceTimer` mode: a task
//! spinning on every CPU (reaching preemption points, never yielding) is
//! preempted for a waiting task within a bounded number of scheduler ticks,
//! each expiry calls `ops.tick` once for the task that ran out, and what
//! the expiry signal does to the runtime's own waits (nothing) and to a
//! task's raw system calls (`EINTR` from `poll`, in `Signal` mode only,
//! and not for the slices `Auto` polls).
//! No timing assertions: hang guards only.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::{Ctx, EnqFlags, EnqueueCtx, Runtime, Scheduler, SliceTimer, TaskRef, DSQ_GLOBAL};

use common::{guard, wait_until};

const CPUS: usize = 2;

/// The slice every task gets.
const SLICE: Duration = Duration::from_micros(200);

/// A spinner gives up (and the test fails) after this: a hang guard.
const SPIN_LIMIT: Duration = Duration::from_secs(20);

/// Global FIFO with a fixed slice; counts `ops.tick` (never kicks: only a
/// slice expiry can end a spinner's turn).
#[derive(Default)]
struct TickCounting {
    ticks: Arc<AtomicU64>,
}

impl Scheduler for TickCounting {
    fn name(&self) -> &str {
        "tick-counting-fifo"
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE.as_nanos() as u64, f);
    }

    fn tick(&self, _ctx: &Ctx<'_>, _p: &TaskRef) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
    }
}

/// The runtime's default slice is the policy's too: a task placed by the
/// default `select_cpu` (direct to an idle CPU) gets it from the core.
fn runtime(mode: SliceTimer, ticks: Arc<AtomicU64>) -> Runtime {
    Runtime::builder()
        .nr_cpus(CPUS)
        .pin(false)
        .slice(SLICE)
        .slice_timer(mode)
        .scheduler(TickCounting { ticks })
        .build()
        .expect("runtime build")
}

/// One spinner per CPU, then a waiter: the waiter runs only after some
/// spinner's slice expired. Returns the ticks counted when the waiter ran.
fn spinners_yield_to_a_waiter(mode: SliceTimer) -> u64 {
    let ticks = Arc::new(AtomicU64::new(0));
    let rt = runtime(mode, ticks.clone());
    let done = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    let spinners: Vec<_> = (0..CPUS)
        .map(|_| {
            let (done, running) = (done.clone(), running.clone());
            rt.spawn(move || {
                running.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    if start.elapsed() > SPIN_LIMIT {
                        return false;
                    }
                    scx_rt::preempt_point();
                }
                true
            })
        })
        .collect();
    wait_until("every CPU to run a spinner", || {
        running.load(Ordering::SeqCst) == CPUS
    });
    let before = ticks.load(Ordering::SeqCst);
    let (d, t) = (done.clone(), ticks.clone());
    let waiter = rt.spawn(move || {
        let seen = t.load(Ordering::SeqCst);
        d.store(true, Ordering::SeqCst);
        seen
    });
    let seen = waiter.join().expect("waiter");
    for s in spinners {
        assert!(
            s.join().expect("spinner"),
            "{mode:?}: no slice expiry let the waiter run"
        );
    }
    rt.shutdown();
    seen - before
}

fn check_bounded_rounds(mode: SliceTimer) {
    let ticks = guard("spinners yield to a waiter", move || {
        spinners_yield_to_a_waiter(mode)
    });
    // The waiter queued behind no one: the first expiry on a CPU (its
    // `ops.tick`) switches it in; both CPUs may expire before one picks.
    assert!(
        (1..=CPUS as u64).contains(&ticks),
        "{mode:?}: the waiter ran after {ticks} ticks (1..={CPUS} expected)"
    );
}

#[test]
fn signal_mode_preempts_every_busy_cpu_within_bounded_ticks() {
    check_bounded_rounds(SliceTimer::Signal);
}

#[test]
fn thread_mode_preempts_every_busy_cpu_within_bounded_ticks() {
    check_bounded_rounds(SliceTimer::Thread);
}

#[test]
fn realtime_thread_mode_preempts_every_busy_cpu_within_bounded_ticks() {
    check_bounded_rounds(SliceTimer::RealtimeThread);
}

#[test]
fn poll_mode_preempts_every_busy_cpu_within_bounded_ticks() {
    check_bounded_rounds(SliceTimer::Poll);
}

/// The default mode polls these 200 µs slices (up to
/// `consts::POLL_SLICE_MAX`).
#[test]
fn auto_mode_preempts_every_busy_cpu_within_bounded_ticks() {
    check_bounded_rounds(SliceTimer::Auto);
}

/// `ops.tick` runs once per expiry, for the task whose slice ran out: two
/// spinners on one CPU take turns, and from the first switch between them
/// on, every switch follows exactly one tick.
fn ticks_match_switches(mode: SliceTimer) {
    const SWITCHES: u64 = 40;
    let (base, end) = guard("ticks match switches", move || {
        let ticks = Arc::new(AtomicU64::new(0));
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .slice(SLICE)
            .slice_timer(mode)
            .scheduler(TickCounting {
                ticks: ticks.clone(),
            })
            .build()
            .expect("runtime build");
        // Who ran last (0: no one), how many switches were seen, and the
        // tick counts at the first and the last one.
        let last = Arc::new(AtomicUsize::new(0));
        let switches = Arc::new(AtomicU64::new(0));
        let marks = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let tasks: Vec<_> = (1..=2usize)
            .map(|me| {
                let (last, switches, marks, ticks) =
                    (last.clone(), switches.clone(), marks.clone(), ticks.clone());
                rt.spawn(move || {
                    let start = Instant::now();
                    while switches.load(Ordering::SeqCst) <= SWITCHES {
                        let prev = last.swap(me, Ordering::SeqCst);
                        if prev != me && prev != 0 {
                            let k = switches.fetch_add(1, Ordering::SeqCst) + 1;
                            let t = ticks.load(Ordering::SeqCst);
                            if k == 1 {
                                marks[0].store(t, Ordering::SeqCst);
                            } else if k == SWITCHES + 1 {
                                marks[1].store(t, Ordering::SeqCst);
                            }
                        }
                        if start.elapsed() > SPIN_LIMIT {
                            return false;
                        }
                        scx_rt::preempt_point();
                    }
                    true
                })
            })
            .collect();
        for t in tasks {
            assert!(
                t.join().expect("spinner"),
                "{mode:?}: the spinners never took turns"
            );
        }
        rt.shutdown();
        (
            marks[0].load(Ordering::SeqCst),
            marks[1].load(Ordering::SeqCst),
        )
    });
    assert_eq!(
        end - base,
        SWITCHES,
        "{mode:?}: {SWITCHES} switches came with {} ticks",
        end - base
    );
}

#[test]
fn one_tick_per_expiry_in_signal_mode() {
    ticks_match_switches(SliceTimer::Signal);
}

#[test]
fn one_tick_per_expiry_in_thread_mode() {
    ticks_match_switches(SliceTimer::Thread);
}

#[test]
fn one_tick_per_expiry_in_poll_mode() {
    ticks_match_switches(SliceTimer::Poll);
}

/// The expiry timer stays armed across a worker's idle sleep (the worker
/// does not disarm it): when it fires into the sleep it finds no deadline
/// and must leave itself ready to be armed again. Several rounds of "a
/// short task, then an idle gap of many slices (the timer fires while the
/// CPU sleeps), then two spinners on the one CPU" must each end with the
/// spinners taking turns, which only a slice expiry can make them do.
#[test]
fn slices_expire_after_idle_sleeps_in_signal_mode() {
    guard("slices after idle sleeps", || {
        let ticks = Arc::new(AtomicU64::new(0));
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .slice_timer(SliceTimer::Signal)
            .idle_poll(Duration::ZERO)
            .scheduler(TickCounting {
                ticks: ticks.clone(),
            })
            .build()
            .expect("runtime build");
        for round in 0..5 {
            // Arms the timer for this task's slice; it ends well before.
            rt.spawn(|| ()).join().expect("short task");
            // Idle for many slices: the armed timer fires into the sleep.
            std::thread::sleep(SLICE * 20);
            let before = ticks.load(Ordering::SeqCst);
            let last = Arc::new(AtomicUsize::new(0));
            let turns = Arc::new(AtomicU64::new(0));
            let spinners: Vec<_> = (1..=2usize)
                .map(|me| {
                    let (last, turns) = (last.clone(), turns.clone());
                    rt.spawn(move || {
                        let start = Instant::now();
                        while turns.load(Ordering::SeqCst) < 4 {
                            let prev = last.swap(me, Ordering::SeqCst);
                            if prev != me && prev != 0 {
                                turns.fetch_add(1, Ordering::SeqCst);
                            }
                            if start.elapsed() > SPIN_LIMIT {
                                return false;
                            }
                            scx_rt::preempt_point();
                        }
                        true
                    })
                })
                .collect();
            for s in spinners {
                assert!(
                    s.join().expect("spinner"),
                    "round {round}: the spinners never took turns after an idle sleep"
                );
            }
            assert!(
                ticks.load(Ordering::SeqCst) > before,
                "round {round}: turns without a slice expiry"
            );
        }
        rt.shutdown();
    });
}

/// The runtime's own waits on a worker thread (idle sleeps, scheduler
/// locks, `spawn_blocking`, green sleeps, channels) see none of the expiry
/// signals: under a storm of 20 µs slice expiries every one completes with
/// its result.
#[test]
fn runtime_waits_never_see_eintr_in_signal_mode() {
    guard("runtime waits under expiry signals", || {
        let rt = Runtime::builder()
            .nr_cpus(CPUS)
            .pin(false)
            .slice_timer(SliceTimer::Signal)
            .slice(Duration::from_micros(20))
            .build()
            .expect("runtime build");
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..CPUS)
            .map(|_| {
                let stop = stop.clone();
                rt.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        scx_rt::preempt_point();
                    }
                })
            })
            .collect();
        let workers: Vec<_> = (0..4u64)
            .map(|i| {
                rt.spawn(move || {
                    let mut sum = 0u64;
                    for k in 0..50u64 {
                        scx_rt::sleep(Duration::from_micros(100));
                        sum += scx_rt::spawn_blocking(move || {
                            // A blocking OS sleep on a pool thread.
                            std::thread::sleep(Duration::from_micros(200));
                            k
                        })
                        .join()
                        .expect("blocking closure");
                        let (tx, rx) = scx_rt::sync::channel::<u64>(1);
                        let h = scx_rt::spawn(move || tx.send(i).is_ok());
                        sum += rx.recv().expect("channel");
                        assert!(h.join().expect("sender"));
                        // A blocking OS sleep on the worker itself: std
                        // retries EINTR with the time left.
                        let t = Instant::now();
                        std::thread::sleep(Duration::from_micros(300));
                        assert!(t.elapsed() >= Duration::from_micros(300));
                    }
                    sum
                })
            })
            .collect();
        for (i, w) in workers.into_iter().enumerate() {
            let want: u64 = (0..50).sum::<u64>() + 50 * i as u64;
            assert_eq!(w.join().expect("worker task"), want);
        }
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            s.join().expect("spinner");
        }
        rt.shutdown();
    });
}

/// Whether a task's raw `poll` (which Linux never restarts after a
/// handler) fails with `EINTR` within `tries` polls of 50 ms, each after a
/// preemption point (which starts a new slice).
fn raw_poll_sees_eintr(mode: SliceTimer, tries: u32) -> bool {
    guard("raw poll in a task", move || {
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .slice_timer(mode)
            .slice(Duration::from_micros(100))
            .build()
            .expect("runtime build");
        let r = rt.block_on(move || {
            for _ in 0..tries {
                scx_rt::preempt_point();
                // SAFETY: poll with no descriptors only sleeps.
                let rc = unsafe { libc::poll(std::ptr::null_mut(), 0, 50) };
                if rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    return true;
                }
            }
            false
        });
        rt.shutdown();
        r
    })
}

#[test]
fn raw_poll_in_a_task_is_interrupted_only_in_signal_mode() {
    // The documented cost of `SliceTimer::Signal`: a slice that ends during
    // a raw timed wait interrupts it.
    assert!(raw_poll_sees_eintr(SliceTimer::Signal, 20));
    // The thread modes send no signal to workers, and a polled slice needs
    // none (the default polls these 100 µs slices).
    assert!(!raw_poll_sees_eintr(SliceTimer::Thread, 3));
    assert!(!raw_poll_sees_eintr(SliceTimer::Poll, 3));
    assert!(!raw_poll_sees_eintr(SliceTimer::Auto, 3));
}

/// Polled slices on more workers than cores (8 unpinned CPUs on whatever
/// the machine has, so the OS takes workers away mid-slice and deadlines
/// pass while a worker is off its core): spinners reaching preemption
/// points, yielders and channel ping-pongs, under the default scheduler
/// with 50 µs slices, which the default mode polls. Every task runs to its
/// end exactly once with its result, and the spinners took turns with the
/// rest (their slices ended: the pairs finished while they spun).
#[test]
fn polled_slices_on_oversubscribed_workers_lose_nothing() {
    guard("polled slices, 8 workers", || {
        let rt = Runtime::builder()
            .nr_cpus(8)
            .pin(false)
            .slice(Duration::from_micros(50))
            .build()
            .expect("runtime build");
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(0));
        let spinners: Vec<_> = (0..8)
            .map(|_| {
                let (stop, runs) = (stop.clone(), runs.clone());
                rt.spawn(move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < SPIN_LIMIT {
                        scx_rt::preempt_point();
                    }
                    stop.load(Ordering::Relaxed)
                })
            })
            .collect();
        let workers: Vec<_> = (0..32u64)
            .map(|i| {
                let runs = runs.clone();
                rt.spawn(move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let (tx, rx) = scx_rt::sync::channel::<u64>(1);
                    let (back_tx, back_rx) = scx_rt::sync::channel::<u64>(1);
                    let echo = scx_rt::spawn(move || {
                        let mut n = 0;
                        while let Ok(v) = rx.recv() {
                            n += 1;
                            if back_tx.send(v + 1).is_err() {
                                break;
                            }
                        }
                        n
                    });
                    let mut sum = 0;
                    for k in 0..200u64 {
                        tx.send(k).expect("echo alive");
                        sum += back_rx.recv().expect("echo answers");
                        scx_rt::yield_now();
                    }
                    drop(tx);
                    assert_eq!(echo.join().expect("echo"), 200);
                    sum + i
                })
            })
            .collect();
        for (i, w) in workers.into_iter().enumerate() {
            let want: u64 = (1..=200).sum::<u64>() + i as u64;
            assert_eq!(w.join().expect("worker task"), want);
        }
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            assert!(
                s.join().expect("spinner"),
                "a spinner hit its limit: the pairs never finished beside it"
            );
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            40,
            "every task ran exactly once"
        );
        rt.shutdown();
    });
}
