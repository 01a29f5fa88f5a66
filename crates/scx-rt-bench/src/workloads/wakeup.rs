//! `wakeup`: schbench's shape. `m` message tasks each own `t` worker
//! tasks. In every round a message task, for each of its workers in turn,
//! reads the clock and sends that stamp to the worker over the worker's
//! cap-1 channel (waking it); the worker, as soon as it runs, records
//! `now - stamp` (the wake-up latency: wake, queueing behind other tasks,
//! switch in), spins for a think time of [`THINK`] and acks on its message
//! task's channel. The message task starts the next round once all its
//! workers have acked. The first tenth of the rounds is warm-up, not
//! recorded.
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

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::peers::{go, threads, tokio};
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, Key};
use crate::workloads::Ctx;

pub const NAME: &str = "wakeup";

/// How long a woken worker spins before acking (schbench's per-request
/// work, kept short so that rounds are fast).
pub const THINK: Duration = Duration::from_micros(2);

/// Wake-ups recorded per case.
pub struct Sizes {
    pub wakeups: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        wakeups: ctx.iters(100_000, 2_000),
    }
}

/// One case: `messengers` message tasks with `workers` workers each, run
/// for `rounds` rounds of which the first `warmup` are not recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub case: String,
    pub messengers: usize,
    pub workers: usize,
    pub rounds: u64,
    pub warmup: u64,
}

impl Shape {
    fn new(kind: &str, messengers: usize, workers: usize, wakeups: u64) -> Shape {
        let per_round = (messengers * workers) as u64;
        let rounds = wakeups.div_ceil(per_round).max(1);
        let warmup = rounds / 10;
        Shape {
            case: format!("{kind}-{messengers}msg-{workers}wkr"),
            messengers,
            workers,
            rounds: rounds + warmup,
            warmup,
        }
    }
}

/// The two cases for `ncpus` CPUs and `wakeups` recorded wake-ups each.
pub fn shapes(ncpus: usize, wakeups: u64) -> [Shape; 2] {
    let ncpus = ncpus.max(1);
    let m = (ncpus / 8).max(1);
    let fit = (ncpus / m).saturating_sub(1).max(1);
    let over = 4 * ncpus / m;
    [
        Shape::new("fit", m, fit, wakeups),
        Shape::new("4x", m, over, wakeups),
    ]
}

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

/// Spins for [`THINK`], calling `preempt` on every turn.
pub fn think(preempt: impl Fn()) {
    let t = Instant::now();
    while t.elapsed() < THINK {
        preempt();
    }
}

/// Records one wake-up latency (ns) unless `round` is a warm-up round.
pub fn record(hist: &mut Histogram<u64>, round: u64, warmup: u64, stamp: Instant) {
    let lat = stamp.elapsed();
    if round >= warmup {
        hist.saturating_record(lat.as_nanos() as u64);
    }
}

/// Merges per-worker histograms.
pub fn merge(hists: impl IntoIterator<Item = Histogram<u64>>) -> Result<Histogram<u64>, String> {
    let mut all = new_hist();
    for h in hists {
        all.add(&h).map_err(|e| format!("merge histograms: {e}"))?;
    }
    Ok(all)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fit_and_oversubscribe() {
        let [fit, over] = shapes(2, 1000);
        assert_eq!((fit.messengers, fit.workers), (1, 1));
        assert_eq!((over.messengers, over.workers), (1, 8));
        assert_eq!(fit.case, "fit-1msg-1wkr");
        assert_eq!(over.case, "4x-1msg-8wkr");
        // 1000 recorded wake-ups: 125 rounds of 8, plus 12 warm-up rounds.
        assert_eq!((over.rounds, over.warmup), (137, 12));
        for ncpus in [1, 2, 3, 8, 16, 64, 100] {
            let [fit, over] = shapes(ncpus, 10);
            assert!(fit.messengers * fit.workers <= ncpus, "{ncpus}: {fit:?}");
            assert_eq!(
                over.messengers * over.workers,
                4 * ncpus - 4 * ncpus % over.messengers
            );
            assert!(fit.rounds > fit.warmup);
        }
    }

    #[test]
    fn warm_up_rounds_are_not_recorded() {
        let mut h = new_hist();
        let stamp = Instant::now();
        record(&mut h, 0, 1, stamp);
        assert_eq!(h.len(), 0);
        record(&mut h, 1, 1, stamp);
        assert_eq!(h.len(), 1);
    }
}
