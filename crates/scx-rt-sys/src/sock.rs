//! The socket calls std does not offer without blocking: a non-blocking
//! `connect` (std's `TcpStream::connect` blocks the thread until the
//! handshake ends), the pending socket error that completes it, and
//! `O_NONBLOCK` on any fd.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL takes no pointer; `raw` is a live fd (borrowed).
    let fl = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        fl | libc::O_NONBLOCK
    } else {
        fl & !libc::O_NONBLOCK
    };
    if new != fl {
        // SAFETY: F_SETFL with an int argument; `raw` is live.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, new) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A new non-blocking, close-on-exec TCP socket for `addr`'s family, with
/// `connect` started: `Ok((fd, true))` when the handshake is in progress
/// (wait until writable, then [`take_error`]), `Ok((fd, false))` when it
/// completed at once (a local peer).
pub fn connect_nonblocking(addr: &SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes no pointers; it returns a new fd or -1.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by socket and nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for `addr`'s
    // family and lives on our stack for the call.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc == 0 {
        return Ok((fd, false));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // An interrupted connect goes on in the background: wait for it
        // like an in-progress one.
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok((fd, true)),
        _ => Err(e),
    }
}

/// The socket's pending error (`SO_ERROR`), cleared by the read: the result
/// of a non-blocking connect once the socket is writable.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are writable locals of the sizes we pass.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any
            // sockaddr; we write one sockaddr_in at its start.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for one sockaddr_in6.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn nonblocking_connect_completes_and_reports_refusal() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (fd, pending) = connect_nonblocking(&addr).unwrap();
        if pending {
            let r = crate::epoll::poll_one(fd.as_raw_fd(), crate::epoll::OUT, None).unwrap();
            assert_ne!(r & crate::epoll::OUT, 0);
        }
        assert!(take_error(fd.as_fd()).unwrap().is_none());
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), addr.ip());
        drop(l);
        // Nothing listens there any more: the connect fails.
        let (fd, pending) = match connect_nonblocking(&addr) {
            Ok(x) => x,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                return;
            }
        };
        if pending {
            crate::epoll::poll_one(fd.as_raw_fd(), crate::epoll::OUT, None).unwrap();
        }
        let e = take_error(fd.as_fd()).unwrap().expect("refused");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn set_nonblocking_toggles_the_flag() {
        let (r, _w) = std::io::pipe().unwrap();
        set_nonblocking(r.as_fd(), true).unwrap();
        let mut buf = [0u8; 1];
        let e = std::io::Read::read(&mut &r, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        set_nonblocking(r.as_fd(), false).unwrap();
    }
}
