//! CPU offline and online racing with every state a task can be in (issue:
//! hotplug correctness): queued on a local DSQ, owned by the scheduler,
//! in a dispatch buffer, parked as a remote direct dispatch, on a user DSQ
//! being consumed, picked, running, blocked, being woken. A churn thread
//! flips random CPUs while tasks yield, sleep, block on channels and
//! spawn; every task must start once and finish once, the live-task count
//! must come back to exactly zero (a task run twice exits twice and wraps
//! it), no scheduler may be ejected, and shutdown must return.
#![cfg(not(scx_rt_loom))]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{guard, Counts};

use parking_lot::Mutex;
use scx_rt::schedulers::{Fifo, Simple};
use scx_rt::{
    DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Runtime, Scheduler, SelectCpuCtx, TaskRef,
    WakeFlags, DSQ_LOCAL, DSQ_LOCAL_ON,
};

const USER_DSQ: u64 = 7;

/// A policy that sends tasks through every cross-CPU path of the core:
/// remote direct dispatch from `select_cpu` and `enqueue`, a user DSQ that
/// any CPU consumes, and tasks kept in the scheduler's own queue and
/// dispatched through the dispatch buffer to another CPU's local DSQ.
#[derive(Default)]
struct Mover {
    kept: Mutex<VecDeque<TaskRef>>,
    nr: AtomicUsize,
}

impl Scheduler for Mover {
    fn name(&self) -> &str {
        "mover"
    }
    fn handles_hotplug(&self) -> bool {
        true
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        self.nr.store(ctx.nr_cpu_ids(), Ordering::Relaxed);
        ctx.create_dsq(USER_DSQ, -1).map_err(|_| -1)
    }
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev: usize,
        _f: WakeFlags,
    ) -> i32 {
        let nr = self.nr.load(Ordering::Relaxed);
        let next = (prev + 1) % nr;
        if p.id().is_multiple_of(4) {
            ctx.dsq_insert(
                p,
                DSQ_LOCAL_ON | next as u64,
                ctx.slice_dfl(),
                EnqFlags::empty(),
            );
        }
        next as i32
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
        let nr = self.nr.load(Ordering::Relaxed);
        match p.id() % 4 {
            1 => {
                let to = (p.cpu() + 1) % nr;
                ctx.dsq_insert(
                    p,
                    DSQ_LOCAL_ON | to as u64,
                    ctx.slice_dfl(),
                    EnqFlags::empty(),
                );
            }
            2 => ctx.dsq_insert(p, USER_DSQ, ctx.slice_dfl(), EnqFlags::empty()),
            _ => self.kept.lock().push_back(p.clone()),
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        let nr = self.nr.load(Ordering::Relaxed);
        let mut k = 0;
        while ctx.dispatch_nr_slots() > 0 && k < 4 {
            let Some(p) = self.kept.lock().pop_front() else {
                break;
            };
            let dsq = if k % 2 == 0 {
                DSQ_LOCAL
            } else {
                DSQ_LOCAL_ON | ((cpu + k) % nr) as u64
            };
            ctx.dsq_insert(&p, dsq, ctx.slice_dfl(), EnqFlags::empty());
            k += 1;
        }
        ctx.dsq_move_to_local(USER_DSQ);
    }
}

/// A small deterministic generator (xorshift) for the per-seed choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Runs `tasks` tasks on `rt` while a thread flips CPUs offline and online
/// at random; checks every task started and finished exactly once.
fn churn_run(rt: Runtime, seed: u64, tasks: usize, what: &str, max_ejections: u64) {
    let rt = Arc::new(rt);
    let nr = rt.nr_cpus();
    let started = Counts::new(tasks);
    let finished = Counts::new(tasks);
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (rt, stop) = (rt.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let cpu = (rng.next() % nr as u64) as usize;
                // Refusals (last online CPU, already in that state) are fine.
                let r = if rt.cpu_is_online(cpu) {
                    rt.cpu_offline(cpu).is_ok()
                } else {
                    rt.cpu_online(cpu).is_ok()
                };
                flips += u64::from(r);
                if rng.next().is_multiple_of(4) {
                    std::thread::yield_now();
                }
            }
            for c in 0..nr {
                if !rt.cpu_is_online(c) {
                    rt.cpu_online(c).unwrap();
                }
            }
            flips
        })
    };
    // Tasks come in pairs: the even one of a pair sends to the odd one
    // over a green channel, so both block and wake across CPUs.
    let mut hs = Vec::with_capacity(tasks);
    let mut rng = Rng(seed | 1);
    let mut i = 0;
    while i < tasks {
        let (tx, rx) = scx_rt::sync::channel::<usize>(1);
        let kind = rng.next();
        let mut tx = Some(tx);
        let mut rx = Some(rx);
        for (j, side) in [(i, 0), (i + 1, 1)] {
            if j >= tasks {
                break;
            }
            let (started, finished) = (started.clone(), finished.clone());
            let (tx, rx) = if side == 0 {
                (tx.take(), None)
            } else {
                (None, rx.take())
            };
            hs.push(rt.spawn(move || {
                started.hit(j);
                for _ in 0..(kind % 4) {
                    scx_rt::yield_now();
                }
                if kind.is_multiple_of(5) {
                    scx_rt::sleep(Duration::from_micros(20 + kind % 50));
                }
                if let Some(tx) = tx {
                    for k in 0..3 {
                        // The receiver may be missing (an odd task count).
                        let _ = tx.send(j + k);
                    }
                }
                if let Some(rx) = rx {
                    let mut got = 0;
                    while rx.recv().is_ok() {
                        got += 1;
                        scx_rt::preempt_point();
                    }
                    assert_eq!(got, 3, "task {j}: lost channel messages");
                }
                if kind.is_multiple_of(3) {
                    let c = scx_rt::spawn(move || {
                        scx_rt::yield_now();
                        j
                    });
                    assert_eq!(c.join().unwrap(), j);
                }
                finished.hit(j);
            }));
        }
        i += 2;
    }
    for h in hs {
        h.join().expect("task panicked");
    }
    stop.store(true, Ordering::Relaxed);
    let flips = churn.join().unwrap();
    started.assert_exactly_once(&format!("{what} seed {seed}: started"));
    finished.assert_exactly_once(&format!("{what} seed {seed}: finished"));
    // A joined task may still be on its way out of its CPU; a task that
    // exited twice wraps the count, which then never comes back to zero.
    common::wait_until(
        &format!("{what} seed {seed}: the live-task count to reach zero"),
        || rt.stats().live_tasks == 0,
    );
    let st = rt.stats();
    assert!(
        st.ejections <= max_ejections,
        "{what} seed {seed}: {:?}",
        rt.exit_info()
    );
    assert!(
        flips > 0,
        "{what} seed {seed}: the churn thread flipped nothing"
    );
    // Shutdown must return (the guard catches a hang).
    drop(Arc::try_unwrap(rt).ok().expect("the only handle"));
}

