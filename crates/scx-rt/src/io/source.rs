//! One registered fd: its readiness and the tasks waiting for it (the
//! task's side of the protocol in `io`).

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use scx_rt_sys::epoll;

use crate::sync::wait::{park, WaitList, Waiter};

/// Waiting to read (accept, recv).
pub(crate) const READ: u32 = 1;
/// Waiting to write (send, connect).
pub(crate) const WRITE: u32 = 2;

/// A registered fd.
pub(crate) struct Source {
    pub fd: RawFd,
    /// The runtime and CPU whose reactor holds the registration.
    pub rt_id: u64,
    pub cpu: usize,
    pub token: u64,
    st: parking_lot::Mutex<State>,
}

struct State {
    /// `READ` / `WRITE`: an edge came that no failed attempt (nor drained
    /// transfer) has consumed.
    ready: u32,
    /// `READ` / `WRITE`: directions in which a short transfer does not
    /// prove the fd drained, so `drained` leaves their `ready` bit alone:
    /// a hang-up or error was reported (the next call returns it at once,
    /// and no further edge would come), or urgent data (`EPOLLPRI`: a TCP
    /// read stops short at the urgent mark with data behind it). Never
    /// cleared.
    no_drain: u32,
    /// Bumped by every event (T1/T3 in `io`).
    seq: u64,
    readers: WaitList,
    writers: WaitList,
    /// The runtime shut down: every wait fails.
    closed: bool,
}

/// The error of a wait on a runtime that shut down.
pub(crate) fn shut_down() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "scx-rt: the runtime shut down")
}

impl Source {
    pub(crate) fn new(fd: RawFd, rt_id: u64, cpu: usize, token: u64) -> Arc<Self> {
        Arc::new(Self {
            fd,
            rt_id,
            cpu,
            token,
            st: parking_lot::Mutex::new(State {
                // Assume ready: the first attempt finds out.
                ready: READ | WRITE,
                no_drain: 0,
                seq: 0,
                readers: WaitList::default(),
                writers: WaitList::default(),
                closed: false,
            }),
        })
    }

    /// T1: the event count before an attempt, and whether `dir` may be
    /// ready (if not, an attempt would fail with `WouldBlock` unless an
    /// edge came, which the reactor has not handled yet: the caller waits
    /// without trying). A closed source still lets attempts through: only
    /// waiting fails after shutdown.
    pub(crate) fn seq_ready(&self, dir: u32) -> (u64, bool) {
        let st = self.st.lock();
        (st.seq, st.ready & dir != 0)
    }

    /// T2': an attempt on a byte stream that began at event count `seq`
    /// moved fewer bytes than asked, and more than none: the socket's
    /// queue (or room) ran out during it, so the next attempt in `dir`
    /// would fail with `WouldBlock`. Clears `dir`'s ready bit as a failed
    /// attempt would (only if no edge came since `seq`, and not in a
    /// `no_drain` direction), so that the next call waits without trying.
    pub(crate) fn drained(&self, dir: u32, seq: u64) {
        let mut st = self.st.lock();
        if st.seq == seq {
            st.ready &= !(dir & !st.no_drain);
        }
    }

    /// R2: an event with epoll bits `bits`; the waiters it makes ready go
    /// to `woken` (woken by the caller after the locks are gone).
    pub(crate) fn ready(&self, bits: u32, woken: &mut Vec<Waiter>) {
        let mut dirs = 0;
        if bits & (epoll::IN | epoll::PRI | epoll::RDHUP | epoll::HUP | epoll::ERR) != 0 {
            dirs |= READ;
        }
        if bits & (epoll::OUT | epoll::HUP | epoll::ERR) != 0 {
            dirs |= WRITE;
        }
        let mut no_drain = 0;
        if bits & (epoll::RDHUP | epoll::HUP | epoll::ERR | epoll::PRI) != 0 {
            no_drain |= READ;
        }
        if bits & (epoll::HUP | epoll::ERR) != 0 {
            no_drain |= WRITE;
        }
        let mut st = self.st.lock();
        st.ready |= dirs;
        st.no_drain |= no_drain;
        st.seq += 1;
        if dirs & READ != 0 {
            while let Some(w) = st.readers.pop() {
                woken.push(w);
            }
        }
        if dirs & WRITE != 0 {
            while let Some(w) = st.writers.pop() {
                woken.push(w);
            }
        }
    }

    /// Shutdown: every wait fails from now on; the waiters go to `woken`.
    pub(crate) fn close(&self, woken: &mut Vec<Waiter>) {
        let mut st = self.st.lock();
        st.closed = true;
        while let Some(w) = st.readers.pop() {
            woken.push(w);
        }
        while let Some(w) = st.writers.pop() {
            woken.push(w);
        }
    }

    /// T3 and T4, in the calling task: after an attempt that saw
    /// `WouldBlock` with event count `seq`, waits until the fd may be ready
    /// for `dir` again. `deadline` (runtime clock) ends the wait with
    /// `TimedOut`. Returns at once if an edge came since `seq`.
    pub(crate) fn wait(&self, dir: u32, seq: u64, deadline: Option<u64>) -> io::Result<()> {
        let mut first = true;
        let mut token: Option<u64> = None;
        let mut armed = false;
        loop {
            let mut st = self.st.lock();
            if first {
                first = false;
                if st.seq == seq {
                    st.ready &= !dir;
                }
            }
            let done = if st.closed {
                Some(Err(shut_down()))
            } else if st.ready & dir != 0 {
                Some(Ok(()))
            } else if deadline.is_some_and(|d| crate::core::clock::now() >= d) {
                Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "scx-rt: I/O timed out",
                )))
            } else {
                None
            };
            let list = if dir == READ {
                &mut st.readers
            } else {
                &mut st.writers
            };
            if let Some(r) = done {
                if let Some(t) = token {
                    list.remove(t);
                }
                return r;
            }
            match token {
                Some(t) if list.contains(t) => {}
                _ => token = Some(list.register(Waiter::current())),
            }
            drop(st);
            if let (Some(d), false) = (deadline, armed) {
                armed = true;
                crate::sleep::arm_wake_timer(d);
            }
            park();
        }
    }
}
