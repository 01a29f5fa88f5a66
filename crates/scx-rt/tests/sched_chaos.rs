//! Chaos: a scheduler that, at a random point chosen by a seed, errors,
//! panics, dispatches to a bogus DSQ, names an invalid CPU, stops
//! dispatching, or stops kicking — while tasks that use channels,
//! mutexes, joins and sleeps run on every CPU. For every seed: every task
//! completes exactly once, and `exit_info()` names the injected fault (the
//! first one). 25 seeds × 4000 tasks = 100k tasks, hot-attached one after
//! the other on one runtime.
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{guard, Counts};
use parking_lot::Mutex;
use scx_rt::{
    DispatchCtx, EnqFlags, EnqueueCtx, ExitKind, InitCtx, KickFlags, PickIdleFlags, Runtime,
    Scheduler, SelectCpuCtx, TaskRef, WakeFlags, SLICE_DFL,
};

const SHARED: u64 = 0;
const TIMEOUT_MS: u32 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Error,
    Panic,
    BogusDsq,
    InvalidCpu,
    StopDispatching,
    StopKicking,
}

const FAULTS: [Fault; 6] = [
    Fault::Error,
    Fault::Panic,
    Fault::BogusDsq,
    Fault::InvalidCpu,
    Fault::StopDispatching,
    Fault::StopKicking,
];

/// A working FIFO policy on a user DSQ (direct dispatch to idle CPUs from
/// `select_cpu`, idle kicks from `enqueue`) until its `countdown` of
/// callbacks runs out; then it commits its fault.
struct Chaos {
    seed: u64,
    fault: Fault,
    countdown: AtomicU64,
    rng: AtomicU64,
    /// The fault has been injected (what the runtime must then report).
    fired: AtomicBool,
    /// The message the fault will be reported with.
    expect: Arc<Mutex<Option<String>>>,
}

impl Chaos {
    fn new(seed: u64, expect: Arc<Mutex<Option<String>>>) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        x ^= x >> 29;
        Self {
            seed,
            fault: FAULTS[(seed % FAULTS.len() as u64) as usize],
            countdown: AtomicU64::new(50 + x % 2000),
            rng: AtomicU64::new(x),
            fired: AtomicBool::new(false),
            expect,
        }
    }

    fn rand(&self) -> u64 {
        // xorshift64, advanced atomically (callbacks run on many CPUs).
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self
                .rng
                .compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y,
                Err(cur) => x = cur,
            }
        }
    }

    /// Counts one callback; true once (the first time the countdown is
    /// exhausted) and forever after for the persistent faults.
    fn due(&self) -> bool {
        if self.fired.load(Ordering::Acquire) {
            return true;
        }
        let left = self
            .countdown
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        matches!(left, Ok(1) | Err(_))
    }

    fn fire(&self, expect: String) -> bool {
        if self.fired.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.expect.lock() = Some(expect);
        true
    }
}

