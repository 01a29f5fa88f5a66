//! The Go peer (goroutines): `crates/scx-rt-bench/go/peer.go`, a small
//! standard-library-only Go program, run as a child process with
//! `go run go/peer.go WORKLOAD --case CASE --unit UNIT [sizes]` when a `go`
//! executable is on `PATH` (else Go rows are left out with a one-line note
//! on stderr). It prints rows in the [`crate::peers::external`] line
//! protocol with subject `go`; a row it cannot print, a bad line or a
//! failed child is reported as this peer's error, never a panic.
//!
//! The Rust side resolves every size (defaults, `--quick`, `--iters`, …)
//! and the case and unit from the workload's own row builder, and passes
//! them explicitly, so the Go program holds no defaults and no naming of
//! its own. The child runs restricted to the workload's CPUs (it inherits
//! the mask of the thread that starts it, see [`crate::pin::on_cpus`])
//! with `GOMAXPROCS` set to their count: one for `switch` and `pingpong`
//! `same-cpu`, two for the other `pingpong` cases, all of `--cpus`
//! otherwise.
//!
//! Covered: `switch` (`runtime.Gosched`), `spawn`, `pingpong` (all three
//! cases; `cross-cpu` locks each goroutine to an OS thread pinned with
//! `sched_setaffinity`), `skynet`, `ring` (cap-1 channels, as every
//! subject), `yield-many`, `chained-spawn`, `wakeup`, and `echo`, where
//! the Go program is only the server (`go run peer.go echo --buf N`, the
//! net package, a goroutine per connection; it prints `listen ADDR` and
//! serves until its stdin closes, see [`external::start_server`]) and the
//! bench's own clients measure it as every other subject, and `bimodal`,
//! where the Go program runs one whole load point itself (the same
//! schedule from the same seed, a generator goroutine locked to its
//! thread on the generator's CPU, a goroutine per request preempted only
//! by Go's own 10 ms signal) and prints each request's latency and
//! lateness, which the bench turns into the rows it makes for its own
//! subjects ([`bimodal_point`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::peers::external;
use crate::report::{Row, Subject};
use crate::spec::{chained_spawn, echo, pingpong, ring, skynet, spawn, switch, wakeup, yield_many};

/// How long `go run` may take to build the program and listen (`echo`).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// The Go program.
fn program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join("peer.go")
}

/// The `go` executable on `PATH`, if any.
fn go_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
}

static NOTE: Once = Once::new();

/// Whether the Go peer can run (peers enabled, `go` on `PATH`, program
/// present); otherwise prints a one-time note on stderr.
pub fn ready(ctx: &Ctx) -> bool {
    if !ctx.peers() {
        return false;
    }
    if go_binary().is_none() {
        NOTE.call_once(|| eprintln!("go: no `go` on PATH, Go rows skipped"));
        return false;
    }
    let prog = program();
    if !prog.is_file() {
        NOTE.call_once(|| eprintln!("go: {} missing, Go rows skipped", prog.display()));
        return false;
    }
    true
}

/// One invocation of the Go program.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    /// Arguments after the program path: the workload, then flags.
    pub args: Vec<String>,
    /// The CPUs the child may use (`GOMAXPROCS` is their count).
    pub cpus: Vec<usize>,
}

impl Invocation {
    fn new(workload: &str, case: &str, unit: &str, cpus: &[usize]) -> Self {
        Invocation {
            args: [workload, "--case", case, "--unit", unit]
                .map(String::from)
                .to_vec(),
            cpus: cpus.to_vec(),
        }
    }

    /// Case and unit taken from a row the workload's own builder made.
    fn like(workload: &str, template: &Row, cpus: &[usize]) -> Self {
        Self::new(workload, &template.case, &template.unit, cpus)
    }

    fn flag(mut self, name: &str, value: impl ToString) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_string());
        self
    }
}

