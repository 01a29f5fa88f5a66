//! `accept` when the process is out of file descriptors (`EMFILE`): the
//! error reaches the task as an `io::Error`, the listener stays usable,
//! and once fds are freed the pending connection is accepted. Its own test
//! binary: it lowers the process's fd limit.
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use scx_rt::net::TcpListener;
use scx_rt::Runtime;

mod common;

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a writable rlimit on our stack.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(cur: libc::rlim_t) {
    let mut r = nofile();
    r.rlim_cur = cur;
    // SAFETY: `r` is a valid rlimit; lowering the soft limit needs no
    // privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

#[test]
fn accept_out_of_fds_is_an_error_and_recovers() {
    common::guard("accept with EMFILE", || {
        let rt = Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let old = nofile();
        let r = rt.block_on(move || {
            // A client (a plain thread's std socket) connects; its fd is
            // made before the limit drops.
            let client = std::net::TcpStream::connect(addr).unwrap();
            // Use up every fd below a limit just above what is open now.
            let probe: Vec<OwnedFd> = (0..64)
                .map_while(|_| std::fs::File::open("/dev/null").ok().map(OwnedFd::from))
                .collect();
            let highest = probe
                .iter()
                .map(std::os::fd::AsRawFd::as_raw_fd)
                .max()
                .unwrap();
            drop(probe);
            set_nofile(highest as libc::rlim_t + 1);
            let mut hog = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
            }
            let first = l.accept().map(|_| ()).map_err(|e| e.raw_os_error());
            // Free fds: the connection still waits in the backlog.
            drop(hog);
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"ok").unwrap();
            let mut c = client;
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).unwrap();
            (first, buf)
        });
        set_nofile(old.rlim_cur);
        let (first, buf) = r;
        assert_eq!(first, Err(Some(libc::EMFILE)));
        assert_eq!(&buf, b"ok");
    });
}
