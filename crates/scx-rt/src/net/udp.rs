//! Green UDP: [`UdpSocket`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::io::GreenFd;

/// A UDP socket whose blocking sends and receives park only the calling
/// task.
#[derive(Debug)]
pub struct UdpSocket {
    inner: GreenFd<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Self::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Wraps a std socket (made non-blocking).
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: GreenFd::new(s)?,
        })
    }

    /// The std socket (still non-blocking).
    pub fn into_std(self) -> std::net::UdpSocket {
        self.inner.into_inner()
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }

    /// Sends one datagram to `addr` (its first resolved address).
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let a = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.inner.write_with(|s| s.send_to(buf, a))
    }

    /// Sets the peer for `send` and `recv`.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.get_ref().connect(addr)
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Sets the receive timeout (`None`: none; zero is an error).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(t)
    }

    /// Sets the send timeout (`None`: none; zero is an error).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(t)
    }

    /// A second handle to the same socket (its own registration).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Self::from_std(self.inner.get_ref().try_clone()?)
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
