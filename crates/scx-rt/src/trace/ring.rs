//! One CPU's trace ring: a fixed-capacity buffer of compact records.
//!
//! The ring lives in the CPU's `RqSynced` and is reached only through the
//! rq lock (`&mut RqSynced`), so it is plain data: no atomics, no unsafe.
//! Who writes it and when it may be read is the protocol of the `trace`
//! module docs.
//!
//! Capacity is fixed when the runtime is built (the buffer is reserved
//! then, and never grows). A full ring either overwrites its oldest record
//! ([`TraceFull::OverwriteOldest`], a flight recorder: the latest window
//! survives) or drops the new one ([`TraceFull::DropNewest`]: the start of
//! the run survives); either way the record is counted as lost.

use crate::task::TaskId;

use super::TraceFull;

/// What a record is (its `task`, `a` and `b` fields are decoded by kind in
/// `trace::event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// `ops.enqueue` was called for `task`; `a`: enqueue flags.
    Enqueue,
    /// A dispatch verdict was carried out; `a`: the DSQ id named, `b`:
    /// enqueue flags.
    Dispatch,
    /// The CPU switched: `task`: next (0: none), `a`: prev (0: none),
    /// `b`: why prev stopped (`STOP_*`).
    Switch,
    /// A kick reached this CPU; `a`: the kicker (`NO_CPU`: no worker),
    /// `b`: kick flags, with `KICK_SKIPPED` when an idle kick was skipped.
    Kick,
    /// `task`'s slice was zeroed; `a`: `PREEMPT_BY_KICK` or
    /// `PREEMPT_BY_ENQ`, `b`: the kicker (`NO_CPU`: no worker) or the
    /// task inserted with `ENQ_PREEMPT`.
    Preempt,
    /// `task`'s slice ended (the slice timer fired).
    SliceExpired,
    /// `task` blocked.
    Block,
    /// `task` woke (or was spawned: no `WAKEUP` in `a`); `a`: enqueue
    /// flags.
    Wake,
    /// `task` moved from CPU `a` to CPU `b`.
    Migrate,
}

/// `Switch::b`: no task stopped (the CPU was idle).
pub(crate) const STOP_NONE: u64 = 0;
/// `Switch::b`: prev called `yield_now`.
pub(crate) const STOP_YIELD: u64 = 1;
/// `Switch::b`: prev stopped at a preemption point.
pub(crate) const STOP_PREEMPT: u64 = 2;
/// `Switch::b`: prev asked to block.
pub(crate) const STOP_BLOCK: u64 = 3;
/// `Switch::b`: prev's body returned.
pub(crate) const STOP_EXIT: u64 = 4;
/// A CPU field for "no CPU" (a thread that is no worker).
pub(crate) const NO_CPU: u64 = u64::MAX;
/// `Kick::b`: the idle kick was skipped (the target was busy).
pub(crate) const KICK_SKIPPED: u64 = 1 << 63;
/// `Preempt::a`: a `PREEMPT` kick zeroed the slice.
pub(crate) const PREEMPT_BY_KICK: u64 = 0;
/// `Preempt::a`: an `ENQ_PREEMPT` insertion zeroed the slice.
pub(crate) const PREEMPT_BY_ENQ: u64 = 1;

/// One event, as the hot path writes it (40 bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    /// The scheduling clock's ns (`core::clock`; module docs, rule 4).
    pub ts: u64,
    /// The task the event is about (0: none; task ids start at 1).
    pub task: TaskId,
    pub a: u64,
    pub b: u64,
    pub kind: Kind,
}

impl Record {
    /// An unused slot.
    const EMPTY: Record = Record {
        ts: 0,
        task: 0,
        a: 0,
        b: 0,
        kind: Kind::Block,
    };
}

