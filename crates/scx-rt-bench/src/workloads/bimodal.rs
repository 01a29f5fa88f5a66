//! `bimodal`: open-loop Poisson arrivals of requests that are served by
//! spinning, under several scheduling policies, swept over offered load.
//!
//! # Load
//!
//! Two request mixes, each 99.5% short and 0.5% long requests:
//! `skyloft` (4 µs / 10 ms, Skyloft's set-up) and `shinjuku` (0.5 µs /
//! 500 µs, Shinjuku's). Capacity is `CPUs / mean service time` (requests
//! per second the CPUs could serve with no overhead at all); the offered
//! load is a fraction of it (`--load`, default 10% to 95%). Before a run,
//! the arrival schedule is drawn: exponential gaps at the offered rate and
//! the class of each request, from a seeded splitmix64 generator (the
//! same schedule for every policy).
//!
//! # A run
//!
//! A generator OS thread (pinned to a usable CPU outside `--cpus` when
//! there is one, else sharing the CPUs with the workers; it sleeps through
//! long gaps and spins the last part, yielding the CPU only when it
//! shares it with the workers) hands each request
//! to the runtime at its arrival time: one task per request. A request
//! spins until it has had its service time of CPU: a gap of more than
//! 1 µs between two clock reads is time off the CPU (switched out by the
//! runtime or the OS) and counts as 1 µs only. The scx-rt spin calls
//! [`scx_rt::preempt_point`] on every turn; tokio's cannot yield. Latency
//! is completion minus the *scheduled* arrival time, so a late generator
//! or a backlog counts against the runtime (no coordinated omission).
//! Achieved throughput is the request count over the time from the first
//! arrival to the last completion. Each load point also reports what the
//! host took (`bimodal_tail`): how late the generator handed requests over
//! (rows `…-generator-late`), the worker threads' run-delay, time runnable
//! but not running (rows `…-worker-run-delay`, % of the run), and where
//! the short tail's latency went (on the progress line).
//!
//! # Policies
//!
//! - `fifo`: scx-rt, one global FIFO, `SLICE_INF` (no preemption).
//! - `slice5us`, `slice30us`, `slice100us`: scx-rt, the same FIFO with
//!   that slice (set both with `Builder::slice`, for a task's first run,
//!   and by the scheduler at every enqueue; the built-in `Fifo` re-slices
//!   to `SLICE_DFL` at enqueue, so it cannot serve here).
//! - `central`: scx-rt under `schedulers::Central` (scx_central: one CPU
//!   decides, others run), its slice and timer period set to 30 µs.
//! - `qmap`: scx-rt under `schedulers::Qmap` (scx_qmap's five weighted
//!   FIFOs, default batch, no boosting), 30 µs slice. Every request has
//!   the default weight, so they share one FIFO: the rows show what the
//!   policy's own queue and its shared-DSQ round trip cost beside `fifo`.
//! - `tokio`: a multi-thread tokio runtime, the request a spinning future.
//!
//! # Rows
//!
//! Per mix, policy and load: `MIX-POLICY-loadL-short` and `…-long`
//! (latency, ns), `…-throughput` (achieved, req/s); per mix and policy:
//! `MIX-POLICY-max-load-short-p99-50us`, the highest tested load up to
//! which every tested load kept short requests' p99 at or under 50 µs (in
//! % of capacity; 0 when even the lowest did not). scx-rt policies are
//! subject `scx-rt`, tokio subject `tokio`; cases differ by policy, so the
//! ratio column stays empty: compare rows of one load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use scx_rt::{EnqFlags, EnqueueCtx, KickFlags, PickIdleFlags, Scheduler, TaskRef, DSQ_GLOBAL};

use crate::ctx::Ctx;
use crate::report::{PlotData, Row, Subject};
use crate::stats::{latency_row, new_hist, throughput_row, Key};
use crate::workloads::bimodal_tail::{
    breakdown, host_rows, own_run_delay, run_delay, Breakdown, Tail,
};