/// What to run for `workload` (`None`: no Go analogue here).
pub fn invocation(ctx: &Ctx, workload: &str) -> Option<Invocation> {
    let go = Subject::Go;
    let inv = match workload {
        switch::NAME => {
            let s = switch::sizes(ctx);
            Invocation::like(workload, &switch::row(go, s.iters, &[]), &ctx.cpus[..1])
                .flag("iters", s.iters)
                .flag("reps", s.reps)
        }
        spawn::NAME => {
            let s = spawn::sizes(ctx);
            Invocation::like(workload, &spawn::row(go, s.tasks, &[]), &ctx.cpus)
                .flag("tasks", s.tasks)
                .flag("reps", s.reps)
        }
        skynet::NAME => {
            let s = skynet::sizes(ctx);
            Invocation::like(workload, &skynet::row(go, s.leaves, &[]), &ctx.cpus)
                .flag("tasks", s.leaves)
                .flag("reps", s.reps)
        }
        ring::NAME => {
            let s = ring::sizes(ctx);
            Invocation::like(workload, &ring::row(go, s.tasks, s.hops, &[]), &ctx.cpus)
                .flag("tasks", s.tasks)
                .flag("iters", s.hops)
                .flag("reps", s.reps)
                .flag("cap", ring::CHANNEL_CAP)
        }
        yield_many::NAME => {
            let s = yield_many::sizes(ctx);
            Invocation::like(workload, &yield_many::row(go, &s, &[]), &ctx.cpus)
                .flag("tasks", s.tasks)
                .flag("iters", s.yields)
                .flag("reps", s.reps)
        }
        chained_spawn::NAME => {
            let s = chained_spawn::sizes(ctx);
            Invocation::like(workload, &chained_spawn::row(go, s.tasks, &[]), &ctx.cpus)
                .flag("tasks", s.tasks)
                .flag("reps", s.reps)
        }
        _ => return None,
    };
    Some(inv)
}

/// The invocation for one `pingpong` case (`None`: no Go analogue of the
/// case; all three have one). `cross-cpu` passes `--pin A,B`: each
/// goroutine locks itself to an OS thread and pins it to its CPU.
pub fn pingpong_invocation(ctx: &Ctx, p: pingpong::Placement) -> Option<Invocation> {
    let s = pingpong::sizes(ctx);
    let cpus = pingpong::cpus_of(ctx, p);
    let inv = Invocation::new(pingpong::NAME, p.case(), "ns", &cpus)
        .flag("iters", s.iters)
        .flag("warmup", pingpong::WARMUP)
        .flag("cap", pingpong::CHANNEL_CAP);
    Some(match p {
        // The pinger's CPU, then the echo's.
        pingpong::Placement::CrossCpu => inv.flag("pin", format!("{},{}", cpus[0], cpus[1])),
        pingpong::Placement::SameCpu | pingpong::Placement::Free => inv,
    })
}

/// Go rows for one `pingpong` case (call only when [`ready`]).
pub fn pingpong_rows(ctx: &Ctx, p: pingpong::Placement) -> Result<Vec<Row>, String> {
    let inv = pingpong_invocation(ctx, p)
        .ok_or_else(|| format!("no Go analogue of pingpong `{}`", p.case()))?;
    run_go(inv)
}

/// The invocation for one `wakeup` case.
pub fn wakeup_invocation(ctx: &Ctx, shape: &wakeup::Shape) -> Invocation {
    Invocation::new(wakeup::NAME, &shape.case, "ns", &ctx.cpus)
        .flag("messengers", shape.messengers)
        .flag("workers", shape.workers)
        .flag("rounds", shape.rounds)
        .flag("warmup", shape.warmup)
        .flag("think-ns", wakeup::THINK.as_nanos())
}

/// Appends the Go rows of `workload` when [`ready`] (a failure is
/// reported on stderr, as for every peer).
pub fn peer(ctx: &Ctx, workload: &str, out: &mut Vec<Row>) {
    if ready(ctx) {
        ctx.peer(workload, Subject::Go, out, || rows(ctx, workload));
    }
}

/// Go rows for `workload` (call only when [`ready`]).
pub fn rows(ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    let inv = invocation(ctx, workload).ok_or_else(|| format!("no Go analogue of `{workload}`"))?;
    run_go(inv)
}

/// Go rows for one `wakeup` case (call only when [`ready`]).
pub fn wakeup_rows(ctx: &Ctx, shape: &wakeup::Shape) -> Result<Vec<Row>, String> {
    run_go(wakeup_invocation(ctx, shape))
}

