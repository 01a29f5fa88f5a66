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

/// Marks `p` as linked into DSQ `id`: the DSQ's insertion sequence moves
/// on and is copied into the task (`dsq_seq`), and the task names the DSQ
/// (stored with `order`). SPEC.md §11 invariant 1: a task is on at most
/// one DSQ.
#[inline(always)]
fn stamp_link(p: &TaskRef, id: u64, seq: &mut u32, order: Ordering) {
    debug_assert_eq!(
        p.scx.dsq.load(Ordering::Relaxed),
        crate::flags::DSQ_INVALID,
        "task {} linked into DSQ {:#x} while on another",
        p.id(),
        id
    );
    *seq = seq.wrapping_add(1);
    p.scx.dsq_seq.store(*seq, Ordering::Relaxed);
    p.scx.dsq.store(id, order);
}

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

/// Position of a task in dispatch order: FIFO sequence, or (vtime offset,
/// tie-breaker). Smaller is earlier.
type Key = (i64, u64);

/// A DSQ iterator's place in a DSQ's dispatch order, kept between two of
/// its steps (`core::dsq_iter`): the key of the last task it returned.
/// The kernel links a cursor node into the list; a key does the same job
/// here, since keys are unique within a queue and a task's key does not
/// change while it stays linked, so "the first key after the cursor" is
/// where the walk left off whatever was linked or unlinked meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor(Key);

/// The kernel's `u32_before`: whether sequence `a` comes before `b`,
/// wrapping.
#[inline]
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One sorted run of tasks.
#[derive(Default)]
struct Part {
    fifo: VecDeque<(Key, TaskRef)>,
    priq: BTreeMap<Key, TaskRef>,
}

impl Part {
    #[inline]
    fn head(&self, mode: Mode) -> Option<(Key, &TaskRef)> {
        match mode {
            Mode::Fifo => self.fifo.front().map(|(k, p)| (*k, p)),
            Mode::Priq => self.priq.first_key_value().map(|(k, p)| (*k, p)),
        }
    }

    /// First task (in order) for which `pred` holds.
    fn first_where(
        &self,
        mode: Mode,
        pred: &mut impl FnMut(&TaskRef) -> bool,
    ) -> Option<(Key, &TaskRef)> {
        match mode {
            Mode::Fifo => self
                .fifo
                .iter()
                .find(|(_, p)| pred(p))
                .map(|(k, p)| (*k, p)),
            Mode::Priq => self
                .priq
                .iter()
                .find(|(_, p)| pred(p))
                .map(|(k, p)| (*k, p)),
        }
    }

    /// Unlinks the head.
    #[inline]
    fn pop_head(&mut self, mode: Mode) -> Option<TaskRef> {
        match mode {
            Mode::Fifo => self.fifo.pop_front().map(|(_, p)| p),
            Mode::Priq => self.priq.pop_first().map(|(_, p)| p),
        }
    }

    fn remove_key(&mut self, mode: Mode, key: Key) -> Option<TaskRef> {
        match mode {
            Mode::Fifo => {
                // Usually the head; otherwise a binary search (keys sorted).
                if self.fifo.front().is_some_and(|(k, _)| *k == key) {
                    return self.fifo.pop_front().map(|(_, p)| p);
                }
                let i = self.fifo.binary_search_by(|(k, _)| k.cmp(&key)).ok()?;
                self.fifo.remove(i).map(|(_, p)| p)
            }
            Mode::Priq => self.priq.remove(&key),
        }
    }

    fn remove_task(&mut self, id: u64) -> bool {
        // The head is the common case (a CPU starting its next task).
        if self.fifo.front().is_some_and(|(_, p)| p.id() == id) {
            self.fifo.pop_front();
            return true;
        }
        if let Some(i) = self.fifo.iter().position(|(_, p)| p.id() == id) {
            self.fifo.remove(i);
            return true;
        }
        if let Some(k) = self
            .priq
            .iter()
            .find(|(_, p)| p.id() == id)
            .map(|(k, _)| *k)
        {
            self.priq.remove(&k);
            return true;
        }
        false
    }

