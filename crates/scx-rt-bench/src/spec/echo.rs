//! `echo`'s shared definitions: name, the server's contract, sizes, the
//! cases and the row builders. The workload itself: `workloads/echo.rs`.
//!
//! Every subject's server does the same thing: listen on `127.0.0.1:0`,
//! run one task (goroutine, coroutine, future) per accepted connection
//! that reads up to [`BUF`] bytes and writes them all back, until the peer
//! closes. A running server is a [`Server`]: its address and how to stop
//! it.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::ctx::Ctx;
use crate::report::{PlotData, Row, Subject};
use crate::stats::{latency_row, throughput_row, Key};

pub const NAME: &str = "echo";

/// Each server task's read buffer, bytes.
pub const BUF: usize = 4096;

/// Concurrent connections of the measured cases.
pub const CONNS: [usize; 3] = [1, 64, 1000];

/// Message sizes of the measured cases, bytes.
pub const SIZES: [usize; 2] = [64, 4096];

/// The `--case` name of the idle-connections measurement.
pub const IDLE: &str = "idle";

/// Sizes of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Measured time per case, subject and repetition (`--duration`).
    pub measure: Duration,
    /// Unmeasured time before it (a fifth of `measure`).
    pub warmup: Duration,
    /// Repetitions per case and subject (`--reps`).
    pub reps: u64,
    /// Connections held for the idle measurement (`--tasks`).
    pub idle_conns: u64,
    /// How long the idle connections are watched for CPU use.
    pub idle_window: Duration,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    let ms = ctx
        .opts
        .duration_ms
        .unwrap_or(if ctx.opts.quick { 100 } else { 1000 });
    let measure = Duration::from_millis(ms);
    Sizes {
        measure,
        warmup: measure / 5,
        reps: ctx.reps(3, 1),
        idle_conns: ctx.tasks(10_000, 1_000),
        idle_window: if ctx.opts.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        },
    }
}

/// One measured case: `conns` connections, each with one message of
/// `size` bytes in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub conns: usize,
    pub size: usize,
}

impl Case {
    /// The message size as a label: `64B`, `4KiB`.
    pub fn size_label(&self) -> String {
        if self.size >= 1024 && self.size.is_multiple_of(1024) {
            format!("{}KiB", self.size / 1024)
        } else {
            format!("{}B", self.size)
        }
    }

    /// The case name (`--case`), e.g. `64B-1000conn`.
    pub fn name(&self) -> String {
        format!("{}-{}conn", self.size_label(), self.conns)
    }

    /// The latency rows' case: the name, plus `-POLICY` for a scx-rt
    /// policy other than the default.
    pub fn latency_case(&self, policy: Option<&str>) -> String {
        match policy {
            Some(p) => format!("{}-{p}", self.name()),
            None => self.name(),
        }
    }

    /// The throughput rows' case: the latency case plus `-rps` (one row
    /// per (workload, case, subject)).
    pub fn rps_case(&self, policy: Option<&str>) -> String {
        format!("{}-rps", self.latency_case(policy))
    }
}

/// Every measured case, size-major.
pub fn all_cases() -> Vec<Case> {
    SIZES
        .iter()
        .flat_map(|&size| CONNS.iter().map(move |&conns| Case { conns, size }))
        .collect()
}

/// The cases to run: all, or those named by `--case`.
pub fn cases(ctx: &Ctx) -> Vec<Case> {
    all_cases()
        .into_iter()
        .filter(|c| match &ctx.opts.cases {
            Some(names) => names.iter().any(|n| *n == c.name()),
            None => true,
        })
        .collect()
}

/// Whether the idle-connections measurement runs (always, unless `--case`
/// leaves it out).
pub fn idle_selected(ctx: &Ctx) -> bool {
    match &ctx.opts.cases {
        Some(names) => names.iter().any(|n| n == IDLE),
        None => true,
    }
}

/// Usage check: every `--case` is a case of this workload.
pub fn check_options(ctx: &Ctx) -> Result<(), String> {
    let known: Vec<String> = all_cases()
        .iter()
        .map(Case::name)
        .chain([IDLE.to_string()])
        .collect();
    for c in ctx.opts.cases.iter().flatten() {
        if !known.contains(c) {
            return Err(format!("echo: no case `{c}` (known: {})", known.join(", ")));
        }
    }
    Ok(())
}

/// The series name of a subject in the charts: the subject, plus the
/// policy for a non-default scx-rt policy.
pub fn series(subject: Subject, policy: Option<&str>) -> String {
    match policy {
        Some(p) => format!("{} {p}", subject.as_str()),
        None => subject.as_str().to_string(),
    }
}

