//! Rough per-operation timings of the scx-rt-sys primitives, with a bare
//! corosensei switch as the baseline in the same run.
//!
//! `cargo run --release -p scx-rt-sys --example sys_timings`

use std::time::Instant;

use scx_rt_sys::fiber::{suspend, Fiber, Resumed};
use scx_rt_sys::stack::StackPool;

fn per_op(label: &str, n: usize, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{label:<44} {ns:>8.1} ns/op");
}

fn main() {
    const N: usize = 1_000_000;
    let pool = StackPool::new(256 * 1024);
    // ONLY_SWITCH=1: just the switch loops, longer (for `perf`).
    let only_switch = std::env::var_os("ONLY_SWITCH").is_some();

    per_op("stack pool get+put (warm)", N, || {
        for _ in 0..N {
            let s = pool.get().unwrap();
            pool.put(std::hint::black_box(s));
        }
    });

    // Contended: THREADS threads share the pool. Per-op time is wall time
    // divided by the ops of one thread (so it compares with the line above).
    // THREADS=n overrides the default of 4.
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    per_op(&format!("stack pool get+put, {threads} threads"), N, || {
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| {
                    for _ in 0..N {
                        let s = pool.get().unwrap();
                        pool.put(std::hint::black_box(s));
                    }
                });
            }
        });
    });
    // Bursts: each thread takes 256 stacks, then returns them (exercises the
    // refill/flush batches rather than the single warm slot).
    const BURST: usize = 256;
    per_op(
        &format!("stack pool 256 gets+256 puts, {threads} thr"),
        N,
        || {
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(|| {
                        let mut held = Vec::with_capacity(BURST);
                        for _ in 0..N / BURST {
                            held.extend((0..BURST).map(|_| pool.get().unwrap()));
                            held.clear();
                        }
                    });
                }
            });
        },
    );

    let mut co = corosensei::Coroutine::<(), (), (), _>::new(|y, ()| loop {
        y.suspend(());
    });
    per_op("baseline: bare corosensei resume+suspend", N, || {
        for _ in 0..N {
            co.resume(());
        }
    });

    let mut f = Fiber::new(Box::new(|| loop {
        suspend(1);
    }));
    let rounds = if only_switch { 50 * N } else { N };
    per_op("fiber resume+suspend", rounds, || {
        for _ in 0..rounds {
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(1));
        }
    });

    if only_switch {
        return;
    }
    per_op("fiber new+resume to finish (pooled stack)", N, || {
        for i in 0..N {
            let mut f = Fiber::new(Box::new(move || {
                std::hint::black_box(i);
            }));
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
        }
    });

    let atom = std::sync::atomic::AtomicU32::new(0);
    per_op("futex wake_one (no waiter)", N, || {
        for _ in 0..N {
            scx_rt_sys::futex::wake_one(&atom);
        }
    });
    per_op("clock::now_ns", N, || {
        for _ in 0..N {
            std::hint::black_box(scx_rt_sys::clock::now_ns());
        }
    });
    per_op("clock::monotonic_ns", N, || {
        for _ in 0..N {
            std::hint::black_box(scx_rt_sys::clock::monotonic_ns());
        }
    });
}
