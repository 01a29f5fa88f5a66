//! `hog`: Go's `BenchmarkPingPongHog` shape. A ping-pong pair shares one CPU
//! with a hog: a task that spins, calling `preempt_point()` on every pass.
//! Round-trip latency of the pair (p50/p99/p99.9, ns) with slices of 20 ms
//! (the default), 1 ms and 50 µs, and with `SLICE_INF`.
//!
//! A runtime on one CPU under the default scheduler (`WorkStealing`) with
//! the case's slice (`Builder::slice`). The pinger and the echo task
//! exchange a number over two cap-1 channels; after a few rounds alone the
//! pinger spawns the hog and times `rounds` round trips while it runs.
//! A task woken by the task running on its CPU runs next on the rest of
//! its waker's slice (the scheduler's runnext rule, Go's `runnext`), so
//! the pair's hops share one slice and pass the hog; when that slice is
//! spent, the next hop queues behind the hog and waits for its slice. Most
//! round trips cost two hops; about one per slice of the pair's run time
//! costs a hog slice more. That is what slices buy: the delay a tight loop
//! can impose is bounded by the slice, whatever the loop does, as long as
//! it reaches preemption points.
//!
//! `slice-50us-fifo`: the same under a policy with no runnext
//! ([`Sliced`]: every task from the CPU's local DSQ in FIFO order with
//! the case's slice), where every hop queues behind the hog: a round trip
//! costs two hog slices.
//!
//! `slice-inf`: the hog is never preempted, so the round trip in flight
//! when it starts does not complete until a watchdog on the calling thread
//! stops the hog after [`Sizes::inf_limit`]. The row then holds that one
//! round trip (about the limit: a lower bound of an unbounded delay).
//!
//! The 1 ms and 50 µs slices are measured again with the other slice-timer
//! modes (`preempt::MODES`: cases `…-signal`, `…-thread`, `…-rt-thread`,
//! `…-poll`; the plain cases run the default, `SliceTimer::Auto`).
//!
//! Peers: `os-threads` in case `os-sched`: the same three roles as OS
//! threads pinned to the same core (the pair on a futex, the hog spinning),
//! scheduled by the kernel (its own slices and wake-up preemption); no
//! ratio, as no scx-rt slice corresponds. No tokio or may rows: neither
//! preempts, so a hog that never yields blocks the pair for good (the
//! `slice-inf` row's shape), and a hog that yields every N passes is a
//! different, cooperative, workload. No Go rows: Go preempts a spinning
//! goroutine by its own fixed 10 ms signal-based policy, which matches no
//! case's slice (Go's own `BenchmarkPingPongHog` measures exactly that).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scx_rt::{Runtime, SliceTimer, SLICE_INF};

use crate::ctx::Ctx;
use crate::peers::threads;
use crate::pin::spawn_pinned;
use crate::report::{PlotData, Row, Subject};
use crate::stats::{latency_row, new_hist, Key};
use crate::workloads::preempt::{Sliced, MODES};

pub const NAME: &str = "hog";

/// The slices measured, with their case names (`None`: `SLICE_INF`).
const SLICES: [(&str, Option<Duration>); 4] = [
    ("slice-20ms", Some(Duration::from_millis(20))),
    ("slice-1ms", Some(Duration::from_millis(1))),
    ("slice-50us", Some(Duration::from_micros(50))),
    ("slice-inf", None),
];

/// Round trips before the hog starts (not recorded).
const WARMUP: u64 = 10;

pub struct Sizes {
    /// Round trips per slice (fewer for long slices, see `budget`).
    pub iters: u64,
    /// At most about this much run time per slice: a slice of `s` gets at
    /// most `budget / 2s` round trips (and at least 5).
    pub budget: Duration,
    /// How long the `slice-inf` watchdog lets the hog run.
    pub inf_limit: Duration,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(10_000, 500),
        budget: if ctx.opts.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(4)
        },
        inf_limit: if ctx.opts.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        },
    }
}

/// Round trips measured for `slice`.
fn rounds(s: &Sizes, slice: Duration) -> u64 {
    let cap = (s.budget.as_nanos() / (2 * slice.as_nanos()).max(1)) as u64;
    s.iters.min(cap.max(5))
}

