//! `chained-spawn`: tokio's `rt_multi_threaded` `chained_spawn` shape. From
//! inside the runtime, spawn one task; each task spawns the next until
//! `tasks` (1,000) have been spawned, and the last one signals completion
//! over a channel to the spawner; µs per chain, p50 over reps. scx-rt runs
//! on every chosen CPU. The completion channel: scx-rt `channel(1)`, tokio
//! a `oneshot`, go a cap-1 channel. Beside: tokio (`tokio::spawn`), go.

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::{go, tokio};
use crate::report::Row;
use crate::spec::chained_spawn::{row, sizes, us, Sizes, NAME};

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { tasks, reps } = sizes(ctx);
    ctx.scx_then_tokio(
        NAME,
        rows,
        |s, samples| row(s, tasks, samples),
        || scx(ctx, tasks, reps),
        || tokio::chained_spawn(&ctx.cpus, tasks, reps),
    )?;
    go::peer(ctx, NAME, rows);
    Ok(())
}

/// One link: with `left` more spawns to go, spawn the next link (detached:
/// nobody joins it), or signal the end of the chain.
fn link(left: u64, done: scx_rt::sync::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
    } else {
        scx_rt::spawn(move || link(left - 1, done));
    }
}

fn scx(ctx: &Ctx, tasks: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(move || {
            let (done_tx, done_rx) = scx_rt::sync::channel::<()>(1);
            let t = Instant::now();
            // `tasks` spawns in all: this one, then `tasks - 1` links.
            scx_rt::spawn(move || link(tasks - 1, done_tx));
            done_rx.recv().map_err(|_| "chain broke".to_string())?;
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(us(elapsed));
    }
    rt.shutdown();
    Ok(samples)
}
