//! `schedulers::Qmap`, the idea of the kernel's `scx_qmap`, on a small
//! mixed workload: tasks of five weights go through five FIFOs that CPUs
//! serve in weighted batches (1, 2, 4, 8, 16 a round), nice -20 tasks are
//! boosted past the others, and higher-class work takes CPU 0 now and then
//! (`cpu_release` hands its waiting tasks back through `reenqueue_local`).
//! Prints the counters and the scheduler's part of a debug dump; quick
//! enough for CI (well under a second).
//!
//! ```text
//! cargo run --release -p scx-rt --example qmap [-- CPUS [TASKS]]   (default: 2 5000)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use scx_rt::schedulers::Qmap;
use scx_rt::{CpuPreemptReason, Runtime};

/// One weight per FIFO, the last one nice -20's.
const WEIGHTS: [u32; 5] = [10, 40, 100, 300, 8668];

/// Positional argument `i`, or `default`; anything but a positive number
/// ends the program with a usage error (exit code 2).
fn arg(i: usize, default: usize) -> usize {
    match std::env::args().nth(i) {
        None => default,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: qmap [CPUS [TASKS]]: {s:?} is not a positive number");
                std::process::exit(2);
            }
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (cpus, tasks) = (arg(1, 2), arg(2, 5000));
    let qmap = Qmap::new().batch(4).highpri_boosting(true);
    let stats = qmap.stats();
    let rt = Arc::new(
        Runtime::builder()
            .nr_cpus(cpus)
            .pin(false)
            .scheduler(qmap)
            .build()?,
    );

    // Higher-class work on CPU 0 while the workload runs.
    let done = Arc::new(AtomicBool::new(false));
    let (r, d) = (rt.clone(), done.clone());
    let interrupter = std::thread::spawn(move || {
        let mut n = 0u64;
        while !d.load(Ordering::Relaxed) {
            r.run_on_cpu(0, CpuPreemptReason::Rt, || ()).unwrap();
            n += 1;
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        n
    });

    // Each task notes when it finished (a global count): heavier FIFOs get
    // more dispatches per round, so their tasks finish earlier on average.
    let sum = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..tasks)
        .map(|i| {
            let (sum, finished) = (sum.clone(), finished.clone());
            rt.spawn_weighted(WEIGHTS[i % WEIGHTS.len()], move || {
                for _ in 0..(i % 4) {
                    scx_rt::yield_now(); // back through enqueue, same FIFO
                }
                sum.fetch_add(i as u64, Ordering::Relaxed);
                finished.fetch_add(1, Ordering::Relaxed)
            })
        })
        .collect::<Result<_, _>>()?;
    let mut rank_sum = [0u64; WEIGHTS.len()];
    for (i, h) in hs.into_iter().enumerate() {
        rank_sum[i % WEIGHTS.len()] += h.join()?;
    }
    done.store(true, Ordering::Relaxed);
    let works = interrupter.join().expect("interrupter thread");

    let n = tasks as u64;
    assert_eq!(
        sum.load(Ordering::Relaxed),
        n * (n - 1) / 2,
        "every task ran once"
    );
    if let Some(e) = rt.exit_info() {
        return Err(format!("qmap exited: {} ({})", e.reason, e.msg).into());
    }
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{} ran {tasks} tasks on {cpus} CPUs; {works} higher-class works on CPU 0",
        rt.scheduler_name()
    );
    let per_fifo = n as f64 / WEIGHTS.len() as f64;
    for (q, w) in WEIGHTS.iter().enumerate() {
        println!(
            "  FIFO {q} (weight {w:>4}): {:>5} enqueued, {:>5} dispatched, mean finish rank {:>5.0}",
            l(&stats.enqueued[q]),
            l(&stats.dispatched[q]),
            rank_sum[q] as f64 / per_fifo
        );
    }
    println!(
        "  direct {}, boosted {}, re-enqueued {}, cpu_release {}, cpu_acquire {}",
        l(&stats.direct),
        l(&stats.boosted),
        l(&stats.reenqueued),
        l(&stats.cpu_released),
        l(&stats.cpu_acquired)
    );
    println!("the scheduler's part of Runtime::dump:");
    for line in rt
        .dump()
        .lines()
        .filter(|l| l.trim_start().starts_with("qmap:"))
    {
        println!("  {line}");
    }
    rt.shutdown();
    Ok(())
}