/// Which scheduler a case runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// The default scheduler with `Builder::slice`.
    Default,
    /// [`Sliced`]: local-DSQ FIFO, no runnext.
    Fifo,
}

/// The cases measured: every slice with the default slice timer, then the
/// short finite slices with the other modes (`preempt::MODES`), then 50 µs
/// under the FIFO policy.
fn cases() -> Vec<(String, Option<Duration>, SliceTimer, Policy)> {
    let mut v: Vec<_> = SLICES
        .iter()
        .map(|&(c, s)| (c.to_string(), s, MODES[0].1, Policy::Default))
        .collect();
    for (suffix, mode) in &MODES[1..] {
        for (c, s) in &SLICES[1..3] {
            v.push((format!("{c}{suffix}"), *s, *mode, Policy::Default));
        }
    }
    let (c, s) = SLICES[2];
    v.push((format!("{c}-fifo"), s, MODES[0].1, Policy::Fifo));
    v
}

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let sizes = sizes(ctx);
    let cpu = ctx.cpus[0];
    for (case, slice, mode, policy) in cases() {
        let case = case.as_str();
        let (n, slice_ns, limit) = match slice {
            Some(s) => {
                let n = rounds(&sizes, s);
                // A hang guard only: ten times the expected time, + 10 s.
                let hops = u32::try_from(2 * (n + WARMUP)).unwrap_or(u32::MAX);
                let expect = s.saturating_mul(hops).saturating_mul(10);
                (
                    n,
                    s.as_nanos() as u64,
                    expect.saturating_add(Duration::from_secs(10)),
                )
            }
            None => (sizes.iters, SLICE_INF, sizes.inf_limit),
        };
        ctx.scx(&format!("{NAME} {case}"), rows, || {
            let r = scx(cpu, slice_ns, n, limit, mode, policy)?;
            if r.stopped && slice.is_some() {
                eprintln!("{NAME}: {case}: the hang guard stopped the hog after {limit:?}");
            }
            if slice.is_none() {
                eprintln!(
                    "{NAME}: {case}: the hog never gave up the CPU; the watchdog stopped it \
                     after {limit:?}; {} round trip(s) completed while it ran",
                    r.hist.len()
                );
            }
            let key = Key {
                workload: NAME,
                case,
                subject: Subject::ScxRt,
            };
            let mut row = latency_row(key, &r.hist);
            if slice.is_none() {
                // One sample bounded by the watchdog: no distribution to draw.
                row.plot = PlotData::None;
            }
            Ok(vec![row])
        })?;
    }
    ctx.peer(NAME, Subject::OsThreads, rows, || {
        let n = sizes.iters.min(5_000);
        let hist = os_threads(cpu, n)?;
        let key = Key {
            workload: NAME,
            case: "os-sched",
            subject: Subject::OsThreads,
        };
        Ok(vec![latency_row(key, &hist)])
    });
    Ok(())
}

/// The outcome of one scx-rt run.
struct Outcome {
    /// Round trips completed while the hog ran.
    hist: Histogram<u64>,
    /// Whether the watchdog had to stop the hog.
    stopped: bool,
}

