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

use crate::peers::{go, tokio};
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};
use crate::workloads::Ctx;

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
