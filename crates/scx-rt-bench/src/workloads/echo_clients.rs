//! `echo`'s clients: one closed-loop load, the same for every subject.
//!
//! # Connections
//!
//! `conns` std TCP connections (`TCP_NODELAY`) are opened in batches of
//! [`CONNECT_BATCH`]; each connection of a batch completes one echo before
//! the next batch opens, so the server's accept queue never holds more
//! than a batch (a full queue drops SYNs, and the client's retry comes a
//! second later).
//!
//! # Threads
//!
//! The connections are dealt round robin to OS client threads, one per
//! client CPU and at most one per connection, each pinned to its CPU when
//! the clients have CPUs of their own ([`Clients::pick`]), else restricted
//! to the server's CPUs. A thread keeps exactly one message in flight on
//! every connection it owns: it sends one on each, then waits in epoll
//! (level-triggered, readable) and, whenever a connection's echo is
//! complete, checks it, records the round trip and sends the next one.
//!
//! # Timeline
//!
//! Common to all threads: warm-up until `start`, measured until `end`. A
//! request counts when it was *sent* in `[start, end)`: its round trip
//! (send to last echoed byte read) goes into the histogram and it adds one
//! to the throughput count, `requests / (end - start)`. From `end` on no
//! message is sent; the echoes in flight are read and checked, and the
//! connections close.
//!
//! # Checks
//!
//! A message is `size` bytes: its sequence number on the connection
//! (8 bytes, little-endian), then a byte pattern of the connection. A
//! lost, duplicated, reordered, corrupted or misrouted echo, any I/O
//! error, or no completed echo for [`STALL`] ends the run with an error
//! naming the connection: nothing wrong is ever counted.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scx_rt_sys::epoll::{self, Epoll, Events};

use crate::ctx::Ctx;
use crate::stats::new_hist;

/// Connections opened before each waits for one echo.
pub const CONNECT_BATCH: usize = 64;

/// No completed echo for this long is a failure (never a hang).
pub const STALL: Duration = Duration::from_secs(10);

/// Where the client threads run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clients {
    /// The CPUs (one thread each, at most).
    pub cpus: Vec<usize>,
    /// Each thread pinned to one of `cpus` (they are not the server's);
    /// otherwise all threads may run on any of them (the server's).
    pub pinned: bool,
}

impl Clients {
    /// Usable CPUs outside `--cpus` when there are any (pinned), else the
    /// server's CPUs, shared.
    pub fn pick(ctx: &Ctx) -> Clients {
        Self::from_usable(ctx, &crate::cpus::usable_cpus())
    }

    fn from_usable(ctx: &Ctx, usable: &[usize]) -> Clients {
        let spare: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|c| !ctx.cpus.contains(c))
            .collect();
        if spare.is_empty() {
            Clients {
                cpus: ctx.cpus.clone(),
                pinned: false,
            }
        } else {
            Clients {
                cpus: spare,
                pinned: true,
            }
        }
    }

    /// For the progress line.
    pub fn describe(&self) -> String {
        let list = crate::cpus::format_cpu_list(&self.cpus);
        if self.pinned {
            format!("client threads pinned to CPUs {list}, apart from the server's")
        } else {
            format!("no usable CPU outside --cpus: client threads share the server's CPUs {list}")
        }
    }

    /// Client threads for `conns` connections.
    pub fn threads(&self, conns: usize) -> usize {
        self.cpus.len().min(conns).max(1)
    }
}

/// One run's load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub conns: usize,
    pub size: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one run measured.
pub struct Outcome {
    /// Round trips of the requests sent in the window, ns.
    pub hist: Histogram<u64>,
    /// Requests sent in the window (all completed and checked).
    pub requests: u64,
    /// Of `requests`, each connection's (by connection number).
    pub per_conn: Vec<u64>,
    /// The client threads' `epoll_wait` calls in the window, and the
    /// echoes they completed there: echoes per wait says how the server's
    /// answers arrive (one at a time: a client wake-up, and its system
    /// call, per echo; in batches: fewer), which costs the clients CPU time
    /// where they share the server's CPUs.
    pub waits: u64,
    pub echoes: u64,
    /// The window.
    pub window: Duration,
}

impl Outcome {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    /// How evenly the connections were served: "requests/conn min / p50 /
    /// max" over the window, for the progress line. In a closed loop each
    /// connection has one message in flight, so a connection that the
    /// server serves late completes fewer requests than the others.
    pub fn per_conn_line(&self) -> String {
        let mut v = self.per_conn.clone();
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(lo), Some(hi)) => {
                format!("requests/conn min {lo} p50 {} max {hi}", v[v.len() / 2])
            }
            _ => "no connections".into(),
        }
    }

    /// Echoes completed per client `epoll_wait` in the window, for the
    /// progress line.
    pub fn batch_line(&self) -> String {
        format!(
            "echoes/client wait {:.2}",
            self.echoes as f64 / self.waits.max(1) as f64
        )
    }
}

