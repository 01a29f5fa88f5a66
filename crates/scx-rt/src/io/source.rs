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
    /// `READ` / `WRITE`: an edge came that no failed attempt has consumed.
    ready: u32,
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
                seq: 0,
                readers: WaitList::default(),
                writers: WaitList::default(),
                closed: false,
            }),
        })
    }

    /// T1: the event count before an attempt. (A closed source still
    /// lets attempts through: only waiting fails after shutdown.)
    pub(crate) fn seq(&self) -> u64 {
        self.st.lock().seq
    }

    /// R2: an event with epoll bits `bits`; the waiters it makes ready go
    /// to `woken` (woken by the caller after the locks are gone).
    pub(crate) fn ready(&self, bits: u32, woken: &mut Vec<Waiter>) {
        let mut dirs = 0;
        if bits & (epoll::IN | epoll::RDHUP | epoll::HUP | epoll::ERR) != 0 {
            dirs |= READ;
        }
        if bits & (epoll::OUT | epoll::HUP | epoll::ERR) != 0 {
            dirs |= WRITE;
        }
        let mut st = self.st.lock();
        st.ready |= dirs;
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
