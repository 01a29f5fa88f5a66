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

use crate::peers::{go, may, raw, threads, tokio};
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, throughput_row, Key};
use crate::workloads::Ctx;

pub const NAME: &str = "pingpong";
/// Case of the raw one-way rows.
const ONE_WAY: &str = "one-way";
/// Capacity of both channels, for every subject that has channels (may's
/// are unbounded; with one message in flight that makes no difference).
pub const CHANNEL_CAP: usize = 1;
/// Unrecorded round trips before the measured ones, per case (fixed, so
/// that the work grows by exactly one round trip per `--iters`).
pub const WARMUP: u64 = 1_000;

pub struct Sizes {
    /// Measured round trips per case.
    pub iters: u64,
    /// Repetitions of the raw cache-line row.
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(50_000, 1_000),
        reps: ctx.reps(5, 2),
    }
}

/// Where the two ends run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Both ends on the first CPU.
    SameCpu,
    /// The pinger pinned to the first CPU, the echo to the second.
    CrossCpu,
    /// Two CPUs; the runtime places the ends.
    Free,
}

impl Placement {
    pub const ALL: [Placement; 3] = [Placement::SameCpu, Placement::CrossCpu, Placement::Free];

    /// The case name of the rows.
    pub fn case(self) -> &'static str {
        match self {
            Placement::SameCpu => "same-cpu",
            Placement::CrossCpu => "cross-cpu",
            Placement::Free => "2cpu-free",
        }
    }

    /// The CPUs it needs.
    fn cpus_needed(self) -> usize {
        match self {
            Placement::SameCpu => 1,
            Placement::CrossCpu | Placement::Free => 2,
        }
    }

    /// Runtime CPU (position in the runtime's CPU list) of the pinger and
    /// of the echo; `None` leaves the choice to the scheduler.
    fn scx_cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Placement::SameCpu => (Some(0), Some(0)),
            Placement::CrossCpu => (Some(0), Some(1)),
            Placement::Free => (None, None),
        }
    }
}

/// The cases to run: every one the CPUs allow, or those of `--case`.
pub fn placements(ctx: &Ctx) -> Vec<Placement> {
    Placement::ALL
        .into_iter()
        .filter(|p| p.cpus_needed() <= ctx.cpus.len())
        .filter(|p| match &ctx.opts.cases {
            Some(cases) => cases.iter().any(|c| c == p.case()),
            None => true,
        })
        .collect()
}

/// Usage check: every `--case` is a case of this workload that the CPUs
/// allow.
pub fn check_options(ctx: &Ctx) -> Result<(), String> {
    for c in ctx.opts.cases.iter().flatten() {
        let p = Placement::ALL
            .into_iter()
            .find(|p| p.case() == c)
            .ok_or_else(|| {
                let known: Vec<_> = Placement::ALL.iter().map(|p| p.case()).collect();
                format!("pingpong: no case `{c}` (known: {})", known.join(", "))
            })?;
        if p.cpus_needed() > ctx.cpus.len() {
            return Err(format!("pingpong: case `{c}` needs two CPUs in --cpus"));
        }
    }
    Ok(())
}

/// The first two OS CPUs (the first one twice with a single CPU).
pub fn pair(ctx: &Ctx) -> (usize, usize) {
    (ctx.cpus[0], *ctx.cpus.get(1).unwrap_or(&ctx.cpus[0]))
}

/// The OS CPUs a placement uses.
pub fn cpus_of(ctx: &Ctx, p: Placement) -> Vec<usize> {
    let (a, b) = pair(ctx);
    match p {
        Placement::SameCpu => vec![a],
        Placement::CrossCpu | Placement::Free => vec![a, b],
    }
}

/// A latency row of one case.
pub fn row(p: Placement, subject: Subject, hist: &hdrhistogram::Histogram<u64>) -> Row {
    let key = Key {
        workload: NAME,
        case: p.case(),
        subject,
    };
    latency_row(key, hist)
}

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
    let (ping_cpu, echo_cpu) = p.scx_cpus();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;

    fn ctx(cpus: Vec<usize>, cases: Option<&[&str]>) -> Ctx {
        Ctx {
            cpus,
            opts: Options {
                cases: cases.map(|c| c.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn cases_follow_cpus_and_case_option() {
        use Placement::*;
        assert_eq!(placements(&ctx(vec![0], None)), vec![SameCpu]);
        assert_eq!(
            placements(&ctx(vec![0, 1, 2], None)),
            vec![SameCpu, CrossCpu, Free]
        );
        let only = ctx(vec![0, 1], Some(&["cross-cpu"]));
        assert_eq!(placements(&only), vec![CrossCpu]);
        assert!(check_options(&only).is_ok());
        assert!(check_options(&ctx(vec![0], Some(&["cross-cpu"]))).is_err());
        assert!(check_options(&ctx(vec![0, 1], Some(&["nope"]))).is_err());
        assert_eq!(cpus_of(&only, SameCpu), vec![0]);
        assert_eq!(cpus_of(&only, CrossCpu), vec![0, 1]);
    }
}
