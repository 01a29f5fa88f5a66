//! `switch`'s shared definitions: name, sizes and row builder (the
//! workload itself: `workloads/switch.rs`).

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "switch";
const CASE: &str = "1cpu-2tasks";
const UNIT: &str = "ns/switch";

pub struct Sizes {
    pub iters: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(1_000_000, 10_000),
        reps: ctx.reps(5, 2),
    }
}

/// A row of this workload from one ns/switch figure per rep.
pub fn row(subject: Subject, iters: u64, samples: &[f64]) -> Row {
    let key = Key {
        workload: NAME,
        case: CASE,
        subject,
    };
    throughput_row(key, UNIT, 2 * iters, samples)
}
