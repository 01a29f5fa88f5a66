//! Green I/O (`scx_rt::io`, `scx_rt::net`): a blocked read parks only its
//! task, echo over TCP and UDP with many connections, timeouts through the
//! runtime's timers, and every failure the reactor must turn into an
//! `io::Error` rather than a hang: a peer reset, a half-closed stream, a
//! stream shut down while another task reads it, and a runtime shutting
//! down with tasks blocked on I/O.
#![cfg(not(scx_rt_loom))]

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scx_rt::io::GreenFd;
use scx_rt::net::{TcpListener, TcpStream, UdpSocket};
use scx_rt::Runtime;

mod common;
use common::guard;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// One CPU: a task blocked reading a pipe must leave the CPU to the task
/// that writes it. If the read blocked the CPU, the writer would never run
/// and the guard would report a hang.
#[test]
fn a_blocked_read_parks_only_its_task() {
    guard("pipe reader and writer on one CPU", || {
        let rt = rt(1);
        let got = rt.block_on(|| {
            let (r, w) = std::io::pipe().unwrap();
            let r = GreenFd::new(r).unwrap();
            let w = GreenFd::new(w).unwrap();
            let reader = scx_rt::spawn(move || {
                let mut buf = vec![0u8; 3 * 4096];
                (&r).read_exact(&mut buf).unwrap();
                buf
            });
            // Let the reader block first, then write in pieces.
            for i in 0..3u8 {
                scx_rt::yield_now();
                (&w).write_all(&[i; 4096]).unwrap();
            }
            reader.join().unwrap()
        });
        assert_eq!(got.len(), 3 * 4096);
        for (i, chunk) in got.chunks(4096).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8));
        }
        let s = rt.stats();
        let io: u64 = s.cpus.iter().map(|c| c.io_wakeups).sum();
        assert!(io >= 1, "the reader was never woken by the reactor: {s:?}");
    });
}

/// A writer blocked on a full pipe parks, and resumes when the reader
/// drains it (the write direction of the protocol).
#[test]
fn a_blocked_write_resumes_when_drained() {
    guard("pipe writer blocked on a full pipe", || {
        let rt = rt(1);
        let n = rt.block_on(|| {
            let (r, w) = std::io::pipe().unwrap();
            let r = GreenFd::new(r).unwrap();
            let w = GreenFd::new(w).unwrap();
            // Far more than a pipe buffer (64 KiB by default).
            let total = 1 << 20;
            let writer = scx_rt::spawn(move || {
                let buf = vec![7u8; total];
                (&w).write_all(&buf).unwrap();
            });
            let mut got = 0;
            let mut buf = vec![0u8; 8192];
            while got < total {
                let k = (&r).read(&mut buf).unwrap();
                assert!(buf[..k].iter().all(|&b| b == 7));
                got += k;
            }
            writer.join().unwrap();
            got
        });
        assert_eq!(n, 1 << 20);
    });
}

fn echo_server(l: TcpListener, conns: usize) -> scx_rt::JoinHandle<()> {
    scx_rt::spawn(move || {
        let mut hs = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = l.accept().unwrap();
            hs.push(scx_rt::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).unwrap();
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    })
}

/// Echo over TCP: 64 client tasks, each with its own connection, send
/// 100 messages and read each echo back, on 2 CPUs (server and clients
/// all green tasks); every byte comes back.
#[test]
fn tcp_echo_many_connections() {
    guard("tcp echo, 64 connections", || {
        let rt = rt(2);
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        rt.block_on(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let conns = 64;
            let server = echo_server(l, conns);
            let clients: Vec<_> = (0..conns)
                .map(|c| {
                    let d = d.clone();
                    scx_rt::spawn(move || {
                        let mut s = TcpStream::connect(addr).unwrap();
                        s.set_nodelay(true).unwrap();
                        for i in 0..100u32 {
                            let msg = format!("client {c} message {i:04}");
                            s.write_all(msg.as_bytes()).unwrap();
                            let mut back = vec![0u8; msg.len()];
                            s.read_exact(&mut back).unwrap();
                            assert_eq!(back, msg.as_bytes());
                        }
                        s.shutdown(Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).unwrap();
                        assert!(rest.is_empty());
                        d.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
            server.join().unwrap();
        });
        assert_eq!(done.load(Ordering::Relaxed), 64);
    });
}

/// A client outside the runtime (a plain thread, std's blocking socket)
/// talks to a green server, and a green client to a plain-thread server.
#[test]
fn green_and_std_sockets_interoperate() {
    guard("green server, std client and back", || {
        let rt = rt(2);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = rt.spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        server.join().unwrap();

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"from std").unwrap();
        });
        let got = rt.block_on(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).unwrap();
            v
        });
        assert_eq!(got, b"from std");
        t.join().unwrap();
    });
}

