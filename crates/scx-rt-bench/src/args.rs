//! Hand-rolled command-line parsing. Every mistake is a [`UsageError`]
//! (printed with the usage text, exit code 2), never a panic.

use std::fmt;
use std::path::PathBuf;

use crate::cpus::parse_cpu_list;

/// The usage text; workload lines are appended from the registry.
pub const USAGE: &str = "\
usage: scx-rt-bench WORKLOAD... [OPTIONS]

Runs scx-rt side by side with its peers (tokio, may, go, OS threads) and the
raw hardware/OS limits, and prints one row per (workload, case, subject) with
the ratio peer/scx-rt.

options:
  --cpus LIST    OS CPUs to use, e.g. 0,1 or 0-3 (default: every CPU this
                 process may run on); all must be in the process affinity
  --iters N      iterations per repetition (switch, yield-many: yields per
                 task; pingpong: round trips per case, after a fixed
                 warm-up of 1,000; ring: hops; kick: kicks per case;
                 preempt: slice expiries per slice; hog: round trips per
                 slice; preempt and hog cap long slices by time; wakeup:
                 wake-ups per case; bimodal: requests per load point; raw
                 rows use the same N)
  --tasks N      tasks per repetition (spawn, yield-many: tasks; skynet:
                 leaves, a power of 10; ring: tasks in the ring, >= 2;
                 chained-spawn: spawns in the chain; echo: idle
                 connections held, default 10,000)
  --reps R       repetitions; throughput rows report the p50 over them
  --duration MS  echo: measured milliseconds per case, subject and
                 repetition, after a warm-up of a fifth of it (default
                 1000, --quick 100)
  --quick        tiny sizes for a smoke run (a few seconds for `all`)
  --json FILE    also write the rows as JSON to FILE
  --plot DIR     also write SVG charts to DIR (created if missing): a
                 latency CDF per (workload, case) with latency rows, p99
                 versus offered load for bimodal
  --load LIST    bimodal: offered loads as fractions of capacity, e.g.
                 0.1,0.5,0.9 (each in (0, 1]; default 0.1-0.95, --quick
                 0.2,0.5,0.8)
  --case LIST    pingpong: run only these cases (same-cpu, cross-cpu,
                 2cpu-free), e.g. cross-cpu; echo: only these (64B-1conn,
                 64B-64conn, 64B-1000conn, 4KiB-1conn, 4KiB-64conn,
                 4KiB-1000conn, idle); bimodal: only these policies
                 (fifo, slice5us, slice30us, slice100us, central, qmap,
                 tokio) and mixes (skyloft, shinjuku), e.g.
                 central,tokio,shinjuku
  --idle-poll-us US
                 how long an idle scx-rt worker spins before it sleeps,
                 in microseconds (0: sleep at once; default: the
                 runtime's, 50) in switch, spawn, pingpong, skynet,
                 ring, yield-many, chained-spawn, wakeup, bimodal and
                 echo (both scx-rt servers)
                 (kick, preempt, hog and slice-timer set their own)
  --slice-timer MODE
                 what ends scx-rt slices (`Builder::slice_timer`):
                 signal (the default), thread, rt-thread or poll, in the
                 workloads that take --idle-poll-us (preempt, hog and
                 slice-timer measure every mode side by side)
  --trace FILE   record a scheduling trace of every scx-rt runtime the
                 run builds (`Builder::trace`) and write it at the
                 runtime's shutdown as Chrome trace-event JSON, which
                 ui.perfetto.dev opens; the first runtime writes FILE,
                 later ones FILE-2, FILE-3, ... (before the extension)
  --trace-capacity N
                 events per CPU each trace ring keeps (default 65536; a
                 full ring overwrites its oldest events)
  --no-peers     run scx-rt only (no peers, no raw limits)
  -h, --help     this text

workloads:
";

/// A bad command line.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed command line.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `-h` / `--help`.
    Help,
    /// Run workloads (in the order given, `all` expanded, duplicates dropped).
    Run(Options),
    /// Hidden: `__peer NAME WORKLOAD [OPTIONS]` runs one in-process peer in a
    /// child process (for peers with process-global configuration, such as
    /// may's worker count, and for measurements that need a fresh process,
    /// such as `echo`'s memory per idle connection) and prints its rows in
    /// the line protocol of the external peers (`peers/external.rs`).
    PeerChild { peer: String, options: Options },
}

