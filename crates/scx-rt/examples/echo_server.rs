//! A green TCP echo server: one task per connection on scx-rt's pinned CPUs
//! (`scx_rt::net`). A task blocked reading its socket parks; its CPU runs
//! the other connections meanwhile.
//!
//! ```text
//! cargo run --release -p scx-rt --example echo_server -- [ADDR]       # serve (127.0.0.1:7878)
//! cargo run --release -p scx-rt --example echo_server -- --self-test  # what CI runs
//! ```
//!
//! `--self-test` serves on `127.0.0.1:0` and runs 32 client connections
//! from plain OS threads (std's blocking sockets, with a read timeout so
//! that a lost echo fails instead of hanging). Each sends 200 messages of
//! 1 to 8,000 bytes (longer than the server's 4 KiB buffer, so a message
//! may come back in pieces), checks every echoed byte, half-closes and
//! expects the server to close in turn. Then the runtime shuts down (the
//! accept loop's wait fails with `NotConnected` and it returns) and the
//! example checks that the reactor woke tasks. Exit status 0 when all of
//! that held, 1 (with the reason) otherwise.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use scx_rt::net::{TcpListener, TcpStream};

/// The server's read buffer (on the task's stack).
const BUF: usize = 4096;
const CLIENTS: usize = 32;
const MESSAGES: usize = 200;
const MAX_MESSAGE: usize = 8000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag] if flag == "--self-test" => self_test(),
        [] => serve_forever("127.0.0.1:7878"),
        [addr] if !addr.starts_with('-') => serve_forever(addr),
        _ => Err("usage: echo_server [ADDR | --self-test]".into()),
    };
    if let Err(e) = result {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}

/// Accepts connections until the runtime shuts down, one task each.
fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                scx_rt::spawn(move || {
                    if let Err(e) = echo(stream) {
                        eprintln!("echo_server: connection: {e}");
                    }
                });
            }
            // The runtime shut down: green waits fail from then on.
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            // Out of fds (EMFILE), a connection reset before it was
            // accepted: the listener stays usable; back off a little.
            Err(e) => {
                eprintln!("echo_server: accept: {e}");
                scx_rt::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Echoes until the peer closes; returns the bytes echoed.
fn echo(mut s: TcpStream) -> io::Result<u64> {
    s.set_nodelay(true)?;
    let mut buf = [0u8; BUF];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        s.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn serve_forever(addr: &str) -> Result<(), Error> {
    let rt = scx_rt::Runtime::builder().build()?;
    let listener = TcpListener::bind(addr)?;
    println!(
        "echo_server: listening on {} ({} CPUs, scheduler {})",
        listener.local_addr()?,
        rt.nr_cpus(),
        rt.scheduler_name()
    );
    rt.block_on(move || accept_loop(listener));
    Ok(())
}

/// Message `i` of client `c`: its length and bytes vary with both.
fn message(c: usize, i: usize) -> Vec<u8> {
    let len = 1 + (i * 997 + c * 131) % MAX_MESSAGE;
    (0..len).map(|k| (k * 7 + c + i) as u8).collect()
}

fn client(addr: std::net::SocketAddr, c: usize) -> Result<u64, Error> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut back = vec![0u8; MAX_MESSAGE];
    let mut bytes = 0;
    for i in 0..MESSAGES {
        let msg = message(c, i);
        s.write_all(&msg)?;
        let back = &mut back[..msg.len()];
        s.read_exact(back)
            .map_err(|e| format!("client {c}, message {i}: {e}"))?;
        if back != msg.as_slice() {
            return Err(format!("client {c}, message {i}: the echo differs").into());
        }
        bytes += msg.len() as u64;
    }
    // Half-close: the server reads end-of-file, returns, and closes its end.
    s.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(format!("client {c}: {} bytes after the last echo", rest.len()).into());
    }
    Ok(bytes)
}

fn self_test() -> Result<(), Error> {
    let t = Instant::now();
    let rt = scx_rt::Runtime::builder().build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(move || accept_loop(listener));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| std::thread::spawn(move || client(addr, c)))
        .collect();
    let mut bytes = 0;
    for (c, h) in clients.into_iter().enumerate() {
        bytes += h.join().map_err(|_| format!("client {c} panicked"))??;
    }
    rt.shutdown();
    server
        .join()
        .map_err(|e| format!("the accept loop failed: {e}"))?;
    let io_wakeups: u64 = rt.stats().cpus.iter().map(|c| c.io_wakeups).sum();
    if io_wakeups == 0 {
        return Err("no task was ever woken by the I/O reactor".into());
    }
    println!(
        "echo_server: self-test passed: {CLIENTS} connections x {MESSAGES} messages, \
         {bytes} bytes echoed, {io_wakeups} I/O wake-ups, on {} CPUs in {:.2} s",
        rt.nr_cpus(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
