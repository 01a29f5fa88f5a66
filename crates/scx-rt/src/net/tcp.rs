//! Green TCP: [`TcpListener`] and [`TcpStream`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::io::GreenFd;

/// A TCP listener whose `accept` parks only the calling task.
#[derive(Debug)]
pub struct TcpListener {
    inner: GreenFd<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works), listening.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Wraps a std listener (made non-blocking).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: GreenFd::new(l)?,
        })
    }

    /// Accepts a connection. A failure (`EMFILE` when out of fds, a
    /// connection reset before it was accepted) is returned as is; the
    /// listener stays usable.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.inner.read_with(|l| l.accept())?;
        Ok((TcpStream::from_std(s)?, a))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets how long `accept` waits (`None`: for ever); an `accept` that
    /// times out fails with `ErrorKind::TimedOut`.
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(t)
    }

    /// The pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// An iterator of accepted connections (never ends by itself).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(|| self.accept().map(|(s, _)| s))
    }

    /// The std listener (still non-blocking).
    pub fn into_std(self) -> std::net::TcpListener {
        self.inner.into_inner()
    }
}

/// A TCP stream whose blocking reads, writes and connect park only the
/// calling task.
#[derive(Debug)]
pub struct TcpStream {
    inner: GreenFd<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn): a non-blocking
    /// connect whose handshake parks the task.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        super::each_addr(addr, |a| Self::connect_one(a, None))
    }

    /// Connects to `addr` with a timeout (`ErrorKind::TimedOut`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        Self::connect_one(addr, Some(timeout))
    }

    fn connect_one(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let (fd, pending) = scx_rt_sys::sock::connect_nonblocking(addr)?;
        let s = TcpStream::from_std(std::net::TcpStream::from(fd))?;
        if pending {
            s.inner.set_write_timeout(timeout)?;
            s.inner.writable()?;
            s.inner.set_write_timeout(None)?;
            if let Some(e) = scx_rt_sys::sock::take_error(s.inner.as_fd())? {
                return Err(e);
            }
        }
        Ok(s)
    }

    /// Wraps a std stream (made non-blocking).
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: GreenFd::new(s)?.byte_stream(),
        })
    }

    /// The std stream (still non-blocking).
    pub fn into_std(self) -> std::net::TcpStream {
        self.inner.into_inner()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Shuts down the read, write or both halves. A task blocked reading
    /// this stream (through a clone) then reads end-of-file.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Sets the read timeout (`None`: none; zero is an error). A read that
    /// times out fails with `ErrorKind::TimedOut`.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(t)
    }

    /// Sets the write timeout (`None`: none; zero is an error).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(t)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.write_timeout())
    }

    /// Reads without removing the data from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf))
    }

    /// A second handle to the same socket (its own registration).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Self::from_std(self.inner.get_ref().try_clone()?)
    }

    /// The pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.inner).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.inner).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
