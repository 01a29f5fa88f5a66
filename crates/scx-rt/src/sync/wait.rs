//! The green-aware wait primitive under join, channels, mutexes and wait
//! groups.
//!
//! A waiter is either a green task (blocking suspends only the task; its CPU
//! runs others) or an OS thread (it parks). Primitives keep a [`WaitList`]
//! inside their own state lock and follow one pattern, [`wait_on`]:
//!
//! ```text
//! loop {
//!     lock state; if ready { unregister; return }
//!     register (once: a token says whether we are still listed); unlock
//!     park()              // returns on a wake-up or spuriously
//! }
//! ```
//!
//! Wakers pop waiters under the state lock and wake them after releasing it
//! (decide under the lock, wake after). A task woken before it finished
//! parking is not lost: its wake state is `NOTIFIED` and its park returns at
//! once (see `task`). Tokens keep a spuriously woken waiter from listing
//! itself twice, which would let a later wake-up hit a stale entry and be
//! lost for a real waiter.

use std::collections::VecDeque;

use crate::context;
use crate::task::TaskRef;

/// Someone blocked on a primitive: a green task (which knows its runtime)
/// or an OS thread.
pub(crate) enum Waiter {
    Task(TaskRef),
    Thread(std::thread::Thread),
}

impl Waiter {
    /// The calling context as a waiter.
    pub(crate) fn current() -> Self {
        match context::current_task() {
            Some(t) => Waiter::Task(t),
            None => Waiter::Thread(std::thread::current()),
        }
    }

    pub(crate) fn wake(self) {
        match self {
            Waiter::Task(t) => context::wake_task(t),
            Waiter::Thread(th) => th.unpark(),
        }
    }
}

/// Blocks the calling task (or thread) until woken; may return spuriously.
pub(crate) fn park() {
    if !scx_rt_sys::fiber::try_suspend(context::SW_BLOCK) {
        std::thread::park();
    }
}

/// Waiters in FIFO order, each with a token.
#[derive(Default)]
pub(crate) struct WaitList {
    q: VecDeque<(u64, Waiter)>,
    next: u64,
}

impl WaitList {
    pub(crate) fn register(&mut self, w: Waiter) -> u64 {
        self.next += 1;
        self.q.push_back((self.next, w));
        self.next
    }

    pub(crate) fn contains(&self, token: u64) -> bool {
        self.q.iter().any(|(t, _)| *t == token)
    }

    pub(crate) fn remove(&mut self, token: u64) {
        if let Some(i) = self.q.iter().position(|(t, _)| *t == token) {
            self.q.remove(i);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub(crate) fn pop(&mut self) -> Option<Waiter> {
        self.q.pop_front().map(|(_, w)| w)
    }

    pub(crate) fn take_all(&mut self) -> Vec<Waiter> {
        self.q.drain(..).map(|(_, w)| w).collect()
    }
}

/// Waits until `poll` returns `Some`, registering in the list `list` picks
/// out of the state. `poll` runs with the state locked.
pub(crate) fn wait_on<S, R>(
    m: &parking_lot::Mutex<S>,
    mut poll: impl FnMut(&mut S) -> Option<R>,
    list: impl Fn(&mut S) -> &mut WaitList,
) -> R {
    let mut token: Option<u64> = None;
    loop {
        let mut g = m.lock();
        if let Some(r) = poll(&mut g) {
            if let Some(t) = token {
                list(&mut g).remove(t);
            }
            return r;
        }
        match token {
            Some(t) if list(&mut g).contains(t) => {}
            _ => token = Some(list(&mut g).register(Waiter::current())),
        }
        drop(g);
        park();
    }
}

/// Wakes every waiter in `ws` (call after releasing the state lock).
pub(crate) fn wake_all(ws: Vec<Waiter>) {
    for w in ws {
        w.wake();
    }
}
