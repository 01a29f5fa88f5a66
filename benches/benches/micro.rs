//! Micro-benchmarks of scx-rt with their baselines in the same run:
//!
//! - `preempt_point`: a preemption point with nothing pending, inside a
//!   task, vs an empty loop (target: ≤ 2 ns);
//! - `yield_now`: green `yield → other task → back` on one CPU, with
//!   tracing off and on (`Builder::trace`), vs a bare corosensei
//!   resume/suspend pair (target: ≤ 2×);
//! - `spawn_join`: spawn + run + join of an empty task vs calling the
//!   closure directly;
//! - `cpumask`: `AtomicCpumask` set, test_and_clear (of a set and of a
//!   clear bit) and iterate, vs a plain `u64` bit op and a std `AtomicU64`
//!   `fetch_or`/`fetch_and`;
//! - `dsq`: steady-state insert + pop of a DSQ holding 10 or 10,000 tasks,
//!   FIFO (vs `VecDeque`) and vtime-ordered (vs `BinaryHeap`), through
//!   `scx_rt::bench_support`, which calls the runtime's own queue;
//! - `kick_cpu`: the call cost of a kick with no sleeper (a task kicking
//!   its own CPU: mask bits, the kick step, the rq lock, `resched`) vs the
//!   same steps hand-rolled on std atomics and the runtime's spin lock;
//! - `doorbell`: ringing a doorbell nobody sleeps on vs an atomic swap.
//!
//! Criterion drives its loop on the calling OS thread, so scx-rt figures
//! use `iter_custom`: the timed loop runs inside `rt.block_on` and returns
//! its own `Duration`.
#![forbid(unsafe_code)]

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use scx_rt::bench_support::{Doorbell, Dsq};
use scx_rt::{AtomicCpumask, KickFlags, Task, TaskRef};
use scx_rt_benches::{
    call_empty_closure, empty_loop, one_cpu_runtime, one_cpu_runtime_traced, raw_corosensei_pairs,
};
use scx_rt_sys::spinlock::SpinMutex;