/// The `echo` server's invocation: every CPU of `--cpus`.
pub fn echo_invocation(ctx: &Ctx) -> Invocation {
    Invocation {
        args: vec!["echo".into(), "--buf".into(), echo::BUF.to_string()],
        cpus: ctx.cpus.clone(),
    }
}

/// Starts the Go `echo` server (call only when [`ready`]).
pub fn echo_server(ctx: &Ctx) -> Result<echo::Server, String> {
    let go = go_binary().ok_or("no `go` on PATH")?;
    let mut cmd = Command::new(go);
    cmd.arg("run").arg(program());
    serve_with(cmd, echo_invocation(ctx))
}

/// Starts `base` for `inv` as a server child restricted to `inv.cpus`
/// (the child inherits the mask of the thread that starts it).
fn serve_with(mut cmd: Command, inv: Invocation) -> Result<echo::Server, String> {
    cmd.args(&inv.args);
    cmd.env("GOMAXPROCS", inv.cpus.len().to_string());
    let child = crate::pin::on_cpus(&inv.cpus, move || {
        external::start_server(cmd, LISTEN_TIMEOUT)
    })?;
    Ok(echo::Server::new(child.addr, move || child.stop()))
}

/// What the Go program measured at one `bimodal` load point: per request
/// in schedule order, its latency and how late the generator handed it
/// over (ns); the point's span (first arrival to last completion, ns); the
/// run-delay of its worker threads and of its generator (ns).
#[derive(Debug, PartialEq)]
pub struct BimodalPoint {
    pub lat: Vec<u64>,
    pub late: Vec<u64>,
    pub span: u64,
    pub worker_delay: u64,
    pub gen_delay: u64,
}

/// The invocation of one `bimodal` load point: `n` requests of the mix
/// (`short_ns`, `long_ns`, `long_frac`) at `rate` per second from the
/// schedule of `seed`, the workers on `workers` and the generator pinned
/// to `gen_cpu` (unpinned, sharing the workers' CPUs, when `None`); the
/// second value is `GOMAXPROCS`, the workers' CPU count plus one: the
/// generator's goroutine, locked to its thread and spinning, holds a
/// processor for the whole run.
pub fn bimodal_invocation(
    mix: &crate::workloads::bimodal_gen::Mix,
    rate: f64,
    n: usize,
    seed: u64,
    workers: &[usize],
    gen_cpu: Option<usize>,
) -> (Invocation, usize) {
    let mut cpus = workers.to_vec();
    cpus.extend(gen_cpu);
    let procs = workers.len() + 1;
    let inv = Invocation {
        args: vec![
            "bimodal".into(),
            "--case".into(),
            mix.name.into(),
            "--unit".into(),
            "ns".into(),
        ],
        cpus,
    }
    .flag("iters", n)
    .flag("short-ns", mix.short_ns)
    .flag("long-ns", mix.long_ns)
    .flag("long-frac", mix.long_frac)
    .flag("rate", rate)
    .flag("seed", seed)
    .flag("gen-cpu", gen_cpu.map_or(-1, |c| c as i64));
    (inv, procs)
}

/// Runs one `bimodal` load point in the Go program.
pub fn bimodal_point(inv: Invocation, procs: usize) -> Result<BimodalPoint, String> {
    let go = go_binary().ok_or("no `go` on PATH")?;
    let mut cmd = Command::new(go);
    cmd.arg("run").arg(program());
    bimodal_with(cmd, inv, procs)
}

fn bimodal_with(mut cmd: Command, inv: Invocation, procs: usize) -> Result<BimodalPoint, String> {
    cmd.args(&inv.args);
    cmd.env("GOMAXPROCS", procs.to_string());
    let out = crate::pin::on_cpus(&inv.cpus, move || {
        cmd.stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("start the Go program: {e}"))
    })?;
    if !out.status.success() {
        return Err(format!("the Go program failed: {}", out.status));
    }
    parse_bimodal(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `bimodal`'s output (the Go program's docs).