pub const NAME: &str = "bimodal";

/// The short-request latency target of the summary row.
pub const TARGET_P99: Duration = Duration::from_micros(50);

/// Time off the CPU: a gap between two clock reads of a spinning request
/// longer than this was spent switched out; only this much of it counts
/// as service.
const OFF_CPU_GAP_NS: u64 = 1_000;

/// Default loads (fractions of capacity).
const LOADS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
const QUICK_LOADS: &[f64] = &[0.2, 0.5, 0.8];

/// Arrivals per load point last this long (unless `--iters` gives a count).
const RUN: Duration = Duration::from_secs(1);
const QUICK_RUN: Duration = Duration::from_millis(50);

/// Hang guard for the drain after the last arrival: this long plus ten
/// times the run.
const DRAIN_GUARD: Duration = Duration::from_secs(60);

/// The arrival schedule's seed (fixed: every policy gets the same arrivals).
const SEED: u64 = 0x5eed_0b1d_0da1_0001;

/// A request mix.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub name: &'static str,
    pub short_ns: u64,
    pub long_ns: u64,
    /// Fraction of long requests.
    pub long_frac: f64,
}

impl Mix {
    /// Mean service time, ns.
    pub fn mean_ns(&self) -> f64 {
        (1.0 - self.long_frac) * self.short_ns as f64 + self.long_frac * self.long_ns as f64
    }

    /// Requests per second `ncpus` CPUs serve at 100% load.
    pub fn capacity(&self, ncpus: usize) -> f64 {
        ncpus as f64 * 1e9 / self.mean_ns()
    }
}

/// The two mixes.
pub const MIXES: [Mix; 2] = [
    Mix {
        name: "skyloft",
        short_ns: 4_000,
        long_ns: 10_000_000,
        long_frac: 0.005,
    },
    Mix {
        name: "shinjuku",
        short_ns: 500,
        long_ns: 500_000,
        long_frac: 0.005,
    },
];

/// How requests are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// scx-rt global FIFO, `SLICE_INF`.
    Fifo,
    /// scx-rt global FIFO with this slice (ns).
    Slice(u64),
    /// scx-rt under `schedulers::Central`.
    Central,
    /// scx-rt under `schedulers::Qmap`.
    Qmap,
    /// tokio, no preemption.
    Tokio,
}

/// Central's slice and timer period here, and Qmap's slice.
const CENTRAL_SLICE: Duration = Duration::from_micros(30);

impl Policy {
    /// Every policy, in run order.
    pub const ALL: [Policy; 7] = [
        Policy::Fifo,
        Policy::Slice(5_000),
        Policy::Slice(30_000),
        Policy::Slice(100_000),
        Policy::Central,
        Policy::Qmap,
        Policy::Tokio,
    ];

    /// The name in case strings.
    pub fn name(self) -> String {
        match self {
            Policy::Fifo => "fifo".into(),
            Policy::Slice(ns) => format!("slice{}us", ns / 1000),
            Policy::Central => "central".into(),
            Policy::Qmap => "qmap".into(),
            Policy::Tokio => "tokio".into(),
        }
    }

    fn subject(self) -> Subject {
        match self {
            Policy::Tokio => Subject::Tokio,
            _ => Subject::ScxRt,
        }
    }
}

/// A global FIFO that gives every task the same slice at every enqueue
/// (`SLICE_INF`: never preempted), and wakes an idle CPU for it like the
/// built-in `Fifo`.
pub struct SliceFifo {
    slice: u64,
}

impl Scheduler for SliceFifo {
    fn name(&self) -> &str {
        "bench-slice-fifo"
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, self.slice, f);
        if p.nr_cpus_allowed(ctx.nr_cpu_ids()) > 1 {
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
        }
    }
}