fn preempt_point(c: &mut Criterion) {
    let rt = one_cpu_runtime();
    let mut g = c.benchmark_group("preempt_point");
    g.bench_function("scx-rt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let t = Instant::now();
                for i in 0..iters {
                    std::hint::black_box(i);
                    scx_rt::preempt_point();
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("empty-loop", |b| b.iter_custom(empty_loop));
    g.finish();
}

/// `iters` yield pairs on `rt`: this task yields, the partner runs and
/// yields back.
fn yield_pairs(rt: &scx_rt::Runtime, iters: u64) -> Duration {
    rt.block_on(move || {
        let partner = scx_rt::spawn(move || {
            for _ in 0..iters {
                scx_rt::yield_now();
            }
        });
        let t = Instant::now();
        for _ in 0..iters {
            scx_rt::yield_now();
        }
        let elapsed = t.elapsed();
        partner.join().expect("partner task");
        elapsed
    })
}

fn yield_now(c: &mut Criterion) {
    let rt = one_cpu_runtime();
    let traced = one_cpu_runtime_traced();
    let mut g = c.benchmark_group("yield_now");
    g.bench_function("scx-rt", |b| b.iter_custom(|iters| yield_pairs(&rt, iters)));
    // The same with `Builder::trace` on: three events recorded per switch.
    g.bench_function("scx-rt-traced", |b| {
        b.iter_custom(|iters| yield_pairs(&traced, iters))
    });
    g.bench_function("raw_corosensei", |b| b.iter_custom(raw_corosensei_pairs));
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let rt = one_cpu_runtime();
    let mut g = c.benchmark_group("spawn_join");
    g.bench_function("scx-rt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    scx_rt::spawn(|| ()).join().expect("empty task");
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("call-closure", |b| b.iter_custom(call_empty_closure));
    g.finish();
}

/// CPUs in the benchmarked masks (a 16-word mask, as on a big machine).
const MASK_CPUS: usize = 1024;
/// The CPU whose bit the single-bit benchmarks touch (word 2).
const MASK_BIT: usize = 130;

fn cpumask(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpumask");
    let m = AtomicCpumask::new(MASK_CPUS);
    let word = AtomicU64::new(0);
    let bit = 1u64 << (MASK_BIT % 64);
    g.bench_function("set/scx-rt", |b| b.iter(|| m.set(black_box(MASK_BIT))));
    g.bench_function("set/atomic-u64-fetch_or", |b| {
        b.iter(|| word.fetch_or(black_box(bit), Ordering::SeqCst))
    });
    g.bench_function("set/plain-u64", |b| {
        let mut w = 0u64;
        b.iter(|| {
            w |= black_box(bit);
            black_box(w)
        })
    });
    // A set bit: the claim that wins (set again each round, as an idle CPU
    // re-announces itself).
    g.bench_function("test_and_clear-set/scx-rt", |b| {
        b.iter(|| {
            m.set(MASK_BIT);
            m.test_and_clear(black_box(MASK_BIT))
        })
    });
    g.bench_function("test_and_clear-set/atomic-u64-fetch_and", |b| {
        b.iter(|| {
            word.fetch_or(bit, Ordering::SeqCst);
            word.fetch_and(!black_box(bit), Ordering::SeqCst) & bit != 0
        })
    });
    // A clear bit: the claim that loses (scx-rt reads before it writes).
    m.clear_all();
    word.store(0, Ordering::SeqCst);
    g.bench_function("test_and_clear-clear/scx-rt", |b| {
        b.iter(|| m.test_and_clear(black_box(MASK_BIT)))
    });
    g.bench_function("test_and_clear-clear/atomic-u64-fetch_and", |b| {
        b.iter(|| word.fetch_and(!black_box(bit), Ordering::SeqCst) & bit != 0)
    });
    // Iterate a 1024-CPU mask with 16 CPUs set, one per word.
    let set: Vec<usize> = (0..16).map(|i| i * 64 + (i * 7) % 64).collect();
    for &cpu in &set {
        m.set(cpu);
    }
    let plain: Vec<u64> = (0..MASK_CPUS / 64)
        .map(|w| {
            set.iter()
                .filter(|&&c| c / 64 == w)
                .fold(0u64, |a, &c| a | 1 << (c % 64))
        })
        .collect();
    g.bench_function("iterate-1024cpus-16set/scx-rt", |b| {
        b.iter(|| black_box(&m).iter().sum::<usize>())
    });
    g.bench_function("iterate-1024cpus-16set/plain-u64-words", |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for (i, &w) in black_box(&plain).iter().enumerate() {
                let mut bits = w;
                while bits != 0 {
                    sum += i * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                }
            }
            sum
        })
    });
    g.finish();
}

/// Deterministic pseudo-random vtime steps (xorshift64), the same sequence
/// for scx-rt and its baseline.
struct Steps(u64);

impl Steps {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + self.0 % (2 * n)
    }
}

/// A baseline heap entry: (vtime, tie) orders; the task rides along.
struct Entry {
    key: (u64, u64),
    p: TaskRef,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.key.cmp(&o.key)
    }
}

fn tokens(n: usize) -> Vec<TaskRef> {
    (1..=n as u64).map(Task::new_token).collect()
}