fn parse_bimodal(out: &str) -> Result<BimodalPoint, String> {
    let mut p = BimodalPoint {
        lat: Vec::new(),
        late: Vec::new(),
        span: 0,
        worker_delay: 0,
        gen_delay: 0,
    };
    let (mut span, mut delay) = (false, false);
    let num = |f: Option<&str>| -> Result<u64, String> {
        let f = f.ok_or("a short line")?;
        // A generator that ran early by a rounding reads as 0.
        f.parse::<i64>()
            .map(|v| v.max(0) as u64)
            .map_err(|e| format!("`{f}`: {e}"))
    };
    for line in out.lines() {
        let mut f = line.split('\t');
        match f.next() {
            Some("req") => {
                p.lat.push(num(f.next())?);
                p.late.push(num(f.next())?);
            }
            Some("span") => {
                p.span = num(f.next())?;
                span = true;
            }
            Some("delay") => {
                p.worker_delay = num(f.next())?;
                p.gen_delay = num(f.next())?;
                delay = true;
            }
            _ => {}
        }
    }
    if !span || !delay || p.lat.is_empty() {
        return Err("the Go program's bimodal output is incomplete".into());
    }
    Ok(p)
}

fn run_go(inv: Invocation) -> Result<Vec<Row>, String> {
    let go = go_binary().ok_or("no `go` on PATH")?;
    let mut cmd = Command::new(go);
    cmd.arg("run").arg(program());
    run_with(cmd, inv)
}