    fn len(&self) -> usize {
        self.fifo.len() + self.priq.len()
    }

    /// The first task for which `ok` holds after `after` in this run's
    /// order (before it when `rev`; from the start, or the end, when
    /// `after` is `None`). Either container may hold the run (the DSQ's
    /// mode may have changed since the cursor was taken).
    fn next_after(
        &self,
        after: Option<Key>,
        rev: bool,
        ok: &mut impl FnMut(&TaskRef) -> bool,
    ) -> Option<(Key, &TaskRef)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let fifo = match (rev, after) {
            (false, a) => {
                let i = a.map_or(0, |c| self.fifo.partition_point(|(k, _)| *k <= c));
                self.fifo.range(i..).find(|(_, p)| ok(p))
            }
            (true, a) => {
                let end = a.map_or(self.fifo.len(), |c| {
                    self.fifo.partition_point(|(k, _)| *k < c)
                });
                self.fifo.range(..end).rev().find(|(_, p)| ok(p))
            }
        };
        if let Some((k, p)) = fifo {
            return Some((*k, p));
        }
        let lo = match (rev, after) {
            (false, Some(c)) => Excluded(c),
            _ => Unbounded,
        };
        let hi = match (rev, after) {
            (true, Some(c)) => Excluded(c),
            _ => Unbounded,
        };
        let mut r = self.priq.range((lo, hi));
        let found = if rev {
            r.rev().find(|(_, p)| ok(p))
        } else {
            r.find(|(_, p)| ok(p))
        };
        found.map(|(k, p)| (*k, p))
    }
}

/// A dispatch queue's contents.
///
/// A non-local DSQ keeps tasks that may run on a single CPU (every started
/// task, unless migration is allowed) in a per-CPU run beside the run of
/// the others, all keyed by one order. `pop_first_for(cpu)` takes the
/// earlier of the two candidates — the same task a scan in dispatch order
/// for "the first task this CPU may run" would find — without walking past
/// tasks bound to other CPUs, and without any scan when the earlier of the
/// two runs' heads is a task this CPU may run (the common case).
pub(crate) struct DsqQueue {
    free: Part,
    bound: Vec<Part>,
    partitioned: bool,
    nr: usize,
    mode: Mode,
    vtime_base: u64,
    head_seq: i64,
    tail_seq: i64,
    tie: u64,
    /// Bumped on every insertion; copied into the task's `dsq_seq`.
    pub seq: u32,
    /// Id stored into a linked task's `dsq` field.
    pub id: u64,
}

impl DsqQueue {
    /// A local DSQ (everything in one run).
    pub(crate) fn new(id: u64) -> Self {
        Self {
            free: Part::default(),
            bound: Vec::new(),
            partitioned: false,
            nr: 0,
            mode: Mode::Fifo,
            vtime_base: 0,
            head_seq: 0,
            tail_seq: 0,
            tie: 0,
            seq: 0,
            id,
        }
    }

