//! An eventfd doorbell for the I/O-aware idle loop.
//!
//! An eventfd is a kernel counter behind a file descriptor: [`EventFd::notify`]
//! adds 1, and a read returns the accumulated count and resets it to 0. Many
//! notifications before one wait collapse into one wake-up, which is exactly
//! the doorbell semantic (ring = "look at your queues again"). Because it is a
//! file descriptor, an idle loop can sleep on it together with other fds
//! (epoll); [`EventFd::wait`] is the single-fd version, `ppoll` + `read`.
//!
//! The fd is non-blocking, so a read that races with another reader simply
//! reports "not signalled" instead of blocking.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::timespec::duration_to_timespec;

/// An owned eventfd (`EFD_CLOEXEC | EFD_NONBLOCK`), closed on drop.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates a new eventfd with a zero counter.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open, and nobody else
        // owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Adds 1 to the counter, waking a waiter. A counter already at its
    /// maximum (`EAGAIN`) is already signalled, so that is success too.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: we pass a pointer to an 8-byte u64 that lives on our
            // stack for the call, and its exact size; the fd is owned by self.
            let n = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>(),
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(()),
                _ => return Err(err),
            }
        }
    }

    /// Waits until the eventfd is signalled or `timeout` passes (`None` =
    /// forever). Returns `true` if it was signalled, in which case the counter
    /// has been consumed (reset to 0); `false` on timeout or when another
    /// reader consumed it first.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if self.try_consume()? {
                return Ok(true);
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    Some(d - now)
                }
            };
            if !self.poll_readable(left)? {
                // Timed out, or interrupted: the loop re-checks the deadline.
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(false);
                }
            }
        }
    }

    /// Reads (and so resets) the counter if it is non-zero.
    pub fn try_consume(&self) -> io::Result<bool> {
        let mut val: u64 = 0;
        loop {
            // SAFETY: `val` is a writable 8-byte buffer on our stack, and we
            // pass its exact size; the fd is owned by self.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut val as *mut u64).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>(),
                )
            };
            if n >= 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(err),
            }
        }
    }

    /// `ppoll` for readability; `Ok(false)` on timeout or `EINTR`.
    fn poll_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timeout.map(duration_to_timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pfd` is one valid pollfd and we pass nfds = 1; `ts_ptr` is
        // null or points at a timespec that outlives the call; a null sigmask
        // leaves the signal mask alone.
        let n = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err);
        }
        Ok(n > 0)
    }

    /// The raw fd, for registering with epoll. Still owned by `self`.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_send_sync() {
        assert_send_sync::<EventFd>();
    }

    #[test]
    fn notify_then_wait() {
        let e = EventFd::new().unwrap();
        assert!(e.as_raw_fd() >= 0);
        e.notify().unwrap();
        e.notify().unwrap();
        // Two notifications collapse into one signal.
        assert!(e.wait(Some(Duration::from_secs(5))).unwrap());
        assert!(!e.wait(Some(Duration::ZERO)).unwrap());
        assert!(!e.try_consume().unwrap());
    }

    #[test]
    fn wait_times_out() {
        let e = EventFd::new().unwrap();
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        assert!(!e.wait(Some(timeout)).unwrap());
        assert!(start.elapsed() >= timeout);
    }

    #[test]
    fn notify_across_threads() {
        let e = Arc::new(EventFd::new().unwrap());
        let e2 = e.clone();
        let t = std::thread::spawn(move || e2.wait(None).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        e.notify().unwrap();
        assert!(t.join().unwrap());
    }

    #[test]
    fn closes_on_drop() {
        let e = EventFd::new().unwrap();
        let fd = e.as_raw_fd();
        drop(e);
        // SAFETY: F_GETFD on a (now presumably closed) fd number only reads
        // kernel state; no memory is passed.
        let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // Another test may have reused the number concurrently; only check
        // when it is still free.
        if rc < 0 {
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EBADF));
        }
    }
}
