//! The workload registry and the runners: `workloads/NAME.rs` measures
//! scx-rt and calls the peers for the same workload.
//!
//! Layering: runners sit above `peers/` and take what they share with the
//! peers (name, sizes, row builder, cases) from `spec/`; nothing below
//! names a runner. Adding a workload: write `workloads/NAME.rs` with a
//! `pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String>`
//! (plus `spec/NAME.rs` if a peer needs its definitions), add one
//! [`Workload`] entry to [`ALL`], and (if the may peer should run it) one
//! arm in [`crate::peers::may::run_child`].

pub mod bimodal;
pub mod bimodal_gen;
pub mod bimodal_tail;
pub mod chained_spawn;
pub mod echo;
pub mod echo_clients;
pub mod echo_idle;
pub mod hog;
pub mod kick;
pub mod pingpong;
pub mod preempt;
pub mod ring;
pub mod skynet;
pub mod slice_timer;
pub mod spawn;
pub mod switch;
pub mod trace;
pub mod wakeup;
pub mod yield_many;

use crate::ctx::Ctx;
use crate::report::Row;
use crate::spec;

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
        check: Some(spec::pingpong::check_options),
    },
    Workload {
        name: "skynet",
        about: "1M tasks in a 10-ary tree of depth 6, ms per run",
        run: skynet::run,
        check: Some(spec::skynet::check_options),
    },
    Workload {
        name: "ring",
        about: "a token round a 128-task ring of cap-1 channels, hops/s",
        run: ring::run,
        check: Some(spec::ring::check_options),
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
        check: Some(bimodal::check_options),
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
        name: "echo",
        about:
            "TCP echo servers, 1/64/1000 connections x 64 B/4 KiB: req/s and latency; idle conns",
        run: echo::run,
        check: Some(spec::echo::check_options),
    },
    Workload {
        name: "slice-timer",
        about: "slice timer: one timer thread vs per-thread POSIX timer signals, cost and lateness",
        run: slice_timer::run,
        check: None,
    },
    Workload {
        name: "trace",
        about: "switch and spawn with scheduling traces off and on (Builder::trace), ns/op",
        run: trace::run,
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