    /// A non-local DSQ (single-CPU tasks in per-CPU runs).
    pub(crate) fn new_partitioned(id: u64) -> Self {
        Self {
            partitioned: true,
            ..Self::new(id)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nr
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nr == 0
    }

    #[inline]
    fn part_mut(&mut self, p: &TaskRef) -> &mut Part {
        match p.single_cpu().filter(|_| self.partitioned) {
            Some(c) => {
                if self.bound.len() <= c {
                    self.grow_bound(c);
                }
                &mut self.bound[c]
            }
            None => &mut self.free,
        }
    }

    #[cold]
    fn grow_bound(&mut self, cpu: usize) {
        self.bound.resize_with(cpu + 1, Part::default);
    }

    fn link_common(&mut self, p: &TaskRef) {
        stamp_link(p, self.id, &mut self.seq, Ordering::Relaxed);
        self.nr += 1;
    }

    /// Links `p` at the tail (or head) in FIFO order.
    #[inline]
    pub(crate) fn push_fifo(
        &mut self,
        p: TaskRef,
        head: bool,
    ) -> Result<&TaskRef, (InsertError, TaskRef)> {
        if self.mode == Mode::Priq && self.nr > 0 {
            return Err((InsertError::FifoIntoPriq, p));
        }
        self.mode = Mode::Fifo;
        self.link_common(&p);
        let key = if head {
            self.head_seq -= 1;
            (self.head_seq, 0)
        } else {
            self.tail_seq += 1;
            (self.tail_seq, 0)
        };
        let part = self.part_mut(&p);
        if head {
            part.fifo.push_front((key, p));
            Ok(&part.fifo.front().expect("just pushed").1)
        } else {
            part.fifo.push_back((key, p));
            Ok(&part.fifo.back().expect("just pushed").1)
        }
    }

    /// Links `p` in vtime order (`p.dsq_vtime`).
    pub(crate) fn push_vtime(&mut self, p: TaskRef) -> Result<&TaskRef, (InsertError, TaskRef)> {
        if self.mode == Mode::Fifo && self.nr > 0 {
            return Err((InsertError::PriqIntoFifo, p));
        }
        if self.nr == 0 {
            self.vtime_base = p.dsq_vtime();
        }
        self.mode = Mode::Priq;
        self.link_common(&p);
        let key = (p.dsq_vtime().wrapping_sub(self.vtime_base) as i64, self.tie);
        self.tie = self.tie.wrapping_add(1);
        let part = self.part_mut(&p);
        part.priq.insert(key, p);
        Ok(&part.priq[&key])
    }

    /// Unlinks the head task (local DSQs).
    #[cfg_attr(not(any(test, scx_rt_loom)), allow(dead_code))]
    pub(crate) fn pop(&mut self) -> Option<TaskRef> {
        debug_assert!(!self.partitioned, "pop is for local DSQs");
        let (k, _) = self.free.head(self.mode)?;
        let p = self.free.remove_key(self.mode, k)?;
        self.nr -= 1;
        Some(p)
    }

    /// Unlinks the first task, in dispatch order, that CPU `cpu` may run
    /// (`pred`).
    #[inline]
    pub(crate) fn pop_first_for(
        &mut self,
        cpu: usize,
        mut pred: impl FnMut(&TaskRef) -> bool,
    ) -> Option<TaskRef> {
        // The common case first: the earlier of the two runs' heads is a
        // task this CPU may run, and it is the answer with no scan.
        let mode = self.mode;
        let a = self.free.head(mode);
        let b = self.bound.get(cpu).and_then(|part| part.head(mode));
        let (in_bound, head) = match (a, b) {
            (Some(a), Some(b)) if b.0 < a.0 => (true, b.1),
            (Some(a), _) => (false, a.1),
            (None, Some(b)) => (true, b.1),
            (None, None) => return None,
        };
        if !pred(head) {
            return self.pop_first_for_scan(cpu, pred);
        }
        let part = if in_bound {
            &mut self.bound[cpu]
        } else {
            &mut self.free
        };
        let p = part.pop_head(mode)?;
        self.nr -= 1;
        Some(p)
    }

    /// `pop_first_for` past a head this CPU may not run: scans both runs.
    #[inline(never)]
    fn pop_first_for_scan(
        &mut self,
        cpu: usize,
        mut pred: impl FnMut(&TaskRef) -> bool,
    ) -> Option<TaskRef> {
        let mode = self.mode;
        let a = self.free.first_where(mode, &mut pred).map(|(k, _)| k);
        let b = self
            .bound
            .get(cpu)
            .and_then(|part| part.first_where(mode, &mut pred))
            .map(|(k, _)| k);
        let p = match (a, b) {
            (Some(a), Some(b)) if b < a => self.bound[cpu].remove_key(mode, b),
            (Some(a), _) => self.free.remove_key(mode, a),
            (None, Some(b)) => self.bound[cpu].remove_key(mode, b),
            (None, None) => None,
        }?;
        self.nr -= 1;
        Some(p)
    }

    /// Pops the first task that may run on `cpu` only (the CPU's own run
    /// of single-CPU tasks), in this DSQ's order.
    pub(crate) fn pop_pinned(&mut self, cpu: usize) -> Option<TaskRef> {
        let mode = self.mode;
        let part = self.bound.get_mut(cpu)?;
        let k = part
            .first_where(mode, &mut |_: &TaskRef| true)
            .map(|(k, _)| k)?;
        let p = part.remove_key(mode, k)?;
        self.nr -= 1;
        Some(p)
    }

    /// Unlinks `p` wherever it is. `true` if it was linked here.
    pub(crate) fn remove(&mut self, p: &TaskRef) -> bool {
        let id = p.id();
        let found = self.part_mut(p).remove_task(id)
            || self.free.remove_task(id)
            || self.bound.iter_mut().any(|b| b.remove_task(id));
        if found {
            self.nr -= 1;
        }
        found
    }

    /// The next task in dispatch order after `cursor` (before it when
    /// `rev`; `None`: from the head, or the tail) that was linked no later
    /// than insertion sequence `seq` (a DSQ iterator sees only the tasks
    /// queued when it started). Looks in every run, so a walk sees tasks
    /// bound to any CPU.
    pub(crate) fn next_after(
        &self,
        cursor: Option<Cursor>,
        rev: bool,
        seq: u32,
    ) -> Option<(Cursor, &TaskRef)> {
        let after = cursor.map(|c| c.0);
        let mut ok = |p: &TaskRef| !seq_before(seq, p.scx.dsq_seq.load(Ordering::Relaxed));
        std::iter::once(&self.free)
            .chain(self.bound.iter())
            .filter_map(|part| part.next_after(after, rev, &mut ok))
            .reduce(|a, b| if (b.0 < a.0) != rev { b } else { a })
            .map(|(k, p)| (Cursor(k), p))
    }

    /// Tasks (in dispatch order within each run; for the loom models).
    #[cfg_attr(not(scx_rt_loom), allow(dead_code))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TaskRef> {
        std::iter::once(&self.free)
            .chain(self.bound.iter())
            .flat_map(|part| part.fifo.iter().map(|(_, p)| p).chain(part.priq.values()))
    }

