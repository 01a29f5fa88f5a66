//! Dispatch queues (SPEC.md §2).
//!
//! [`DsqQueue`] is the queue itself: a list in dispatch order that is either
//! FIFO or vtime-ordered ("PRIQ") at any moment, never both. Local DSQs are a
//! `DsqQueue` inside their CPU's rq and are protected by the rq lock;
//! non-local DSQs ([`Dsq`]: the global DSQ and user DSQs) wrap one in their
//! own lock, which nests inside an rq lock and never the reverse.
//!
//! Vtime order is the kernel's wrap-safe "a before b" (`(a - b) as i64 < 0`),
//! implemented as a B-tree keyed by the signed distance from a base vtime
//! taken when the queue was last empty; it is exact while the queued vtimes
//! lie within 2^62 of each other. Ties go after existing equal vtimes.
//!
//! Linking sets the task's `dsq` field; unlinking does not clear it: the
//! caller does, at the point the transfer protocol says (a consumer keeps it
//! set while `holding_cpu` marks the task in transit, so that a racing
//! dequeue finds the DSQ and cancels the transfer, SPEC.md §3.5, §3.9).

use std::collections::{BTreeMap, VecDeque};

use crate::loom::{AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::task::TaskRef;

/// Ordering mode a DSQ currently holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Fifo,
    Priq,
}

/// Error of an insertion that breaks the FIFO/PRIQ rule.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// vtime insertion into a DSQ holding FIFO tasks.
    PriqIntoFifo,
    /// FIFO insertion into a DSQ holding vtime-ordered tasks.
    FifoIntoPriq,
}

/// A dispatch queue's contents.
pub(crate) struct DsqQueue {
    fifo: VecDeque<TaskRef>,
    priq: BTreeMap<(i64, u64), TaskRef>,
    mode: Mode,
    vtime_base: u64,
    tie: u64,
    /// Bumped on every insertion; copied into the task's `dsq_seq`.
    pub seq: u32,
    /// Id stored into a linked task's `dsq` field.
    pub id: u64,
}

impl DsqQueue {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            fifo: VecDeque::new(),
            priq: BTreeMap::new(),
            mode: Mode::Fifo,
            vtime_base: 0,
            tie: 0,
            seq: 0,
            id,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.fifo.len() + self.priq.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn link_common(&mut self, p: &TaskRef) {
        self.seq = self.seq.wrapping_add(1);
        p.scx.dsq_seq.store(self.seq, Ordering::Relaxed);
        p.scx.dsq.store(self.id, Ordering::Relaxed);
    }

    /// Links `p` at the tail (or head) in FIFO order.
    pub(crate) fn push_fifo(&mut self, p: TaskRef, head: bool) -> Result<(), InsertError> {
        if self.mode == Mode::Priq && !self.priq.is_empty() {
            return Err(InsertError::FifoIntoPriq);
        }
        self.mode = Mode::Fifo;
        self.link_common(&p);
        if head {
            self.fifo.push_front(p);
        } else {
            self.fifo.push_back(p);
        }
        Ok(())
    }

    /// Links `p` in vtime order (`p.dsq_vtime`).
    pub(crate) fn push_vtime(&mut self, p: TaskRef) -> Result<(), InsertError> {
        if self.mode == Mode::Fifo && !self.fifo.is_empty() {
            return Err(InsertError::PriqIntoFifo);
        }
        if self.priq.is_empty() {
            self.vtime_base = p.dsq_vtime();
        }
        self.mode = Mode::Priq;
        self.link_common(&p);
        let key = (p.dsq_vtime().wrapping_sub(self.vtime_base) as i64, self.tie);
        self.tie = self.tie.wrapping_add(1);
        self.priq.insert(key, p);
        Ok(())
    }

    /// The head task without unlinking it.
    pub(crate) fn peek(&self) -> Option<&TaskRef> {
        match self.mode {
            Mode::Fifo => self.fifo.front(),
            Mode::Priq => self.priq.values().next(),
        }
    }

