//! One worker's looks at the reactors: its own, and, in a runtime whose
//! tasks may migrate, its siblings' while it has nothing to run (the
//! protocol is in `io`, "Who collects what").
//!
//! The worker owns one `Looker` for its whole life: the event buffer every
//! look fills, and the waiters a look made ready, kept until the worker
//! wakes them. A look that happens during the idle wait (a peek of the
//! poll phase, the epoll sleep) only collects; the wake-ups are made once
//! the CPU is `RUNNING` again (`wake`), so that one for a task of this CPU
//! does not ring its own doorbell.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use scx_rt_sys::epoll::Events;

use crate::flags::WakeFlags;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::sync::wait::Waiter;

use super::reactor::Reactor;

/// CPU `cpu`'s looks at the reactors (owned by its worker).
pub(crate) struct Looker<'a> {
    sh: &'a Shared,
    cpu: usize,
    /// Siblings' reactors are collected too (`Builder::allow_migration`
    /// and more than one CPU: a bound task could run nowhere else, so
    /// collecting its readiness elsewhere would only hand it back).
    help: bool,
    ev: RefCell<Events>,
    /// Waiters made ready by looks not yet followed by `wake`.
    woken: RefCell<Vec<Waiter>>,
    /// Of `woken`, those found in a sibling's reactor.
    from_sibling: Cell<usize>,
    /// The sibling the next helping look starts from (rotation: one
    /// sibling per look, so a look costs O(1) system calls however many
    /// CPUs the runtime has).
    next_sibling: Cell<usize>,
    /// The next idle peek is a sibling's (peeks alternate with our own).
    peek_sibling: Cell<bool>,
    /// This CPU's reactor, if it has sources (`prepare`).
    own: Cell<Option<&'a Reactor>>,
}

impl<'a> Looker<'a> {
    pub(crate) fn new(sh: &'a Shared, cpu: usize) -> Self {
        Self {
            sh,
            cpu,
            help: sh.cfg.allow_migration && sh.nr_cpus > 1,
            ev: RefCell::new(Events::with_capacity(crate::consts::IO_EVENTS_PER_POLL)),
            woken: RefCell::new(Vec::new()),
            from_sibling: Cell::new(0),
            next_sibling: Cell::new((cpu + 1) % sh.nr_cpus.max(1)),
            peek_sibling: Cell::new(false),
            own: Cell::new(None),
        }
    }

    /// The busy CPU's periodic look: its own reactor only, without
    /// blocking; wakes what it found (plain `TTWU`: the CPU has work).
    /// Returns the number of tasks woken.
    pub(crate) fn busy(&self) -> usize {
        let Some(r) = self.sh.io.active(self.cpu) else {
            return 0;
        };
        add(&self.sh.cpus[self.cpu].shared.owner.stats.io_busy_looks, 1);
        self.collect(r, Some(Duration::ZERO), true);
        self.wake(WakeFlags::TTWU)
    }

    /// Before an idle wait: whether this CPU looks at reactors during it
    /// (its own has sources, or it helps: a sibling's may gain sources
    /// while this CPU polls, so a helper always peeks). Records its own
    /// reactor for the looks and the sleep that follow (it cannot gain
    /// sources meanwhile: a source registers on the CPU its task runs on).
    pub(crate) fn prepare(&self) -> bool {
        let own = self.sh.io.active(self.cpu);
        self.own.set(own);
        own.is_some() || self.help
    }

    /// Whether this CPU's own reactor has sources (as of `prepare`): its
    /// idle looks and sleep then covered what `busy` looks at.
    pub(crate) fn has_own(&self) -> bool {
        self.own.get().is_some()
    }

    /// The look of a CPU that just found nothing to run (Go's
    /// `findrunnable`): its own reactor, then one sibling's, without
    /// blocking. Wakes what it found with `SYNC` (the waker, this CPU, is
    /// about to go idle: a policy may run the task here at once). Returns
    /// the number of tasks woken.
    pub(crate) fn dry(&self) -> usize {
        if let Some(r) = self.own.get() {
            self.collect(r, Some(Duration::ZERO), true);
        }
        if let Some(r) = self.sibling() {
            self.collect_sibling(r);
        }
        self.wake(WakeFlags::TTWU | WakeFlags::SYNC)
    }

    /// Wakes the waiters the looks collected, with `flags`, counting them
    /// in the CPU's statistics. Returns how many.
    pub(crate) fn wake(&self, flags: WakeFlags) -> usize {
        let woken = std::mem::take(&mut *self.woken.borrow_mut());
        let n = woken.len();
        if n == 0 {
            return 0;
        }
        let st = &self.sh.cpus[self.cpu].shared.owner.stats;
        add(&st.io_wakeups, n);
        add(&st.io_wakeups_sibling, self.from_sibling.replace(0));
        for w in woken {
            w.wake_with(flags);
        }
        n
    }

    /// Waiters collected and not yet woken.
    pub(crate) fn pending(&self) -> usize {
        self.woken.borrow().len()
    }

    /// The next sibling with sources, in rotation, if this CPU helps.
    fn sibling(&self) -> Option<&'a Reactor> {
        if !self.help {
            return None;
        }
        let n = self.sh.nr_cpus;
        let start = self.next_sibling.get();
        for k in 0..n {
            let c = (start + k) % n;
            if c == self.cpu {
                continue;
            }
            if let Some(r) = self.sh.io.active(c) {
                self.next_sibling.set((c + 1) % n);
                return Some(r);
            }
        }
        None
    }

    fn collect(&self, r: &Reactor, timeout: Option<Duration>, owner: bool) -> usize {
        let mut ev = self.ev.borrow_mut();
        let mut woken = self.woken.borrow_mut();
        r.collect(&mut ev, timeout, owner, &mut woken)
    }

    fn collect_sibling(&self, r: &Reactor) -> usize {
        let before = self.pending();
        let n = self.collect(r, Some(Duration::ZERO), false);
        let got = self.pending() - before;
        self.from_sibling.set(self.from_sibling.get() + got);
        n
    }
}

impl crate::idle_wait::IdleIo for Looker<'_> {
    /// A peek of the idle poll: our own reactor and a sibling's in turn
    /// (each peek one system call).
    fn peek(&self) -> bool {
        let sibling = self.help && (self.peek_sibling.get() || self.own.get().is_none());
        self.peek_sibling.set(self.help && !sibling);
        let found = match (sibling, self.own.get()) {
            (false, Some(r)) => self.collect(r, Some(Duration::ZERO), true),
            _ => self.sibling().map_or(0, |r| self.collect_sibling(r)),
        };
        found > 0 || self.pending() > 0
    }

    /// The sleep: our own reactor's epoll (only its owner blocks there).
    fn sleep(&self, timeout: Option<Duration>) {
        if let Some(r) = self.own.get() {
            self.collect(r, timeout, true);
        }
    }

    fn epoll_sleep(&self) -> bool {
        self.own.get().is_some()
    }
}

/// Adds `n` to an owner-written counter (`CpuCounters`: one writer).
fn add(c: &crate::loom::AtomicU64, n: usize) {
    if n > 0 {
        c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
    }
}
