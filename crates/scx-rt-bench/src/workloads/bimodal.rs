//! `bimodal`: open-loop Poisson arrivals of requests that are served by
//! spinning, under several scheduling policies, swept over offered load.
//!
//! The load, a run and its timing are in `bimodal_gen`.
//!
//! # Policies
//!
//! - `fifo`: scx-rt, one global FIFO, `SLICE_INF` (no preemption).
//! - `slice5us`, `slice30us`, `slice100us`: scx-rt, the same FIFO with
//!   that slice (set both with `Builder::slice`, for a task's first run,
//!   and by the scheduler at every enqueue; the built-in `Fifo` re-slices
//!   to `SLICE_DFL` at enqueue, so it cannot serve here).
//! - `fresh30us`: scx-rt under `schedulers::FreshFirst` with 30 µs
//!   slices: the same slices, but requests that just arrived are served
//!   before those whose slice ran out, so a short request waits for at
//!   most the rest of one slice, not one slice per long request in
//!   progress (the FIFO's round robin; the module doc of `FreshFirst` has
//!   the trace that showed it).
//! - `central`: scx-rt under `schedulers::Central` (scx_central: one CPU
//!   decides, others run), its slice and timer period set to 30 µs.
//! - `qmap`: scx-rt under `schedulers::Qmap` (scx_qmap's five weighted
//!   FIFOs, default batch, no boosting), 30 µs slice. Every request has
//!   the default weight, so they share one FIFO: the rows show what the
//!   policy's own queue and its shared-DSQ round trip cost beside `fifo`.
//! - `tokio`: a multi-thread tokio runtime, the request a spinning future.
//! - `go`: the Go program (`peers::go`), a goroutine per request started
//!   by a generator goroutine locked to its own thread on the generator's
//!   CPU; the same schedule (splitmix64, same seed) and the same spinning
//!   request, preempted only by Go's own 10 ms signal. It reports each
//!   request's latency and lateness and the run-delay of its threads, so
//!   its rows are the others' (no tail breakdown: it runs in its own
//!   process). Left out without `go`.
//!
//! `--case` picks policies and mixes by name (`--case central,tokio,shinjuku`:
//! those two policies, the Shinjuku mix only); a kind it names none of
//! runs in full.
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

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use scx_rt::{EnqFlags, EnqueueCtx, KickFlags, PickIdleFlags, Scheduler, TaskRef, DSQ_GLOBAL};

use crate::ctx::Ctx;
use crate::peers::go;
use crate::report::{PlotData, Row, Subject};
use crate::stats::{latency_row, new_hist, throughput_row, Key};
use crate::workloads::bimodal_gen::{
    handle, run_point, schedule, spare_cpu, Mix, Point, Req, MIXES, SEED,
};
use crate::workloads::bimodal_tail::{host_rows, Breakdown};

pub const NAME: &str = "bimodal";

/// The short-request latency target of the summary row.
pub const TARGET_P99: Duration = Duration::from_micros(50);

/// Default loads (fractions of capacity).
const LOADS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
const QUICK_LOADS: &[f64] = &[0.2, 0.5, 0.8];

/// Arrivals per load point last this long (unless `--iters` gives a count).
const RUN: Duration = Duration::from_secs(1);
const QUICK_RUN: Duration = Duration::from_millis(50);

/// How requests are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// scx-rt global FIFO, `SLICE_INF`.
    Fifo,
    /// scx-rt global FIFO with this slice (ns).
    Slice(u64),
    /// scx-rt under `schedulers::FreshFirst` with this slice (ns).
    Fresh(u64),
    /// scx-rt under `schedulers::Central`.
    Central,
    /// scx-rt under `schedulers::Qmap`.
    Qmap,
    /// tokio, no preemption.
    Tokio,
    /// Go, its runtime's own preemption (module docs).
    Go,
}

/// Central's slice and timer period here, and Qmap's slice.
const CENTRAL_SLICE: Duration = Duration::from_micros(30);

impl Policy {
    /// Every policy, in run order.
    pub const ALL: [Policy; 9] = [
        Policy::Fifo,
        Policy::Slice(5_000),
        Policy::Slice(30_000),
        Policy::Slice(100_000),
        Policy::Fresh(30_000),
        Policy::Central,
        Policy::Qmap,
        Policy::Tokio,
        Policy::Go,
    ];

    /// The name in case strings.
    pub fn name(self) -> String {
        match self {
            Policy::Fifo => "fifo".into(),
            Policy::Slice(ns) => format!("slice{}us", ns / 1000),
            Policy::Fresh(ns) => format!("fresh{}us", ns / 1000),
            Policy::Central => "central".into(),
            Policy::Qmap => "qmap".into(),
            Policy::Tokio => "tokio".into(),
            Policy::Go => "go".into(),
        }
    }

