//! `pingpong`: two tasks on two CPUs exchanging a message over a cap-1
//! channel each way; every round trip is timed into a histogram (ns). With
//! one CPU both run on it and the case says `same-cpu`. Beside: OS threads
//! on a futex, tokio (`mpsc::channel(1)`, two workers), may, go, and the raw
//! one-way limits `raw-cacheline` (spinning) and `raw-futex` (wake-to-run).

use std::time::Instant;

use crate::peers::{go, may, raw, threads, tokio};
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, throughput_row, Key};
use crate::workloads::Ctx;

pub const NAME: &str = "pingpong";
/// Case of the raw one-way rows.
const ONE_WAY: &str = "one-way";

pub struct Sizes {
    pub iters: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(50_000, 1_000),
        reps: ctx.reps(5, 2),
    }
}

/// `cross-cpu`, or `same-cpu` when only one CPU is used.
pub fn case(ctx: &Ctx) -> String {
    if ctx.cpus.len() >= 2 {
        "cross-cpu".into()
    } else {
        "same-cpu".into()
    }
}

/// The two OS CPUs (the same one twice with a single CPU).
fn pair(ctx: &Ctx) -> (usize, usize) {
    (ctx.cpus[0], *ctx.cpus.get(1).unwrap_or(&ctx.cpus[0]))
}

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { iters, reps } = sizes(ctx);
    let case = case(ctx);
    let (cpu_a, cpu_b) = pair(ctx);
    let two: Vec<usize> = ctx.cpus[..ctx.cpus.len().min(2)].to_vec();
    let key = |subject| Key {
        workload: NAME,
        case: &case,
        subject,
    };
    ctx.scx(NAME, rows, || {
        Ok(vec![latency_row(key(Subject::ScxRt), &scx(&two, iters)?)])
    })?;
    ctx.peer(NAME, Subject::OsThreads, rows, || {
        let hist = threads::pingpong(cpu_a, cpu_b, iters)?;
        Ok(vec![latency_row(key(Subject::OsThreads), &hist)])
    });
    ctx.peer(NAME, Subject::Tokio, rows, || {
        let hist = tokio::pingpong(&two, iters)?;
        Ok(vec![latency_row(key(Subject::Tokio), &hist)])
    });
    ctx.peer(NAME, Subject::May, rows, || may::rows(ctx, NAME));
    go::peer(ctx, NAME, rows);
    let one_way_case = if ctx.cpus.len() >= 2 {
        ONE_WAY.to_string()
    } else {
        format!("{ONE_WAY}-same-cpu")
    };
    ctx.peer(NAME, Subject::RawCacheline, rows, || {
        // Spinning is cheap per hand-off: give it more round trips.
        let n = iters.saturating_mul(10);
        let samples = raw::cacheline(cpu_a, cpu_b, n, reps)?;
        let key = Key {
            workload: NAME,
            case: &one_way_case,
            subject: Subject::RawCacheline,
        };
        Ok(vec![throughput_row(key, "ns/hand-off", 2 * n, &samples)])
    });
    ctx.peer(NAME, Subject::RawFutex, rows, || {
        // Each sample waits ~30 µs for the sleeper to settle; cap the count.
        let hist = raw::futex(cpu_a, cpu_b, iters.min(20_000))?;
        let key = Key {
            workload: NAME,
            case: &one_way_case,
            subject: Subject::RawFutex,
        };
        Ok(vec![latency_row(key, &hist)])
    });
    Ok(())
}

/// scx-rt: a runtime on the (one or two) CPUs; the pinger on logical CPU 0,
/// the echo on logical CPU 1 (or 0).
fn scx(cpus: &[usize], iters: u64) -> Result<hdrhistogram::Histogram<u64>, String> {
    let rt = scx_rt::Runtime::builder()
        .cpus(cpus.to_vec())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let echo_cpu = cpus.len() - 1;
    let warmup = iters / 10;
    let rounds = warmup + iters;
    let (tx_ab, rx_ab) = scx_rt::sync::channel::<u64>(1);
    let (tx_ba, rx_ba) = scx_rt::sync::channel::<u64>(1);
    let echo = rt.spawn_on(echo_cpu, move || {
        while let Ok(v) = rx_ab.recv() {
            if tx_ba.send(v).is_err() {
                break;
            }
        }
    });
    let ping = rt.spawn_on(0, move || {
        let mut hist = new_hist();
        for i in 0..rounds {
            let t = Instant::now();
            tx_ab.send(i).map_err(|_| "echo gone".to_string())?;
            rx_ba.recv().map_err(|_| "echo gone".to_string())?;
            if i >= warmup {
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
        }
        Ok::<_, String>(hist)
    });
    let hist = ping.join().map_err(|e| format!("join: {e:?}"))??;
    echo.join().map_err(|e| format!("join: {e:?}"))?;
    rt.shutdown();
    Ok(hist)
}