/// The tests of this file run one at a time: each runs up to four spinning
/// workers, and several at once on a 2-core machine spend their time
/// preempting each other's lock holders instead of racing hotplug.
static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn builder(nr: usize) -> scx_rt::Builder {
    Runtime::builder()
        .nr_cpus(nr)
        .pin(false)
        .idle_poll(Duration::from_micros(5))
}

/// Seeds per policy: enough to hit the windows on a 2-core machine, few
/// enough for a debug build in CI.
const SEEDS: u64 = 10;
/// Tasks per seed (each of them yields, sleeps, blocks on a channel or
/// spawns, while the churn thread flips CPUs).
const TASKS: usize = 10_000;

#[test]
fn hotplug_races_with_the_fifo_lose_and_double_run_nothing() {
    let _serial = SERIAL.lock();
    guard("hotplug race: fifo", || {
        for seed in 0..SEEDS {
            churn_run(
                builder(4).scheduler(Fifo).build().unwrap(),
                seed,
                TASKS,
                "fifo",
                0,
            );
        }
    });
}

#[test]
fn hotplug_races_with_cross_cpu_dispatch_lose_and_double_run_nothing() {
    let _serial = SERIAL.lock();
    guard("hotplug race: mover", || {
        for seed in 0..SEEDS {
            churn_run(
                builder(3).scheduler(Mover::default()).build().unwrap(),
                seed,
                TASKS,
                "mover",
                0,
            );
        }
    });
}

#[test]
fn hotplug_races_with_migration_allowed_lose_and_double_run_nothing() {
    let _serial = SERIAL.lock();
    guard("hotplug race: mover, migration", || {
        for seed in 0..SEEDS {
            // SAFETY: the tasks of this test hold no thread-bound value
            // across a switch point.
            let b = unsafe { builder(3).scheduler(Mover::default()).allow_migration() };
            churn_run(b.build().unwrap(), seed, TASKS, "mover+migration", 0);
        }
    });
}

/// A scheduler without hotplug callbacks is ended by the first flip; the
/// disable path then races with the churn and the tasks finish under the
/// built-in FIFO.
#[test]
fn hotplug_races_with_an_ejected_scheduler_lose_and_double_run_nothing() {
    let _serial = SERIAL.lock();
    guard("hotplug race: vtime, ejected", || {
        for seed in 0..SEEDS {
            let rt = builder(4).scheduler(Simple::vtime()).build().unwrap();
            churn_run(rt, seed, TASKS, "vtime", 1);
        }
    });
}

/// The plain case: CPUs go offline while their queues are full, then the
/// runtime is dropped at once; every task runs once and shutdown returns.
#[test]
fn offline_with_work_queued_then_exit() {
    let _serial = SERIAL.lock();
    guard("hotplug: offline with work queued, then exit", || {
        for round in 0..20u64 {
            let rt = builder(4).scheduler(Mover::default()).build().unwrap();
            let n = 400;
            let runs = Counts::new(n);
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let runs = runs.clone();
                    rt.spawn(move || {
                        runs.hit(i);
                        if i % 2 == 0 {
                            scx_rt::yield_now();
                        }
                    })
                })
                .collect();
            for cpu in 1..4 {
                if (round >> cpu) & 1 == 0 || cpu == 3 {
                    rt.cpu_offline(cpu).unwrap();
                }
            }
            rt.shutdown();
            // Tasks that a dispatch to a CPU gone offline sent to the
            // global DSQ run at once: were they left there while every
            // CPU slept, only the watchdog would end the stall, ejecting
            // the policy (the core then ran the step's deferred dispatches
            // after a pick that went idle).
            let ejections = rt.stats().ejections;
            assert_eq!(ejections, 0, "round {round}: {:?}", rt.exit_info());
            drop(rt);
            for h in hs {
                assert!(
                    h.is_finished(),
                    "round {round}: shutdown returned before a task"
                );
                h.join().unwrap();
            }
            runs.assert_exactly_once(&format!("round {round}"));
        }
    });
}
