//! The per-CPU I/O reactor: an epoll instance with the CPU's doorbell
//! eventfd in it, the table that turns event tokens into sources, and the
//! collection that turns events into the waiters they make ready (protocol
//! in `io`; who collects, with which buffer, in `io::look`).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use scx_rt_sys::epoll::{self, Epoll, Events};
use scx_rt_sys::eventfd::EventFd;

use crate::sync::wait::Waiter;

use super::source::Source;

/// The token of the doorbell eventfd (never a table token: those have a
/// generation below `u32::MAX` in their high half).
const WAKE_TOKEN: u64 = u64::MAX;

/// The reactors of one runtime, one per CPU, each made on first use.
pub(crate) struct Reactors {
    per_cpu: Box<[OnceLock<Reactor>]>,
    /// Serializes making a reactor (its eventfd goes to the doorbell once).
    make: parking_lot::Mutex<()>,
    /// Set by `close`: no source may block any more.
    closed: AtomicBool,
}

impl Reactors {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            per_cpu: (0..nr_cpus).map(|_| OnceLock::new()).collect(),
            make: parking_lot::Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    /// CPU `cpu`'s reactor if it has sources registered (one load: the
    /// worker asks this at every idle transition and poll interval).
    #[inline]
    pub(crate) fn active(&self, cpu: usize) -> Option<&Reactor> {
        self.per_cpu[cpu]
            .get()
            .filter(|r| r.nr.load(Ordering::Relaxed) > 0)
    }

    /// CPU `cpu`'s reactor, if made.
    pub(crate) fn get(&self, cpu: usize) -> Option<&Reactor> {
        self.per_cpu.get(cpu)?.get()
    }

    /// CPU `cpu`'s reactor, made if needed; its eventfd becomes the CPU's
    /// way out of an epoll sleep (`doorbell`).
    pub(crate) fn get_or_make(
        &self,
        cpu: usize,
        doorbell: &crate::doorbell::Doorbell,
    ) -> io::Result<&Reactor> {
        if let Some(r) = self.per_cpu[cpu].get() {
            return Ok(r);
        }
        let _g = self.make.lock();
        if let Some(r) = self.per_cpu[cpu].get() {
            return Ok(r);
        }
        let r = Reactor::new()?;
        doorbell.set_io_wake(r.wake.clone());
        Ok(self.per_cpu[cpu].get_or_init(|| r))
    }

    /// Whether the runtime closed its I/O (shutdown).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shutdown: every source is closed and its waiters woken (they see
    /// the error); sources registered later are closed at registration.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut woken = Vec::new();
        for r in self.per_cpu.iter().filter_map(|r| r.get()) {
            let srcs: Vec<Arc<Source>> = r.table.lock().live().collect();
            for s in srcs {
                s.close(&mut woken);
            }
        }
        for w in woken {
            w.wake();
        }
    }
}

/// Token -> source, with a generation per slot so that an event still in
/// flight for a removed source cannot reach the slot's next source.
#[derive(Default)]
struct Table {
    slots: Vec<(u32, Option<Arc<Source>>)>,
    free: Vec<u32>,
}

impl Table {
    fn insert(&mut self, make: impl FnOnce(u64) -> Arc<Source>) -> Arc<Source> {
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push((0, None));
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[i as usize];
        slot.0 = slot.0.wrapping_add(1) % u32::MAX;
        let token = (u64::from(slot.0) << 32) | u64::from(i);
        let s = make(token);
        slot.1 = Some(s.clone());
        s
    }

    fn get(&self, token: u64) -> Option<&Arc<Source>> {
        let (gen, s) = self.slots.get((token & 0xffff_ffff) as usize)?;
        s.as_ref().filter(|_| u64::from(*gen) == token >> 32)
    }

    fn remove(&mut self, token: u64) -> bool {
        let i = (token & 0xffff_ffff) as usize;
        match self.slots.get_mut(i) {
            Some((gen, s)) if u64::from(*gen) == token >> 32 && s.is_some() => {
                *s = None;
                self.free.push(i as u32);
                true
            }
            _ => false,
        }
    }