/// One case: pinger, echo and hog on OS CPU `cpu`, slice `slice_ns`,
/// under `policy`; `rounds` round trips, or fewer if the watchdog stops
/// the hog `limit` after the hog started.
fn scx(
    cpu: usize,
    slice_ns: u64,
    rounds: u64,
    limit: Duration,
    mode: SliceTimer,
    policy: Policy,
) -> Result<Outcome, String> {
    let b = crate::ctx::traced(Runtime::builder())
        .cpus([cpu])
        .slice_timer(mode);
    let b = match policy {
        // `SLICE_INF` is `Duration::MAX` to the builder.
        Policy::Default if slice_ns == SLICE_INF => b.slice(Duration::MAX),
        Policy::Default => b.slice(Duration::from_nanos(slice_ns)),
        Policy::Fifo => b.scheduler(Sliced { slice: slice_ns }),
    };
    let rt = b.build().map_err(|e| format!("build runtime: {e}"))?;
    let stop_hog = Arc::new(AtomicBool::new(false));
    let hog_running = Arc::new(AtomicBool::new(false));
    let (tx_ab, rx_ab) = scx_rt::sync::channel::<u64>(1);
    let (tx_ba, rx_ba) = scx_rt::sync::channel::<u64>(1);
    let echo = rt.spawn_on(0, move || {
        while let Ok(v) = rx_ab.recv() {
            if tx_ba.send(v).is_err() {
                break;
            }
        }
    });
    let stop = Arc::clone(&stop_hog);
    let running = Arc::clone(&hog_running);
    let ping = rt.spawn_on(0, move || {
        for i in 0..WARMUP {
            tx_ab.send(i).map_err(gone)?;
            rx_ba.recv().map_err(gone)?;
        }
        let s = Arc::clone(&stop);
        let hog = scx_rt::spawn(move || {
            running.store(true, Ordering::Relaxed);
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
                scx_rt::preempt_point();
            }
        });
        let mut hist = new_hist();
        for i in 0..rounds {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let t = Instant::now();
            tx_ab.send(i).map_err(gone)?;
            rx_ba.recv().map_err(gone)?;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
        }
        stop.store(true, Ordering::Relaxed);
        drop(tx_ab);
        hog.join().map_err(|e| format!("join hog: {e:?}"))?;
        Ok::<_, String>(hist)
    });
    // The watchdog: this thread is no worker, so it runs beside the CPU.
    // Its limit counts from the hog's first pass.
    let mut since: Option<Instant> = None;
    let mut stopped = false;
    while !ping.is_finished() {
        if since.is_none() && hog_running.load(Ordering::Relaxed) {
            since = Some(Instant::now());
        }
        if !stopped && since.is_some_and(|t| t.elapsed() > limit) {
            stopped = true;
            stop_hog.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let hist = ping.join().map_err(|e| format!("join pinger: {e:?}"))??;
    echo.join().map_err(|e| format!("join echo: {e:?}"))?;
    rt.shutdown();
    Ok(Outcome { hist, stopped })
}

fn gone<E>(_: E) -> String {
    "echo gone".to_string()
}

/// The `os-sched` peer: a spinning thread and a futex ping-pong pair, all
/// pinned to OS CPU `cpu`; histogram of `rounds` round trips.
fn os_threads(cpu: usize, rounds: u64) -> Result<Histogram<u64>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let hog = spawn_pinned(cpu, move || {
        while !s.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        Ok(())
    })?;
    let r = threads::pingpong(cpu, cpu, rounds, rounds / 10);
    stop.store(true, Ordering::Relaxed);
    hog.join()?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cap_long_slices() {
        let s = Sizes {
            iters: 500,
            budget: Duration::from_millis(500),
            inf_limit: Duration::from_millis(500),
        };
        assert_eq!(rounds(&s, Duration::from_millis(20)), 12);
        assert_eq!(rounds(&s, Duration::from_micros(50)), 500);
        assert_eq!(rounds(&s, Duration::from_secs(1)), 5);
    }

    #[test]
    fn slices_let_the_pair_through() {
        let cpu = crate::cpus::usable_cpus()[0];
        for (_, mode) in MODES {
            for policy in [Policy::Default, Policy::Fifo] {
                let r = scx(cpu, 50_000, 20, Duration::from_secs(120), mode, policy).unwrap();
                assert!(!r.stopped, "{mode:?} {policy:?}");
                assert_eq!(r.hist.len(), 20, "{mode:?} {policy:?}");
            }
        }
    }

    #[test]
    fn an_infinite_slice_blocks_the_pair_until_the_hog_stops() {
        let cpu = crate::cpus::usable_cpus()[0];
        let limit = Duration::from_millis(50);
        let r = scx(
            cpu,
            SLICE_INF,
            1_000,
            limit,
            SliceTimer::Signal,
            Policy::Default,
        )
        .unwrap();
        assert!(r.stopped);
        // Only the round trip in flight completes, once the hog is gone;
        // it began before the hog's first pass, so it spans the limit.
        assert_eq!(r.hist.len(), 1);
        assert!(r.hist.max() >= limit.as_nanos() as u64);
    }
}
