//! Green-aware multi-producer single-consumer channels: bounded (capacity 0
//! is a rendezvous: `send` returns once the receiver took the value) and
//! unbounded. Blocking blocks the green task, never the worker; from an OS
//! thread it parks the thread.

use std::collections::VecDeque;
use std::sync::Arc;

use scx_rt_sys::spinlock::SpinMutex;

use super::wait::{wait_on, wake_all, Taken, WaitList};

struct State<T> {
    /// Values with their send tickets (a rendezvous sender whose receiver
    /// left finds its own value by ticket and takes it back).
    q: VecDeque<(u64, T)>,
    cap: Option<usize>,
    senders: usize,
    receiver: bool,
    sent: u64,
    taken: u64,
    recv_waiters: WaitList,
    send_waiters: WaitList,
}

struct Chan<T> {
    st: SpinMutex<State<T>>,
    /// The capacity (never changes; read without the lock).
    cap: Option<usize>,
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> std::fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sending on a closed channel")
    }
}
impl<T: std::fmt::Debug> std::error::Error for SendError<T> {}

/// Every sender is gone and the channel is empty.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
#[error("receiving on a closed channel")]
pub struct RecvError;

/// Why `try_recv` returned nothing.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing queued.
    #[error("channel is empty")]
    Empty,
    /// Every sender is gone.
    #[error("channel is closed")]
    Disconnected,
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        cap,
        st: SpinMutex::new(State {
            q: VecDeque::new(),
            cap,
            senders: 1,
            receiver: true,
            sent: 0,
            taken: 0,
            recv_waiters: WaitList::default(),
            send_waiters: WaitList::default(),
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// A channel holding at most `cap` values; `cap == 0` is a rendezvous.
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel without a bound.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

impl<T> Sender<T> {
    /// Sends a value, blocking while the channel is full (and, for a
    /// rendezvous channel, until the receiver took it).
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        let mut v = Some(v);
        let ticket = wait_on(
            &self.chan.st,
            |s| {
                if !s.receiver {
                    return Some(Err(()));
                }
                let room = match s.cap {
                    None => true,
                    Some(c) => s.q.len() < c.max(1),
                };
                if !room {
                    return None;
                }
                s.sent += 1;
                let ticket = s.sent;
                s.q.push_back((ticket, v.take().expect("value sent once")));
                Some(Ok((s.sent, s.recv_waiters.pop())))
            },
            |s| &mut s.send_waiters,
        );
        let (ticket, w) = match ticket {
            Err(()) => return Err(SendError(v.take().expect("value unsent"))),
            Ok(x) => x,
        };
        if let Some(w) = w {
            w.wake();
        }
        if self.chan.cap == Some(0) {
            // A rendezvous completes when the receiver took the value; if
            // the receiver left first, the value comes back.
            let back = wait_on(
                &self.chan.st,
                |s| {
                    if s.taken >= ticket {
                        return Some(None);
                    }
                    if !s.receiver {
                        let i = s.q.iter().position(|(t, _)| *t == ticket);
                        return Some(i.and_then(|i| s.q.remove(i)).map(|(_, v)| v));
                    }
                    None
                },
                |s| &mut s.send_waiters,
            );
            if let Some(v) = back {
                return Err(SendError(v));
            }
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.st.lock().senders += 1;
        Self {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let ws = {
            let mut s = self.chan.st.lock();
            s.senders -= 1;
            if s.senders == 0 {
                s.recv_waiters.take_all()
            } else {
                Taken::default()
            }
        };
        wake_all(ws);
    }
}

impl<T> Receiver<T> {
    /// Receives a value, blocking while the channel is empty; an error once
    /// every sender is gone and nothing is left.
    pub fn recv(&self) -> Result<T, RecvError> {
        let (r, ws) = wait_on(
            &self.chan.st,
            |s| {
                if let Some((_, v)) = s.q.pop_front() {
                    s.taken += 1;
                    let ws = if s.send_waiters.is_empty() {
                        Taken::default()
                    } else {
                        s.send_waiters.take_all()
                    };
                    return Some((Ok(v), ws));
                }
                if s.senders == 0 {
                    return Some((Err(RecvError), Taken::default()));
                }
                None
            },
            |s| &mut s.recv_waiters,
        );
        wake_all(ws);
        r
    }

    /// Receives without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut s = self.chan.st.lock();
        if let Some((_, v)) = s.q.pop_front() {
            s.taken += 1;
            let ws = s.send_waiters.take_all();
            drop(s);
            wake_all(ws);
            return Ok(v);
        }
        if s.senders == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.chan.st.lock().q.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let ws = {
            let mut s = self.chan.st.lock();
            s.receiver = false;
            s.send_waiters.take_all()
        };
        wake_all(ws);
    }
}

impl<T> Iterator for Receiver<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv().ok()
    }
}
