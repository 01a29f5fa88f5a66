//! `chained-spawn`'s shared definitions: name, sizes, row builder and its
//! figure (µs per chain); the workload itself: `workloads/chained_spawn.rs`.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "chained-spawn";

pub struct Sizes {
    pub tasks: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        tasks: ctx.tasks(1_000, 100),
        reps: ctx.reps(100, 5),
    }
}

/// A row of this workload from one µs figure per rep.
pub fn row(subject: Subject, tasks: u64, samples: &[f64]) -> Row {
    let case = format!("chain-{tasks}");
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    throughput_row(key, "us", 1, samples)
}

/// Microseconds as `f64`.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
