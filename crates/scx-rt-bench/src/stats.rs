//! Turning measurements into [`Row`]s: repeated throughput samples and
//! latency histograms, and durations into figures. Shared by every layer
//! that measures (`spec/`, `peers/`, `workloads/`); depends on `report` only.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::report::{PlotData, Row, Subject};

/// Highest latency a histogram records, in ns (10 s); longer ones saturate.
const HIST_MAX_NS: u64 = 10_000_000_000;

/// A latency histogram in ns with 3 significant figures.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// Nanoseconds as `f64`.
pub fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// Where a row belongs: workload, case and subject.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub workload: &'a str,
    pub case: &'a str,
    pub subject: Subject,
}

/// A throughput row from one figure per repetition (`samples`, in `unit`),
/// each measured over `ops_per_rep` operations: `mean` over repetitions,
/// `p50` (median) only when there are at least two.
pub fn throughput_row(key: Key<'_>, unit: &str, ops_per_rep: u64, samples: &[f64]) -> Row {
    let mean = if samples.is_empty() {
        f64::NAN
    } else {
        samples.iter().sum::<f64>() / samples.len() as f64
    };
    let p50 = (samples.len() >= 2).then(|| median(samples));
    Row {
        workload: key.workload.into(),
        case: key.case.into(),
        subject: key.subject,
        unit: unit.into(),
        n: ops_per_rep * samples.len() as u64,
        mean,
        p50,
        p99: None,
        p999: None,
        plot: PlotData::None,
    }
}

/// A latency row (unit `ns`) from a histogram of ns samples.
pub fn latency_row(key: Key<'_>, hist: &Histogram<u64>) -> Row {
    let q = |x: f64| Some(hist.value_at_quantile(x) as f64);
    Row {
        workload: key.workload.into(),
        case: key.case.into(),
        subject: key.subject,
        unit: "ns".into(),
        n: hist.len(),
        mean: hist.mean(),
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        plot: PlotData::Cdf(cdf_points(hist)),
    }
}

/// Quantiles a CDF is drawn at: every percent up to 90, then ever finer
/// towards the tail (each decade of `1 - q` in 20 steps) down to 99.99%,
/// and the maximum.
fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..90).map(|i| f64::from(i) / 100.0).collect();
    // 1 - q from 1e-1 to 1e-4, log-spaced.
    for i in 0..=60 {
        q.push(1.0 - 10f64.powf(-1.0 - f64::from(i) / 20.0));
    }
    q.push(1.0);
    q
}

/// A latency histogram as `(quantile, ns)` points for `--plot`: at most
/// ~150 points, only quantiles the sample count resolves (a tail quantile
/// beyond `1 - 1/n` is left out, the maximum kept).
pub fn cdf_points(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = hist.len();
    if n == 0 {
        return Vec::new();
    }
    let finest = 1.0 - 1.0 / n as f64;
    cdf_quantiles()
        .into_iter()
        .filter(|&q| q <= finest + 1e-9 || q == 1.0)
        .map(|q| (q, hist.value_at_quantile(q) as f64))
        .collect()
}

/// Median (the mean of the two middle values for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key<'static> = Key {
        workload: "w",
        case: "c",
        subject: Subject::ScxRt,
    };

    #[test]
    fn throughput_rows() {
        let r = throughput_row(KEY, "ns/op", 10, &[3.0, 1.0, 2.0]);
        assert_eq!(r.n, 30);
        assert_eq!(r.mean, 2.0);
        assert_eq!(r.p50, Some(2.0));
        assert_eq!(r.p99, None);
        let one = throughput_row(KEY, "ms", 1, &[5.0]);
        assert_eq!((one.mean, one.p50), (5.0, None));
    }

    #[test]
    fn latency_rows() {
        let mut h = new_hist();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let r = latency_row(KEY, &h);
        assert_eq!(r.n, 1000);
        assert!((r.p50.unwrap() - 500.0).abs() <= 1.0);
        assert!(r.p999.unwrap() >= r.p99.unwrap());
        let PlotData::Cdf(cdf) = &r.plot else {
            panic!("latency row without a CDF: {:?}", r.plot);
        };
        // Ascending in both coordinates, ending at the maximum; 1000
        // samples resolve 99.9% but not 99.99%.
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf.last(), Some(&(1.0, 1000.0)));
        assert!(cdf.iter().all(|&(q, _)| q <= 0.999 + 1e-9 || q == 1.0));
        assert!(cdf.iter().any(|&(q, _)| (q - 0.999).abs() < 1e-9));
        assert!(cdf_points(&new_hist()).is_empty());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert_eq!(median(&[9.0, 1.0, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }
}