impl Scheduler for Chaos {
    fn name(&self) -> &str {
        "chaos"
    }
    fn timeout_ms(&self) -> u32 {
        TIMEOUT_MS
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(SHARED, -1).map_err(|_| -17)
    }
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        if self.fault == Fault::InvalidCpu && self.due() {
            self.fire("select_cpu returned invalid CPU 9999".to_string());
            return 9999;
        }
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev, wake_flags);
        if idle && self.rand().is_multiple_of(2) {
            ctx.dsq_insert(p, scx_rt::DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
        cpu as i32
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if self.due() {
            match self.fault {
                Fault::Error if self.fire(format!("chaos seed {} error", self.seed)) => {
                    ctx.error(format!("chaos seed {} error", self.seed));
                }
                Fault::Panic if self.fire(format!("chaos seed {} panic", self.seed)) => {
                    panic!("chaos seed {} panic", self.seed);
                }
                Fault::BogusDsq if self.fire("non-existent DSQ 0xdead".to_string()) => {
                    ctx.dsq_insert(p, 0xdead, SLICE_DFL, f);
                    return;
                }
                _ => {}
            }
        }
        ctx.dsq_insert(p, SHARED, SLICE_DFL, f);
        let stop_kicking = self.fault == Fault::StopKicking && self.due();
        if stop_kicking {
            self.fire(String::new());
        } else if p.nr_cpus_allowed(ctx.nr_cpu_ids()) > 1 {
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        if self.fault == Fault::StopDispatching && self.due() {
            self.fire("failed to run for".to_string());
            return;
        }
        ctx.dsq_move_to_local(SHARED);
    }
}

/// One wave of `n` tasks: each bumps its counter, takes a green mutex,
/// yields, sends to a collector over a channel, every 5th spawns and joins
/// a child, every 13th sleeps. Returns once every task was joined.
fn wave(rt: &Runtime, n: usize) {
    let counts = Counts::new(n);
    let lock = Arc::new(scx_rt::sync::Mutex::new(0usize));
    // Unbounded: a bounded channel with 4000 blocked senders makes every
    // receive a cross-CPU wake-up, which a debug build turns into seconds.
    let (tx, rx) = scx_rt::sync::unbounded::<usize>();
    let collector = rt.spawn(move || {
        let mut sum = 0;
        while let Ok(i) = rx.recv() {
            sum += i;
        }
        sum
    });
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let (counts, lock, tx) = (counts.clone(), lock.clone(), tx.clone());
            rt.spawn(move || {
                counts.hit(i);
                *lock.lock() += 1;
                scx_rt::yield_now();
                if i % 5 == 0 {
                    assert_eq!(scx_rt::spawn(move || i * 2).join().unwrap(), i * 2);
                }
                if i % 13 == 0 {
                    scx_rt::sleep(Duration::from_micros(100));
                }
                tx.send(i).unwrap();
            })
        })
        .collect();
    drop(tx);
    for h in hs {
        h.join().expect("a chaos task panicked");
    }
    assert_eq!(collector.join().unwrap(), n * (n - 1) / 2);
    assert_eq!(*lock.lock(), n);
    counts.assert_exactly_once("chaos wave");
}

#[test]
fn chaos_schedulers_lose_no_task_and_report_their_fault() {
    guard("chaos: 25 seeds", || {
        let rt = Runtime::builder().nr_cpus(4).pin(false).build().unwrap();
        for seed in 0..25u64 {
            let expect = Arc::new(Mutex::new(None));
            let ejections = rt.stats().ejections;
            let chaos = Chaos::new(seed, expect.clone());
            let fault = chaos.fault;
            rt.attach(chaos).unwrap();
            wave(&rt, 4000);
            let fired = expect.lock().clone();
            match (fault, fired) {
                (Fault::StopKicking, _) | (_, None) => {
                    // Not (or not yet) a fault the runtime must catch: the
                    // tasks all completed; detach for the next seed.
                    if rt.stats().ejections == ejections {
                        assert!(rt.detach(), "seed {seed}: chaos still attached");
                    }
                }
                (_, Some(msg)) => {
                    common::wait_until("the fault's ejection", || rt.stats().ejections > ejections);
                    let info = rt.exit_info().expect("exit info");
                    assert!(
                        info.msg.contains(&msg),
                        "seed {seed} ({fault:?}): expected {msg:?} in {:?} ({})",
                        info.msg,
                        info.reason
                    );
                    let kind_ok = match fault {
                        Fault::Error => info.kind == ExitKind::ErrorBpf,
                        Fault::StopDispatching => info.kind == ExitKind::ErrorStall,
                        _ => info.kind == ExitKind::Error,
                    };
                    assert!(kind_ok, "seed {seed} ({fault:?}): kind {:?}", info.kind);
                    assert!(!info.dump.is_empty(), "an error exit carries the dump");
                }
            }
            assert_eq!(rt.scheduler_name(), "fifo", "seed {seed}");
            assert!(!rt.is_bypassing(), "seed {seed}: bypass left on");
        }
        // A joined task finishes its exit path on its worker just after the
        // join returns.
        common::wait_until("every task to leave", || rt.stats().live_tasks == 0);
    });
}
