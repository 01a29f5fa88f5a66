//! `wakeup`: schbench's shape. `m` message tasks each own `t` worker
//! tasks. In every round a message task, for each of its workers in turn,
//! reads the clock and sends that stamp to the worker over the worker's
//! cap-1 channel (waking it); the worker, as soon as it runs, records
//! `now - stamp` (the wake-up latency: wake, queueing behind other tasks,
//! switch in), spins for a think time of
//! [`THINK`](crate::spec::wakeup::THINK) and acks on its message task's
//! channel. The message task starts the next round once all its workers
//! have acked. The first tenth of the rounds is warm-up, not recorded.
//!
//! Two cases: `fit`, where the workers fit on the CPUs (`m * t <= CPUs`,
//! one message task per 8 CPUs), and `4x`, with four workers per CPU
//! (`m * t = 4 * CPUs`), where a woken worker waits for a CPU behind other
//! workers' think time. Case names spell the shape: `fit-1msg-1wkr` is one
//! message task with one worker.
//!
//! Beside: tokio (the same shape with `mpsc` channels, workers spinning
//! without a yield), OS threads (`std::sync::mpsc::sync_channel`, futex
//! based, threads restricted to the chosen CPUs) and go.

use std::time::Instant;

use hdrhistogram::Histogram;

use crate::ctx::Ctx;
use crate::peers::{go, threads, tokio};
use crate::report::{Row, Subject};
use crate::spec::wakeup::{merge, record, shapes, sizes, think, Shape, NAME};
use crate::stats::{latency_row, new_hist, Key};

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let wakeups = sizes(ctx).wakeups;
    for shape in shapes(ctx.cpus.len(), wakeups) {
        let key = |subject| Key {
            workload: NAME,
            case: &shape.case,
            subject,
        };
        ctx.scx(NAME, rows, || {
            Ok(vec![latency_row(key(Subject::ScxRt), &scx(ctx, &shape)?)])
        })?;
        ctx.peer(NAME, Subject::Tokio, rows, || {
            let hist = tokio::wakeup(&ctx.cpus, &shape)?;
            Ok(vec![latency_row(key(Subject::Tokio), &hist)])
        });
        ctx.peer(NAME, Subject::OsThreads, rows, || {
            let hist = threads::wakeup(&ctx.cpus, &shape)?;
            Ok(vec![latency_row(key(Subject::OsThreads), &hist)])
        });
        if go::ready(ctx) {
            ctx.peer(NAME, Subject::Go, rows, || go::wakeup_rows(ctx, &shape));
        }
    }
    Ok(())
}

fn scx(ctx: &Ctx, shape: &Shape) -> Result<Histogram<u64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let shape = shape.clone();
    let hists = rt.block_on(move || {
        let mut workers = Vec::new();
        let mut messengers = Vec::new();
        for _ in 0..shape.messengers {
            let (ack_tx, ack_rx) = scx_rt::sync::channel::<()>(shape.workers);
            let mut txs = Vec::new();
            for _ in 0..shape.workers {
                let (tx, rx) = scx_rt::sync::channel::<Instant>(1);
                let ack = ack_tx.clone();
                let warmup = shape.warmup;
                txs.push(tx);
                workers.push(scx_rt::spawn(move || {
                    let mut hist = new_hist();
                    let mut round = 0;
                    while let Ok(stamp) = rx.recv() {
                        record(&mut hist, round, warmup, stamp);
                        round += 1;
                        think(scx_rt::preempt_point);
                        if ack.send(()).is_err() {
                            break;
                        }
                    }
                    hist
                }));
            }
            let rounds = shape.rounds;
            messengers.push(scx_rt::spawn(move || {
                for _ in 0..rounds {
                    for tx in &txs {
                        tx.send(Instant::now()).map_err(|_| "worker gone")?;
                    }
                    for _ in 0..txs.len() {
                        ack_rx.recv().map_err(|_| "workers gone")?;
                    }
                }
                Ok::<_, String>(())
            }));
        }
        for m in messengers {
            m.join().map_err(|e| format!("join: {e:?}"))??;
        }
        workers
            .into_iter()
            .map(|w| w.join().map_err(|e| format!("join: {e:?}")))
            .collect::<Result<Vec<_>, String>>()
    })?;
    rt.shutdown();
    merge(hists)
}