/// Loads to sweep, ascending: `--load`, else the defaults.
pub fn loads(ctx: &Ctx) -> Vec<f64> {
    let mut l = match &ctx.opts.loads {
        Some(l) => l.clone(),
        None if ctx.opts.quick => QUICK_LOADS.to_vec(),
        None => LOADS.to_vec(),
    };
    l.sort_by(f64::total_cmp);
    l.dedup();
    l
}

/// Requests of one load point: `--iters`, else the arrivals of one run.
fn requests(ctx: &Ctx, rate: f64) -> usize {
    let run = if ctx.opts.quick { QUICK_RUN } else { RUN };
    let n = ctx
        .opts
        .iters
        .unwrap_or_else(|| (rate * run.as_secs_f64()).round() as u64);
    n.max(1) as usize
}

/// A load as a percentage label (`0.95` → `95`, `0.125` → `12.5`).
pub fn pct(load: f64) -> String {
    let p = (load * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// splitmix64: a small, well-mixed 64-bit generator.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Exponentially distributed with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next_f64()).ln()
    }
}

/// One scheduled request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Req {
    /// Arrival, ns after the run's start.
    pub at_ns: u64,
    pub long: bool,
}

/// `n` Poisson arrivals at `rate` per second with the mix's classes.
pub fn schedule(mix: &Mix, rate: f64, n: usize, seed: u64) -> Vec<Req> {
    let mut rng = SplitMix64::new(seed);
    let mean_gap = 1e9 / rate;
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            t += rng.exp(mean_gap);
            Req {
                at_ns: t as u64,
                long: rng.next_f64() < mix.long_frac,
            }
        })
        .collect()
}

/// Spins until the caller has had `service_ns` of CPU (see the module
/// doc), calling `preempt` on every turn. Returns the time it spent
/// switched out (the gaps longer than [`OFF_CPU_GAP_NS`], in full).
pub fn serve(service_ns: u64, preempt: impl Fn()) -> u64 {
    let mut done = 0;
    let mut off = 0;
    let mut last = Instant::now();
    while done < service_ns {
        preempt();
        let now = Instant::now();
        let gap = (now - last).as_nanos() as u64;
        if gap > OFF_CPU_GAP_NS {
            off += gap;
        }
        // A longer gap was spent switched out; it still counts as one
        // turn's worth, so a task switched out at every turn progresses.
        done += gap.min(OFF_CPU_GAP_NS);
        last = now;
    }
    off
}

/// Completions of one run, written by the requests.
pub struct Log {
    t0: Instant,
    lat: Vec<AtomicU64>,
    done: AtomicU64,
    end_ns: AtomicU64,
    /// Where each latency came from (`bimodal_tail`).
    tail: Tail,
}

