//! `preempt`: lateness of slice expiry, p50/p99/p99.9 in ns, for slices of
//! 10 µs, 100 µs and 1 ms.
//!
//! A runtime on one CPU runs two tasks that both spin, calling
//! `preempt_point()` on every pass (a pass is one clock read, ~25 ns), under
//! a policy ([`Sliced`]) that gives every task the case's slice. Each is
//! the task waiting on the CPU while the other runs. A task notes the clock
//! at its first pass after it was switched in; its slice deadline is that
//! time plus the slice. The sample, taken by the next task at its own first
//! pass, is *the time from the deadline to the moment the waiting task
//! runs*: the slice timer's wake-up, the wait for the next preemption
//! point, the switch out, the scheduling step and the switch in. Both ends
//! are read by the tasks on the same core, so the clock is one clock; each
//! end is late by about one switch-in, which cancels.
//!
//! A sample below zero (the waiting task got the CPU before the slice, as
//! the spinner saw it, ran out) is counted and reported on stderr rather
//! than recorded. The runtime charges slices in wall time from its
//! scheduling step; when the OS deschedules the worker thread between that
//! step and the spinner's first clock read (a busy machine, a vCPU that
//! lost its core), the spinner sees a turn shorter than the slice.
//!
//! Each slice is measured with every [`MODES`] entry: the default
//! `SliceTimer::Auto` (case `slice-…`: polled up to 1 ms, the signal
//! above), the per-worker timer signal (`…-signal`), the timer thread
//! (`…-thread`), the timer thread at real-time priority (`…-rt-thread`,
//! the same as `…-thread` where the process may not raise it) and the
//! polled deadline (`…-poll`: the spinner's `preempt_point()` reads the
//! clock).
//!
//! No peer: tokio and may have no preemption (a spinning task keeps its
//! worker until it yields), and an OS thread's time slice is the kernel's
//! business, not a per-task slice a program sets. The `hog` workload shows
//! what the slices buy a latency-sensitive pair.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scx_rt::{
    EnqFlags, EnqueueCtx, Runtime, Scheduler, SelectCpuCtx, SliceTimer, TaskRef, WakeFlags,
    DSQ_LOCAL,
};

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, Key};

pub const NAME: &str = "preempt";

/// The slices measured, with their case names.
pub const SLICES: [(&str, Duration); 3] = [
    ("slice-10us", Duration::from_micros(10)),
    ("slice-100us", Duration::from_micros(100)),
    ("slice-1ms", Duration::from_millis(1)),
];

/// Expiries not recorded at the start of each run.
const WARMUP: u64 = 10;

pub struct Sizes {
    /// Slice expiries per slice (fewer for long slices, see `budget`).
    pub iters: u64,
    /// At most this much run time per slice: a slice of `s` gets at most
    /// `budget / s` expiries (and at least 50).
    pub budget: Duration,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(20_000, 1_000),
        budget: if ctx.opts.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        },
    }
}

/// Expiries measured for `slice`.
pub fn expiries(s: &Sizes, slice: Duration) -> u64 {
    let cap = (s.budget.as_nanos() / slice.as_nanos().max(1)) as u64;
    s.iters.min(cap.max(50))
}

/// The slice-timer modes measured, with their case-name suffixes: the
/// default first (no suffix), then the alternatives it is compared with.
pub const MODES: [(&str, SliceTimer); 5] = [
    ("", SliceTimer::Auto),
    ("-signal", SliceTimer::Signal),
    ("-thread", SliceTimer::Thread),
    ("-rt-thread", SliceTimer::RealtimeThread),
    ("-poll", SliceTimer::Poll),
];

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let sizes = sizes(ctx);
    let cpu = ctx.cpus[0];
    for (suffix, mode) in MODES {
        for (slice_case, slice) in SLICES {
            let case = format!("{slice_case}{suffix}");
            let case = case.as_str();
            let n = expiries(&sizes, slice);
            ctx.scx(&format!("{NAME} {case}"), rows, || {
                let (hist, early) = scx(cpu, slice, n, mode)?;
                if early > 0 {
                    eprintln!(
                        "{NAME}: {case}: {early} of {n} turns looked shorter than the slice \
                     to the spinner (likely the OS descheduled the worker around the switch)"
                    );
                }
                let key = Key {
                    workload: NAME,
                    case,
                    subject: Subject::ScxRt,
                };
                Ok(vec![latency_row(key, &hist)])
            })?;
        }
    }
    Ok(())
}