/// Outside any task a green socket blocks its thread like std's.
#[test]
fn outside_a_task_calls_block_the_thread() {
    guard("green fds on plain threads", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 3];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        c.write_all(b"abc").unwrap();
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        t.join().unwrap();
        // And a timeout outside a task.
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut one = [0u8; 1];
        // The peer closed: end of file, not a timeout.
        assert_eq!(c.read(&mut one).unwrap(), 0);
        let (r, _w) = std::io::pipe().unwrap();
        let r = GreenFd::new(r).unwrap();
        r.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let e = (&r).read(&mut one).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    });
}

/// A read timeout ends the wait with `TimedOut` through the runtime's
/// timers, and the CPU runs other tasks while the reader waits: on one
/// CPU, a second task counts while the first waits for its timeout.
#[test]
fn read_timeout_in_a_task() {
    guard("read timeout", || {
        let rt = rt(1);
        let (kind, ran) = rt.block_on(|| {
            let (r, w) = std::io::pipe().unwrap();
            let r = GreenFd::new(r).unwrap();
            r.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            assert_eq!(r.read_timeout(), Some(Duration::from_millis(30)));
            assert!(r.set_read_timeout(Some(Duration::ZERO)).is_err());
            let ran = Arc::new(AtomicUsize::new(0));
            let rn = ran.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let st = stop.clone();
            let other = scx_rt::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    rn.fetch_add(1, Ordering::Relaxed);
                    scx_rt::sleep(Duration::from_millis(1));
                }
            });
            let mut one = [0u8; 1];
            let e = (&r).read(&mut one).unwrap_err();
            stop.store(true, Ordering::Relaxed);
            other.join().unwrap();
            drop(w);
            (e.kind(), ran.load(Ordering::Relaxed))
        });
        assert_eq!(kind, ErrorKind::TimedOut);
        assert!(
            ran >= 2,
            "the other task did not run while the reader waited"
        );
    });
}

/// The peer resets the connection (it closes with unread data, which sends
/// a RST): the blocked reader gets `ConnectionReset`, not a hang.
#[test]
fn peer_reset_is_an_error() {
    guard("peer reset", || {
        let rt = rt(2);
        let kind = rt.block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let peer = scx_rt::spawn(move || {
                let (s, _) = l.accept().unwrap();
                // Wait until the client's bytes arrived, unread.
                let mut b = [0u8; 1];
                s.peek(&mut b).unwrap();
                drop(s);
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"unread").unwrap();
            peer.join().unwrap();
            let mut buf = [0u8; 16];
            loop {
                match c.read(&mut buf) {
                    Ok(0) => break ErrorKind::UnexpectedEof,
                    Ok(_) => continue,
                    Err(e) => break e.kind(),
                }
            }
        });
        assert_eq!(kind, ErrorKind::ConnectionReset);
    });
}

/// Half-closed: the client shuts down its write half; the server reads
/// end-of-file, still writes its answer, and the client reads it.
#[test]
fn half_closed_stream() {
    guard("half close", || {
        let rt = rt(2);
        let got = rt.block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = scx_rt::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut all = Vec::new();
                s.read_to_end(&mut all).unwrap();
                s.write_all(format!("got {} bytes", all.len()).as_bytes())
                    .unwrap();
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&[1u8; 1000]).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut v = String::new();
            c.read_to_string(&mut v).unwrap();
            server.join().unwrap();
            v
        });
        assert_eq!(got, "got 1000 bytes");
    });
}

