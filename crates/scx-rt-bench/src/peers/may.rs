//! The `may` peer (stackful coroutines). may's worker count is
//! process-global and fixed at first use, while `switch` needs one worker
//! and the other workloads one per CPU, so every may measurement runs in a
//! child process (`scx-rt-bench __peer may WORKLOAD …`, see
//! [`crate::peers::external`]).
//!
//! For `echo` the child is a server ([`crate::peers::external::start_server`]):
//! may's `net::TcpListener`, a coroutine per connection, serving until the
//! parent closes the child's stdin; the parent's clients measure it.
//!
//! Coroutines are started with `may::go!`. This crate writes no unsafe code,
//! but the macro expands to an unsafe call of `may::coroutine::spawn`
//! (may marks spawning unsafe because a coroutine that overflows its small
//! stack or holds thread-local references across a yield is undefined
//! behaviour). The closures spawned here use neither.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::ctx::Ctx;
use crate::peers::external;
use crate::report::{Row, Subject};
use crate::spec::{echo, pingpong, skynet, spawn, switch};
use crate::stats::{new_hist, ns};

/// How long the may child has to start listening (`echo`).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Parent side: runs the child for `workload` and collects its rows.
pub fn rows(ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    rows_on(ctx, workload, &ctx.cpus)
}

/// [`rows`] with the child restricted to `cpus` instead of `--cpus` (for
/// `pingpong`, whose cases differ by worker count).
pub fn rows_on(ctx: &Ctx, workload: &str, cpus: &[usize]) -> Result<Vec<Row>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["__peer", "may", workload]);
    let child = Ctx {
        cpus: cpus.to_vec(),
        opts: ctx.opts.clone(),
    };
    cmd.args(external::forwarded_args(&child));
    external::run(cmd)
}

/// Parent side of `echo`: starts the may server child on `--cpus`.
pub fn echo_server(ctx: &Ctx) -> Result<echo::Server, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["__peer", "may", echo::NAME]);
    cmd.args(external::forwarded_args(ctx));
    let child = external::start_server(cmd, LISTEN_TIMEOUT)?;
    Ok(echo::Server::new(child.addr, move || child.stop()))
}

/// Child side of `echo`: serves until stdin reaches end of file.
fn serve_echo() -> Result<Vec<Row>, String> {
    let l = may::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    may::go!(move || {
        for s in l.incoming() {
            match s {
                Ok(s) => {
                    may::go!(move || echo_conn(s));
                }
                // Out of fds, a connection aborted before accept: go on.
                Err(_) => may::coroutine::sleep(Duration::from_millis(1)),
            }
        }
    });
    // std's stdout is line-buffered: the line is out after println.
    println!("listen\t{addr}");
    // Until the parent closes our stdin; then the process exits, and its
    // coroutines with it.
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(Vec::new())
}

/// Writes back what it reads until the peer closes. The buffer is on the
/// heap: a may coroutine's stack is small (32 KiB by default) and
/// overflowing it is undefined behaviour.
fn echo_conn(mut s: may::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; echo::BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// How many may coroutines may be alive at once: may maps every stack with
/// a guard page (two mappings each), and the kernel caps mappings per
/// process at `vm.max_map_count` (65530 by default); keep a quarter spare.
fn max_live() -> u64 {
    let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(65_530);
    maps / 2 * 3 / 4
}

/// Prints only the first panic of the child (a failing stack allocation
/// panics in every coroutine spawn after it).
fn quiet_panics() {
    static SEEN: AtomicBool = AtomicBool::new(false);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !SEEN.swap(true, Ordering::Relaxed) {
            default(info);
        }
    }));
}

