//! `echo`: TCP echo servers of every subject under one closed-loop load,
//! and what scx-rt's idle connections cost.
//!
//! # Servers
//!
//! Each subject runs an echo server on the CPUs of `--cpus` (the server's
//! contract: [`crate::spec::echo`]), all started before the first case and
//! stopped after the last (an idle server sleeps):
//!
//! - `scx-rt`: green tasks on a runtime over `--cpus`, under the default
//!   scheduler (`WorkStealing`), `scx_rt::net`; rows without a suffix;
//! - `scx-rt fifo`: the same under `schedulers::Fifo`, the global FIFO;
//!   rows with the suffix `-fifo` (the ratio column compares peers with
//!   the default policy only);
//! - `tokio`: a multi-thread runtime with a worker pinned to each CPU,
//!   `tokio::net`, a task per connection;
//! - `may`: a child process (`__peer may echo`) with one worker per CPU,
//!   `may::net`, a coroutine per connection;
//! - `go`: a child process (`go run peer.go echo`, `GOMAXPROCS` = CPUs),
//!   the net package, a goroutine per connection; left out without `go`.
//!
//! # Clients
//!
//! The same for every subject ([`super::echo_clients`]): OS threads on the
//! usable CPUs outside `--cpus` (pinned) or, when there are none, sharing
//! the server's CPUs; `conns` connections with one message in flight each
//! (closed loop). Cases: 1, 64 and 1,000 connections, 64-byte and 4 KiB
//! messages. Within a case, every repetition runs every subject once, in
//! an order rotated by one per repetition, so slow drifts of a shared
//! machine fall on all of them alike.
//!
//! # Rows
//!
//! Per case and subject: the round trip (`ns`, p50/p99/p99.9 over all
//! repetitions; drawn as p99 against connections in `echo-SIZE-p99.svg`),
//! case `SIZE-Nconn`, and the throughput (`req/s`, one figure per
//! repetition, p50 over them), case `SIZE-Nconn-rps`. Each repetition
//! also prints a progress line per subject: how evenly its connections were
//! served (requests per connection, min / p50 / max: a closed loop serves
//! a connection whose server CPU lags less often), how many echoes a
//! client's `epoll_wait` completed on average (answers that come one at a
//! time cost the clients a wake-up each, which counts where they share the
//! server's CPUs) and, for scx-rt, where the connections ran (the probe).
//! Then the idle
//! measurement ([`super::echo_idle`]): `idle-Nconn-rss` (`B/conn`) and
//! `idle-Nconn-cpu` (`cpu-ms/s`) for scx-rt and tokio.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::echo_clients::{self, Clients, Load};
use super::echo_idle;
use crate::ctx::Ctx;
use crate::peers::{go, may, tokio};
use crate::report::{Row, Subject};
use crate::spec::echo::{self, cases, idle_selected, sizes, Case, Server, Sizes, BUF, NAME};
use crate::stats::new_hist;

/// A scx-rt scheduling policy of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The runtime's default (`WorkStealing`).
    Default,
    /// `schedulers::Fifo`, one global FIFO.
    Fifo,
}

impl Policy {
    /// The row suffix (`None` for the default).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Policy::Default => None,
            Policy::Fifo => Some("fifo"),
        }
    }
}

/// Starts the scx-rt echo server on `--cpus` under `policy`.
pub fn scx_server(ctx: &Ctx, policy: Policy) -> Result<Server, String> {
    let mut b = ctx.scx_builder(ctx.cpus.clone());
    if policy == Policy::Fifo {
        b = b.scheduler(scx_rt::schedulers::Fifo);
    }
    let rt = std::sync::Arc::new(b.build().map_err(|e| format!("build runtime: {e}"))?);
    let l = scx_rt::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    let spread = Spread::new(rt.nr_cpus());
    let accept = {
        let spread = spread.clone();
        rt.spawn(move || accept_loop(l, spread))
    };
    let probe = {
        let rt = rt.clone();
        let mut last = rt.stats();
        move || {
            let now = rt.stats();
            let line = spread.take(&last, &now);
            last = now;
            line
        }
    };
    Ok(Server::new(addr, move || {
        // The accept loop's wait fails with `NotConnected` at shutdown.
        rt.shutdown();
        accept
            .join()
            .map_err(|e| format!("the accept loop failed: {e:?}"))
    })
    .with_probe(probe))
}

