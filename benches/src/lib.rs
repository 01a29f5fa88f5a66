//! Shared helpers of the criterion micro-benchmarks (`benches/micro.rs`):
//! the runtime they use and the bare baselines they compare against, kept
//! here so the baselines can be unit-tested and reused.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};

/// A runtime on one CPU (the first usable core, pinned): no cross-CPU
/// traffic, so switch and spawn costs are the local ones.
pub fn one_cpu_runtime() -> scx_rt::Runtime {
    scx_rt::Runtime::builder()
        .nr_cpus(1)
        .build()
        .expect("build a one-CPU scx-rt runtime")
}

/// [`one_cpu_runtime`] with scheduling traces on (`Builder::trace`, the
/// default ring, never written out): what recording costs per switch.
pub fn one_cpu_runtime_traced() -> scx_rt::Runtime {
    scx_rt::Runtime::builder()
        .nr_cpus(1)
        .trace(scx_rt::TraceConfig::new())
        .build()
        .expect("build a one-CPU scx-rt runtime with tracing")
}

/// Time of `iters` bare corosensei resume/suspend pairs (each pair is one
/// switch into the coroutine and one back: the unit a green
/// `yield → other task → back` is compared with).
pub fn raw_corosensei_pairs(iters: u64) -> Duration {
    let mut co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        for _ in 0..iters {
            y.suspend(());
        }
    });
    let t = Instant::now();
    while let CoroutineResult::Yield(()) = co.resume(()) {}
    t.elapsed()
}

/// Time of `iters` passes of an empty loop (the "nothing" baseline; the
/// counter goes through `black_box`, as in the measured loops).
pub fn empty_loop(iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
    }
    t.elapsed()
}

/// Time of `iters` direct calls of an empty closure (the baseline of
/// spawn + run + join of an empty task).
pub fn call_empty_closure(iters: u64) -> Duration {
    let f = || ();
    let t = Instant::now();
    for _ in 0..iters {
        black_box(&f)();
    }
    t.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_run() {
        assert!(raw_corosensei_pairs(1000) > Duration::ZERO);
        let _ = empty_loop(10);
        let _ = call_empty_closure(10);
    }
}