    /// Unlinks everything.
    pub(crate) fn drain(&mut self) -> Vec<TaskRef> {
        let mut v = Vec::with_capacity(self.nr);
        for part in std::iter::once(&mut self.free).chain(self.bound.iter_mut()) {
            v.extend(part.fifo.drain(..).map(|(_, p)| p));
            v.extend(std::mem::take(&mut part.priq).into_values());
            debug_assert_eq!(part.len(), 0);
        }
        self.nr = 0;
        v
    }
}

/// A non-local DSQ: the global DSQ or a user DSQ.
pub(crate) struct Dsq {
    /// The id; set to `DSQ_INVALID` when destroyed so that a racing insert
    /// notices (SPEC.md §2.8).
    pub id: AtomicU64,
    /// Number of queued tasks, readable without the lock: a mirror of the
    /// queue's length, written only under the lock (a plain store, no
    /// read-modify-write; [`Dsq::sync_nr`]).
    pub nr: AtomicUsize,
    pub q: Mutex<DsqQueue>,
}

impl Dsq {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id: AtomicU64::new(id),
            nr: AtomicUsize::new(0),
            q: Mutex::new(DsqQueue::new_partitioned(id)),
        }
    }

    #[inline]
    pub(crate) fn nr_queued(&self) -> usize {
        self.nr.load(Ordering::Relaxed)
    }

    /// Publishes the queue's length `q` (this DSQ's queue, locked) to the
    /// lock-free count.
    #[inline]
    pub(crate) fn sync_nr(&self, q: &DsqQueue) {
        self.nr.store(q.len(), Ordering::Relaxed);
    }

    /// Whether the DSQ is live (a user DSQ not destroyed; the global DSQ
    /// always is).
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.id.load(Ordering::Acquire) != crate::flags::DSQ_INVALID
    }
}

