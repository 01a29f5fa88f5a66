//! `pingpong`'s shared definitions: name, channel capacity, warm-up, sizes,
//! the cases ([`Placement`]) with their CPUs and usage check, and the row
//! builder. The cases are described with the workload itself
//! (`workloads/pingpong.rs`).

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{latency_row, Key};

pub const NAME: &str = "pingpong";
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
