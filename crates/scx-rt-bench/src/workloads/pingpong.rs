//! `pingpong`: two tasks exchanging a number over a cap-1 channel each way
//! ([`CHANNEL_CAP`]; with one message in flight per direction no send ever
//! waits for room). Every round trip is timed into a histogram (ns) after
//! a fixed warm-up of [`WARMUP`] unrecorded round trips, so `--iters N`
//! means exactly N measured round trips per case.
//!
//! # Cases
//!
//! Each subject runs the cases it can express (a row it cannot is left
//! out). With one CPU only `same-cpu` runs; `--case` narrows the list.
//!
//! - `same-cpu`: both ends on the first CPU. scx-rt: a runtime on the
//!   first two CPUs, both tasks `Runtime::spawn_on(0, …)`; tokio: a
//!   current-thread runtime on a thread pinned to the CPU; may: one
//!   worker; go: `GOMAXPROCS=1`; OS threads: both pinned to the CPU.
//! - `cross-cpu`: the pinger pinned to the first CPU, the echo to the
//!   second, so every hop crosses CPUs. scx-rt: `spawn_on(0, …)` and
//!   `spawn_on(1, …)`; tokio: a current-thread runtime on each of two
//!   pinned threads (the channels link the runtimes); go: each goroutine
//!   on its own locked OS thread (`runtime.LockOSThread`) pinned with
//!   `sched_setaffinity`, `GOMAXPROCS=2`; OS threads: one pinned to each
//!   CPU. may cannot pin a coroutine to a worker: no row.
//! - `2cpu-free`: two CPUs and placement left to the runtime, as a program
//!   would get by default. scx-rt: `Runtime::spawn` (the default
//!   scheduler picks each task's CPU at its first run, then keeps it
//!   there); tokio: a multi-thread runtime with two pinned workers; may:
//!   two workers; go: `GOMAXPROCS=2`. tokio, may and go tend to run both
//!   ends on one worker here (a woken task goes to the waker's queue), so
//!   this case is often a same-CPU exchange in disguise.
//!
//! The OS-thread ends pass the turn through one `AtomicU32` with futex
//! wait/wake instead of a channel (the cheapest blocking hand-off the OS
//! has). Beside, with the cross-CPU case: the raw one-way limits
//! `raw-cacheline` (spinning) and `raw-futex` (wake-to-run), case
//! `one-way` (`one-way-same-cpu` on a single CPU).

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::{go, may, raw, threads, tokio};
use crate::report::{Row, Subject};
use crate::spec::pingpong::{
    cpus_of, pair, placements, row, sizes, Placement, Sizes, CHANNEL_CAP, NAME, WARMUP,
};
use crate::stats::{latency_row, new_hist, throughput_row, Key};

/// Case of the raw one-way rows.
const ONE_WAY: &str = "one-way";

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { iters, reps } = sizes(ctx);
    let (cpu_a, cpu_b) = pair(ctx);
    // A runtime on the first two CPUs (one with a single CPU) for every
    // case: the placement is the tasks', not the runtime's.
    let two: Vec<usize> = ctx.cpus[..ctx.cpus.len().min(2)].to_vec();
    for p in placements(ctx) {
        ctx.scx(NAME, rows, || {
            Ok(vec![row(p, Subject::ScxRt, &scx(ctx, &two, p, iters)?)])
        })?;
        if p != Placement::Free {
            ctx.peer(NAME, Subject::OsThreads, rows, || {
                let echo_cpu = if p == Placement::SameCpu {
                    cpu_a
                } else {
                    cpu_b
                };
                let hist = threads::pingpong(cpu_a, echo_cpu, iters, WARMUP)?;
                Ok(vec![row(p, Subject::OsThreads, &hist)])
            });
        }
        ctx.peer(NAME, Subject::Tokio, rows, || {
            let hist = match p {
                Placement::SameCpu => tokio::pingpong_same_cpu(cpu_a, iters, WARMUP)?,
                Placement::CrossCpu => tokio::pingpong_cross_cpu(cpu_a, cpu_b, iters, WARMUP)?,
                Placement::Free => tokio::pingpong_free(&[cpu_a, cpu_b], iters, WARMUP)?,
            };
            Ok(vec![row(p, Subject::Tokio, &hist)])
        });
        if p != Placement::CrossCpu {
            ctx.peer(NAME, Subject::May, rows, || {
                may::rows_on(ctx, NAME, &cpus_of(ctx, p))
            });
        }
        if go::ready(ctx) {
            ctx.peer(NAME, Subject::Go, rows, || go::pingpong_rows(ctx, p));
        }
    }
    // The raw limits go with the cross-CPU case (on one CPU, with the
    // same-CPU case), not with a `--case` list that leaves it out.
    let raw_case = if ctx.cpus.len() >= 2 {
        Placement::CrossCpu
    } else {
        Placement::SameCpu
    };
    if !placements(ctx).contains(&raw_case) {
        return Ok(());
    }
    let one_way_case = if raw_case == Placement::CrossCpu {
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

/// Runtime CPU (position in the runtime's CPU list) of the pinger and of
/// the echo of a placement; `None` leaves the choice to the scheduler.
fn scx_cpus(p: Placement) -> (Option<usize>, Option<usize>) {
    match p {
        Placement::SameCpu => (Some(0), Some(0)),
        Placement::CrossCpu => (Some(0), Some(1)),
        Placement::Free => (None, None),
    }
}

/// Spawns `f` on runtime CPU `cpu`, or where the scheduler puts it.
fn spawn_at<F, T>(rt: &scx_rt::Runtime, cpu: Option<usize>, f: F) -> scx_rt::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match cpu {
        Some(cpu) => rt.spawn_on(cpu, f),
        None => rt.spawn(f),
    }
}

/// scx-rt: a runtime on the OS CPUs `cpus` (one or two), the pinger and
/// the echo placed as `p` says; [`WARMUP`] + `iters` round trips.
fn scx(
    ctx: &Ctx,
    cpus: &[usize],
    p: Placement,
    iters: u64,
) -> Result<hdrhistogram::Histogram<u64>, String> {
    let rt = ctx
        .scx_builder(cpus.to_vec())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let (ping_cpu, echo_cpu) = scx_cpus(p);
    let (tx_ab, rx_ab) = scx_rt::sync::channel::<u64>(CHANNEL_CAP);
    let (tx_ba, rx_ba) = scx_rt::sync::channel::<u64>(CHANNEL_CAP);
    let echo = spawn_at(&rt, echo_cpu, move || {
        while let Ok(v) = rx_ab.recv() {
            if tx_ba.send(v).is_err() {
                break;
            }
        }
    });
    let ping = spawn_at(&rt, ping_cpu, move || {
        let mut hist = new_hist();
        for i in 0..WARMUP + iters {
            let t = Instant::now();
            tx_ab.send(i).map_err(|_| "echo gone".to_string())?;
            rx_ba.recv().map_err(|_| "echo gone".to_string())?;
            if i >= WARMUP {
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
