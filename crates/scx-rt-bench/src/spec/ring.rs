//! `ring`'s shared definitions: name, channel capacity, sizes and their
//! usage check, row builder and its figure (hops/s); the workload itself:
//! `workloads/ring.rs`.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "ring";
/// Capacity of every channel of the ring, for every subject.
pub const CHANNEL_CAP: usize = 1;
const UNIT: &str = "hops/s";

pub struct Sizes {
    pub tasks: u64,
    pub hops: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        tasks: ctx.tasks(128, 128),
        hops: ctx.iters(500_000, 10_000),
        reps: ctx.reps(5, 2),
    }
}

/// Usage check: a ring needs at least two tasks (a single task would send
/// to itself over a rendezvous channel and never finish).
pub fn check_options(ctx: &Ctx) -> Result<(), String> {
    let tasks = sizes(ctx).tasks;
    if tasks >= 2 {
        Ok(())
    } else {
        Err(format!("ring: --tasks {tasks} is too small (>= 2)"))
    }
}

/// A row of this workload from one hops/s figure per rep.
pub fn row(subject: Subject, tasks: u64, hops: u64, samples: &[f64]) -> Row {
    let case = format!("{tasks}-tasks");
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    throughput_row(key, UNIT, hops, samples)
}

/// Hops per second of one lap set of `hops` hops that took `elapsed`.
pub fn rate(hops: u64, elapsed: Duration) -> f64 {
    hops as f64 / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_needs_two_tasks() {
        let ctx = |tasks| Ctx {
            cpus: vec![0],
            opts: crate::args::Options {
                tasks,
                ..Default::default()
            },
        };
        for ok in [None, Some(2), Some(128), Some(u64::MAX)] {
            assert!(check_options(&ctx(ok)).is_ok(), "{ok:?}");
        }
        assert!(check_options(&ctx(Some(1))).is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(rate(500_000, Duration::from_millis(250)), 2_000_000.0);
    }
}