/// Runs `load` against the server at `addr`.
pub fn run(addr: SocketAddr, load: Load, clients: &Clients) -> Result<Outcome, String> {
    if load.size < 8 {
        return Err(format!(
            "messages of {} bytes: at least 8 needed",
            load.size
        ));
    }
    let conns = connect(addr, load.conns, load.size)?;
    let nthreads = clients.threads(load.conns);
    let mut shares: Vec<Vec<Conn>> = (0..nthreads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        shares[i % nthreads].push(c);
    }
    let start = Instant::now() + load.warmup;
    let end = start + load.measure;
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(i, share)| {
            let clients = clients.clone();
            std::thread::Builder::new()
                .name(format!("echo-client{i}"))
                .spawn(move || {
                    place(&clients, i)?;
                    drive(share, load.size, start, end)
                })
                .map_err(|e| format!("spawn a client thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut hist = new_hist();
    let mut requests = 0;
    let mut per_conn = vec![0; load.conns];
    let (mut waits, mut echoes) = (0, 0);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((hh, counts, (w, e)))) => {
                waits += w;
                echoes += e;
                hist.add(&hh)
                    .map_err(|e| format!("merge histograms: {e}"))?;
                for (id, n) in counts {
                    per_conn[id] = n;
                    requests += n;
                }
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert("a client thread panicked".into());
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Outcome {
        hist,
        requests,
        per_conn,
        waits,
        echoes,
        window: load.measure,
    })
}

fn place(clients: &Clients, i: usize) -> Result<(), String> {
    if clients.pinned {
        let cpu = clients.cpus[i % clients.cpus.len()];
        scx_rt_sys::affinity::pin_current_thread(cpu)
            .map_err(|e| format!("pin a client to CPU {cpu}: {e}"))
    } else {
        scx_rt_sys::affinity::set_current_thread_cpus(&clients.cpus)
            .map_err(|e| format!("restrict a client to CPUs {:?}: {e}", clients.cpus))
    }
}

/// One client connection and its message in flight.
pub struct Conn {
    s: TcpStream,
    id: usize,
    seq: u64,
    /// Requests sent in the measured window and completed.
    counted: u64,
    /// The message in flight (its sequence number in front).
    msg: Vec<u8>,
    /// The echo so far.
    got: Vec<u8>,
    filled: usize,
    sent: Instant,
}

impl Conn {
    fn new(s: TcpStream, id: usize, size: usize) -> Conn {
        let msg = (0..size).map(|k| (id * 31 + k * 7) as u8).collect();
        Conn {
            s,
            id,
            seq: 0,
            counted: 0,
            msg,
            got: vec![0; size],
            filled: 0,
            sent: Instant::now(),
        }
    }

    /// Stamps the next sequence number and sends the message (waiting
    /// for room in the socket buffer if it is non-blocking and full).
    fn send(&mut self) -> Result<(), String> {
        self.seq += 1;
        self.msg[..8].copy_from_slice(&self.seq.to_le_bytes());
        self.filled = 0;
        self.sent = Instant::now();
        let mut off = 0;
        while off < self.msg.len() {
            match (&self.s).write(&self.msg[off..]) {
                Ok(0) => return Err(self.err("write returned 0")),
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let fd = self.s.as_raw_fd();
                    match epoll::poll_one(fd, epoll::OUT, Some(STALL)) {
                        Ok(0) => return Err(self.err("no room to send for 10 s")),
                        Ok(_) => {}
                        Err(e) => return Err(self.err(&format!("poll: {e}"))),
                    }
                }
                Err(e) => return Err(self.err(&format!("write: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads what is there of the echo; `Ok(true)` once it is complete
    /// and checked.
    fn receive(&mut self) -> Result<bool, String> {
        match (&self.s).read(&mut self.got[self.filled..]) {
            Ok(0) => Err(self.err("the server closed the connection")),
            Ok(n) => {
                self.filled += n;
                if self.filled < self.got.len() {
                    return Ok(false);
                }
                if self.got != self.msg {
                    return Err(self.err("the echo differs from the message"));
                }
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Ok(false)
            }
            Err(e) => Err(self.err(&format!("read: {e}"))),
        }
    }

    fn err(&self, what: &str) -> String {
        format!("connection {}, message {}: {what}", self.id, self.seq)
    }
}

/// Opens `n` connections in batches, one checked echo each (blocking
/// sockets with a read timeout), then makes them non-blocking.
pub fn connect(addr: SocketAddr, n: usize, size: usize) -> Result<Vec<Conn>, String> {
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = CONNECT_BATCH.min(n - conns.len());
        let first = conns.len();
        for id in first..first + batch {
            let s = open(addr).map_err(|e| format!("connection {id}: connect to {addr}: {e}"))?;
            conns.push(Conn::new(s, id, size));
        }
        for c in &mut conns[first..] {
            c.send()?;
            // A read that times out (`STALL`) returns `WouldBlock`, which
            // `receive` takes for "not yet": the clock decides.
            while !c.receive()? {
                if c.sent.elapsed() > STALL {
                    return Err(c.err("no echo for 10 s"));
                }
            }
        }
    }
    for c in &conns {
        c.s.set_nonblocking(true)
            .map_err(|e| c.err(&format!("set non-blocking: {e}")))?;
    }
    Ok(conns)
}

fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(STALL))?;
    s.set_write_timeout(Some(STALL))?;
    Ok(s)
}

/// What one client thread measured: the round trips, each of its
/// connections' count of requests (connection number, count), and its
/// epoll waits and the echoes they completed, in the window.
type Measured = (Histogram<u64>, Vec<(usize, u64)>, (u64, u64));

/// One client thread: the closed loop over its connections (module docs).
fn drive(
    mut conns: Vec<Conn>,
    size: usize,
    start: Instant,
    end: Instant,
) -> Result<Measured, String> {
    let ep = Epoll::new().map_err(|e| format!("epoll: {e}"))?;
    for (i, c) in conns.iter().enumerate() {
        ep.add(c.s.as_raw_fd(), epoll::IN, i as u64)
            .map_err(|e| c.err(&format!("epoll add: {e}")))?;
    }
    let mut events = Events::with_capacity(conns.len().min(256));
    let mut hist = new_hist();
    for c in &mut conns {
        c.send()?;
    }
    let mut in_flight = conns.len();
    let mut progress = Instant::now();
    let (mut waits, mut echoes) = (0, 0);
    while in_flight > 0 {
        ep.wait(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| format!("epoll wait: {e}"))?;
        let in_window = {
            let now = Instant::now();
            now >= start && now < end
        };
        waits += u64::from(in_window);
        if events.is_empty() && progress.elapsed() > STALL {
            let stuck = conns.iter().find(|c| c.filled < size);
            return Err(match stuck {
                Some(c) => c.err("no echo for 10 s"),
                None => "no echo for 10 s".into(),
            });
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token as usize];
            if !c.receive()? {
                continue;
            }
            let now = Instant::now();
            progress = now;
            echoes += u64::from(in_window);
            if c.sent >= start && c.sent < end {
                hist.saturating_record(now.duration_since(c.sent).as_nanos() as u64);
                c.counted += 1;
            }
            if now < end {
                c.send()?;
            } else {
                // Done: no more echoes are expected on it.
                ep.delete(c.s.as_raw_fd())
                    .map_err(|e| c.err(&format!("epoll delete: {e}")))?;
                in_flight -= 1;
            }
        }
    }
    Ok((
        hist,
        conns.iter().map(|c| (c.id, c.counted)).collect(),
        (waits, echoes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;
    use std::net::TcpListener;

    fn ctx(cpus: Vec<usize>) -> Ctx {
        Ctx {
            cpus,
            opts: Options::default(),
        }
    }

    #[test]
    fn clients_take_spare_cpus_or_share() {
        let spare = Clients::from_usable(&ctx(vec![0, 1]), &[0, 1, 2, 3]);
        assert_eq!(spare.cpus, vec![2, 3]);
        assert!(spare.pinned);
        assert_eq!((spare.threads(1), spare.threads(64)), (1, 2));
        let shared = Clients::from_usable(&ctx(vec![0, 1]), &[0, 1]);
        assert_eq!(shared.cpus, vec![0, 1]);
        assert!(!shared.pinned);
        assert!(shared.describe().contains("share"));
    }

    /// A plain-thread echo server (a thread per connection) that, when
    /// `corrupt_after` is set, flips a byte of the echo once it has echoed
    /// that many bytes on a connection.
    fn std_server(corrupt_after: Option<usize>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut total = 0;
                    loop {
                        let n = match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if corrupt_after.is_some_and(|a| total >= a) {
                            buf[n - 1] ^= 1;
                        }
                        total += n;
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn load(conns: usize, size: usize) -> Load {
        Load {
            conns,
            size,
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_correct_server_is_measured() {
        let addr = std_server(None);
        let clients = Clients {
            cpus: crate::cpus::usable_cpus(),
            pinned: false,
        };
        for (conns, size) in [(1, 64), (70, 4096)] {
            let o = run(addr, load(conns, size), &clients).unwrap();
            assert!(o.requests > 0, "{conns} conns: nothing counted");
            assert_eq!(o.hist.len(), o.requests);
            assert_eq!(o.per_conn.len(), conns);
            assert_eq!(o.per_conn.iter().sum::<u64>(), o.requests);
            assert!(o.rate() > 0.0);
            assert!(
                o.waits > 0 && o.echoes > 0,
                "{conns} conns: no wait counted"
            );
        }
    }

    #[test]
    fn a_wrong_echo_fails_the_run() {
        // Corrupted after the first (connect-time) echo of 64 bytes.
        let addr = std_server(Some(64));
        let clients = Clients {
            cpus: crate::cpus::usable_cpus(),
            pinned: false,
        };
        let e = run(addr, load(3, 64), &clients).err().unwrap();
        assert!(e.contains("differs"), "{e}");
    }
}