    /// Unlinks the head task.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn pop(&mut self) -> Option<TaskRef> {
        let p = match self.mode {
            Mode::Fifo => self.fifo.pop_front(),
            Mode::Priq => self.priq.pop_first().map(|(_, p)| p),
        }?;
        Some(p)
    }

    /// Unlinks the first task (in dispatch order) for which `pred` holds.
    pub(crate) fn pop_first_where(
        &mut self,
        mut pred: impl FnMut(&TaskRef) -> bool,
    ) -> Option<TaskRef> {
        let p = match self.mode {
            Mode::Fifo => {
                let i = self.fifo.iter().position(&mut pred)?;
                self.fifo.remove(i)
            }
            Mode::Priq => {
                let k = *self.priq.iter().find(|(_, p)| pred(p))?.0;
                self.priq.remove(&k)
            }
        }?;
        Some(p)
    }

    /// Unlinks `p` wherever it is. `true` if it was linked here.
    pub(crate) fn remove(&mut self, p: &TaskRef) -> bool {
        let id = p.id();
        self.pop_first_where(|q| q.id() == id).is_some()
    }

    /// Tasks in dispatch order (for dumps and tests).
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = &TaskRef> + '_> {
        match self.mode {
            Mode::Fifo => Box::new(self.fifo.iter()),
            Mode::Priq => Box::new(self.priq.values()),
        }
    }

    /// Unlinks everything.
    pub(crate) fn drain(&mut self) -> Vec<TaskRef> {
        let mut v: Vec<TaskRef> = self.fifo.drain(..).collect();
        v.extend(std::mem::take(&mut self.priq).into_values());
        v
    }
}

/// A non-local DSQ: the global DSQ or a user DSQ.
pub(crate) struct Dsq {
    /// The id; set to `DSQ_INVALID` when destroyed so that a racing insert
    /// notices (SPEC.md §2.8).
    pub id: AtomicU64,
    /// Number of queued tasks, readable without the lock.
    pub nr: AtomicUsize,
    pub q: Mutex<DsqQueue>,
}

impl Dsq {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id: AtomicU64::new(id),
            nr: AtomicUsize::new(0),
            q: Mutex::new(DsqQueue::new(id)),
        }
    }

    pub(crate) fn nr_queued(&self) -> usize {
        self.nr.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;
    use crate::task::Task;

    fn tok(id: u64, vtime: u64) -> TaskRef {
        let t = Task::new_token(id);
        t.set_dsq_vtime(vtime);
        t
    }

    #[test]
    fn fifo_with_head_insertion() {
        let mut q = DsqQueue::new(7);
        q.push_fifo(tok(1, 0), false).unwrap();
        q.push_fifo(tok(2, 0), false).unwrap();
        q.push_fifo(tok(3, 0), true).unwrap();
        assert_eq!(q.len(), 3);
        let ids: Vec<_> = std::iter::from_fn(|| q.pop()).map(|p| p.id()).collect();
        assert_eq!(ids, vec![3, 1, 2]);
    }

    #[test]
    fn vtime_order_is_wrap_safe_and_stable() {
        let mut q = DsqQueue::new(7);
        let base = u64::MAX - 10;
        q.push_vtime(tok(1, base + 5)).unwrap();
        q.push_vtime(tok(2, base)).unwrap();
        q.push_vtime(tok(3, base.wrapping_add(20))).unwrap(); // wrapped past zero
        q.push_vtime(tok(4, base + 5)).unwrap(); // tie goes after 1
        let ids: Vec<_> = std::iter::from_fn(|| q.pop()).map(|p| p.id()).collect();
        assert_eq!(ids, vec![2, 1, 4, 3]);
    }

    #[test]
    fn fifo_and_priq_never_mix() {
        let mut q = DsqQueue::new(7);
        q.push_fifo(tok(1, 0), false).unwrap();
        assert_eq!(q.push_vtime(tok(2, 1)), Err(InsertError::PriqIntoFifo));
        q.pop();
        q.push_vtime(tok(2, 1)).unwrap();
        assert_eq!(
            q.push_fifo(tok(3, 0), false),
            Err(InsertError::FifoIntoPriq)
        );
    }

    #[test]
    fn remove_and_seq() {
        let mut q = DsqQueue::new(9);
        let a = tok(1, 0);
        let b = tok(2, 0);
        q.push_fifo(a.clone(), false).unwrap();
        q.push_fifo(b.clone(), false).unwrap();
        assert_eq!(b.scx.dsq_seq.load(Ordering::Relaxed), 2);
        assert_eq!(a.scx.dsq.load(Ordering::Relaxed), 9);
        assert!(q.remove(&a));
        assert!(!q.remove(&a));
        assert_eq!(a.scx.dsq.load(Ordering::Relaxed), 9, "caller clears dsq");
        assert_eq!(q.pop().unwrap().id(), 2);
    }
}
