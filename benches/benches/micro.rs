//! Micro-benchmarks of scx-rt with their baselines in the same run:
//!
//! - `preempt_point`: a preemption point with nothing pending, inside a
//!   task, vs an empty loop (target: ≤ 2 ns);
//! - `yield_now`: green `yield → other task → back` on one CPU vs a bare
//!   corosensei resume/suspend pair (target: ≤ 2×);
//! - `spawn_join`: spawn + run + join of an empty task vs calling the
//!   closure directly.
//!
//! Criterion drives its loop on the calling OS thread, so scx-rt figures
//! use `iter_custom`: the timed loop runs inside `rt.block_on` and returns
//! its own `Duration`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use scx_rt_benches::{call_empty_closure, empty_loop, one_cpu_runtime, raw_corosensei_pairs};

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

fn yield_now(c: &mut Criterion) {
    let rt = one_cpu_runtime();
    let mut g = c.benchmark_group("yield_now");
    // One iteration: this task yields, the partner runs and yields back.
    g.bench_function("scx-rt", |b| {
        b.iter_custom(|iters| {
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
        })
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

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = micro;
    config = config();
    targets = preempt_point, yield_now, spawn_join
}
criterion_main!(micro);