    fn subject(self) -> Subject {
        match self {
            Policy::Tokio => Subject::Tokio,
            Policy::Go => Subject::Go,
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

/// Whether `--case` names anything of `known` (then only those run).
fn named(ctx: &Ctx, known: impl IntoIterator<Item = String>) -> Option<Vec<String>> {
    let cases = ctx.opts.cases.as_ref()?;
    let known: Vec<String> = known.into_iter().collect();
    let hit: Vec<String> = cases
        .iter()
        .filter(|c| known.contains(c))
        .cloned()
        .collect();
    (!hit.is_empty()).then_some(hit)
}

/// The policies to run: those `--case` names, else all.
pub fn policies(ctx: &Ctx) -> Vec<Policy> {
    let names = named(ctx, Policy::ALL.iter().map(|p| p.name()));
    Policy::ALL
        .into_iter()
        .filter(|p| names.as_ref().is_none_or(|n| n.contains(&p.name())))
        .collect()
}

/// The mixes to run: those `--case` names, else both.
pub fn mixes(ctx: &Ctx) -> Vec<Mix> {
    let names = named(ctx, MIXES.iter().map(|m| m.name.to_string()));
    MIXES
        .into_iter()
        .filter(|m| names.as_ref().is_none_or(|n| n.iter().any(|x| x == m.name)))
        .collect()
}

/// Usage check: every `--case` names a policy or a mix.
pub fn check_options(ctx: &Ctx) -> Result<(), String> {
    let known: Vec<String> = Policy::ALL
        .iter()
        .map(|p| p.name())
        .chain(MIXES.iter().map(|m| m.name.to_string()))
        .collect();
    for c in ctx.opts.cases.iter().flatten() {
        if !known.contains(c) {
            return Err(format!(
                "{NAME}: no policy or mix `{c}` (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
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

/// Sweeps every mix and load under one policy, calling `point` per load.
fn sweep<P>(ctx: &Ctx, policy: Policy, mut point: P) -> Result<Vec<Row>, String>
where
    P: FnMut(&Mix, f64, &[Req]) -> Result<Point, String>,
{
    let mut rows = Vec::new();
    let ncpus = ctx.cpus.len();
    for mix in &mixes(ctx) {
        let mut verdicts = Vec::new();
        for load in loads(ctx) {
            let rate = load * mix.capacity(ncpus);
            let reqs = schedule(mix, rate, requests(ctx, rate), SEED);
            let p = point(mix, rate, &reqs)?;
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
    let (own, spare) = generator_cpu(ctx);
    let ctx = own.as_ref().unwrap_or(ctx);
    if spare.is_none() {
        eprintln!(
            "{NAME}: no usable CPU outside --cpus for the load generator; it shares the \
             workers' CPU (latencies are pessimistic)"
        );
    }
    for policy in policies(ctx) {
        if policy == Policy::Tokio {
            ctx.peer(NAME, Subject::Tokio, rows, || tokio_sweep(ctx, spare));
        } else if policy == Policy::Go {
            if go::ready(ctx) {
                ctx.peer(NAME, Subject::Go, rows, || go_sweep(ctx, spare));
            }
        } else {
            ctx.scx(NAME, rows, || scx_sweep(ctx, policy, spare))?;
        }
    }
    Ok(())
}

/// The generator's CPU: a usable CPU outside `--cpus` if there is one;
/// else, when `--cpus` names two or more, the last of them, and the
/// workers get the others (the returned context). A generator sharing a
/// worker's CPU hands requests over late whenever a request spins there
/// (on the 2-vCPU machine it waited for its CPU most of the run), which
/// makes every policy's tail the generator's; only a single `--cpus` CPU
/// leaves it shared.
fn generator_cpu(ctx: &Ctx) -> (Option<Ctx>, Option<usize>) {
    if let Some(c) = spare_cpu(ctx) {
        return (None, Some(c));
    }
    match ctx.cpus.split_last() {
        Some((&gen, workers)) if !workers.is_empty() => {
            eprintln!(
                "{NAME}: the load generator takes CPU {gen} of --cpus; the workers run on {workers:?}"
            );
            let own = Ctx {
                cpus: workers.to_vec(),
                opts: ctx.opts.clone(),
            };
            (Some(own), Some(gen))
        }
        _ => (None, None),
    }
}

fn scx_sweep(ctx: &Ctx, policy: Policy, spare: Option<usize>) -> Result<Vec<Row>, String> {
    let b = ctx.scx_builder(ctx.cpus.clone());
    let mut central_stats = None;
    let b = match policy {
        Policy::Fifo => b.scheduler(SliceFifo {
            slice: scx_rt::SLICE_INF,
        }),
        Policy::Slice(ns) => b
            .slice(Duration::from_nanos(ns))
            .scheduler(SliceFifo { slice: ns }),
        Policy::Fresh(ns) => b
            .slice(Duration::from_nanos(ns))
            .scheduler(scx_rt::schedulers::FreshFirst::new()),
        Policy::Central => {
            let c = scx_rt::schedulers::Central::new()
                .slice(CENTRAL_SLICE)
                .timer_interval(CENTRAL_SLICE);
            central_stats = Some(c.stats());
            b.scheduler(c)
        }
        Policy::Qmap => b.scheduler(scx_rt::schedulers::Qmap::new().slice(CENTRAL_SLICE)),
        Policy::Tokio | Policy::Go => {
            return Err(format!("{} is not an scx-rt policy", policy.name()))
        }
    };
    let rt = b.build().map_err(|e| format!("build runtime: {e}"))?;
    let res = sweep(ctx, policy, |mix, _, reqs| {
        let mix = *mix;
        let before = central_stats.as_deref().map(CentralCounts::read);
        let p = run_point(spare, "scx-rt-cpu", reqs, |i, r, log| {
            let log = Arc::clone(log);
            drop(rt.spawn(move || handle(&mix, i, r, &log, scx_rt::preempt_point)));
        })?;
        if let (Some(s), Some(b)) = (central_stats.as_deref(), before) {
            eprintln!("{NAME}: {}", CentralCounts::read(s).since(&b).describe());
        }
        Ok(p)
    });
    if let Some(info) = rt.exit_info() {
        eprintln!("{NAME}: {} scheduler exited: {info:?}", policy.name());
    }
    rt.shutdown();
    res
}

/// Central's counters (`schedulers::central::CentralStats`) over one load point,
/// printed with it: how the central CPU spent its passes.
#[derive(Clone, Copy)]
struct CentralCounts([u64; 12]);

impl CentralCounts {
    const NAMES: [&'static str; 12] = [
        "enqueued",
        "dispatched",
        "topped up",
        "bounced",
        "overflows",
        "passes",
        "prev kept",
        "retries",
        "central kicks",
        "coalesced",
        "unneeded",
        "timer kicks",
    ];

    fn read(s: &scx_rt::schedulers::central::CentralStats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self([
            s.enqueued.load(Relaxed),
            s.dispatched.load(Relaxed),
            s.topped_up.load(Relaxed),
            s.bounced.load(Relaxed),
            s.overflows.load(Relaxed),
            s.passes.load(Relaxed),
            s.prev_kept.load(Relaxed),
            s.retries.load(Relaxed),
            s.central_kicks.load(Relaxed),
            s.kicks_coalesced.load(Relaxed),
            s.kicks_unneeded.load(Relaxed),
            s.timer_kicks.load(Relaxed),
        ])
    }

    fn since(&self, b: &Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].saturating_sub(b.0[i])))
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = Self::NAMES
            .iter()
            .zip(self.0)
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        format!("central: {}", parts.join(", "))
    }
}

fn tokio_sweep(ctx: &Ctx, spare: Option<usize>) -> Result<Vec<Row>, String> {
    let rt = crate::peers::tokio::runtime(&ctx.cpus)?;
    sweep(ctx, Policy::Tokio, |mix, _, reqs| {
        let mix = *mix;
        // tokio's workers are `tokio-rt-worker` (`tokio-runtime-worker`
        // in older releases, cut to 15 bytes by the kernel).
        run_point(spare, "tokio-r", reqs, |i, r, log| {
            let log = Arc::clone(log);
            drop(rt.spawn(async move { handle(&mix, i, r, &log, || {}) }));
        })
    })
}

/// The Go program's sweep: one run of it per load point, on the same
/// schedule (its latencies classed by the bench's copy of it).
fn go_sweep(ctx: &Ctx, spare: Option<usize>) -> Result<Vec<Row>, String> {
    sweep(ctx, Policy::Go, |mix, rate, reqs| {
        let (inv, procs) = go::bimodal_invocation(mix, rate, reqs.len(), SEED, &ctx.cpus, spare);
        let g = go::bimodal_point(inv, procs)?;
        if g.lat.len() != reqs.len() {
            return Err(format!(
                "the Go program served {} requests of {}",
                g.lat.len(),
                reqs.len()
            ));
        }
        let (mut short, mut long, mut late) = (new_hist(), new_hist(), new_hist());
        for (r, (&l, &lt)) in reqs.iter().zip(g.lat.iter().zip(&g.late)) {
            let h = if r.long { &mut long } else { &mut short };
            h.saturating_record(l);
            late.saturating_record(lt);
        }
        let span = g.span.max(1);
        Ok(Point {
            short,
            long,
            achieved: reqs.len() as f64 * 1e9 / span as f64,
            requests: reqs.len(),
            submit_late: late,
            tail: Breakdown::default(),
            worker_delay: g.worker_delay,
            gen_delay: g.gen_delay,
            span,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::bimodal_gen::serve;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn labels() {
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
    fn case_picks_policies_and_mixes() {
        let ctx = |cases: Option<&[&str]>| Ctx {
            cpus: vec![0],
            opts: crate::args::Options {
                cases: cases.map(|c| c.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        };
        let c = ctx(Some(&["central", "tokio", "shinjuku"]));
        assert_eq!(policies(&c), vec![Policy::Central, Policy::Tokio]);
        assert_eq!(mixes(&c).len(), 1);
        assert_eq!(mixes(&c)[0].name, "shinjuku");
        assert!(check_options(&c).is_ok());
        let c = ctx(Some(&["fifo"]));
        assert_eq!(policies(&c), vec![Policy::Fifo]);
        assert_eq!(mixes(&c).len(), 2);
        let c = ctx(None);
        assert_eq!(policies(&c).len(), Policy::ALL.len());
        assert!(check_options(&ctx(Some(&["centrl"]))).is_err());
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
