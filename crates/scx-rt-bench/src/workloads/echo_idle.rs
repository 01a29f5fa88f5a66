//! `echo`'s idle connections: what holding `N` idle connections costs a
//! server, in memory and in CPU time (scx-rt, and tokio beside it).
//!
//! Each subject is measured in a fresh child process (`__peer scx-rt echo`,
//! `__peer tokio echo`): memory freed by earlier measurements but still
//! resident in the allocator could otherwise be reused and hide growth.
//! In the child:
//!
//! 1. the open-file limit is raised to `2N + 64` (client and server ends
//!    both live in the process); if it cannot be, the measurement is
//!    skipped with the reason;
//! 2. the subject's echo server starts on `--cpus` (scx-rt: the default
//!    policy); one connection echoes once and closes, so that one-time
//!    allocations (a CPU's reactor, the first stack slab, tokio's I/O
//!    driver) come before the baseline;
//! 3. RSS is read (`/proc/self/statm`), then `N` connections are opened
//!    from the main thread in batches of 64, each echoing one 64-byte
//!    message, so that every server task has read, written, and parked in
//!    its next read; after 100 ms RSS is read again: the growth over `N`
//!    is the memory per idle connection, the task's stack pages, its
//!    control block, its socket's registration and buffer included. The
//!    client side adds only a 4-byte `TcpStream` per connection to it;
//! 4. the CPU time of every thread of the process but the main one, which
//!    measures (`/proc/self/task/*/schedstat`, ns), is summed before and
//!    after an idle window of 1 s (200 ms with `--quick`), in which the
//!    main thread sleeps and nothing is sent: the server's threads' CPU
//!    time in the window, per second;
//! 5. the first and last connections echo once more (they are still
//!    served), everything closes and the server stops.
//!
//! Rows: `idle-Nconn-rss` (`B/conn`, in `mean`) and `idle-Nconn-cpu`
//! (`cpu-ms/s`), `n` = N.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::echo::{scx_server, Policy};
use super::echo_clients::{CONNECT_BATCH, STALL};
use crate::ctx::Ctx;
use crate::peers::{external, tokio};
use crate::report::{PlotData, Row, Subject};
use crate::spec::echo::{idle_cases, sizes, NAME};

/// Bytes of the one message each idle connection echoes.
const MSG: usize = 64;

/// Parent side: the rows of `subject`'s idle measurement, from a child.
pub fn rows(ctx: &Ctx, subject: Subject) -> Result<Vec<Row>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["__peer", subject.as_str(), NAME]);
    cmd.args(external::forwarded_args(ctx));
    external::run(cmd)
}

/// Child side (`__peer scx-rt echo`, `__peer tokio echo`).
pub fn run_child(subject: Subject, ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    if workload != NAME {
        return Err(format!(
            "`__peer {}` measures only {NAME}'s idle connections",
            subject.as_str()
        ));
    }
    let s = sizes(ctx);
    let n = s.idle_conns as usize;
    let fds = 2 * s.idle_conns + 64;
    let (cur, max) = scx_rt_sys::rlimit::nofile().map_err(|e| format!("getrlimit: {e}"))?;
    scx_rt_sys::rlimit::raise_nofile(fds).map_err(|e| {
        format!(
            "{n} idle connections need {fds} fds in one process (both ends): \
             RLIMIT_NOFILE is {cur} (hard {max}) and raising it failed: {e}"
        )
    })?;
    let server = match subject {
        Subject::ScxRt => scx_server(ctx, Policy::Default)?,
        Subject::Tokio => tokio::echo_server(&ctx.cpus)?,
        other => return Err(format!("no idle measurement for {}", other.as_str())),
    };
    let addr = server.addr;
    let measured = measure(addr, n, s.idle_window);
    let stopped = server.stop();
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

struct Measured {
    rss_growth: f64,
    cpu_ns: f64,
    window: Duration,
}

fn measure(addr: SocketAddr, n: usize, window: Duration) -> Result<Measured, String> {
    // One-time allocations first (module docs, step 2).
    drop(open_idle(addr, 1)?);
    std::thread::sleep(Duration::from_millis(50));
    let mut held: Vec<TcpStream> = Vec::with_capacity(n);
    let rss0 = rss()?;
    held.extend(open_idle(addr, n)?);
    std::thread::sleep(Duration::from_millis(100));
    let rss1 = rss()?;
    let cpu0 = thread_cpu()?;
    let t = Instant::now();
    std::thread::sleep(window);
    let cpu1 = thread_cpu()?;
    let elapsed = t.elapsed();
    let busy: Vec<String> = cpu1
        .iter()
        .filter_map(|(name, tid, ns)| {
            let before = cpu0
                .iter()
                .find(|(_, t, _)| t == tid)
                .map_or(0, |(_, _, b)| *b);
            let d = ns.saturating_sub(before);
            (d >= 100_000).then(|| format!("{name} {:.2} ms", d as f64 / 1e6))
        })
        .collect();
    if !busy.is_empty() {
        eprintln!("{NAME}: idle window: threads that ran: {}", busy.join(", "));
    }
    let total = |v: &[(String, u32, u64)]| v.iter().map(|t| t.2).sum::<u64>();
    for i in [0, n - 1] {
        echo_once(&mut held[i], i).map_err(|e| format!("after the idle window: {e}"))?;
    }
    Ok(Measured {
        rss_growth: rss1 as f64 - rss0 as f64,
        cpu_ns: total(&cpu1).saturating_sub(total(&cpu0)) as f64,
        window: elapsed,
    })
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

    /// The whole child-side measurement on scx-rt, small: the rows have
    /// the schema's shape and a server that echoes.
    #[test]
    fn idle_rows_from_scx_rt() {
        let cpus = crate::cpus::usable_cpus();
        let ctx = Ctx {
            cpus: cpus[..1].to_vec(),
            opts: crate::args::Options {
                tasks: Some(100),
                quick: true,
                ..Default::default()
            },
        };
        let rows = run_child(Subject::ScxRt, &ctx, NAME).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].case, "idle-100conn-rss");
        assert_eq!((rows[0].unit.as_str(), rows[0].n), ("B/conn", 100));
        assert_eq!(rows[1].unit, "cpu-ms/s");
        assert!(rows[1].mean.is_finite() && rows[1].mean >= 0.0);
        assert!(run_child(Subject::ScxRt, &ctx, "spawn").is_err());
    }
}