/// The latency row (round trips, ns) of one case and subject, drawn in the
/// `echo-SIZE-p99` chart (p99 against connections).
pub fn latency(case: &Case, policy: Option<&str>, subject: Subject, hist: &Histogram<u64>) -> Row {
    let name = case.latency_case(policy);
    let mut row = latency_row(
        Key {
            workload: NAME,
            case: &name,
            subject,
        },
        hist,
    );
    row.plot = PlotData::Sweep {
        chart: case.size_label(),
        series: series(subject, policy),
        x: case.conns as f64,
        x_label: "concurrent connections".into(),
        target: None,
        log_x: true,
    };
    row
}

/// The throughput row (requests/s, one sample per repetition) of one case
/// and subject; `requests` counts the requests of all repetitions.
pub fn throughput(
    case: &Case,
    policy: Option<&str>,
    subject: Subject,
    samples: &[f64],
    requests: u64,
) -> Row {
    let name = case.rps_case(policy);
    let key = Key {
        workload: NAME,
        case: &name,
        subject,
    };
    Row {
        n: requests,
        ..throughput_row(key, "req/s", 0, samples)
    }
}

/// The case names of the idle measurement with `conns` connections:
/// memory per connection, and CPU use while idle.
pub fn idle_cases(conns: u64) -> (String, String) {
    (
        format!("idle-{conns}conn-rss"),
        format!("idle-{conns}conn-cpu"),
    )
}

type StopFn = Box<dyn FnOnce() -> Result<(), String> + Send>;
type ProbeFn = Box<dyn FnMut() -> String + Send>;

/// A running echo server of some subject.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<StopFn>,
    probe: Option<ProbeFn>,
}

impl Server {
    /// A server at `addr` that `stop` shuts down (called once: by
    /// [`Server::stop`], or on drop).
    pub fn new(
        addr: SocketAddr,
        stop: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Self {
        Server {
            addr,
            stop: Some(Box::new(stop)),
            probe: None,
        }
    }

    /// The same with a probe: a line on how the server spread the work of
    /// the load since the last call (connections and wake-ups per CPU),
    /// printed after each repetition.
    pub fn with_probe(mut self, probe: impl FnMut() -> String + Send + 'static) -> Self {
        self.probe = Some(Box::new(probe));
        self
    }

    /// The probe's line, if the server has a probe.
    pub fn probe(&mut self) -> Option<String> {
        self.probe.as_mut().map(|p| p())
    }

    /// Shuts the server down (its clients must have closed first).
    pub fn stop(mut self) -> Result<(), String> {
        match self.stop.take() {
            Some(f) => f(),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(f) = self.stop.take() {
            let _ = f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;

    fn ctx(cases: Option<&[&str]>) -> Ctx {
        Ctx {
            cpus: vec![0, 1],
            opts: Options {
                cases: cases.map(|c| c.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn case_names() {
        let names: Vec<String> = all_cases().iter().map(Case::name).collect();
        assert_eq!(
            names,
            [
                "64B-1conn",
                "64B-64conn",
                "64B-1000conn",
                "4KiB-1conn",
                "4KiB-64conn",
                "4KiB-1000conn"
            ]
        );
        let c = Case {
            conns: 64,
            size: 4096,
        };
        assert_eq!(c.latency_case(Some("fifo")), "4KiB-64conn-fifo");
        assert_eq!(c.rps_case(None), "4KiB-64conn-rps");
        assert_eq!(c.rps_case(Some("fifo")), "4KiB-64conn-fifo-rps");
        assert_eq!(series(Subject::ScxRt, Some("fifo")), "scx-rt fifo");
    }

    #[test]
    fn case_option_selects() {
        assert_eq!(cases(&ctx(None)).len(), 6);
        assert!(idle_selected(&ctx(None)));
        let only = ctx(Some(&["4KiB-1conn"]));
        assert_eq!(
            cases(&only),
            vec![Case {
                conns: 1,
                size: 4096
            }]
        );
        assert!(!idle_selected(&only));
        assert!(check_options(&only).is_ok());
        let idle = ctx(Some(&["idle"]));
        assert!(cases(&idle).is_empty() && idle_selected(&idle));
        assert!(check_options(&ctx(Some(&["64B-2conn"]))).is_err());
    }

    #[test]
    fn sizes_follow_options() {
        let mut c = ctx(None);
        let s = sizes(&c);
        assert_eq!(
            (s.measure, s.warmup),
            (Duration::from_secs(1), Duration::from_millis(200))
        );
        assert_eq!((s.reps, s.idle_conns), (3, 10_000));
        c.opts.quick = true;
        c.opts.duration_ms = Some(50);
        c.opts.tasks = Some(7);
        let s = sizes(&c);
        assert_eq!(
            (s.measure, s.warmup),
            (Duration::from_millis(50), Duration::from_millis(10))
        );
        assert_eq!((s.reps, s.idle_conns), (1, 7));
    }

    #[test]
    fn server_stops_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let n = Arc::new(AtomicUsize::new(0));
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (a, b) = (n.clone(), n.clone());
        Server::new(addr, move || {
            a.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .stop()
        .unwrap();
        drop(Server::new(addr, move || {
            b.fetch_add(1, Ordering::Relaxed);
            Err("x".into())
        }));
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