/// Where the scx-rt server's connections ran: connections per CPU (the
/// CPU of a connection's first echo, the CPU its task is bound to), and
/// the CPUs' I/O wake-ups (`CpuStats`), for the probe line.
#[derive(Clone)]
struct Spread(std::sync::Arc<[std::sync::atomic::AtomicU64]>);

impl Spread {
    fn new(nr_cpus: usize) -> Self {
        Spread((0..nr_cpus).map(|_| Default::default()).collect())
    }

    fn count(&self) {
        if let Some(c) = scx_rt::current_cpu().and_then(|c| self.0.get(c)) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// "conns/CPU a/b, io wake-ups/CPU x/y (polling p, slept s)" since
    /// the last call (`last` the stats then).
    fn take(&self, last: &scx_rt::Stats, now: &scx_rt::Stats) -> String {
        let conns: Vec<String> = self
            .0
            .iter()
            .map(|c| c.swap(0, std::sync::atomic::Ordering::Relaxed).to_string())
            .collect();
        let d = |f: fn(&scx_rt::CpuStats) -> u64| -> Vec<u64> {
            now.cpus
                .iter()
                .zip(&last.cpus)
                .map(|(n, l)| f(n) - f(l))
                .collect()
        };
        let io = d(|c| c.io_wakeups);
        let io: Vec<String> = io.iter().map(u64::to_string).collect();
        let polling: u64 = d(|c| c.io_wakeups_polling).iter().sum();
        let slept: u64 = d(|c| c.io_wakeups_slept).iter().sum();
        let picks: Vec<String> = d(|c| c.pick_seq).iter().map(u64::to_string).collect();
        format!(
            "conns/CPU {}, io wake-ups/CPU {} (found polling {polling}, by epoll sleep {slept}), picks/CPU {}",
            conns.join("/"),
            io.join("/"),
            picks.join("/")
        )
    }
}

fn accept_loop(l: scx_rt::net::TcpListener, spread: Spread) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let spread = spread.clone();
                scx_rt::spawn(move || serve(s, &spread));
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            // Out of fds, a connection reset before it was accepted.
            Err(_) => scx_rt::sleep(Duration::from_millis(1)),
        }
    }
}

/// One connection: echo until the peer closes (the buffer is on the
/// task's stack).
fn serve(mut s: scx_rt::net::TcpStream, spread: &Spread) {
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; BUF];
    let mut first = true;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if std::mem::take(&mut first) {
                    spread.count();
                }
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// One subject's running server and what it measured in the current case.
struct Served {
    subject: Subject,
    policy: Option<&'static str>,
    server: Server,
    hist: Histogram<u64>,
    rates: Vec<f64>,
    requests: u64,
    failed: bool,
}

impl Served {
    fn new(subject: Subject, policy: Option<&'static str>, server: Server) -> Self {
        Served {
            subject,
            policy,
            server,
            hist: new_hist(),
            rates: Vec::new(),
            requests: 0,
            failed: false,
        }
    }

    fn series(&self) -> String {
        echo::series(self.subject, self.policy)
    }
}

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let s = sizes(ctx);
    let todo = cases(ctx);
    if !todo.is_empty() {
        let clients = Clients::pick(ctx);
        eprintln!("{NAME}: {}", clients.describe());
        let mut served = start_servers(ctx)?;
        for case in &todo {
            measure(&s, &clients, case, &mut served, rows)?;
        }
        for sv in served {
            let (subject, series) = (sv.subject, sv.series());
            if let Err(e) = sv.server.stop() {
                if subject == Subject::ScxRt {
                    return Err(format!("{NAME}: {series}: stop: {e}"));
                }
                eprintln!("{NAME}: {series}: stop: {e}");
            }
        }
    }
    if idle_selected(ctx) {
        // Skipped with a message where the process cannot hold the
        // connections (the open-file limit), as a peer would be.
        for subject in [Subject::ScxRt, Subject::Tokio] {
            if subject != Subject::ScxRt && !ctx.peers() {
                continue;
            }
            eprintln!("{NAME}: idle connections, {} ...", subject.as_str());
            match echo_idle::rows(ctx, subject) {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => eprintln!(
                    "{NAME}: idle connections, {} skipped: {e}",
                    subject.as_str()
                ),
            }
        }
    }
    Ok(())
}

