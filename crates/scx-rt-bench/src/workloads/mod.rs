//! The workload registry. Adding a workload: write `workloads/NAME.rs` with
//! a `pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String>`,
//! add one [`Workload`] entry to [`ALL`], and (if the may peer should run
//! it) one arm in [`crate::peers::may::run_child`].

pub mod bimodal;
pub mod chained_spawn;
pub mod hog;
pub mod kick;
pub mod pingpong;
pub mod preempt;
pub mod ring;
pub mod skynet;
pub mod slice_timer;
pub mod spawn;
pub mod switch;
pub mod wakeup;
pub mod yield_many;

use std::time::{Duration, Instant};

use crate::args::Options;
use crate::report::{Row, Subject};

/// Runs one workload: scx-rt first, then peers and raw limits (unless
/// `--no-peers`), appending rows. An `Err` means scx-rt itself failed; a
/// failing peer is reported on stderr and left out.
pub type RunFn = fn(&Ctx, &mut Vec<Row>) -> Result<(), String>;

/// Extra usage checks of a workload's options.
pub type CheckFn = fn(&Ctx) -> Result<(), String>;

/// One subcommand.
pub struct Workload {
    pub name: &'static str,
    pub about: &'static str,
    pub run: RunFn,
    /// Extra usage checks on the options (a failure exits with code 2).
    pub check: Option<CheckFn>,
}

/// Every workload, in the order `all` runs them.
pub const ALL: &[Workload] = &[
    Workload {
        name: "switch",
        about: "green yield_now between two tasks on one CPU, ns/switch",
        run: switch::run,
        check: None,
    },
    Workload {
        name: "spawn",
        about: "spawn + run + join of empty tasks from inside a task, ns/task",
        run: spawn::run,
        check: None,
    },
    Workload {
        name: "pingpong",
        about: "round trip over cap-1 channels: same CPU, two pinned CPUs, free; latency",
        run: pingpong::run,
        check: Some(pingpong::check_options),
    },
    Workload {
        name: "skynet",
        about: "1M tasks in a 10-ary tree of depth 6, ms per run",
        run: skynet::run,
        check: Some(skynet::check_options),
    },
    Workload {
        name: "ring",
        about: "a token round a 128-task ring of cap-1 channels, hops/s",
        run: ring::run,
        check: Some(ring::check_options),
    },
    Workload {
        name: "yield-many",
        about: "200 tasks x 1,000 yield_now, spawned and joined in-task, ms/run",
        run: yield_many::run,
        check: None,
    },
    Workload {
        name: "chained-spawn",
        about: "a chain of 1,000 tasks, each spawning the next, us per chain",
        run: chained_spawn::run,
        check: None,
    },
    Workload {
        name: "wakeup",
        about: "schbench: message tasks wake workers, wake-up latency (fit, 4x)",
        run: wakeup::run,
        check: None,
    },
    Workload {
        name: "bimodal",
        about: "Poisson arrivals of 99.5% short / 0.5% long spinning requests, p99 vs load",
        run: bimodal::run,
        check: None,
    },
    Workload {
        name: "kick",
        about: "kick-to-running latency: idle polling, idle sleeping, busy + PREEMPT",
        run: kick::run,
        check: None,
    },
    Workload {
        name: "preempt",
        about: "lateness of slice expiry (slices of 10 us, 100 us, 1 ms)",
        run: preempt::run,
        check: None,
    },
    Workload {
        name: "hog",
        about: "Go's PingPongHog: a ping-pong pair beside a spinning task, per slice",
        run: hog::run,
        check: None,
    },
    Workload {
        name: "slice-timer",
        about: "slice timer: one timer thread vs per-thread POSIX timer signals, cost and lateness",
        run: slice_timer::run,
        check: None,
    },
];

/// Workload names, for the argument parser.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|w| w.name).collect()
}

/// Looks a workload up by name.
pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

/// What a workload run gets: the CPUs (OS numbers, validated) and the
/// options.
pub struct Ctx {
    pub cpus: Vec<usize>,
    pub opts: Options,
}

impl Ctx {
    fn pick(&self, given: Option<u64>, normal: u64, quick: u64) -> u64 {
        given.unwrap_or(if self.opts.quick { quick } else { normal })
    }

