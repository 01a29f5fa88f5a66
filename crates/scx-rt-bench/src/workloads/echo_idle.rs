//! `echo`'s idle connections: what holding `N` idle connections costs a
//! server, in memory and in CPU time (scx-rt, and tokio beside it).
//!
//! The server runs in a fresh child process (`__peer scx-rt echo`,
//! `__peer tokio echo`, a server child of [`external::start_server`]):
//! memory freed by earlier measurements but still resident in the
//! allocator could otherwise be reused and hide growth, and the client
//! ends, held by the parent, neither add to its memory nor share its
//! open-file limit (`N` fds in each process, raised when needed; without
//! the permission to raise it the measurement is skipped with the
//! reason). The child answers two questions on its stdin: `rss` (its
//! resident set, `/proc/self/statm`, bytes) and `cpu` (the CPU time of all
//! its threads but the main one, which answers: `/proc/self/task/*/
//! schedstat`, ns). The parent:
//!
//! 1. opens one connection, echoes once and closes it, so that one-time
//!    allocations (a CPU's reactor, the first stack slab, tokio's I/O
//!    driver) come before the baseline; asks `rss`;
//! 2. opens `N` connections in batches of 64, each echoing one 64-byte
//!    message, so that every server task has read, written, and parked in
//!    its next read; after 100 ms asks `rss` again: the growth over `N` is
//!    the memory per idle connection, the task's stack pages, its control
//!    block, its socket's registration and buffer included;
//! 3. asks `cpu` before and after an idle window of 1 s (200 ms with
//!    `--quick`) in which nothing is sent: the server's CPU time in the
//!    window, per second (the child names on stderr any thread that ran
//!    for 0.1 ms or more in it);
//! 4. echoes once more on the first and last connections (still served),
//!    closes everything and stops the child.
//!
//! Rows: `idle-Nconn-rss` (`B/conn`, in `mean`) and `idle-Nconn-cpu`
//! (`cpu-ms/s`), `n` = N.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::echo::{scx_server, Policy};
use super::echo_clients::{CONNECT_BATCH, STALL};
use crate::ctx::Ctx;
use crate::peers::external::{self, ServerChild};
use crate::peers::tokio;
use crate::report::{PlotData, Row, Subject};
use crate::spec::echo::{idle_cases, sizes, NAME};

/// Bytes of the one message each idle connection echoes.
const MSG: usize = 64;

/// How long the child has to start listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Parent side: the rows of `subject`'s idle measurement.
pub fn rows(ctx: &Ctx, subject: Subject) -> Result<Vec<Row>, String> {
    let s = sizes(ctx);
    let n = s.idle_conns as usize;
    raise_nofile(s.idle_conns, "this process holds their client ends")?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["__peer", subject.as_str(), NAME]);
    cmd.args(external::forwarded_args(ctx));
    let mut child = external::start_server(cmd, LISTEN_TIMEOUT)?;
    let addr = child.addr;
    let measured = measure(addr, &mut |q| ask_u64(&mut child, q), n, s.idle_window);
    let stopped = child.stop();
    let m = measured?;
    stopped?;
    let (rss_case, cpu_case) = idle_cases(s.idle_conns);
    let row = |case: String, unit: &str, value: f64| Row {
        workload: NAME.into(),
        case,
        subject,
        unit: unit.into(),
        n: s.idle_conns,
        mean: value,
        p50: None,
        p99: None,
        p999: None,
        plot: PlotData::None,
    };
    Ok(vec![
        row(rss_case, "B/conn", m.rss_growth / n as f64),
        row(
            cpu_case,
            "cpu-ms/s",
            m.cpu_ns / 1e6 / m.window.as_secs_f64(),
        ),
    ])
}

/// Raises the open-file limit to hold `conns` sockets and some spare.
fn raise_nofile(conns: u64, why: &str) -> Result<(), String> {
    let want = conns + 64;
    let (cur, max) = scx_rt_sys::rlimit::nofile().map_err(|e| format!("getrlimit: {e}"))?;
    scx_rt_sys::rlimit::raise_nofile(want).map_err(|e| {
        format!(
            "{conns} idle connections need {want} fds ({why}): RLIMIT_NOFILE is {cur} \
             (hard {max}) and raising it failed: {e}"
        )
    })?;
    Ok(())
}

struct Measured {
    rss_growth: f64,
    cpu_ns: f64,
    window: Duration,
}

fn ask_u64(child: &mut ServerChild, word: &str) -> Result<u64, String> {
    let v = child.ask(word)?;
    v.parse()
        .map_err(|_| format!("the server child answered `{word}` with `{v}`"))
}

/// Steps 1 to 4 of the module docs against the server at `addr`; `ask`
/// puts a question to it.
fn measure(
    addr: SocketAddr,
    ask: &mut dyn FnMut(&str) -> Result<u64, String>,
    n: usize,
    window: Duration,
) -> Result<Measured, String> {
    drop(open_idle(addr, 1)?);
    std::thread::sleep(Duration::from_millis(50));
    let rss0 = ask("rss")?;
    let mut held = open_idle(addr, n)?;
    std::thread::sleep(Duration::from_millis(100));
    let rss1 = ask("rss")?;
    let cpu0 = ask("cpu")?;
    let t = Instant::now();
    std::thread::sleep(window);
    let cpu1 = ask("cpu")?;
    let elapsed = t.elapsed();
    for i in [0, n - 1] {
        echo_once(&mut held[i], i).map_err(|e| format!("after the idle window: {e}"))?;
    }
    Ok(Measured {
        rss_growth: rss1 as f64 - rss0 as f64,
        cpu_ns: cpu1.saturating_sub(cpu0) as f64,
        window: elapsed,
    })
}

