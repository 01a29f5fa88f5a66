//! `ring`: `tasks` tasks (128) in a cycle of channels pass one token
//! around for `hops` hops (500,000); task `i` receives from channel `i`
//! and sends to channel `i + 1` (mod `tasks`). Hops per second, one figure
//! per rep, p50 over reps. The ring is built (and its tasks started)
//! before the clock starts; the clock stops when the task that receives the
//! last hop signals completion. scx-rt runs on every chosen CPU with the
//! default scheduler and without migration: a task stays on the CPU that
//! first ran it. Beside: tokio (`mpsc`), go.
//!
//! Every subject's channels hold [`CHANNEL_CAP`] (1) value: tokio has no
//! rendezvous channel, so capacity 0 cannot be common ground. With one
//! token in flight a send never waits for room; a rendezvous send would
//! also wait for the receiver to take the token (one more switch per hop).
//!
//! A rate, not a time: in the ratio column (peer / scx-rt) a figure above 1
//! means the peer is faster.

use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::peers::{go, tokio};
use crate::report::{Row, Subject};
use crate::spec::ring::{rate, row, sizes, Sizes, CHANNEL_CAP, NAME};

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { tasks, hops, reps } = sizes(ctx);
    ctx.scx(NAME, rows, || {
        let samples = scx(ctx, tasks, hops, reps)?;
        Ok(vec![row(Subject::ScxRt, tasks, hops, &samples)])
    })?;
    ctx.peer(NAME, Subject::Tokio, rows, || {
        let samples = tokio::ring(&ctx.cpus, tasks, hops, reps)?;
        Ok(vec![row(Subject::Tokio, tasks, hops, &samples)])
    });
    go::peer(ctx, NAME, rows);
    Ok(())
}

fn scx(ctx: &Ctx, tasks: u64, hops: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(move || scx_once(tasks, hops))?;
        samples.push(rate(hops, elapsed));
    }
    rt.shutdown();
    Ok(samples)
}

/// One run inside a task: build the ring, inject the token (carrying the
/// hops left), time until the task that receives 0 reports, then let the
/// ring wind down (each task that leaves closes its successor's channel).
fn scx_once(tasks: u64, hops: u64) -> Result<Duration, String> {
    let (mut txs, rxs): (Vec<_>, Vec<_>) = (0..tasks)
        .map(|_| scx_rt::sync::channel::<u64>(CHANNEL_CAP))
        .unzip();
    let inject = txs[0].clone();
    // Task i receives on channel i and sends on channel i + 1.
    txs.rotate_left(1);
    let (done_tx, done_rx) = scx_rt::sync::channel::<()>(1);
    let handles: Vec<_> = rxs
        .into_iter()
        .zip(txs)
        .map(|(rx, next)| {
            let done = done_tx.clone();
            scx_rt::spawn(move || {
                while let Ok(left) = rx.recv() {
                    if left == 0 {
                        let _ = done.send(());
                        break;
                    }
                    if next.send(left - 1).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let t = Instant::now();
    inject.send(hops).map_err(|_| "ring closed".to_string())?;
    drop(inject);
    done_rx.recv().map_err(|_| "ring broke".to_string())?;
    let elapsed = t.elapsed();
    for h in handles {
        h.join().map_err(|e| format!("join: {e:?}"))?;
    }
    Ok(elapsed)
}