/// Child side: configures may for `workload` and measures it.
pub fn run_child(ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    quiet_panics();
    let cpus: Vec<usize> = match workload {
        "switch" => ctx.cpus[..1].to_vec(),
        "pingpong" => ctx.cpus[..ctx.cpus.len().min(2)].to_vec(),
        _ => ctx.cpus.clone(),
    };
    // may pins its workers to the CPUs of the thread that starts it.
    scx_rt_sys::affinity::set_current_thread_cpus(&cpus)
        .map_err(|e| format!("restrict to CPUs {cpus:?}: {e}"))?;
    may::config().set_workers(cpus.len());
    match workload {
        "switch" => {
            let s = switch::sizes(ctx);
            let samples = reps(s.reps, || switch_once(s.iters))?;
            let samples: Vec<f64> = samples
                .into_iter()
                .map(|d| ns(d) / (2 * s.iters) as f64)
                .collect();
            Ok(vec![switch::row(Subject::May, s.iters, &samples)])
        }
        "spawn" => {
            let s = spawn::sizes(ctx);
            let tasks = s.tasks.min(max_live());
            if tasks < s.tasks {
                eprintln!("spawn: may limited to {tasks} live coroutines (vm.max_map_count)");
            }
            let samples = reps(s.reps, || spawn_once(tasks))?;
            let samples: Vec<f64> = samples.into_iter().map(|d| ns(d) / tasks as f64).collect();
            Ok(vec![spawn::row(Subject::May, tasks, &samples)])
        }
        "pingpong" => {
            // One worker: `same-cpu`; two: `2cpu-free` (may cannot pin a
            // coroutine to a worker, so it has no `cross-cpu` row).
            let p = if cpus.len() == 1 {
                pingpong::Placement::SameCpu
            } else {
                pingpong::Placement::Free
            };
            let hist = pingpong_hist(pingpong::sizes(ctx).iters, pingpong::WARMUP)?;
            Ok(vec![pingpong::row(p, Subject::May, &hist)])
        }
        "skynet" => {
            let s = skynet::sizes(ctx);
            // Up to every task of the tree (leaves * 10/9) is alive at once.
            let live = s.leaves + s.leaves / 9;
            if live > max_live() {
                return Err(format!(
                    "{} leaves keep up to {live} coroutine stacks alive; may maps each \
                     with a guard page and vm.max_map_count allows ~{}",
                    s.leaves,
                    max_live()
                ));
            }
            let mut samples = Vec::new();
            for _ in 0..s.reps {
                let t = Instant::now();
                let leaves = s.leaves;
                let sum = may::go!(move || skynet_node(0, leaves, 10))
                    .join()
                    .map_err(|_| "skynet root panicked".to_string())?;
                let elapsed = t.elapsed();
                skynet::check_sum(leaves, sum)?;
                samples.push(elapsed.as_secs_f64() * 1e3);
            }
            Ok(vec![skynet::row(Subject::May, s.leaves, &samples)])
        }
        echo::NAME => serve_echo(),
        other => Err(format!("the may peer has no `{other}` workload")),
    }
}

fn reps<F>(n: u64, mut f: F) -> Result<Vec<Duration>, String>
where
    F: FnMut() -> Result<Duration, String>,
{
    (0..n).map(|_| f()).collect()
}

fn switch_once(iters: u64) -> Result<Duration, String> {
    may::go!(move || {
        let yielder = move || {
            for _ in 0..iters {
                may::coroutine::yield_now();
            }
        };
        let a = may::go!(yielder);
        let b = may::go!(yielder);
        let t = Instant::now();
        let ok = a.join().is_ok() & b.join().is_ok();
        ok.then(|| t.elapsed())
    })
    .join()
    .ok()
    .flatten()
    .ok_or_else(|| "coroutine panicked".to_string())
}

fn spawn_once(tasks: u64) -> Result<Duration, String> {
    may::go!(move || {
        let t = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|_| may::go!(|| ())).collect();
        let mut ok = true;
        for h in handles {
            ok &= h.join().is_ok();
        }
        ok.then(|| t.elapsed())
    })
    .join()
    .ok()
    .flatten()
    .ok_or_else(|| "coroutine panicked".to_string())
}

/// `pingpong` over may's channels (unbounded: may has no bounded
/// channel; with one message in flight per direction a cap-1 channel would
/// never fill either).
fn pingpong_hist(iters: u64, warmup: u64) -> Result<Histogram<u64>, String> {
    let rounds = warmup + iters;
    let (tx_ab, rx_ab) = may::sync::mpsc::channel::<u64>();
    let (tx_ba, rx_ba) = may::sync::mpsc::channel::<u64>();
    let echo = may::go!(move || {
        while let Ok(v) = rx_ab.recv() {
            if tx_ba.send(v).is_err() {
                break;
            }
        }
    });
    let ping = may::go!(move || {
        let mut hist = new_hist();
        for i in 0..rounds {
            let t = Instant::now();
            tx_ab.send(i).ok()?;
            rx_ba.recv().ok()?;
            if i >= warmup {
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
        }
        Some(hist)
    });
    let hist = ping
        .join()
        .ok()
        .flatten()
        .ok_or_else(|| "pingpong coroutine failed".to_string())?;
    echo.join()
        .map_err(|_| "echo coroutine panicked".to_string())?;
    Ok(hist)
}

fn skynet_node(num: u64, size: u64, div: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / div;
    let handles: Vec<_> = (0..div)
        .map(|i| may::go!(move || skynet_node(num + i * sub, sub, div)))
        .collect();
    // A child panic is impossible (pure arithmetic); count it as 0 and let
    // the sum check report it.
    handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
}