    /// `--iters`, else the default for a normal or `--quick` run.
    pub fn iters(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.iters, normal, quick)
    }

    /// `--tasks`, else the default.
    pub fn tasks(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.tasks, normal, quick)
    }

    /// `--reps`, else the default.
    pub fn reps(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.reps, normal, quick)
    }

    /// A scx-rt runtime builder on the OS CPUs `cpus` with the bench-wide
    /// runtime options (`--idle-poll-us`).
    pub fn scx_builder(&self, cpus: impl IntoIterator<Item = usize>) -> scx_rt::Builder {
        let b = scx_rt::Runtime::builder().cpus(cpus);
        match self.opts.idle_poll_us {
            Some(us) => b.idle_poll(Duration::from_micros(us)),
            None => b,
        }
    }

    /// Whether peers and raw limits run.
    pub fn peers(&self) -> bool {
        !self.opts.no_peers
    }

    /// Runs one peer (or raw limit) measurement with a progress line; a
    /// failure is reported on stderr and yields no row.
    pub fn peer<F>(&self, workload: &str, subject: Subject, rows: &mut Vec<Row>, f: F)
    where
        F: FnOnce() -> Result<Vec<Row>, String>,
    {
        if !self.peers() {
            return;
        }
        let t = Instant::now();
        eprintln!("{workload}: {} ...", subject.as_str());
        match f() {
            Ok(mut r) => {
                rows.append(&mut r);
                progress_done(workload, subject, t);
            }
            Err(e) => eprintln!("{workload}: {} skipped: {e}", subject.as_str()),
        }
    }

    /// Runs the scx-rt measurement with a progress line; errors propagate.
    pub fn scx<F>(&self, workload: &str, rows: &mut Vec<Row>, f: F) -> Result<(), String>
    where
        F: FnOnce() -> Result<Vec<Row>, String>,
    {
        let t = Instant::now();
        eprintln!("{workload}: scx-rt ...");
        let mut r = f().map_err(|e| format!("{workload}: scx-rt: {e}"))?;
        rows.append(&mut r);
        progress_done(workload, Subject::ScxRt, t);
        Ok(())
    }

    /// The common shape of a throughput workload: the scx-rt samples (one
    /// figure per repetition), then tokio's, each made into a row by `row`.
    pub fn scx_then_tokio(
        &self,
        workload: &str,
        rows: &mut Vec<Row>,
        row: impl Fn(Subject, &[f64]) -> Row,
        scx: impl FnOnce() -> Result<Vec<f64>, String>,
        tokio: impl FnOnce() -> Result<Vec<f64>, String>,
    ) -> Result<(), String> {
        self.scx(workload, rows, || Ok(vec![row(Subject::ScxRt, &scx()?)]))?;
        self.peer(workload, Subject::Tokio, rows, || {
            Ok(vec![row(Subject::Tokio, &tokio()?)])
        });
        Ok(())
    }
}

fn progress_done(workload: &str, subject: Subject, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    if s >= 1.0 {
        eprintln!("{workload}: {} done in {s:.1} s", subject.as_str());
    }
}

/// Nanoseconds as `f64`.
pub fn ns(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--iters N` / `--tasks N` mean exactly N operations and `--reps 1`
    /// one measured repetition, whatever the defaults: the instruction
    /// counts of `benches/instructions.sh` difference two such runs.
    #[test]
    fn sizes_are_exactly_the_options() {
        for quick in [false, true] {
            let ctx = Ctx {
                cpus: vec![0, 1],
                opts: Options {
                    iters: Some(7),
                    tasks: Some(9),
                    reps: Some(1),
                    quick,
                    ..Default::default()
                },
            };
            let s = switch::sizes(&ctx);
            assert_eq!((s.iters, s.reps), (7, 1));
            let s = spawn::sizes(&ctx);
            assert_eq!((s.tasks, s.reps), (9, 1));
            let s = chained_spawn::sizes(&ctx);
            assert_eq!((s.tasks, s.reps), (9, 1));
            assert_eq!(pingpong::sizes(&ctx).iters, 7);
        }
    }
}
