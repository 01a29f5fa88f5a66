//! `skynet`'s shared definitions: name, tree shape, sizes and their usage
//! check, the sum check and the row builder (the workload itself:
//! `workloads/skynet.rs`).

use crate::ctx::Ctx;
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};

pub const NAME: &str = "skynet";
/// Children per inner node of the tree.
pub const FANOUT: u64 = 10;

pub struct Sizes {
    pub leaves: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        leaves: ctx.tasks(1_000_000, 10_000),
        reps: ctx.reps(3, 2),
    }
}

/// Usage check: the leaf count must be a power of 10 (at least 10).
pub fn check_options(ctx: &Ctx) -> Result<(), String> {
    let leaves = sizes(ctx).leaves;
    let mut p = Some(FANOUT);
    while let Some(x) = p.filter(|&x| x < leaves) {
        p = x.checked_mul(FANOUT);
    }
    if p == Some(leaves) {
        Ok(())
    } else {
        Err(format!(
            "skynet: --tasks {leaves} is not a power of 10 (>= 10)"
        ))
    }
}

/// The sum of `0..leaves`; an error if `sum` differs.
pub fn check_sum(leaves: u64, sum: u64) -> Result<(), String> {
    let want = leaves * (leaves - 1) / 2;
    if sum == want {
        Ok(())
    } else {
        Err(format!("skynet sum {sum}, expected {want}"))
    }
}

/// A row of this workload from one ms figure per rep.
pub fn row(subject: Subject, leaves: u64, samples: &[f64]) -> Row {
    let case = format!("leaves-{leaves}");
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    throughput_row(key, "ms", 1, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        assert!(check_sum(1_000_000, 499_999_500_000).is_ok());
        assert!(check_sum(10, 44).is_err());
    }

    #[test]
    fn leaves_must_be_a_power_of_ten() {
        let ctx = |tasks| Ctx {
            cpus: vec![0],
            opts: crate::args::Options {
                tasks: Some(tasks),
                ..Default::default()
            },
        };
        for ok in [10, 100, 1_000_000] {
            assert!(check_options(&ctx(ok)).is_ok(), "{ok}");
        }
        for bad in [1, 5, 20, 999, u64::MAX] {
            assert!(check_options(&ctx(bad)).is_err(), "{bad}");
        }
    }
}
