//! `skynet`: a 10-ary tree of tasks whose leaves return their number
//! (1,000,000 leaves = depth 6, 1,111,111 tasks in all); each parent spawns
//! its 10 children and joins them. The sum is checked. ms per run.
//! Beside: tokio (spawn + await), may (spawn + join; refused when the tree
//! needs more coroutine stacks than `vm.max_map_count` allows), go (the
//! original skynet: children send their sums over a channel of capacity
//! 10, no join).

use crate::ctx::Ctx;
use crate::peers::{go, may, tokio};
use crate::report::{Row, Subject};
use crate::spec::skynet::{check_sum, row, sizes, Sizes, FANOUT, NAME};

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
