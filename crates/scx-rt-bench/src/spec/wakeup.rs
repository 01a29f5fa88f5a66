//! `wakeup`'s shared definitions: name, think time, sizes, the case shapes
//! and the steps every subject's worker takes (think, record, merge). The
//! workload itself: `workloads/wakeup.rs`.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::ctx::Ctx;
use crate::stats::new_hist;

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
