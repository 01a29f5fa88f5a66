//! A short transfer on a TCP stream clears its direction's readiness, so
//! the next call waits without trying (`scx_rt::io`, "A short transfer on
//! a byte stream"). These tests hold the cases where a short transfer does
//! not mean "drained", and the reactor must keep the direction ready: if
//! it did not, the next read would wait for an edge that never comes. Each
//! such read has a read timeout, so a broken rule fails the test with
//! `TimedOut` instead of hanging it.
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use scx_rt::net::{TcpListener, TcpStream};
use scx_rt::Runtime;

mod common;
use common::guard;

/// Longer than any wake-up takes, far shorter than the guard's limit.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Long enough for the reactor of an idle CPU to see everything the peer
/// sent before the reading task looks (the CPU sleeps in `epoll_wait`
/// meanwhile, and the edges end that sleep).
const SETTLE: Duration = Duration::from_millis(100);

fn rt() -> Runtime {
    Runtime::builder().nr_cpus(1).pin(false).build().unwrap()
}

/// A listener on the runtime and a plain-thread client connected to it.
/// The server task first reads one byte, which the client sends late (the
/// read waits, so the stream is registered with the reactor), tells the
/// client thread to go on, and sleeps [`SETTLE`] while `then` runs on the
/// client; then it reads with a 4 KiB buffer until end of file (or, with
/// `until`, until it has that many bytes) and returns what it read, or the
/// first error. The client keeps its end open until the server is done.
fn read_after(
    until: Option<usize>,
    then: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> Result<Vec<u8>, String> {
    let rt = rt();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = rt.spawn(move || -> Result<Vec<u8>, String> {
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).map_err(|e| e.to_string())?;
        go_tx.send(()).unwrap();
        scx_rt::sleep(SETTLE);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if until.is_some_and(|n| got.len() >= n) {
                return Ok(got);
            }
            match s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("after {:?}: {e}", String::from_utf8_lossy(&got))),
            }
        }
    });
    let client = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        // Late, so that the server's first read waits (the stream is
        // registered with the reactor at its first wait).
        std::thread::sleep(SETTLE);
        c.write_all(b"x").unwrap();
        go_rx.recv().unwrap();
        then(&mut c);
        // Held open until the server is done (an early close could reset).
        c
    });
    let r = server.join().unwrap();
    drop(client.join().unwrap());
    rt.shutdown();
    r
}

/// Data and the peer's FIN arrive before the reader looks: its read
/// returns the data, fewer bytes than the buffer holds, and the FIN's edge
/// is already spent. The hang-up keeps the stream readable (`no_drain`),
/// so the next read returns end of file. Clearing the bit on that short
/// read would leave the reader waiting for an edge that never comes: the
/// read times out and the test fails.
#[test]
fn data_then_fin_short_read_then_end_of_file() {
    let got = guard("data and FIN before the read", || {
        read_after(None, |c| {
            c.write_all(b"abc").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
        })
    });
    assert_eq!(got.as_deref(), Ok(&b"abc"[..]));
}

/// Urgent data: a read stops short at the urgent mark with data behind it
/// (the urgent byte is out of band, not SO_OOBINLINE). The `EPOLLPRI` edge
/// keeps the stream readable (`no_drain`), so the read after the short one
/// finds the rest. Clearing the bit would leave the rest unread until the
/// peer sends again (it does not: it waits with the stream open): the read
/// times out and the test fails.
#[test]
fn urgent_data_short_read_then_the_rest() {
    let got = guard("urgent data before the read", || {
        read_after(Some(4), |c| {
            c.write_all(b"ab").unwrap();
            // SAFETY: `c` is an open socket for the whole call; the buffer
            // is a valid one-byte slice.
            let n = unsafe { libc::send(c.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
            assert_eq!(n, 1, "send MSG_OOB: {}", std::io::Error::last_os_error());
            c.write_all(b"cd").unwrap();
        })
    });
    assert_eq!(got.as_deref(), Ok(&b"abcd"[..]));
}

/// Short reads in a loop: a task echoes 2,000 messages of 100 bytes read
/// with a 4 KiB buffer (every read short, so every next read waits without
/// trying), and a second task on the same CPU sends and checks them. Each
/// edge must reach the parked reader: a lost one hangs (or times out).
#[test]
fn echo_of_short_reads_on_one_cpu() {
    guard("echo of short reads", || {
        let rt = rt();
        rt.block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = scx_rt::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                let mut buf = [0u8; 4096];
                let mut n_total = 0;
                loop {
                    match s.read(&mut buf).unwrap() {
                        0 => return n_total,
                        n => {
                            n_total += n;
                            s.write_all(&buf[..n]).unwrap();
                        }
                    }
                }
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            for i in 0..2000u32 {
                let msg = [(i % 251) as u8; 100];
                c.write_all(&msg).unwrap();
                let mut back = [0u8; 100];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg, "message {i}");
            }
            c.shutdown(Shutdown::Write).unwrap();
            assert_eq!(server.join().unwrap(), 200_000);
        });
        rt.shutdown();
    });
}

/// Short writes: a task writes 16 MiB in one `write_all` to a peer that
/// reads slowly, so the socket's send buffer fills again and again (each
/// short write clears the writable bit) and the writer must be woken by
/// the `EPOLLOUT` edge each time room comes back.
#[test]
fn short_writes_wait_for_room() {
    const LEN: usize = 16 << 20;
    let total = guard("a 16 MiB write to a slow reader", || {
        let rt = rt();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let writer = rt.spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            let data: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
            s.write_all(&data).unwrap();
        });
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((total + k) % 253) as u8, "byte {}", total + k);
            }
            total += n;
            if total % (1 << 20) < n {
                // Slow down now and then, so the writer waits for room.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        writer.join().unwrap();
        rt.shutdown();
        total
    });
    assert_eq!(total, LEN);
}