/// Options shared by all workloads. Sizes left `None` take the workload's
/// default (or its `--quick` default).
#[derive(Debug, Default, PartialEq, Clone)]
pub struct Options {
    pub workloads: Vec<String>,
    pub cpus: Option<Vec<usize>>,
    pub iters: Option<u64>,
    pub tasks: Option<u64>,
    pub reps: Option<u64>,
    /// `--duration`: measured milliseconds per case (echo).
    pub duration_ms: Option<u64>,
    pub quick: bool,
    pub json: Option<PathBuf>,
    /// `--plot DIR`: where SVG charts go.
    pub plot: Option<PathBuf>,
    /// `--load`: offered loads (fractions of capacity, each in `(0, 1]`).
    pub loads: Option<Vec<f64>>,
    /// `--case`: the cases to run, for workloads with several (pingpong).
    pub cases: Option<Vec<String>>,
    /// `--idle-poll-us`: the scx-rt workers' idle poll, µs (`Builder::idle_poll`).
    pub idle_poll_us: Option<u64>,
    /// `--slice-timer`: the scx-rt slice timer (`Builder::slice_timer`).
    pub slice_timer: Option<scx_rt::SliceTimer>,
    /// `--trace FILE`: record and write a trace of each scx-rt runtime.
    pub trace: Option<PathBuf>,
    /// `--trace-capacity`: events per CPU of each trace ring.
    pub trace_capacity: Option<u64>,
    pub no_peers: bool,
}

/// Parses `args` (without the program name). `known` lists the workload
/// names; `all` stands for all of them.
pub fn parse<S: AsRef<str>>(args: &[S], known: &[&str]) -> Result<Command, UsageError> {
    let mut opts = Options::default();
    let mut peer_child: Option<String> = None;
    let mut it = args.iter().map(AsRef::as_ref).peekable();
    if it.peek() == Some(&"__peer") {
        it.next();
        let name = it
            .next()
            .ok_or_else(|| UsageError("__peer needs a peer name".into()))?;
        peer_child = Some(name.to_string());
    }
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline {
                Some(v) => Ok(v.to_string()),
                None => it
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--cpus" => {
                let v = value(flag)?;
                opts.cpus =
                    Some(parse_cpu_list(&v).map_err(|e| UsageError(format!("--cpus: {e}")))?);
            }
            "--iters" => opts.iters = Some(parse_count(flag, &value(flag)?)?),
            "--tasks" => opts.tasks = Some(parse_count(flag, &value(flag)?)?),
            "--reps" => opts.reps = Some(parse_count(flag, &value(flag)?)?),
            "--duration" => opts.duration_ms = Some(parse_count(flag, &value(flag)?)?),
            "--json" => {
                let v = value(flag)?;
                if v.is_empty() {
                    return Err(UsageError("--json needs a file name".into()));
                }
                opts.json = Some(PathBuf::from(v));
            }
            "--plot" => {
                let v = value(flag)?;
                if v.is_empty() {
                    return Err(UsageError("--plot needs a directory".into()));
                }
                opts.plot = Some(PathBuf::from(v));
            }
            "--trace" => {
                let v = value(flag)?;
                if v.is_empty() {
                    return Err(UsageError("--trace needs a file name".into()));
                }
                opts.trace = Some(PathBuf::from(v));
            }
            "--trace-capacity" => {
                let n = parse_count(flag, &value(flag)?)?;
                let max = scx_rt::consts::MAX_TRACE_CAPACITY as u64;
                if n > max {
                    return Err(UsageError(format!("--trace-capacity: at most {max}")));
                }
                opts.trace_capacity = Some(n);
            }
            "--load" => opts.loads = Some(parse_loads(&value(flag)?)?),
            "--case" => opts.cases = Some(parse_names(flag, &value(flag)?)?),
            "--idle-poll-us" => opts.idle_poll_us = Some(parse_u64(flag, &value(flag)?)?),
            "--slice-timer" => {
                opts.slice_timer = Some(match value(flag)?.as_str() {
                    "signal" => scx_rt::SliceTimer::Signal,
                    "thread" => scx_rt::SliceTimer::Thread,
                    "rt-thread" => scx_rt::SliceTimer::RealtimeThread,
                    "poll" => scx_rt::SliceTimer::Poll,
                    v => {
                        return Err(UsageError(format!(
                            "--slice-timer takes signal, thread, rt-thread or poll, not `{v}`"
                        )))
                    }
                })
            }
            "--quick" | "--no-peers" if inline.is_some() => {
                return Err(UsageError(format!("{flag} takes no value")));
            }
            "--quick" => opts.quick = true,
            "--no-peers" => opts.no_peers = true,
            f if f.starts_with('-') => return Err(UsageError(format!("unknown option `{f}`"))),
            "all" => {
                for k in known {
                    push_unique(&mut opts.workloads, k);
                }
            }
            w if known.contains(&w) => push_unique(&mut opts.workloads, w),
            w => {
                return Err(UsageError(format!(
                    "unknown workload `{w}` (known: {}, all)",
                    known.join(", ")
                )))
            }
        }
    }
    if opts.workloads.is_empty() {
        return Err(UsageError("no workload given".into()));
    }
    if opts.trace_capacity.is_some() && opts.trace.is_none() {
        return Err(UsageError("--trace-capacity needs --trace FILE".into()));
    }
    Ok(match peer_child {
        Some(peer) => Command::PeerChild {
            peer,
            options: opts,
        },
        None => Command::Run(opts),
    })
}