/// A CPU's local DSQ: always FIFO (vtime insertion into a built-in DSQ is
/// an error, SPEC.md §2.2), protected by its rq lock, and on the hot path
/// of every switch, so it is a plain double-ended ring
/// ([`crate::task_ring`]): linking takes the caller's reference (no
/// clone), the head is taken by moving it out, and removal from the middle
/// (a dequeue) scans.
pub(crate) struct LocalDsq {
    q: crate::task_ring::TaskRing,
    seq: u32,
    /// Id stored into a linked task's `dsq` field (`LOCAL_ON | cpu`).
    pub id: u64,
}

impl LocalDsq {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            q: crate::task_ring::TaskRing::new(),
            seq: 0,
            id,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Links `p` at the tail, or at the head for `HEAD`/`PREEMPT`.
    #[inline(always)]
    pub(crate) fn push(&mut self, p: TaskRef, head: bool) {
        stamp_link(&p, self.id, &mut self.seq, Ordering::Release);
        if head {
            self.q.push_front(p);
        } else {
            self.q.push_back(p);
        }
    }

    /// Unlinks and returns the head (its `dsq` field is cleared).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<TaskRef> {
        let p = self.q.pop_front()?;
        p.scx
            .dsq
            .store(crate::flags::DSQ_INVALID, Ordering::Release);
        Some(p)
    }

    /// Unlinks `p` wherever it is (its `dsq` field is left to the caller,
    /// as for non-local DSQs). Whether it was linked.
    pub(crate) fn remove(&mut self, p: &TaskRef) -> bool {
        let at = self.q.iter().position(|q| q.id() == p.id());
        match at {
            Some(i) => {
                self.q.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &TaskRef> {
        self.q.iter()
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
        assert!(matches!(
            q.push_vtime(tok(2, 1)),
            Err((InsertError::PriqIntoFifo, _))
        ));
        q.pop();
        q.push_vtime(tok(2, 1)).unwrap();
        assert!(matches!(
            q.push_fifo(tok(3, 0), false),
            Err((InsertError::FifoIntoPriq, _))
        ));
    }

    #[test]
    fn partitioned_pop_takes_the_first_task_this_cpu_may_run() {
        let mut q = DsqQueue::new_partitioned(5);
        let free1 = tok(1, 0);
        let bound0 = tok(2, 0);
        bound0.bound_cpu.store(0, Ordering::Relaxed);
        let bound1 = tok(3, 0);
        bound1.bound_cpu.store(1, Ordering::Relaxed);
        let free2 = tok(4, 0);
        for p in [&bound1, &bound0, &free1, &free2] {
            q.push_fifo(p.clone(), false).unwrap();
        }
        let head = tok(5, 0);
        head.bound_cpu.store(1, Ordering::Relaxed);
        q.push_fifo(head, true).unwrap();
        assert_eq!(q.len(), 5);
        let take = |q: &mut DsqQueue, cpu: usize| {
            q.pop_first_for(cpu, |p| p.allowed_on(cpu)).map(|p| p.id())
        };
        assert_eq!(take(&mut q, 0), Some(2), "cpu 0 skips tasks bound to cpu 1");
        assert_eq!(take(&mut q, 1), Some(5), "head insertion is first");
        assert_eq!(take(&mut q, 1), Some(3));
        assert_eq!(take(&mut q, 0), Some(1));
        assert_eq!(take(&mut q, 1), Some(4));
        assert_eq!(take(&mut q, 1), None);
        assert!(q.is_empty());
    }

    #[test]
    fn pop_past_a_head_this_cpu_may_not_run_scans() {
        let ids = |q: &mut DsqQueue, cpu: usize, skip: &[u64]| {
            let mut v = Vec::new();
            while let Some(p) = q.pop_first_for(cpu, |p| !skip.contains(&p.id())) {
                v.push(p.id());
            }
            v
        };
        let mut q = DsqQueue::new_partitioned(5);
        for id in 1..=3 {
            q.push_fifo(tok(id, 0), false).unwrap();
        }
        let b = tok(4, 0);
        b.bound_cpu.store(0, Ordering::Relaxed);
        q.push_fifo(b, true).unwrap();
        assert_eq!(ids(&mut q, 0, &[4, 1]), vec![2, 3]);
        assert_eq!(ids(&mut q, 0, &[]), vec![4, 1]);
        assert!(q.is_empty());

        let mut q = DsqQueue::new_partitioned(5);
        for (id, v) in [(1, 30), (2, 10), (3, 20)] {
            q.push_vtime(tok(id, v)).unwrap();
        }
        let b = tok(4, 15);
        b.bound_cpu.store(0, Ordering::Relaxed);
        q.push_vtime(b).unwrap();
        assert_eq!(ids(&mut q, 0, &[2]), vec![4, 3, 1]);
        assert_eq!(ids(&mut q, 1, &[]), vec![2]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_cursor_walks_every_run_in_order_and_skips_later_links() {
        let walk = |q: &DsqQueue, rev: bool, seq: u32| {
            let mut v = Vec::new();
            let mut c = None;
            while let Some((k, p)) = q.next_after(c, rev, seq) {
                v.push(p.id());
                c = Some(k);
            }
            v
        };
        // FIFO across the free run and two CPUs' runs, with a head insert.
        let mut q = DsqQueue::new_partitioned(5);
        for id in 1..=4 {
            let t = tok(id, 0);
            if id % 2 == 0 {
                t.bound_cpu.store(id as i32 / 2 - 1, Ordering::Relaxed);
            }
            q.push_fifo(t, false).unwrap();
        }
        q.push_fifo(tok(5, 0), true).unwrap();
        let seq = q.seq;
        assert_eq!(walk(&q, false, seq), vec![5, 1, 2, 3, 4]);
        assert_eq!(walk(&q, true, seq), vec![4, 3, 2, 1, 5]);
        // Linked after the walk's start: not seen, whichever end.
        q.push_fifo(tok(6, 0), false).unwrap();
        q.push_fifo(tok(7, 0), true).unwrap();
        assert_eq!(walk(&q, false, seq), vec![5, 1, 2, 3, 4]);
        assert_eq!(walk(&q, true, seq), vec![4, 3, 2, 1, 5]);
        // The cursor survives the removal of the task it points at.
        let (c, _) = q.next_after(None, false, seq).unwrap(); // 5
        let (c, p) = q.next_after(Some(c), false, seq).unwrap(); // 1
        assert!(q.remove(&p.clone()));
        assert_eq!(q.next_after(Some(c), false, seq).unwrap().1.id(), 2);
        // vtime order, wrapping sequence numbers.
        let mut q = DsqQueue::new_partitioned(5);
        q.seq = u32::MAX - 1;
        for (id, v) in [(1, 30), (2, 10), (3, 20)] {
            q.push_vtime(tok(id, v)).unwrap();
        }
        let seq = q.seq;
        assert_eq!(seq, 1, "wrapped");
        assert_eq!(walk(&q, false, seq), vec![2, 3, 1]);
        assert_eq!(walk(&q, true, seq), vec![1, 3, 2]);
        assert_eq!(
            walk(&q, false, u32::MAX - 1),
            vec![],
            "nothing linked by then"
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