/// One task blocks reading a stream; another shuts the stream down
/// through a clone: the reader wakes with end-of-file.
#[test]
fn shutdown_while_another_task_reads() {
    guard("shutdown under a blocked reader", || {
        let rt = rt(2);
        let n = rt.block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let keep = scx_rt::spawn(move || l.accept().unwrap().0);
            let c = TcpStream::connect(addr).unwrap();
            let _server_side = keep.join().unwrap();
            let c2 = c.try_clone().unwrap();
            let reader = scx_rt::spawn(move || {
                let mut buf = [0u8; 8];
                (&c2).read(&mut buf)
            });
            scx_rt::sleep(Duration::from_millis(20));
            c.shutdown(Shutdown::Both).unwrap();
            reader.join().unwrap()
        });
        assert_eq!(n.unwrap(), 0);
    });
}

/// Shutting the runtime down while tasks wait in `accept` and in `read`
/// (nobody will ever connect or write): their waits fail with
/// `NotConnected`, the tasks finish, and shutdown returns.
#[test]
fn runtime_shutdown_fails_blocked_io() {
    guard("shutdown with blocked I/O", || {
        let rt = rt(2);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts until its wait fails; keeps what it accepted alive (so
        // the client below reads no end-of-file) and hands it back.
        let acceptor = rt.spawn(move || {
            let mut kept = Vec::new();
            loop {
                match l.accept() {
                    Ok((s, _)) => kept.push(s),
                    Err(e) => return (e.kind(), kept),
                }
            }
        });
        let (r, _w) = std::io::pipe().unwrap();
        let reader = rt.spawn(move || {
            let r = GreenFd::new(r).unwrap();
            let mut b = [0u8; 1];
            (&r).read(&mut b).map(|_| ()).map_err(|e| e.kind())
        });
        // A client connects and idles, so a third task waits in `read`.
        let reader2 = rt.spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut b = [0u8; 1];
            s.read(&mut b).map(|_| ()).map_err(|e| e.kind())
        });
        common::wait_until("the tasks to block", || {
            rt.stats().cpus.iter().map(|c| c.pick_seq).sum::<u64>() > 6
        });
        std::thread::sleep(Duration::from_millis(50));
        rt.shutdown();
        let (a, kept) = acceptor.join().unwrap();
        assert_eq!(a, ErrorKind::NotConnected);
        assert_eq!(kept.len(), 1);
        assert_eq!(reader.join().unwrap(), Err(ErrorKind::NotConnected));
        assert_eq!(reader2.join().unwrap(), Err(ErrorKind::NotConnected));
    });
}

/// UDP echo between two green sockets, connected and not.
#[test]
fn udp_echo() {
    guard("udp echo", || {
        let rt = rt(2);
        rt.block_on(|| {
            let server = UdpSocket::bind("127.0.0.1:0").unwrap();
            let saddr = server.local_addr().unwrap();
            let s = scx_rt::spawn(move || {
                let mut buf = [0u8; 64];
                for _ in 0..50 {
                    let (n, from) = server.recv_from(&mut buf).unwrap();
                    server.send_to(&buf[..n], from).unwrap();
                }
            });
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect(saddr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for i in 0..50u32 {
                let m = i.to_le_bytes();
                c.send(&m).unwrap();
                let mut b = [0u8; 4];
                assert_eq!(c.recv(&mut b).unwrap(), 4);
                assert_eq!(b, m);
            }
            s.join().unwrap();
        });
    });
}

/// Connecting to a port nobody listens on fails with `ConnectionRefused`
/// (the non-blocking connect's error), and a connect timeout is honoured
/// in form (`TimedOut` or the refusal, whichever the host gives).
#[test]
fn connect_errors() {
    guard("connect errors", || {
        let rt = rt(1);
        let (a, b) = rt.block_on(|| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            drop(l);
            let a = TcpStream::connect(addr).map(|_| ()).map_err(|e| e.kind());
            let b = TcpStream::connect_timeout(&addr, Duration::from_millis(50))
                .map(|_| ())
                .map_err(|e| e.kind());
            (a, b)
        });
        assert_eq!(a, Err(ErrorKind::ConnectionRefused));
        assert!(
            b == Err(ErrorKind::ConnectionRefused) || b == Err(ErrorKind::TimedOut),
            "{b:?}"
        );
    });
}