/// One iteration = pop the head and insert a task (the popped one, with a
/// later vtime for the vtime queues) into a queue of `n` tasks.
fn dsq(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsq");
    for n in [10usize, 10_000] {
        g.bench_function(BenchmarkId::new("fifo/scx-rt", n), |b| {
            let mut q = Dsq::new();
            for t in tokens(n) {
                assert!(q.push_fifo(t, false));
            }
            b.iter(|| {
                let p = q.pop().expect("non-empty");
                q.push_fifo(black_box(p), false)
            })
        });
        g.bench_function(BenchmarkId::new("fifo/VecDeque", n), |b| {
            let mut q: VecDeque<TaskRef> = tokens(n).into_iter().collect();
            b.iter(|| {
                let p = q.pop_front().expect("non-empty");
                q.push_back(black_box(p));
            })
        });
        g.bench_function(BenchmarkId::new("vtime/scx-rt", n), |b| {
            let mut q = Dsq::new();
            let mut steps = Steps(0x9E37_79B9_7F4A_7C15);
            for (i, t) in tokens(n).into_iter().enumerate() {
                t.set_dsq_vtime(i as u64);
                assert!(q.push_vtime(t));
            }
            b.iter(|| {
                let p = q.pop().expect("non-empty");
                p.set_dsq_vtime(p.dsq_vtime() + steps.next(n as u64));
                q.push_vtime(black_box(p))
            })
        });
        g.bench_function(BenchmarkId::new("vtime/BinaryHeap", n), |b| {
            let mut steps = Steps(0x9E37_79B9_7F4A_7C15);
            let mut tie = 0u64;
            let mut q: BinaryHeap<Reverse<Entry>> = tokens(n)
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    p.set_dsq_vtime(i as u64);
                    tie += 1;
                    Reverse(Entry {
                        key: (i as u64, tie),
                        p,
                    })
                })
                .collect();
            b.iter(|| {
                let Reverse(e) = q.pop().expect("non-empty");
                let v = e.key.0 + steps.next(n as u64);
                e.p.set_dsq_vtime(v);
                tie += 1;
                q.push(Reverse(Entry {
                    key: (v, tie),
                    p: black_box(e.p),
                }));
            })
        });
    }
    g.finish();
}

/// The runtime's per-CPU kick state, hand-rolled: what a kick with no
/// sleeper must touch at least (a mask bit and a pending flag on the
/// kicker, the target's lock, `need_resched`, a look at the doorbell).
struct KickSteps {
    to_kick: AtomicU64,
    pending: AtomicBool,
    sent: AtomicU64,
    rq: SpinMutex<u64>,
    need_resched: AtomicBool,
    doorbell: AtomicU32,
}

impl KickSteps {
    fn kick(&self, bit: u64) {
        self.to_kick.fetch_or(bit, Ordering::SeqCst);
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.pending.store(true, Ordering::Release);
        if self.pending.swap(false, Ordering::AcqRel) {
            let mut bits = self.to_kick.load(Ordering::SeqCst);
            while bits != 0 {
                let _rq = self.rq.lock();
                self.need_resched.store(true, Ordering::SeqCst);
                std::sync::atomic::fence(Ordering::SeqCst);
                black_box(self.doorbell.load(Ordering::SeqCst));
                self.to_kick
                    .fetch_and(!(bits & bits.wrapping_neg()), Ordering::SeqCst);
                bits &= bits - 1;
            }
        }
    }
}

fn kick_cpu(c: &mut Criterion) {
    let rt = Arc::new(one_cpu_runtime());
    let mut g = c.benchmark_group("kick_cpu");
    for (name, flags) in [
        ("self/scx-rt", KickFlags::empty()),
        ("self-preempt/scx-rt", KickFlags::PREEMPT),
        // IDLE to a busy CPU: skipped at the call side (try-lock, check).
        ("self-idle-skipped/scx-rt", KickFlags::IDLE),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let r = Arc::clone(&rt);
                rt.block_on(move || {
                    let t = Instant::now();
                    for _ in 0..iters {
                        r.kick_cpu(black_box(0), flags).expect("kick cpu 0");
                    }
                    t.elapsed()
                })
            })
        });
    }
    let steps = KickSteps {
        to_kick: AtomicU64::new(0),
        pending: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        rq: SpinMutex::new(0),
        need_resched: AtomicBool::new(false),
        doorbell: AtomicU32::new(0),
    };
    g.bench_function("self/hand-rolled-atomics", |b| {
        b.iter(|| steps.kick(black_box(1)))
    });
    g.finish();
}

fn doorbell(c: &mut Criterion) {
    let mut g = c.benchmark_group("doorbell");
    let d = Doorbell::new();
    g.bench_function("ring-no-sleeper/scx-rt", |b| {
        b.iter(|| black_box(&d).ring())
    });
    let w = AtomicU32::new(0);
    g.bench_function("ring-no-sleeper/atomic-swap", |b| {
        b.iter(|| black_box(&w).swap(0, Ordering::SeqCst))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = micro;
    config = config();
    targets = preempt_point, yield_now, spawn_join, cpumask, dsq, kick_cpu, doorbell
}
criterion_main!(micro);
