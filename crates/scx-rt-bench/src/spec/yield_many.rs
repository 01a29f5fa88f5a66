//! `yield-many`'s shared definitions: name, sizes, row builder and its
//! figure (ms per run); the workload itself: `workloads/yield_many.rs`.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "yield-many";

pub struct Sizes {
    pub tasks: u64,
    pub yields: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        tasks: ctx.tasks(200, 50),
        yields: ctx.iters(1_000, 100),
        reps: ctx.reps(5, 2),
    }
}

/// A row of this workload from one ms figure per rep.
pub fn row(subject: Subject, s: &Sizes, samples: &[f64]) -> Row {
    let case = format!("{}-tasks-{}-yields", s.tasks, s.yields);
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    throughput_row(key, "ms", 1, samples)
}

/// Milliseconds as `f64`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
