//! [`GreenFd`]: any fd made non-blocking, whose blocking calls park the
//! calling task instead of its CPU.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::source::{self, Source, READ, WRITE};

/// An fd whose blocking I/O suspends only the calling green task.
///
/// `GreenFd::new` puts the fd in non-blocking mode. [`GreenFd::read_with`]
/// and [`GreenFd::write_with`] run an operation on the inner object and,
/// when it would block, wait for the fd to become ready and try again:
///
/// - inside a task of an scx-rt runtime, the task is suspended and its CPU
///   runs other tasks; the fd is registered with the reactor of the CPU the
///   task runs on at its first wait (module `io`);
/// - anywhere else (a plain thread, `spawn_blocking`), the thread blocks in
///   `poll(2)`, as a std blocking fd would.
///
/// `Read` and `Write` are implemented through those two for any inner
/// type that implements them on a shared reference (sockets, pipes, files
/// of other kinds). Timeouts (`set_read_timeout`, `set_write_timeout`) use
/// the runtime's task timers and end a wait with `ErrorKind::TimedOut`.
/// When the runtime shuts down, waiting tasks get `ErrorKind::NotConnected`
/// so that they can finish.
///
/// ```
/// use std::io::{Read, Write};
/// use scx_rt::io::GreenFd;
///
/// let rt = scx_rt::Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
/// let got = rt.block_on(|| {
///     let (r, w) = std::io::pipe().unwrap();
///     let r = GreenFd::new(r).unwrap();
///     let w = GreenFd::new(w).unwrap();
///     // The reader parks until the writer (another task) has written.
///     let reader = scx_rt::spawn(move || {
///         let mut buf = [0u8; 5];
///         (&r).read_exact(&mut buf).unwrap();
///         buf
///     });
///     scx_rt::yield_now();
///     (&w).write_all(b"hello").unwrap();
///     reader.join().unwrap()
/// });
/// assert_eq!(&got, b"hello");
/// ```
pub struct GreenFd<T: AsFd> {
    inner: Option<T>,
    fd: RawFd,
    source: OnceLock<Arc<Source>>,
    /// Serializes the first registration (two tasks may wait at once).
    registering: parking_lot::Mutex<()>,
    /// Timeouts in ns; 0: none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// A byte stream (set by `net::TcpStream`): a `read` or `write` that
    /// moves some bytes but fewer than asked drained the socket's queue
    /// (or room), so the next call in that direction waits for readiness
    /// without trying first (`Source::drained`).
    stream: bool,
}

impl<T: AsFd> GreenFd<T> {
    /// Wraps `inner`, making its fd non-blocking.
    pub fn new(inner: T) -> io::Result<Self> {
        scx_rt_sys::sock::set_nonblocking(inner.as_fd(), true)?;
        let fd = inner.as_fd().as_raw_fd();
        Ok(Self {
            inner: Some(inner),
            fd,
            source: OnceLock::new(),
            registering: parking_lot::Mutex::new(()),
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
            stream: false,
        })
    }

    /// Marks the fd a byte stream whose short transfers mean "drained"
    /// (a stream socket; not a datagram socket, an eventfd in semaphore
    /// mode or anything else that can return less than asked with more
    /// left to give). Saves the system call that would otherwise find out
    /// with `WouldBlock` after every short read.
    pub(crate) fn byte_stream(mut self) -> Self {
        self.stream = true;
        self
    }

