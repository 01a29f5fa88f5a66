//! The load of `bimodal`: the request mixes, the arrival schedule, the
//! generator thread that hands each request over at its arrival time, and
//! the request's service by spinning. `bimodal` (the policies, the sweep
//! over loads and the rows) runs one load point through [`run_point`].
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
//! A generator OS thread (pinned to a CPU of its own: a usable CPU outside
//! `--cpus` when there is one, else the last CPU of `--cpus`, the workers
//! taking the others; it shares the one worker CPU only when `--cpus`
//! names one CPU) hands each request
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::ctx::Ctx;
use crate::stats::new_hist;
use crate::workloads::bimodal_tail::{breakdown, own_run_delay, run_delay, Breakdown, Tail};

/// Time off the CPU: a gap between two clock reads of a spinning request
/// longer than this was spent switched out; only this much of it counts
/// as service.
const OFF_CPU_GAP_NS: u64 = 1_000;

/// Hang guard for the drain after the last arrival: this long plus ten
/// times the run.
pub const DRAIN_GUARD: Duration = Duration::from_secs(60);

/// The arrival schedule's seed (fixed: every policy gets the same arrivals).
pub const SEED: u64 = 0x5eed_0b1d_0da1_0001;

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
pub fn handle(mix: &Mix, i: usize, r: Req, log: &Log, preempt: impl Fn()) {
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

/// Sleeps or spins until `deadline`. A generator with a CPU of its own
/// spins the whole gap, as a kernel-bypass load generator does: a sleep
/// lets the CPU idle, and on a virtual machine an idle vCPU woke for the
/// next arrival 0.3-1.1 ms late at p99 (24-126 µs spinning, same run
/// otherwise); it never calls `sched_yield` either, which on a CPU that
/// other processes also want hands it to them for a whole OS time slice.
/// `share` (the generator shares the worker's CPU) sleeps through long
/// gaps, waking early to spin the last part, and yields while spinning,
/// so the worker runs.
fn wait_until(deadline: Instant, share: bool) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if share && left > Duration::from_micros(200) {
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
pub fn spare_cpu(ctx: &Ctx) -> Option<usize> {
    crate::cpus::usable_cpus()
        .into_iter()
        .find(|c| !ctx.cpus.contains(c))
}

/// Runs one load point: a generator thread calls `submit(i, req, log)` at
/// each arrival; waits for every completion. `workers` is the name prefix
/// of the executor's worker threads (for their run-delay).
pub fn run_point<S>(
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
pub fn service(mix: &Mix, r: Req) -> u64 {
    if r.long {
        mix.long_ns
    } else {
        mix.short_ns
    }
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

    #[test]
    fn capacity_of_the_mixes() {
        // Skyloft: 0.995 * 4 us + 0.005 * 10 ms = 53.98 us.
        assert!((MIXES[0].mean_ns() - 53_980.0).abs() < 1e-6);
        assert!((MIXES[1].mean_ns() - 2_997.5).abs() < 1e-6);
        assert!((MIXES[0].capacity(2) - 2e9 / 53_980.0).abs() < 1e-6);
    }
}
