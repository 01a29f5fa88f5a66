//! A double-ended ring of task references: the storage of a CPU's local
//! DSQ (`dsq::LocalDsq`), whose tail takes every yielding task and whose
//! head gives every next one, so one push and one pop per switch.
//!
//! `std::collections::VecDeque` costs about 40 instructions for that pair
//! (callgrind, `switch`): its push is an out-of-line call that checks for
//! growth, and both ends map a logical index to a physical one with a
//! compare and a subtraction, since its capacity may be any size. Here the
//! capacity is a power of two, so the map is one mask, and the push checks
//! for growth with one compare and leaves the growth out of line.
//!
//! Slots are `Option<TaskRef>` (the same size as a reference: the null
//! pointer is `None`), so the ring is safe code: a slot outside the queued
//! range holds `None`, a pop moves the reference out and leaves `None`.

use crate::task::TaskRef;

/// Capacity of a ring's first allocation (it doubles from there).
const FIRST_CAP: usize = 8;

pub(crate) struct TaskRing {
    /// `len() == 0` or a power of two.
    buf: Box<[Option<TaskRef>]>,
    /// Physical index of the head.
    head: usize,
    /// Number of queued tasks.
    len: usize,
}

impl TaskRing {
    pub(crate) fn new() -> Self {
        Self {
            buf: Box::new([]),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mask of a physical index (the capacity is a power of two).
    #[inline]
    fn mask(&self) -> usize {
        self.buf.len().wrapping_sub(1)
    }

    /// Physical index of logical position `i` (below the capacity).
    #[inline]
    fn phys(&self, i: usize) -> usize {
        self.head.wrapping_add(i) & self.mask()
    }

    #[inline(always)]
    pub(crate) fn push_back(&mut self, p: TaskRef) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let i = self.phys(self.len);
        self.buf[i] = Some(p);
        self.len += 1;
    }

    #[inline(always)]
    pub(crate) fn push_front(&mut self, p: TaskRef) {
        if self.len == self.buf.len() {
            self.grow();
        }
        self.head = self.head.wrapping_sub(1) & self.mask();
        let i = self.head;
        self.buf[i] = Some(p);
        self.len += 1;
    }

    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (i + 1) & self.mask();
        self.len -= 1;
        self.buf[i].take()
    }

    /// The task at logical position `i` (0: the head).
    #[cfg(test)]
    pub(crate) fn get(&self, i: usize) -> Option<&TaskRef> {
        if i >= self.len {
            return None;
        }
        self.buf[self.phys(i)].as_ref()
    }

    /// Removes and returns the task at logical position `i`, closing the
    /// gap from whichever end is nearer.
    pub(crate) fn remove(&mut self, i: usize) -> Option<TaskRef> {
        if i >= self.len {
            return None;
        }
        let at = self.phys(i);
        let p = self.buf[at].take();
        if i < self.len / 2 {
            // Shift the part before `i` back by one, from `i` down.
            for k in (0..i).rev() {
                let (from, to) = (self.phys(k), self.phys(k + 1));
                self.buf[to] = self.buf[from].take();
            }
            self.head = (self.head + 1) & self.mask();
        } else {
            for k in i..self.len - 1 {
                let (from, to) = (self.phys(k + 1), self.phys(k));
                self.buf[to] = self.buf[from].take();
            }
        }
        self.len -= 1;
        p
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &TaskRef> + '_ {
        (0..self.len).filter_map(move |i| self.buf[self.phys(i)].as_ref())
    }

    /// Doubles the capacity. Out of line: a local DSQ reaches its working
    /// size once (it keeps it). Called full (`len == capacity`): the buffer
    /// grows in place where the allocator can (`realloc`: the slots move
    /// as memory, not one reference at a time, and the old buffer is not
    /// walked to drop its `None`s), the new half is cleared, and the part
    /// of the queue that wrapped around (physical `0..head`) moves to just
    /// past the old end, so that the queue is contiguous under the new
    /// mask with the same head.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        debug_assert_eq!(self.len, self.buf.len());
        let old = self.buf.len();
        let cap = (old * 2).max(FIRST_CAP);
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.reserve_exact(cap - old);
        buf.resize_with(cap, || None);
        for i in 0..self.head {
            buf[old + i] = buf[i].take();
        }
        self.buf = buf.into_boxed_slice();
    }
}

impl Default for TaskRing {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;
    use crate::task::Task;
    use std::collections::VecDeque;

    fn ids(r: &TaskRing) -> Vec<u64> {
        r.iter().map(|p| p.id()).collect()
    }

    /// Random pushes at both ends, pops and removals against `VecDeque`,
    /// across many growths and wrap-arounds.
    #[test]
    fn behaves_like_a_vecdeque() {
        let mut r = TaskRing::new();
        let mut m: VecDeque<u64> = VecDeque::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next_id = 1;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0 | 1 => {
                    r.push_back(Task::new_token(next_id));
                    m.push_back(next_id);
                    next_id += 1;
                }
                2 => {
                    r.push_front(Task::new_token(next_id));
                    m.push_front(next_id);
                    next_id += 1;
                }
                3 | 4 => assert_eq!(r.pop_front().map(|p| p.id()), m.pop_front()),
                5 if !m.is_empty() => {
                    let i = (x >> 8) as usize % m.len();
                    assert_eq!(r.remove(i).map(|p| p.id()), m.remove(i));
                }
                _ => {
                    let i = (x >> 8) as usize % (m.len() + 1);
                    assert_eq!(r.get(i).map(|p| p.id()), m.get(i).copied());
                }
            }
            assert_eq!(r.len(), m.len());
            assert_eq!(r.is_empty(), m.is_empty());
        }
        assert_eq!(ids(&r), m.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn references_are_moved_not_leaked() {
        let t = Task::new_token(1);
        let mut r = TaskRing::new();
        for _ in 0..20 {
            r.push_back(t.clone());
        }
        assert_eq!(std::sync::Arc::strong_count(&t), 21);
        r.pop_front();
        r.remove(5);
        assert_eq!(std::sync::Arc::strong_count(&t), 19);
        drop(r);
        assert_eq!(std::sync::Arc::strong_count(&t), 1);
    }
}