impl Log {
    fn new(t0: Instant, n: usize) -> Self {
        Self {
            t0,
            lat: (0..n).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicU64::new(0),
            end_ns: AtomicU64::new(0),
            tail: Tail::new(n),
        }
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// Request `i` runs its first instruction.
    pub fn begin(&self, i: usize, r: Req) {
        self.tail.started(i, r.long, self.now_ns());
    }

    /// Request `i` is complete; `off_ns` of its run it was switched out.
    pub fn complete(&self, i: usize, r: Req, off_ns: u64) {
        let now = self.now_ns();
        self.tail.finished(i, r.long, off_ns);
        self.lat[i].store(now.saturating_sub(r.at_ns).max(1), Ordering::Relaxed);
        self.end_ns.fetch_max(now, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Release);
    }
}

/// Serves request `i` of `mix` (the body of every policy's request).
fn handle(mix: &Mix, i: usize, r: Req, log: &Log, preempt: impl Fn()) {
    log.begin(i, r);
    let off = serve(service(mix, r), preempt);
    log.complete(i, r, off);
}

/// What one load point measured.
pub struct Point {
    pub short: Histogram<u64>,
    pub long: Histogram<u64>,
    /// Achieved throughput, requests per second.
    pub achieved: f64,
    pub requests: usize,
    /// How late the generator handed each request over (ns after its
    /// scheduled arrival): the part of a latency that is the generator's
    /// own scheduling, not the runtime's.
    pub submit_late: Histogram<u64>,
    /// Where the short tail (at or above the short p99) came from.
    pub tail: Breakdown,
    /// Run-delay of the worker threads over the load point (ns: runnable,
    /// not running), and of the generator.
    pub worker_delay: u64,
    pub gen_delay: u64,
    /// The load point's length (first arrival to last completion, ns).
    pub span: u64,
}

/// Sleeps or spins until `deadline`. `share` (the generator shares its CPU
/// with the workers) yields while spinning, so the workers run; a
/// generator with a CPU of its own spins without `sched_yield`, which on
/// a CPU that other processes also want hands it to them for a whole OS
/// time slice (milliseconds of lateness for every request behind it).
fn wait_until(deadline: Instant, share: bool) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(200) {
            // Timer slack makes sleeps ~50 µs late: wake early, spin the rest.
            std::thread::sleep(left - Duration::from_micros(100));
        } else if share {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A usable CPU outside the chosen ones, for the generator.
fn spare_cpu(ctx: &Ctx) -> Option<usize> {
    crate::cpus::usable_cpus()
        .into_iter()
        .find(|c| !ctx.cpus.contains(c))
}

/// Runs one load point: a generator thread calls `submit(i, req, log)` at
/// each arrival; waits for every completion. `workers` is the name prefix
/// of the executor's worker threads (for their run-delay).
fn run_point<S>(
    spare: Option<usize>,
    workers: &str,
    reqs: &[Req],
    submit: S,
) -> Result<Point, String>
where
    S: Fn(usize, Req, &Arc<Log>) + Send + Sync,
{
    let n = reqs.len();
    let t0 = Instant::now() + Duration::from_millis(1);
    let log = Arc::new(Log::new(t0, n));
    let delay0 = run_delay(workers).0;
    let (submit_late, gen_delay) = std::thread::scope(|s| {
        let gen = s.spawn(|| {
            if let Some(cpu) = spare {
                // Best effort: an unpinned generator still runs.
                let _ = scx_rt_sys::affinity::pin_current_thread(cpu);
            }
            let d0 = own_run_delay();
            let mut late = new_hist();
            for (i, r) in reqs.iter().enumerate() {
                let at = t0 + Duration::from_nanos(r.at_ns);
                wait_until(at, spare.is_none());
                let now = log.now_ns();
                late.saturating_record(now.saturating_sub(r.at_ns));
                log.tail.submitted(i, now);
                submit(i, *r, &log);
            }
            (late, own_run_delay().saturating_sub(d0))
        });
        gen.join().map_err(|_| "generator panicked".to_string())
    })?;
    let last_at = reqs.last().map_or(0, |r| r.at_ns);
    let guard =
        t0 + Duration::from_nanos(last_at) + DRAIN_GUARD + 10 * Duration::from_nanos(last_at);
    while log.done.load(Ordering::Acquire) < n as u64 {
        if Instant::now() > guard {
            return Err(format!(
                "{} of {n} requests still unfinished {} s after the last arrival",
                n as u64 - log.done.load(Ordering::Acquire),
                (guard - t0).as_secs() - last_at / 1_000_000_000
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let worker_delay = run_delay(workers).0.saturating_sub(delay0);
    let lat: Vec<u64> = log.lat.iter().map(|l| l.load(Ordering::Relaxed)).collect();
    let (mut short, mut long) = (new_hist(), new_hist());
    for (r, &lat) in reqs.iter().zip(&lat) {
        let h = if r.long { &mut long } else { &mut short };
        h.saturating_record(lat);
    }
    let cutoff = short.value_at_quantile(0.99);
    let tail = breakdown(reqs, &lat, &log.tail, cutoff);
    let first = reqs.first().map_or(0, |r| r.at_ns);
    let span = log
        .end_ns
        .load(Ordering::Relaxed)
        .saturating_sub(first)
        .max(1);
    Ok(Point {
        short,
        long,
        achieved: n as f64 * 1e9 / span as f64,
        requests: n,
        submit_late,
        tail,
        worker_delay,
        gen_delay,
        span,
    })
}

/// The service time of a request of `mix`.
fn service(mix: &Mix, r: Req) -> u64 {
    if r.long {
        mix.long_ns
    } else {
        mix.short_ns
    }
}

/// Sweeps every mix and load under one policy, calling `point` per load.
fn sweep<P>(ctx: &Ctx, policy: Policy, mut point: P) -> Result<Vec<Row>, String>
where
    P: FnMut(&Mix, &[Req]) -> Result<Point, String>,
{
    let mut rows = Vec::new();
    let ncpus = ctx.cpus.len();
    for mix in &MIXES {
        let mut verdicts = Vec::new();
        for load in loads(ctx) {
            let rate = load * mix.capacity(ncpus);
            let reqs = schedule(mix, rate, requests(ctx, rate), SEED);
            let p = point(mix, &reqs)?;
            let short_p99 = p.short.value_at_quantile(0.99);
            let ok = p.short.is_empty() || short_p99 <= TARGET_P99.as_nanos() as u64;
            let p99 = |h: &Histogram<u64>| {
                if h.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.1} us", h.value_at_quantile(0.99) as f64 / 1e3)
                }
            };
            eprintln!(
                "{NAME}: {} {} load {}%: short p99 {}, long p99 {}, {:.0}% of offered; \
                 the generator submitted p99 {} late; {}",
                mix.name,
                policy.name(),
                pct(load),
                p99(&p.short),
                p99(&p.long),
                100.0 * p.achieved / rate,
                p99(&p.submit_late),
                p.tail.describe(p.worker_delay, p.gen_delay, p.span),
            );
            rows.extend(point_rows(mix, policy, load, &p));
            verdicts.push((load, ok));
        }
        rows.push(summary_row(
            mix,
            policy,
            knee(&verdicts),
            verdicts.len() as u64,
        ));
    }
    Ok(rows)
}

/// The highest load up to which every load met the target: the last
/// load before the first miss, of `(load, met)` in ascending load order;
/// 0 when the first load missed.
pub fn knee(verdicts: &[(f64, bool)]) -> f64 {
    verdicts
        .iter()
        .take_while(|(_, ok)| *ok)
        .last()
        .map_or(0.0, |(load, _)| *load)
}

/// The rows of one load point.
pub fn point_rows(mix: &Mix, policy: Policy, load: f64, p: &Point) -> Vec<Row> {
    let subject = policy.subject();
    let base = format!("{}-{}-load{}", mix.name, policy.name(), pct(load));
    let mut rows = Vec::new();
    for (class, hist) in [("short", &p.short), ("long", &p.long)] {
        if hist.is_empty() {
            continue;
        }
        let case = format!("{base}-{class}");
        let mut row = latency_row(
            Key {
                workload: NAME,
                case: &case,
                subject,
            },
            hist,
        );
        row.plot = PlotData::Sweep {
            chart: format!("{}-{class}", mix.name),
            series: policy.name(),
            x: load * 100.0,
            x_label: "offered load (% of capacity)".into(),
            target: (class == "short").then(|| TARGET_P99.as_nanos() as f64),
            log_x: false,
        };
        rows.push(row);
    }
    rows.extend(host_rows(
        &base,
        subject,
        &p.submit_late,
        p.worker_delay,
        p.span,
        p.requests,
    ));
    let case = format!("{base}-throughput");
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    rows.push(throughput_row(
        key,
        "req/s",
        p.requests as u64,
        &[p.achieved],
    ));
    rows
}

/// The summary row: the knee load in % of capacity.
pub fn summary_row(mix: &Mix, policy: Policy, knee: f64, tested: u64) -> Row {
    let case = format!("{}-{}-max-load-short-p99-50us", mix.name, policy.name());
    let key = Key {
        workload: NAME,
        case: &case,
        subject: policy.subject(),
    };
    // n: the load points tested.
    throughput_row(key, "% load", tested, &[knee * 100.0])
}

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let spare = spare_cpu(ctx);
    if spare.is_none() {
        eprintln!(
            "{NAME}: no usable CPU outside --cpus for the load generator; it shares the \
             workers' CPUs (latencies are pessimistic)"
        );
    }
    for policy in Policy::ALL {
        if policy == Policy::Tokio {
            ctx.peer(NAME, Subject::Tokio, rows, || tokio_sweep(ctx, spare));
        } else {
            ctx.scx(NAME, rows, || scx_sweep(ctx, policy, spare))?;
        }
    }
    Ok(())
}

fn scx_sweep(ctx: &Ctx, policy: Policy, spare: Option<usize>) -> Result<Vec<Row>, String> {
    let b = ctx.scx_builder(ctx.cpus.clone());
    let b = match policy {
        Policy::Fifo => b.scheduler(SliceFifo {
            slice: scx_rt::SLICE_INF,
        }),
        Policy::Slice(ns) => b
            .slice(Duration::from_nanos(ns))
            .scheduler(SliceFifo { slice: ns }),
        Policy::Central => b.scheduler(
            scx_rt::schedulers::Central::new()
                .slice(CENTRAL_SLICE)
                .timer_interval(CENTRAL_SLICE),
        ),
        Policy::Qmap => b.scheduler(scx_rt::schedulers::Qmap::new().slice(CENTRAL_SLICE)),
        Policy::Tokio => return Err("tokio is not an scx-rt policy".into()),
    };
    let rt = b.build().map_err(|e| format!("build runtime: {e}"))?;
    let res = sweep(ctx, policy, |mix, reqs| {
        let mix = *mix;
        run_point(spare, "scx-rt-cpu", reqs, |i, r, log| {
            let log = Arc::clone(log);
            drop(rt.spawn(move || handle(&mix, i, r, &log, scx_rt::preempt_point)));
        })
    });
    if let Some(info) = rt.exit_info() {
        eprintln!("{NAME}: {} scheduler exited: {info:?}", policy.name());
    }
    rt.shutdown();
    res
}

fn tokio_sweep(ctx: &Ctx, spare: Option<usize>) -> Result<Vec<Row>, String> {
    let rt = crate::peers::tokio::runtime(&ctx.cpus)?;
    sweep(ctx, Policy::Tokio, |mix, reqs| {
        let mix = *mix;
        // tokio's workers are `tokio-rt-worker` (`tokio-runtime-worker`
        // in older releases, cut to 15 bytes by the kernel).
        run_point(spare, "tokio-r", reqs, |i, r, log| {
            let log = Arc::clone(log);
            drop(rt.spawn(async move { handle(&mix, i, r, &log, || {}) }));
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // The reference generator's first outputs for seed 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let u = r.next_f64();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn schedule_is_poisson_at_the_rate_with_the_mix() {
        let mix = MIXES[0];
        let n = 200_000;
        let rate = 50_000.0;
        let reqs = schedule(&mix, rate, n, SEED);
        assert_eq!(reqs.len(), n);
        assert!(reqs.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        let mean_gap = reqs.last().unwrap().at_ns as f64 / n as f64;
        assert!(
            (mean_gap / 20_000.0 - 1.0).abs() < 0.02,
            "mean gap {mean_gap}"
        );
        // Exponential gaps: the standard deviation equals the mean.
        let gaps: Vec<f64> = reqs
            .windows(2)
            .map(|w| (w[1].at_ns - w[0].at_ns) as f64)
            .collect();
        let var = gaps.iter().map(|g| (g - mean_gap).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean_gap - 1.0).abs() < 0.03,
            "sd {}",
            var.sqrt()
        );
        let long = reqs.iter().filter(|r| r.long).count() as f64 / n as f64;
        assert!((long / 0.005 - 1.0).abs() < 0.1, "long fraction {long}");
        // Same seed, same schedule.
        assert_eq!(
            schedule(&mix, rate, 100, SEED),
            schedule(&mix, rate, 100, SEED)
        );
    }

    #[test]
    fn capacity_and_labels() {
        // Skyloft: 0.995 * 4 us + 0.005 * 10 ms = 53.98 us.
        assert!((MIXES[0].mean_ns() - 53_980.0).abs() < 1e-6);
        assert!((MIXES[1].mean_ns() - 2_997.5).abs() < 1e-6);
        assert!((MIXES[0].capacity(2) - 2e9 / 53_980.0).abs() < 1e-6);
        assert_eq!(pct(0.95), "95");
        assert_eq!(pct(0.125), "12.5");
        assert_eq!(Policy::Slice(5_000).name(), "slice5us");
        assert_eq!(Policy::Qmap.name(), "qmap");
    }

    #[test]
    fn knee_is_the_last_load_before_the_first_miss() {
        assert_eq!(knee(&[(0.1, true), (0.5, true), (0.9, false)]), 0.5);
        assert_eq!(knee(&[(0.1, true), (0.5, false), (0.9, true)]), 0.1);
        assert_eq!(knee(&[(0.1, false), (0.5, true)]), 0.0);
        assert_eq!(knee(&[(0.1, true), (0.95, true)]), 0.95);
        assert_eq!(knee(&[]), 0.0);
    }

    #[test]
    fn loads_ascend_without_duplicates() {
        let ctx = Ctx {
            cpus: vec![0],
            opts: crate::args::Options {
                loads: Some(vec![0.9, 0.1, 0.5, 0.1]),
                ..Default::default()
            },
        };
        assert_eq!(loads(&ctx), vec![0.1, 0.5, 0.9]);
    }

    #[test]
    fn serve_counts_only_time_on_the_cpu() {
        let t = Instant::now();
        // Every other turn sleeps 2 ms "off the CPU": 1 us of it counts.
        let turns = std::sync::atomic::AtomicU64::new(0);
        serve(50_000, || {
            if turns.fetch_add(1, Ordering::Relaxed) & 1 == 1 {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        // Every turn adds at most 1 us, so at least 50 turns, every
        // other one with a 2 ms sleep.
        assert!(
            t.elapsed() >= Duration::from_millis(2 * 24),
            "{:?}",
            t.elapsed()
        );
        assert!(turns.load(Ordering::Relaxed) >= 50);
    }

    /// On one CPU, a short request spawned while a long one spins finishes
    /// first only if the long one is preempted at a `preempt_point`.
    fn short_overtakes_long(slice: u64) -> bool {
        let rt = scx_rt::Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .slice(Duration::from_nanos(slice))
            .scheduler(SliceFifo { slice })
            .build()
            .unwrap();
        let order = Arc::new(AtomicU64::new(0));
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, s) = (Arc::clone(&order), Arc::clone(&started));
        let long = rt.spawn(move || {
            s.store(true, Ordering::Release);
            serve(30_000_000, scx_rt::preempt_point);
            o.fetch_add(1, Ordering::AcqRel)
        });
        while !started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let o = Arc::clone(&order);
        let short = rt.spawn(move || {
            serve(1_000, scx_rt::preempt_point);
            o.fetch_add(1, Ordering::AcqRel)
        });
        let short_rank = short.join().unwrap();
        let long_rank = long.join().unwrap();
        rt.shutdown();
        assert_ne!(short_rank, long_rank);
        short_rank < long_rank
    }

    #[test]
    fn slices_preempt_and_slice_inf_does_not() {
        assert!(short_overtakes_long(100_000));
        assert!(!short_overtakes_long(scx_rt::SLICE_INF));
    }
}
