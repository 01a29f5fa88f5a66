//! `spawn`'s shared definitions: name, sizes and row builder (the workload
//! itself: `workloads/spawn.rs`).

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "spawn";
const CASE: &str = "empty-tasks";
const UNIT: &str = "ns/task";

pub struct Sizes {
    pub tasks: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        tasks: ctx.tasks(100_000, 1_000),
        reps: ctx.reps(5, 2),
    }
}

/// A row of this workload from one ns/task figure per rep.
pub fn row(subject: Subject, tasks: u64, samples: &[f64]) -> Row {
    let key = Key {
        workload: NAME,
        case: CASE,
        subject,
    };
    throughput_row(key, UNIT, tasks, samples)
}
