//! Green networking: TCP and UDP sockets with std's shapes whose blocking
//! calls park only the calling task (`scx_rt::io` has the reactor and the
//! rules). Outside a task they block the thread, as std's sockets do.
//!
//! ```
//! use std::io::{Read, Write};
//! use scx_rt::net::{TcpListener, TcpStream};
//!
//! let rt = scx_rt::Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
//! let echoed = rt.block_on(|| {
//!     let l = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = l.local_addr().unwrap();
//!     let server = scx_rt::spawn(move || {
//!         let (mut s, _) = l.accept().unwrap();
//!         let mut buf = [0u8; 4];
//!         s.read_exact(&mut buf).unwrap();
//!         s.write_all(&buf).unwrap();
//!     });
//!     let mut c = TcpStream::connect(addr).unwrap();
//!     c.write_all(b"ping").unwrap();
//!     let mut buf = [0u8; 4];
//!     c.read_exact(&mut buf).unwrap();
//!     server.join().unwrap();
//!     buf
//! });
//! assert_eq!(&echoed, b"ping");
//! ```

mod tcp;
mod udp;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Tries `f` on each address `addr` resolves to; the last error if none
/// works (std's rule).
fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
