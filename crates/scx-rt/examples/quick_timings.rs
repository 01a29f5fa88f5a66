//! Rough timings of the hot paths (the benchmark suite is `scx-rt-bench`).
use std::time::Instant;

fn main() {
    let rt = scx_rt::Runtime::builder().nr_cpus(1).build().unwrap();
    let n = 2_000_000u64;
    let ns = rt.block_on(move || {
        let t = Instant::now();
        for _ in 0..n {
            scx_rt::preempt_point();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    println!("preempt_point (nothing pending): {ns:.2} ns");
    let only_yield = std::env::var_os("QT_YIELD").is_some();
    let n = std::env::var("QT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if only_yield { 5_000_000u64 } else { 200_000 });
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            rt.spawn(move || {
                for _ in 0..n {
                    scx_rt::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    println!(
        "yield_now switch (2 tasks, 1 cpu): {:.1} ns",
        t.elapsed().as_nanos() as f64 / (2 * n) as f64
    );
    if only_yield {
        return;
    }
    let n = 200_000u64;
    let ns = rt.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n).map(|_| scx_rt::spawn(|| ())).collect();
        for h in hs {
            h.join().unwrap();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    println!("spawn+run+join (inside a task, 1 cpu): {ns:.1} ns");
}