/// One CPU's ring: `buf` is allocated whole at build; `next` is where the
/// next record goes, and the ring is `full` once it wrapped.
pub(crate) struct Ring {
    buf: Box<[Record]>,
    next: usize,
    full: bool,
    overwrite: bool,
    /// Records offered to the ring, kept or not.
    seen: u64,
    /// The time of the last record offered: a record is never stamped
    /// earlier (`push`).
    last_ts: u64,
    /// The task this CPU's scheduling step stopped, and why (`STOP_*`):
    /// set at the step's start, taken by its switch record. Only the
    /// owner's step touches it.
    pub stopped: Option<(TaskId, u64)>,
}

impl Ring {
    /// An empty ring of `cap` records (`cap >= 1`, checked by the builder).
    pub(crate) fn new(cap: usize, full: TraceFull) -> Self {
        debug_assert!(cap > 0);
        Self {
            buf: vec![Record::EMPTY; cap].into_boxed_slice(),
            next: 0,
            full: false,
            overwrite: full == TraceFull::OverwriteOldest,
            seen: 0,
            last_ts: 0,
            stopped: None,
        }
    }

    /// Adds `r`; when full, overwrites the oldest record or drops `r`
    /// (counted as lost either way, [`Ring::lost`]).
    ///
    /// Its time is at least the last record's: the lock orders the
    /// writers, but two threads' readings of the scheduling clock may
    /// be out of order by up to about 1.5 µs (`scx_rt_sys::clock`: the TSC
    /// read is not fenced), so a
    /// reading after the lock can come out a little below the one before.
    #[inline(always)]
    pub(crate) fn push(&mut self, mut r: Record) {
        r.ts = r.ts.max(self.last_ts);
        self.last_ts = r.ts;
        self.seen += 1;
        if self.full && !self.overwrite {
            return;
        }
        self.buf[self.next] = r;
        self.next += 1;
        if self.next == self.buf.len() {
            self.next = 0;
            self.full = true;
        }
    }

    /// The kept records, oldest first.
    pub(crate) fn records(&self) -> Vec<Record> {
        if !self.full {
            return self.buf[..self.next].to_vec();
        }
        let mut v = Vec::with_capacity(self.buf.len());
        if self.overwrite {
            v.extend_from_slice(&self.buf[self.next..]);
            v.extend_from_slice(&self.buf[..self.next]);
        } else {
            v.extend_from_slice(&self.buf);
        }
        v
    }

    /// Records offered to the ring since the runtime started.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// Records lost to a full ring (overwritten or dropped).
    pub(crate) fn lost(&self) -> u64 {
        self.seen.saturating_sub(self.buf.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64) -> Record {
        Record {
            ts,
            task: 1,
            a: 0,
            b: 0,
            kind: Kind::Block,
        }
    }

    fn times(r: &Ring) -> Vec<u64> {
        r.records().iter().map(|r| r.ts).collect()
    }

    /// A record stamped earlier than the one before it (another thread's
    /// reading of the clock, a little behind) takes the earlier record's
    /// time: the ring's times never go down.
    #[test]
    fn a_record_is_never_stamped_before_the_last() {
        let mut r = Ring::new(8, TraceFull::OverwriteOldest);
        for t in [10, 30, 25, 40, 39, 41] {
            r.push(rec(t));
        }
        assert_eq!(times(&r), [10, 30, 30, 40, 40, 41]);
    }

    #[test]
    fn overwrite_keeps_the_newest_in_order() {
        let mut r = Ring::new(3, TraceFull::OverwriteOldest);
        for t in 1..=2 {
            r.push(rec(t));
        }
        assert_eq!(times(&r), [1, 2]);
        for t in 3..=7 {
            r.push(rec(t));
        }
        assert_eq!(times(&r), [5, 6, 7]);
        assert_eq!((r.seen(), r.lost()), (7, 4));
    }

    #[test]
    fn drop_newest_keeps_the_oldest() {
        let mut r = Ring::new(3, TraceFull::DropNewest);
        for t in 1..=7 {
            r.push(rec(t));
        }
        assert_eq!(times(&r), [1, 2, 3]);
        assert_eq!((r.seen(), r.lost()), (7, 4));
    }
}