/// Every subject's server: scx-rt's must start; a peer that cannot is
/// left out with a message.
fn start_servers(ctx: &Ctx) -> Result<Vec<Served>, String> {
    let mut served = Vec::new();
    for policy in [Policy::Default, Policy::Fifo] {
        let server = scx_server(ctx, policy).map_err(|e| {
            format!(
                "{NAME}: {}: {e}",
                echo::series(Subject::ScxRt, policy.suffix())
            )
        })?;
        served.push(Served::new(Subject::ScxRt, policy.suffix(), server));
    }
    if !ctx.peers() {
        return Ok(served);
    }
    let mut peer = |subject: Subject, start: &dyn Fn() -> Result<Server, String>| match start() {
        Ok(server) => served.push(Served::new(subject, None, server)),
        Err(e) => eprintln!("{NAME}: {} skipped: {e}", subject.as_str()),
    };
    peer(Subject::Tokio, &|| tokio::echo_server(&ctx.cpus));
    peer(Subject::May, &|| may::echo_server(ctx));
    if go::ready(ctx) {
        peer(Subject::Go, &|| go::echo_server(ctx));
    }
    Ok(served)
}

/// Runs one case for every subject and appends its rows.
fn measure(
    s: &Sizes,
    clients: &Clients,
    case: &Case,
    served: &mut [Served],
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let name = case.name();
    eprintln!("{NAME}: {name} ...");
    let load = Load {
        conns: case.conns,
        size: case.size,
        warmup: s.warmup,
        measure: s.measure,
    };
    for sv in served.iter_mut() {
        sv.hist.reset();
        sv.rates.clear();
        sv.requests = 0;
        sv.failed = false;
    }
    let n = served.len();
    for rep in 0..s.reps as usize {
        for k in 0..n {
            let sv = &mut served[(k + rep) % n];
            if sv.failed {
                continue;
            }
            match echo_clients::run(sv.server.addr, load, clients) {
                Ok(o) => {
                    let probe = match sv.server.probe() {
                        Some(line) => format!(", {line}"),
                        None => String::new(),
                    };
                    eprintln!(
                        "{NAME}: {name}: {} rep {rep}: {}, {}{probe}",
                        sv.series(),
                        o.per_conn_line(),
                        o.batch_line()
                    );
                    sv.hist
                        .add(&o.hist)
                        .map_err(|e| format!("merge histograms: {e}"))?;
                    sv.rates.push(o.rate());
                    sv.requests += o.requests;
                }
                Err(e) if sv.subject == Subject::ScxRt => {
                    return Err(format!("{NAME}: {name}: {}: {e}", sv.series()));
                }
                Err(e) => {
                    eprintln!("{NAME}: {name}: {} skipped: {e}", sv.series());
                    sv.failed = true;
                }
            }
        }
    }
    let ok = || served.iter().filter(|sv| !sv.failed && sv.requests > 0);
    for sv in ok() {
        rows.push(echo::latency(case, sv.policy, sv.subject, &sv.hist));
    }
    for sv in ok() {
        rows.push(echo::throughput(
            case,
            sv.policy,
            sv.subject,
            &sv.rates,
            sv.requests,
        ));
    }
    let summary: Vec<String> = ok()
        .map(|sv| {
            format!(
                "{} {:.0} req/s p99 {:.1} us",
                sv.series(),
                crate::stats::median(&sv.rates),
                sv.hist.value_at_quantile(0.99) as f64 / 1e3
            )
        })
        .collect();
    eprintln!("{NAME}: {name}: {}", summary.join(" | "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;

    /// The scx-rt server under both policies, measured by the real
    /// clients on one CPU each way it can run here; then stopped (the
    /// accept loop must end at shutdown, or `stop` hangs).
    #[test]
    fn scx_servers_echo_and_stop() {
        let cpus = crate::cpus::usable_cpus();
        let ctx = Ctx {
            cpus: cpus[..1].to_vec(),
            opts: Options::default(),
        };
        let clients = Clients {
            cpus: cpus.clone(),
            pinned: false,
        };
        for policy in [Policy::Default, Policy::Fifo] {
            let server = scx_server(&ctx, policy).unwrap();
            let load = Load {
                conns: 80,
                size: 4096,
                warmup: Duration::from_millis(10),
                measure: Duration::from_millis(100),
            };
            let o = echo_clients::run(server.addr, load, &clients).unwrap();
            assert!(o.requests > 0, "{policy:?}");
            server.stop().unwrap();
        }
    }
}