    fn live(&self) -> impl Iterator<Item = Arc<Source>> + '_ {
        self.slots.iter().filter_map(|(_, s)| s.clone())
    }
}

/// One CPU's reactor.
pub(crate) struct Reactor {
    epoll: Epoll,
    /// The CPU's doorbell eventfd (level-triggered in `epoll`).
    wake: Arc<EventFd>,
    table: parking_lot::Mutex<Table>,
    /// Sources registered: non-zero makes the CPU poll and sleep here.
    nr: AtomicUsize,
    /// The eventfd was reported readable and not yet read: read by the
    /// owner at its next `wait`, off the path from a wake-up to the task it
    /// is for. (A sibling that collects this reactor's events sees the
    /// eventfd too and may set this; only the owner reads the eventfd.)
    wake_unread: AtomicBool,
}

impl Reactor {
    fn new() -> io::Result<Self> {
        let epoll = Epoll::new()?;
        let wake = Arc::new(EventFd::new()?);
        epoll.add(wake.as_raw_fd(), epoll::IN, WAKE_TOKEN)?;
        Ok(Self {
            epoll,
            wake,
            table: parking_lot::Mutex::new(Table::default()),
            nr: AtomicUsize::new(0),
            wake_unread: AtomicBool::new(false),
        })
    }

    /// Sources registered (for the dump).
    pub(crate) fn nr_sources(&self) -> usize {
        self.nr.load(Ordering::Relaxed)
    }

    /// Registers `fd` (edge-triggered, both directions) and returns its
    /// source. `make` builds the source with its token.
    pub(crate) fn register(
        &self,
        fd: RawFd,
        make: impl FnOnce(u64) -> Arc<Source>,
    ) -> io::Result<Arc<Source>> {
        let mut t = self.table.lock();
        let s = t.insert(make);
        let ev = epoll::IN | epoll::OUT | epoll::PRI | epoll::RDHUP | epoll::ET;
        if let Err(e) = self.epoll.add(fd, ev, s.token) {
            t.remove(s.token);
            return Err(e);
        }
        self.nr.fetch_add(1, Ordering::Relaxed);
        Ok(s)
    }

    /// Removes a source (its fd is still open: the caller closes it after).
    pub(crate) fn deregister(&self, s: &Source) {
        let _ = self.epoll.delete(s.fd);
        if self.table.lock().remove(s.token) {
            self.nr.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Collects this reactor's events into `ev`, waiting up to `timeout`
    /// (zero: a non-blocking check), and turns them into the waiters they
    /// make ready, pushed on `woken` (woken by the caller, later). Returns
    /// the number of source events (the doorbell's eventfd not counted).
    ///
    /// `owner`: the caller is the CPU's own worker, the only one that may
    /// block here (`timeout` other than zero) and that reads the eventfd.
    /// A sibling collects without blocking (`io`, "Who collects what").
    /// Several threads may be in `epoll_wait` on one instance at once: the
    /// kernel hands each edge-triggered event to one of them.
    pub(crate) fn collect(
        &self,
        ev: &mut Events,
        timeout: Option<Duration>,
        owner: bool,
        woken: &mut Vec<Waiter>,
    ) -> usize {
        debug_assert!(owner || timeout == Some(Duration::ZERO));
        if owner && self.wake_unread.swap(false, Ordering::Relaxed) {
            // Level-triggered: unread, it would end this wait at once.
            let _ = self.wake.try_consume();
        }
        ev.clear();
        let _ = self.epoll.wait(ev, timeout);
        if ev.is_empty() {
            return 0;
        }
        let mut n = 0;
        let t = self.table.lock();
        for e in ev.iter() {
            if e.token == WAKE_TOKEN {
                // A waker rang while this CPU slept here (its work is in
                // need_resched and the queues). The count is read at the
                // owner's next wait, not on the way to that work.
                self.wake_unread.store(true, Ordering::Relaxed);
                continue;
            }
            n += 1;
            if let Some(s) = t.get(e.token) {
                s.ready(e.events, woken);
            }
        }
        drop(t);
        ev.clear();
        n
    }
}