    /// The inner object.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until into_inner")
    }

    /// The inner object, mutably. Do not replace its fd.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until into_inner")
    }

    /// Unregisters the fd and returns the inner object (still non-blocking).
    pub fn into_inner(mut self) -> T {
        self.deregister();
        self.inner.take().expect("present until into_inner")
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for the
    /// fd to be readable in between (the read timeout applies).
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(READ, &self.read_timeout, op, |_| false)
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for the
    /// fd to be writable in between (the write timeout applies).
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(WRITE, &self.write_timeout, op, |_| false)
    }

    /// A read or write of `want` bytes: `read_with`/`write_with`, and on a
    /// byte stream a transfer of fewer bytes (but some) marks the
    /// direction drained. An end of file (0) is not a short read: it stays
    /// readable, and no edge would come to say so again.
    fn transfer(
        &self,
        dir: u32,
        want: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let timeout = if dir == READ {
            &self.read_timeout
        } else {
            &self.write_timeout
        };
        let stream = self.stream;
        self.io_with(dir, timeout, op, |&n| stream && n > 0 && n < want)
    }

    /// Waits until the fd is writable (or the write timeout passes):
    /// a non-blocking `connect` completes this way.
    pub fn writable(&self) -> io::Result<()> {
        let mut first = true;
        self.write_with(|_| {
            if std::mem::take(&mut first) {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        })
    }

    /// Sets the read timeout (`None`: wait forever). Zero is an error, as
    /// for std's sockets.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.read_timeout, t)
    }

    /// Sets the write timeout (`None`: wait forever). Zero is an error.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.write_timeout, t)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        get_timeout(&self.read_timeout)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        get_timeout(&self.write_timeout)
    }

    /// The loop of `io` (T1 to T4): try `op` unless the source says `dir`
    /// is not ready, wait, try again. `drained` says whether a result left
    /// the direction drained (`transfer`).
    fn io_with<R>(
        &self,
        dir: u32,
        timeout: &AtomicU64,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let inner = self.get_ref();
        let t = timeout.load(Ordering::Relaxed);
        // When the first wait outside a task began (its timeout runs from
        // there): no clock read for the common call that does not wait.
        let mut start: Option<std::time::Instant> = None;
        let mut deadline: Option<u64> = None;
        // Outside a task, `poll(2)` said ready: try whatever the source's
        // bits say (they are a task's, from the reactor).
        let mut polled = false;
        loop {
            let (seq, ready) = match self.source.get() {
                Some(s) => s.seq_ready(dir),
                None => (0, true),
            };
            if ready || std::mem::take(&mut polled) {
                match op(inner) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(r) => {
                        if drained(&r) {
                            if let Some(s) = self.source.get() {
                                s.drained(dir, seq);
                            }
                        }
                        return Ok(r);
                    }
                    r => return r,
                }
            }
            match self.task_source()? {
                Some(s) => {
                    if t != 0 && deadline.is_none() {
                        deadline = Some(crate::core::clock::now().saturating_add(t));
                    }
                    s.wait(dir, seq, deadline)?;
                }
                None => {
                    // Outside a task: block the thread, as std would.
                    let start = *start.get_or_insert_with(std::time::Instant::now);
                    let left =
                        (t != 0).then(|| Duration::from_nanos(t).saturating_sub(start.elapsed()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Err(timed_out());
                    }
                    let ev = if dir == READ {
                        scx_rt_sys::epoll::IN
                    } else {
                        scx_rt_sys::epoll::OUT
                    };
                    if scx_rt_sys::epoll::poll_one(self.fd, ev, left)? == 0 {
                        return Err(timed_out());
                    }
                    polled = true;
                }
            }
        }
    }

    /// The source to wait on when the caller is a green task: registered
    /// with the reactor of the task's CPU at the first wait. `None` outside
    /// a task, or in a task of a runtime other than the one the fd is
    /// registered with (that caller blocks its thread instead).
    fn task_source(&self) -> io::Result<Option<&Arc<Source>>> {
        let Some((sh, cpu, Some(_))) = crate::context::current() else {
            return Ok(None);
        };
        if let Some(s) = self.source.get() {
            return Ok((s.rt_id == sh.rt_id).then_some(s));
        }
        let _g = self.registering.lock();
        if let Some(s) = self.source.get() {
            return Ok((s.rt_id == sh.rt_id).then_some(s));
        }
        if sh.io.is_closed() {
            return Err(source::shut_down());
        }
        let r = sh
            .io
            .get_or_make(cpu, &sh.cpus[cpu].shared.remote.doorbell)?;
        let fd = self.fd;
        let rt = sh.rt_id;
        let s = r.register(fd, |token| Source::new(fd, rt, cpu, token))?;
        let s = self.source.get_or_init(|| s);
        if sh.io.is_closed() {
            // Shutdown raced with the registration: `close` may have missed
            // this source.
            let mut woken = Vec::new();
            s.close(&mut woken);
        }
        Ok(Some(s))
    }

    fn deregister(&mut self) {
        if let Some(s) = self.source.take() {
            if let Some(sh) = crate::runtimes::find(s.rt_id) {
                if let Some(r) = sh.io.get(s.cpu) {
                    r.deregister(&s);
                }
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "scx-rt: I/O timed out")
}

fn set_timeout(slot: &AtomicU64, t: Option<Duration>) -> io::Result<()> {
    let ns = match t {
        None => 0,
        Some(d) if d.is_zero() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ))
        }
        Some(d) => d.as_nanos().clamp(1, u64::MAX as u128) as u64,
    };
    slot.store(ns, Ordering::Relaxed);
    Ok(())
}