/// Child side (`__peer scx-rt echo`, `__peer tokio echo`): serves and
/// answers `rss` and `cpu` until stdin closes.
pub fn run_child(subject: Subject, ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    if workload != NAME {
        return Err(format!(
            "`__peer {}` serves only {NAME}'s idle connections",
            subject.as_str()
        ));
    }
    raise_nofile(
        sizes(ctx).idle_conns,
        "this process holds their server ends",
    )?;
    let server = match subject {
        Subject::ScxRt => scx_server(ctx, Policy::Default)?,
        Subject::Tokio => tokio::echo_server(&ctx.cpus)?,
        other => return Err(format!("no idle measurement for {}", other.as_str())),
    };
    // std's stdout is line-buffered: each line is out after println.
    println!("listen\t{}", server.addr);
    let mut last = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let q = line.trim();
        println!("{q}\t{}", answer(q, &mut last)?);
    }
    server.stop()?;
    Ok(Vec::new())
}

type Snapshot = Vec<(String, u32, u64)>;

/// The child's answer to `q` (`rss` or `cpu`); `last` keeps the previous
/// `cpu` snapshot.
fn answer(q: &str, last: &mut Option<Snapshot>) -> Result<u64, String> {
    match q {
        "rss" => rss(),
        "cpu" => {
            let now = thread_cpu()?;
            if let Some(before) = last.as_deref() {
                report_busy(before, &now);
            }
            let total = now.iter().map(|t| t.2).sum();
            *last = Some(now);
            Ok(total)
        }
        other => Err(format!("unknown question `{other}`")),
    }
}

/// Names on stderr the threads that ran 0.1 ms or more between two
/// snapshots.
fn report_busy(before: &[(String, u32, u64)], now: &[(String, u32, u64)]) {
    let busy: Vec<String> = now
        .iter()
        .filter_map(|(name, tid, ns)| {
            let b = before
                .iter()
                .find(|(_, t, _)| t == tid)
                .map_or(0, |(_, _, b)| *b);
            let d = ns.saturating_sub(b);
            (d >= 100_000).then(|| format!("{name} {:.2} ms", d as f64 / 1e6))
        })
        .collect();
    if !busy.is_empty() {
        eprintln!("{NAME}: idle window: threads that ran: {}", busy.join(", "));
    }
}

/// Opens `n` connections in batches, one checked echo each.
fn open_idle(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, String> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let first = v.len();
        for i in first..(first + CONNECT_BATCH).min(n) {
            let s = TcpStream::connect(addr).map_err(|e| format!("connection {i}: {e}"))?;
            s.set_read_timeout(Some(STALL))
                .map_err(|e| format!("connection {i}: {e}"))?;
            v.push(s);
        }
        for (i, s) in v.iter_mut().enumerate().skip(first) {
            echo_once(s, i)?;
        }
    }
    Ok(v)
}

fn echo_once(s: &mut TcpStream, i: usize) -> Result<(), String> {
    let msg = [i as u8; MSG];
    let mut back = [0u8; MSG];
    s.write_all(&msg)
        .and_then(|()| s.read_exact(&mut back))
        .map_err(|e| format!("connection {i}: {e}"))?;
    if back != msg {
        return Err(format!("connection {i}: the echo differs"));
    }
    Ok(())
}

/// The resident set, bytes.
fn rss() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("/proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad /proc/self/statm `{}`", statm.trim()))?;
    Ok(pages * scx_rt_sys::page::page_size() as u64)
}

/// Every thread of the process but the calling main thread (the one that
/// measures): (name, tid, CPU time in ns).
fn thread_cpu() -> Result<Vec<(String, u32, u64)>, String> {
    let main_tid = std::process::id();
    let dir = std::fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        if tid == main_tid {
            continue;
        }
        let path = entry.path();
        // A thread that exited meanwhile has no files any more: skip it.
        let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        let ns = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad schedstat `{}`", stat.trim()))?;
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        out.push((name.trim().to_string(), tid, ns));
    }
    if out.is_empty() {
        return Err("no readable /proc/self/task/*/schedstat".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readers() {
        assert!(rss().unwrap() > 0);
        let threads = thread_cpu().unwrap();
        assert!(threads.iter().map(|t| t.2).sum::<u64>() > 0, "{threads:?}");
    }

    /// The whole measurement against an in-process scx-rt server (the
    /// child's plumbing is tested with `external`): the idle connections
    /// are held and still served after the window, and the questions get
    /// answers.
    #[test]
    fn idle_measurement_in_process() {
        let cpus = crate::cpus::usable_cpus();
        let ctx = Ctx {
            cpus: cpus[..1].to_vec(),
            opts: crate::args::Options::default(),
        };
        let server = scx_server(&ctx, Policy::Default).unwrap();
        let mut last = None;
        let m = measure(
            server.addr,
            &mut |q| answer(q, &mut last),
            200,
            Duration::from_millis(50),
        )
        .unwrap();
        server.stop().unwrap();
        // Other tests of this process allocate and free meanwhile: the
        // growth is only a number here (the bench measures it in a child).
        assert!(m.rss_growth.is_finite());
        assert!(m.window >= Duration::from_millis(50));
        assert!(answer("nope", &mut last).is_err());
    }
}