/// Runs `base` (the program, before the workload argument) for `inv` and
/// checks that every row it printed is a Go row of the workload asked for.
fn run_with(mut cmd: Command, inv: Invocation) -> Result<Vec<Row>, String> {
    let workload = inv.args[0].clone();
    cmd.args(&inv.args);
    cmd.env("GOMAXPROCS", inv.cpus.len().to_string());
    let rows = crate::pin::on_cpus(&inv.cpus, move || external::run(cmd))?;
    if rows.is_empty() {
        return Err(format!("the Go program printed no row for `{workload}`"));
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.subject != Subject::Go || r.workload != workload)
    {
        return Err(format!(
            "the Go program printed a `{}` row of `{}` for `{workload}`",
            r.subject.as_str(),
            r.workload
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;

    fn ctx(quick: bool) -> Ctx {
        Ctx {
            cpus: vec![0],
            opts: Options {
                quick,
                iters: Some(7),
                ..Default::default()
            },
        }
    }

    /// A stand-in for `go run peer.go`: a shell script that prints
    /// `$output` (its arguments are the invocation's).
    fn fake(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script).arg("fake-go");
        c
    }

    #[test]
    fn bimodal_points_parse_and_incomplete_output_is_an_error() {
        let mix = crate::workloads::bimodal_gen::MIXES[0];
        let (inv, procs) = bimodal_invocation(&mix, 1000.0, 3, 7, &[0], Some(1));
        assert_eq!(inv.cpus, vec![0, 1]);
        assert_eq!(procs, 2);
        assert!(inv.args.windows(2).any(|w| w == ["--gen-cpu", "1"]));
        let out = "go peer: x\nreq\t500\t3\nreq\t9000\t-1\nreq\t7\t0\nspan\t123\ndelay\t4\t5\n";
        let p = parse_bimodal(out).unwrap();
        assert_eq!(p.lat, vec![500, 9000, 7]);
        assert_eq!(p.late, vec![3, 0, 0]);
        assert_eq!((p.span, p.worker_delay, p.gen_delay), (123, 4, 5));
        assert!(parse_bimodal("req\t1\t1\n").is_err());
        assert!(parse_bimodal("req\tx\t1\nspan\t1\ndelay\t1\t1\n").is_err());
        // Through a stand-in for the program, as a real run goes.
        let (inv, procs) = bimodal_invocation(&mix, 1000.0, 1, 7, &[0], None);
        assert_eq!(inv.cpus, vec![0]);
        let cmd = fake("printf 'req\\t10\\t1\\nspan\\t10\\ndelay\\t0\\t0\\n'");
        let p = bimodal_with(cmd, inv, procs).unwrap();
        assert_eq!(p.lat, vec![10]);
    }

    #[test]
    fn invocations_carry_resolved_sizes_case_and_unit() {
        let c = ctx(true);
        let inv = invocation(&c, "switch").unwrap();
        assert_eq!(inv.cpus, vec![0]);
        let want: Vec<String> = [
            "switch",
            "--case",
            "1cpu-2tasks",
            "--unit",
            "ns/switch",
            "--iters",
            "7",
            "--reps",
            "2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(inv.args, want);
        let pp = pingpong_invocation(&c, pingpong::Placement::SameCpu).unwrap();
        assert_eq!(
            &pp.args[..5],
            ["pingpong", "--case", "same-cpu", "--unit", "ns"]
        );
        assert!(pp.args.windows(2).any(|p| p == ["--warmup", "1000"]));
        assert!(!pp.args.iter().any(|a| a == "--pin"));
        let two = Ctx {
            cpus: vec![2, 5],
            opts: Options::default(),
        };
        let cross = pingpong_invocation(&two, pingpong::Placement::CrossCpu).unwrap();
        assert_eq!(cross.cpus, vec![2, 5]);
        assert!(cross.args.windows(2).any(|p| p == ["--pin", "2,5"]));
        let free = pingpong_invocation(&two, pingpong::Placement::Free).unwrap();
        assert_eq!((free.cpus.len(), free.args[2].as_str()), (2, "2cpu-free"));
        for w in ["spawn", "skynet", "ring", "yield-many", "chained-spawn"] {
            assert_eq!(invocation(&c, w).unwrap().args[0], w);
        }
        let ring = invocation(&c, "ring").unwrap();
        assert!(ring.args.windows(2).any(|p| p == ["--cap", "1"]));
        // pingpong and wakeup run per case (above, below), bimodal per
        // load point (`bimodal_invocation`).
        assert!(invocation(&c, "pingpong").is_none());
        assert!(invocation(&c, "wakeup").is_none());
        assert!(invocation(&c, "bimodal").is_none());
        let e = echo_invocation(&c);
        assert_eq!(e.args, ["echo", "--buf", "4096"]);
        assert_eq!(e.cpus, vec![0]);
        let [fit, _] = wakeup::shapes(1, 100);
        let w = wakeup_invocation(&c, &fit);
        assert!(w.args.windows(2).any(|p| p == ["--case", "fit-1msg-1wkr"]));
        assert!(w.args.windows(2).any(|p| p == ["--think-ns", "2000"]));
    }

    #[test]
    fn parses_rows_and_reports_bad_output() {
        let inv = || invocation(&ctx(true), "spawn").unwrap();
        let ok = fake(
            "echo compiling >&2; echo \"args $*\"; \
             printf 'row\\t%s\\t%s\\tgo\\t%s\\t2000\\t1.5\\t1.25\\tnull\\tnull\\n' \"$1\" \"$3\" \"$5\"",
        );
        let rows = run_with(ok, inv()).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.workload.as_str(), r.case.as_str(), r.unit.as_str()),
            ("spawn", "empty-tasks", "ns/task")
        );
        assert_eq!(
            (r.subject, r.n, r.mean, r.p50),
            (Subject::Go, 2000, 1.5, Some(1.25))
        );
        let bad = [
            "printf 'row\\tspawn\\tc\\tgo\\tns\\tmany\\t1\\tnull\\tnull\\tnull\\n'",
            "echo nothing useful",
            "printf 'row\\tspawn\\tc\\tscx-rt\\tns\\t1\\t1\\tnull\\tnull\\tnull\\n'",
            "printf 'row\\tskynet\\tc\\tgo\\tns\\t1\\t1\\tnull\\tnull\\tnull\\n'",
            "printf 'row\\tspawn\\tc\\tgo\\tns\\t1\\t1\\tnull\\tnull\\tnull\\n'; exit 3",
        ];
        for script in bad {
            assert!(run_with(fake(script), inv()).is_err(), "{script}");
        }
    }

    #[test]
    fn echo_server_children() {
        // The fake serves (waits) until stdin closes; it sees the
        // invocation's arguments and GOMAXPROCS.
        let ok = fake(
            "test \"$1 $2 $3 $GOMAXPROCS\" = 'echo --buf 4096 1' || exit 9; \
             printf 'listen\\t127.0.0.1:5555\\n'; cat >/dev/null",
        );
        let server = serve_with(ok, echo_invocation(&ctx(false))).unwrap();
        assert_eq!(server.addr.port(), 5555);
        server.stop().unwrap();
        let bad = fake("echo 'go: build failed' >&2; exit 1");
        let e = serve_with(bad, echo_invocation(&ctx(false))).err().unwrap();
        assert!(e.contains("exited before listening"), "{e}");
    }
}