fn get_timeout(slot: &AtomicU64) -> Option<Duration> {
    match slot.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

impl<T: AsFd> Drop for GreenFd<T> {
    fn drop(&mut self) {
        // Out of the epoll set before the fd closes (the inner object drops
        // after this): a later fd with the same number must not inherit
        // this registration.
        self.deregister();
    }
}

impl<T: AsFd> AsFd for GreenFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for GreenFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl<T: AsFd> std::fmt::Debug for GreenFd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenFd")
            .field("fd", &self.fd)
            .field("registered", &self.source.get().is_some())
            .finish()
    }
}

impl<T: AsFd> Read for &GreenFd<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.transfer(READ, buf.len(), |mut t| t.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        let want = bufs.iter().map(|b| b.len()).sum();
        self.transfer(READ, want, |mut t| t.read_vectored(bufs))
    }
}

impl<T: AsFd> Write for &GreenFd<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.transfer(WRITE, buf.len(), |mut t| t.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let want = bufs.iter().map(|b| b.len()).sum();
        self.transfer(WRITE, want, |mut t| t.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut t| t.flush())
    }
}

impl<T: AsFd> Read for GreenFd<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl<T: AsFd> Write for GreenFd<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use std::io::{PipeReader, Read, Write};
    use std::os::fd::{AsFd, BorrowedFd};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::GreenFd;

    /// A pipe's read end that counts the reads tried on it.
    struct Counted {
        r: PipeReader,
        tries: Arc<AtomicUsize>,
    }

    impl AsFd for Counted {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.r.as_fd()
        }
    }

    impl Read for &Counted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            (&self.r).read(buf)
        }
    }

    /// Waits (as a task, sleeping) until `cond` holds.
    fn until(cond: impl Fn() -> bool) {
        for _ in 0..5_000 {
            if cond() {
                return;
            }
            crate::sleep(Duration::from_millis(1));
        }
        panic!("the reader never got there");
    }

    /// On a byte stream, a read shorter than its buffer clears the readable
    /// bit, so the next read waits without trying (one read per message,
    /// where a `WouldBlock` attempt before each wait made two); without the
    /// mark, the same reads try again first. One CPU, so the reader has
    /// parked whenever the writer task runs.
    #[test]
    fn a_short_read_on_a_byte_stream_skips_the_next_attempt() {
        for stream in [true, false] {
            let rt = crate::Runtime::builder()
                .nr_cpus(1)
                .pin(false)
                .build()
                .unwrap();
            let tries = Arc::new(AtomicUsize::new(0));
            let got = Arc::new(AtomicUsize::new(0));
            let (r, w) = std::io::pipe().unwrap();
            let fd = GreenFd::new(Counted {
                r,
                tries: tries.clone(),
            })
            .unwrap();
            let fd = if stream { fd.byte_stream() } else { fd };
            let seen: Vec<usize> = rt.block_on(move || {
                let got2 = got.clone();
                let reader = crate::spawn(move || {
                    let mut buf = [0u8; 16];
                    loop {
                        match (&fd).read(&mut buf).unwrap() {
                            0 => return,
                            n => {
                                got2.fetch_add(n, Ordering::SeqCst);
                            }
                        }
                    }
                });
                let mut w = w;
                let mut seen = Vec::new();
                // The first read finds the pipe empty and waits (that wait
                // registers the fd); every later one follows a short read.
                until(|| tries.load(Ordering::SeqCst) == 1);
                for msg in [&b"abc"[..], b"de", b"fghi"] {
                    let before = got.load(Ordering::SeqCst);
                    w.write_all(msg).unwrap();
                    until(|| got.load(Ordering::SeqCst) == before + msg.len());
                    // Give the reader its next read: it parks in it.
                    crate::sleep(Duration::from_millis(5));
                    seen.push(tries.load(Ordering::SeqCst));
                }
                drop(w);
                reader.join().unwrap();
                seen
            });
            if stream {
                assert_eq!(seen, [2, 3, 4], "byte stream: one try per message");
            } else {
                assert_eq!(seen, [3, 5, 7], "other fds: a failed try before each wait");
            }
            rt.shutdown();
        }
    }
}
