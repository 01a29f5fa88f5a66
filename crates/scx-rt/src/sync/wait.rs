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
//!
//! The state lock is the runtime's spin lock (`scx_rt_sys::spinlock`), as
//! for rq locks: it is held for a few loads and stores, never across a
//! park, and its release is a plain store where `parking_lot`'s is a
//! compare-exchange: one locked instruction less per lock, three per
//! channel hop (a cap-1 ping-pong round trip went from 34 to 28 atomic
//! read-modify-writes, callgrind).

use std::collections::VecDeque;

use scx_rt_sys::spinlock::SpinMutex;

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

    /// `wake` with the wake flags `flags` for a task (`io::look`).
    pub(crate) fn wake_with(self, flags: crate::flags::WakeFlags) {
        match self {
            Waiter::Task(t) => context::wake_task_with(t, flags),
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

/// Waiters in FIFO order, each with a token. The oldest waiter sits in an
/// inline slot, so that a list that never holds more than one waiter at a
/// time (a join, most channel waits) never allocates.
#[derive(Default)]
pub(crate) struct WaitList {
    /// The oldest waiter, when it is not in `rest`: set only when the list
    /// was empty, so it is always older than everything in `rest`.
    first: Option<(u64, Waiter)>,
    rest: VecDeque<(u64, Waiter)>,
    next: u64,
}

/// The waiters taken out of a list (`WaitList::take_all`), to wake once
/// the lock is released.
#[derive(Default)]
pub(crate) struct Taken {
    first: Option<Waiter>,
    rest: Vec<Waiter>,
}

impl WaitList {
    pub(crate) fn register(&mut self, w: Waiter) -> u64 {
        self.next += 1;
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some((self.next, w));
        } else {
            self.rest.push_back((self.next, w));
        }
        self.next
    }

    pub(crate) fn contains(&self, token: u64) -> bool {
        self.first.as_ref().is_some_and(|(t, _)| *t == token)
            || self.rest.iter().any(|(t, _)| *t == token)
    }

    pub(crate) fn remove(&mut self, token: u64) {
        if self.first.as_ref().is_some_and(|(t, _)| *t == token) {
            self.first = None;
            return;
        }
        if let Some(i) = self.rest.iter().position(|(t, _)| *t == token) {
            self.rest.remove(i);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    pub(crate) fn pop(&mut self) -> Option<Waiter> {
        match self.first.take() {
            Some((_, w)) => Some(w),
            None => self.rest.pop_front().map(|(_, w)| w),
        }
    }

    /// Every waiter, oldest first. Allocates only for a second waiter.
    pub(crate) fn take_all(&mut self) -> Taken {
        let first = self.first.take().map(|(_, w)| w);
        let rest = if self.rest.is_empty() {
            Vec::new()
        } else {
            self.rest.drain(..).map(|(_, w)| w).collect()
        };
        Taken { first, rest }
    }
}

/// Waits until `poll` returns `Some`, registering in the list `list` picks
/// out of the state. `poll` runs with the state locked. Inline: each
/// primitive's `poll` then folds into its loop (a channel round trip paid
/// ~150 instructions of calls and moves when it was not).
#[inline]
pub(crate) fn wait_on<S, R>(
    m: &SpinMutex<S>,
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
#[inline]
pub(crate) fn wake_all(ws: Taken) {
    if let Some(w) = ws.first {
        w.wake();
    }
    // Most lists hold one waiter at most: an empty `rest` is not iterated
    // (its iterator's set-up and drop cost more than the wake-up's check).
    if !ws.rest.is_empty() {
        for w in ws.rest {
            w.wake();
        }
    }
}