fn push_unique(v: &mut Vec<String>, w: &str) {
    if !v.iter().any(|x| x == w) {
        v.push(w.to_string());
    }
}

/// A list of offered loads, fractions of capacity in `(0, 1]`
/// (`0.1,0.5,0.9`); a load above 1 (100%) is a usage error.
fn parse_loads(s: &str) -> Result<Vec<f64>, UsageError> {
    let mut loads = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let v: f64 = part
            .parse()
            .map_err(|_| UsageError(format!("--load: `{part}` is not a number")))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(UsageError(format!("--load: {part} must be above 0")));
        }
        if v > 1.0 {
            return Err(UsageError(format!(
                "--load: {part} is above 100% of capacity (give fractions, e.g. 0.95)"
            )));
        }
        loads.push(v);
    }
    Ok(loads)
}

/// A positive count; `_` separators allowed (`1_000_000`).
fn parse_count(flag: &str, s: &str) -> Result<u64, UsageError> {
    match parse_u64(flag, s)? {
        0 => Err(UsageError(format!("{flag} must be at least 1"))),
        n => Ok(n),
    }
}

/// A non-negative integer; `_` separators allowed.
fn parse_u64(flag: &str, s: &str) -> Result<u64, UsageError> {
    let digits: String = s.chars().filter(|&c| c != '_').collect();
    match digits.parse::<u64>() {
        Ok(n) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(UsageError(format!("{flag}: `{s}` is not a number"))),
    }
}

