//! epoll: the readiness source of the runtime's I/O reactor.
//!
//! [`Epoll`] is an owned epoll instance (`EPOLL_CLOEXEC`). Registrations
//! carry a 64-bit token that comes back with each event; the reactor above
//! turns tokens into its own records, so nothing here stores a pointer.
//! [`Epoll::wait`] fills a caller-owned buffer and treats `EINTR` as "no
//! events": callers loop anyway, and a signal (the slice timer's, for
//! instance) must never surface as an error.
//!
//! [`poll_one`] waits for one fd with `poll(2)`: the blocking path of a
//! green I/O object used outside a task.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Readable (`EPOLLIN`).
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable (`EPOLLOUT`).
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// The peer shut down its writing half (`EPOLLRDHUP`).
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Hang-up (`EPOLLHUP`): reported whether asked for or not.
pub const HUP: u32 = libc::EPOLLHUP as u32;
/// Error condition (`EPOLLERR`): reported whether asked for or not.
pub const ERR: u32 = libc::EPOLLERR as u32;
/// Urgent (TCP out-of-band) data (`EPOLLPRI`).
pub const PRI: u32 = libc::EPOLLPRI as u32;
/// Edge-triggered (`EPOLLET`).
pub const ET: u32 = libc::EPOLLET as u32;

/// One event: the readiness bits and the registration's token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `IN`, `OUT`, `PRI`, `RDHUP`, `HUP`, `ERR` bits.
    pub events: u32,
    /// The token given at registration.
    pub token: u64,
}

/// A buffer of raw events for [`Epoll::wait`].
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    /// Room for `cap` events per wait (at least 1).
    pub fn with_capacity(cap: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; cap.max(1)],
            len: 0,
        }
    }

    /// The events of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf[..self.len].iter().map(|e| Event {
            events: e.events,
            token: e.u64,
        })
    }

    /// Events returned by the last wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last wait returned no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the events of the last wait.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// An owned epoll instance, closed on drop.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new, empty epoll instance.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; it returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1, is open, and
        // nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives on our stack for the call (the kernel copies
        // it; for EPOLL_CTL_DEL it is ignored); both fds are plain integers
        // the kernel validates.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Registers `fd` for `events` (`IN | OUT | RDHUP | ET`, ...) with
    /// `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes the events or token of a registered `fd`.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Removes `fd`'s registration.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout` (`None`: forever; zero: a non-blocking check)
    /// and fills `out`. Returns the number of events; an interrupted wait
    /// (`EINTR`) returns 0.
    ///
    /// The timeout has nanosecond resolution (`epoll_pwait2`, Linux 5.11):
    /// an idle worker sleeps until its earliest task timer, which may be
    /// microseconds away. On an older kernel it falls back to
    /// `epoll_wait`, rounding the timeout up to a millisecond (never early).
    pub fn wait(&self, out: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        let cap = out.buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
        let n = if PWAIT2.load(Ordering::Relaxed) {
            let ts = timeout.map(crate::timespec::duration_to_timespec);
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `out.buf` is a live, writable array of `cap`
            // epoll_event structs for the call; `ts_ptr` is null or points
            // at a timespec on our stack; a null sigmask (size 0) leaves
            // the signal mask alone.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    out.buf.as_mut_ptr(),
                    cap,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                PWAIT2.store(false, Ordering::Relaxed);
                return self.wait(out, timeout);
            }
            n as libc::c_int
        } else {
            let ms: libc::c_int = match timeout {
                None => -1,
                Some(d) => d
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(libc::c_int::MAX as u128) as libc::c_int,
            };
            // SAFETY: as above, `out.buf` holds `cap` writable events.
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), out.buf.as_mut_ptr(), cap, ms) }
        };
        if n < 0 {
            out.len = 0;
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        out.len = n as usize;
        Ok(out.len)
    }
}

/// Whether `epoll_pwait2` is available (cleared at the first `ENOSYS`).
static PWAIT2: AtomicBool = AtomicBool::new(true);

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until `fd` is ready for `events` (`IN`, `OUT`) or `timeout`
/// passes (`None`: forever). Returns the `poll(2)` revents in epoll's bit
/// values (`IN`, `OUT`, `HUP`, `ERR`), or 0 on timeout. `EINTR` restarts the
/// wait with the time left.
pub fn poll_one(fd: RawFd, events: u32, timeout: Option<Duration>) -> io::Result<u32> {
    let mut want: libc::c_short = 0;
    if events & IN != 0 {
        want |= libc::POLLIN;
    }
    if events & OUT != 0 {
        want |= libc::POLLOUT;
    }
    let deadline = timeout.map(|d| std::time::Instant::now() + d);
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(dl) => dl
                .saturating_duration_since(std::time::Instant::now())
                .as_nanos()
                .div_ceil(1_000_000)
                .min(libc::c_int::MAX as u128) as libc::c_int,
        };
        let mut p = libc::pollfd {
            fd,
            events: want,
            revents: 0,
        };
        // SAFETY: one pollfd on our stack, live for the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(0);
        }
        let mut r = 0;
        if p.revents & libc::POLLIN != 0 {
            r |= IN;
        }
        if p.revents & libc::POLLOUT != 0 {
            r |= OUT;
        }
        if p.revents & libc::POLLHUP != 0 {
            r |= HUP;
        }
        if p.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            r |= ERR;
        }
        return Ok(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventfd::EventFd;

    #[test]
    fn eventfd_readiness_comes_back_with_its_token() {
        let ep = Epoll::new().unwrap();
        let efd = EventFd::new().unwrap();
        ep.add(efd.as_raw_fd(), IN | ET, 42).unwrap();
        let mut ev = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
        efd.notify().unwrap();
        assert_eq!(ep.wait(&mut ev, Some(Duration::from_secs(5))).unwrap(), 1);
        let e = ev.iter().next().unwrap();
        assert_eq!(e.token, 42);
        assert_ne!(e.events & IN, 0);
        // Edge-triggered: no new edge, no new event.
        assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
        ep.delete(efd.as_raw_fd()).unwrap();
        efd.notify().unwrap();
        assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn ctl_on_a_bad_fd_is_an_error() {
        let ep = Epoll::new().unwrap();
        assert!(ep.add(-1, IN, 0).is_err());
        assert!(ep.delete(-1).is_err());
    }

    #[test]
    fn poll_one_times_out_then_sees_readiness() {
        let efd = EventFd::new().unwrap();
        let r = poll_one(efd.as_raw_fd(), IN, Some(Duration::from_millis(1))).unwrap();
        assert_eq!(r, 0);
        efd.notify().unwrap();
        let r = poll_one(efd.as_raw_fd(), IN, None).unwrap();
        assert_ne!(r & IN, 0);
    }
}
