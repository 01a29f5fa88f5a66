//! `skynet`: a 10-ary tree of tasks whose leaves return their number
//! (1,000,000 leaves = depth 6, 1,111,111 tasks in all); each parent spawns
//! its 10 children and joins them. The sum is checked. ms per run.
//! Beside: tokio (spawn + await), may (spawn + join; refused when the tree
//! needs more coroutine stacks than `vm.max_map_count` allows), go (the
//! original skynet: children send their sums over a channel of capacity
//! 10, no join).

use crate::peers::{go, may, tokio};
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};
use crate::workloads::Ctx;

pub const NAME: &str = "skynet";
const FANOUT: u64 = 10;

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

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { leaves, reps } = sizes(ctx);
    ctx.scx_then_tokio(
        NAME,
        rows,
        |s, samples| row(s, leaves, samples),
        || scx(ctx, leaves, reps),
        || tokio::skynet(&ctx.cpus, leaves, reps),
    )?;
    ctx.peer(NAME, Subject::May, rows, || may::rows(ctx, NAME));
    go::peer(ctx, NAME, rows);
    Ok(())
}

fn node(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / FANOUT;
    let handles: Vec<_> = (0..FANOUT)
        .map(|i| scx_rt::spawn(move || node(num + i * sub, sub)))
        .collect();
    // A child cannot fail (pure arithmetic); a join error counts as 0 and
    // the sum check reports it.
    handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
}

fn scx(ctx: &Ctx, leaves: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let sum = rt.block_on(move || node(0, leaves));
        let elapsed = t.elapsed();
        check_sum(leaves, sum)?;
        samples.push(elapsed.as_secs_f64() * 1e3);
    }
    rt.shutdown();
    Ok(samples)
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