/// A comma-separated list of non-empty names (checked by the workload).
fn parse_names(flag: &str, s: &str) -> Result<Vec<String>, UsageError> {
    let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(UsageError(format!("{flag}: empty name in `{s}`")));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["switch", "spawn", "pingpong", "skynet"];

    fn run(args: &[&str]) -> Result<Options, UsageError> {
        match parse(args, KNOWN)? {
            Command::Run(o) => Ok(o),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_options() {
        let o = run(&[
            "switch",
            "--cpus",
            "0-1",
            "--iters=1_000",
            "--tasks",
            "10",
            "--reps",
            "3",
            "--json",
            "out.json",
            "--plot=plots",
            "--load",
            "0.1, 0.5,1",
            "--case",
            "same-cpu,cross-cpu",
            "--idle-poll-us=0",
            "--slice-timer",
            "rt-thread",
            "--duration",
            "250",
            "--trace",
            "t.json",
            "--trace-capacity=1_024",
            "--no-peers",
            "--quick",
        ])
        .unwrap();
        assert_eq!(o.workloads, vec!["switch"]);
        assert_eq!(o.cpus, Some(vec![0, 1]));
        assert_eq!((o.iters, o.tasks, o.reps), (Some(1000), Some(10), Some(3)));
        assert_eq!(o.json, Some(PathBuf::from("out.json")));
        assert_eq!(o.plot, Some(PathBuf::from("plots")));
        assert_eq!(o.loads, Some(vec![0.1, 0.5, 1.0]));
        assert_eq!(
            o.cases,
            Some(vec!["same-cpu".to_string(), "cross-cpu".to_string()])
        );
        assert_eq!(o.idle_poll_us, Some(0));
        assert_eq!(o.slice_timer, Some(scx_rt::SliceTimer::RealtimeThread));
        assert_eq!(o.duration_ms, Some(250));
        assert_eq!(o.trace, Some(PathBuf::from("t.json")));
        assert_eq!(o.trace_capacity, Some(1024));
        assert!(o.no_peers && o.quick);
    }

    #[test]
    fn all_expands_in_order_without_duplicates() {
        let o = run(&["skynet", "all", "switch"]).unwrap();
        assert_eq!(o.workloads, vec!["skynet", "switch", "spawn", "pingpong"]);
        let d = run(&["all"]).unwrap();
        assert_eq!(
            (d.cpus, d.iters, d.quick, d.no_peers),
            (None, None, false, false)
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        let bad: &[&[&str]] = &[
            &[],
            &["nope"],
            &["switch", "--bogus"],
            &["switch", "--iters"],
            &["switch", "--iters", "ten"],
            &["switch", "--iters", "0"],
            &["switch", "--iters", "-5"],
            &["switch", "--iters", "1e6"],
            &["switch", "--iters", "99999999999999999999999"],
            &["switch", "--reps", ""],
            &["switch", "--cpus", "a"],
            &["switch", "--cpus", "3-1"],
            &["switch", "--cpus="],
            &["switch", "--json"],
            &["switch", "--json="],
            &["switch", "--quick=1"],
            &["switch", "--plot"],
            &["switch", "--plot="],
            &["switch", "--load"],
            &["switch", "--load", "1.5"],
            &["switch", "--load", "0.5,1.01"],
            &["switch", "--load", "0"],
            &["switch", "--load", "-0.5"],
            &["switch", "--load", "0.5,"],
            &["switch", "--load", "NaN"],
            &["switch", "--load", "inf"],
            &["switch", "--load", "50%"],
            &["switch", "--case"],
            &["switch", "--case", ""],
            &["switch", "--case", "a,,b"],
            &["switch", "--idle-poll-us"],
            &["switch", "--idle-poll-us", "-1"],
            &["switch", "--idle-poll-us", "5us"],
            &["switch", "--slice-timer", "tick"],
            &["switch", "--duration"],
            &["switch", "--duration", "0"],
            &["switch", "--duration", "1s"],
            &["switch", "--trace"],
            &["switch", "--trace="],
            &["switch", "--trace-capacity", "8"],
            &["switch", "--trace", "t.json", "--trace-capacity", "0"],
            &[
                "switch",
                "--trace",
                "t.json",
                "--trace-capacity",
                "99999999999",
            ],
            &["--quick"],
            &["__peer"],
        ];
        for args in bad {
            assert!(parse(args, KNOWN).is_err(), "accepted {args:?}");
        }
    }

    #[test]
    fn help_and_peer_child() {
        assert_eq!(parse(&["--help"], KNOWN), Ok(Command::Help));
        assert_eq!(parse(&["switch", "-h"], KNOWN), Ok(Command::Help));
        match parse(&["__peer", "may", "spawn", "--tasks", "5"], KNOWN).unwrap() {
            Command::PeerChild { peer, options } => {
                assert_eq!(peer, "may");
                assert_eq!(options.workloads, vec!["spawn"]);
                assert_eq!(options.tasks, Some(5));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