/// A policy that runs every task from its CPU's local DSQ, in FIFO order,
/// with one fixed slice (`SLICE_INF` for none). Wake-ups are not placed by
/// `select_cpu` (which would direct-dispatch with the default slice), so
/// every task gets the slice through `enqueue`.
pub struct Sliced {
    pub slice: u64,
}

impl Scheduler for Sliced {
    fn name(&self) -> &str {
        "sliced-fifo"
    }

    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        p.cpu() as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_LOCAL, self.slice, f);
    }
}

/// What the two spinners share (they run on one CPU, one at a time).
struct Turns {
    /// Which spinner (1 or 2) had the CPU last; 0 before the first turn.
    owner: AtomicU64,
    /// Clock (ns since `base`) of the current turn's first pass.
    start: AtomicU64,
    /// Turn changes seen so far.
    changes: AtomicU64,
    stop: AtomicBool,
}

/// Two spinners on OS CPU `cpu` with slice `slice`; histogram of `n`
/// lateness samples (ns) and the number of turns that ended early.
fn scx(
    cpu: usize,
    slice: Duration,
    n: u64,
    mode: SliceTimer,
) -> Result<(Histogram<u64>, u64), String> {
    let slice_ns = slice.as_nanos() as u64;
    let rt = crate::ctx::traced(Runtime::builder())
        .cpus([cpu])
        .slice_timer(mode)
        .scheduler(Sliced { slice: slice_ns })
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let base = Instant::now();
    let turns = Arc::new(Turns {
        owner: AtomicU64::new(0),
        start: AtomicU64::new(0),
        changes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let spinner = |me: u64| {
        let t = Arc::clone(&turns);
        move || {
            let mut hist = new_hist();
            let mut early = 0u64;
            loop {
                let now = base.elapsed().as_nanos() as u64;
                if t.owner.load(Ordering::Relaxed) != me {
                    let prev = t.owner.swap(me, Ordering::Relaxed);
                    let prev_start = t.start.swap(now, Ordering::Relaxed);
                    if prev != 0 {
                        let c = t.changes.fetch_add(1, Ordering::Relaxed);
                        if (WARMUP..WARMUP + n).contains(&c) {
                            let deadline = prev_start + slice_ns;
                            if now < deadline {
                                early += 1;
                            } else {
                                hist.saturating_record(now - deadline);
                            }
                        }
                        if c + 1 >= WARMUP + n {
                            t.stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                if t.stop.load(Ordering::Relaxed) {
                    return (hist, early);
                }
                scx_rt::preempt_point();
            }
        }
    };
    let a = rt.spawn_on(0, spinner(1));
    let b = rt.spawn_on(0, spinner(2));
    let (mut hist, early_a) = a.join().map_err(|e| format!("join: {e:?}"))?;
    let (hb, early_b) = b.join().map_err(|e| format!("join: {e:?}"))?;
    rt.shutdown();
    hist.add(&hb)
        .map_err(|e| format!("merge histograms: {e}"))?;
    Ok((hist, early_a + early_b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_slices_are_capped_by_time() {
        let s = Sizes {
            iters: 1_000,
            budget: Duration::from_millis(200),
        };
        assert_eq!(expiries(&s, Duration::from_micros(10)), 1_000);
        assert_eq!(expiries(&s, Duration::from_millis(1)), 200);
        assert_eq!(expiries(&s, Duration::from_secs(1)), 50);
    }

    #[test]
    fn every_expiry_is_seen() {
        let cpu = crate::cpus::usable_cpus()[0];
        for (_, mode) in MODES {
            let (hist, early) = scx(cpu, Duration::from_micros(100), 40, mode).unwrap();
            // Each of the 40 turn changes is either recorded or counted early.
            assert_eq!(hist.len() + early, 40, "{mode:?}");
        }
    }
}
