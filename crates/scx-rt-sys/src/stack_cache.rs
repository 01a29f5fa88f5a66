//! [`StackCache`]: one owner's private cache of a pool's free stacks,
//! passed by `&mut` instead of found through a thread-local.
//!
//! # Why it exists
//!
//! [`crate::stack`]'s per-thread caches make `get` and the return of a
//! stack lock-free, but every use finds the thread's cache first: a
//! thread-local access (with its destructor-state check and a `RefCell`
//! borrow) and a search of the thread's caches for the pool. A runtime's
//! worker takes a stack for every task it starts and gives it back when the
//! task finishes, on its own thread, so it can own its cache outright and
//! hand it down: [`StackCache::get`] and [`StackCache::put`] touch only the
//! cache (callgrind: about 160 instructions per task less than the
//! thread-local path). A fiber resumed with
//! [`crate::fiber::Fiber::resume_cached`] takes its first stack from the
//! cache and returns it there when its body returns.
//!
//! # Rules
//!
//! The same as a thread cache's ([`crate::stack`], "Per-thread caches"),
//! with a strong reference instead of a weak one: the cache holds its pool's
//! shared state alive (so its slots stay mapped while listed), moves
//! [`crate::stack::THREAD_CACHE_BATCH`] slots at a time from and to the
//! shared free list, publishes its length for [`StackPool::cached`], and
//! goes back to the shared list when dropped or flushed. A stack of another
//! pool given to [`StackCache::put`] goes back to its own pool (it is simply
//! dropped).
//!
//! # Banked references
//!
//! A [`Stack`] holds a strong reference to its pool (its drop returns the
//! slot there), so a `get` that made one and a `put` that released it
//! would cost two atomic read-modify-writes of the pool's count per task.
//! The cache keeps the reference of each stack `put` gives back instead
//! (up to [`THREAD_CACHE_CAP`] of them, `banked`) and hands one to each
//! stack `get` makes, so the common pair touches no count: the pool's
//! count is then one (the cache's own) plus `banked` more than the stacks
//! out there hold, and the cache's drop releases the banked ones.

use std::io;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::stack::{Shared, Stack, StackPool, THREAD_CACHE_CAP};

/// A private cache of one pool's free stacks (module docs). `Send`: its
/// owner may move it, but only `&mut` uses it.
pub struct StackCache {
    pool: Arc<Shared>,
    /// Free slot starts, LIFO (the last is the warmest).
    slots: Vec<usize>,
    /// `slots.len()`, published for [`StackPool::cached`].
    count: Arc<AtomicUsize>,
    /// Strong references to `pool` held for stacks to come (module docs,
    /// "Banked references"); at most [`THREAD_CACHE_CAP`].
    banked: usize,
}

impl StackPool {
    /// A private cache of this pool's stacks, for one owner (a worker)
    /// that takes and returns stacks without thread-local lookups.
    pub fn cache(&self) -> StackCache {
        StackCache {
            pool: self.shared.clone(),
            slots: Vec::with_capacity(THREAD_CACHE_CAP),
            count: self.shared.register_cache(),
            banked: 0,
        }
    }
}

impl StackCache {
    /// A cached stack, else one from the pool's shared list or newly
    /// carved. Fails only if a slab could not be mapped or a guard not
    /// installed.
    #[inline]
    pub fn get(&mut self) -> io::Result<Stack> {
        let r = self.pool.take_from(&mut self.slots);
        self.publish();
        let low = r?;
        let pool = if self.banked > 0 {
            self.banked -= 1;
            // SAFETY: the cache holds `banked + 1` strong references to its
            // pool's allocation (module docs): this takes one of the banked
            // ones over, which `put` kept by `Arc::into_raw` of an `Arc` of
            // this allocation, whose pointer is the one `Arc::as_ptr`
            // returns for `self.pool`.
            unsafe { Arc::from_raw(Arc::as_ptr(&self.pool)) }
        } else {
            self.pool.clone()
        };
        Ok(Stack::new(low, pool))
    }

    /// Keeps `s` for the next `get` (a stack of another pool goes back to
    /// its own).
    #[inline]
    pub fn put(&mut self, s: Stack) {
        if !Arc::ptr_eq(&s.pool, &self.pool) {
            drop(s);
            return;
        }
        let s = ManuallyDrop::new(s);
        // SAFETY: `s` is never used or dropped again (`ManuallyDrop`), so
        // moving its `Arc` out reads it exactly once: the reference it
        // counts is released below, like `Stack`'s drop would.
        let pool = unsafe { std::ptr::read(&s.pool) };
        // The slot is this pool's (checked above) and owned by `s` alone:
        // listing it here is `Stack`'s drop without the thread-local.
        self.pool.keep_in(&mut self.slots, s.low);
        self.publish();
        if self.banked < THREAD_CACHE_CAP {
            // Kept for the next `get` (module docs, "Banked references").
            let _ = Arc::into_raw(pool);
            self.banked += 1;
        } else {
            drop(pool);
        }
    }

    /// Moves every cached slot to the pool's shared free list.
    pub fn flush(&mut self) {
        flush(&self.pool, &mut self.slots, &self.count);
    }

    /// [`StackPool::trim`], flushing this cache (instead of the calling
    /// thread's) when something may be trimmed. Borrows the parts apart
    /// (no reference counted on the pool: a worker trims at every sleep).
    #[inline]
    pub fn trim(&mut self, keep: usize) -> usize {
        let StackCache {
            pool, slots, count, ..
        } = self;
        pool.trim(keep, || flush(pool, slots, count))
    }

    fn publish(&self) {
        self.count.store(self.slots.len(), Ordering::Relaxed);
    }
}

/// Moves the cached `slots` to `pool`'s shared free list and publishes the
/// (now zero) count.
fn flush(pool: &Shared, slots: &mut Vec<usize>, count: &AtomicUsize) {
    if slots.is_empty() {
        return;
    }
    pool.put_slots_shared(slots.drain(..));
    count.store(0, Ordering::Relaxed);
}

impl Drop for StackCache {
    fn drop(&mut self) {
        for _ in 0..std::mem::take(&mut self.banked) {
            // SAFETY: each banked reference is a strong count on `pool`'s
            // allocation kept by `Arc::into_raw` (`put`), released once
            // here; `self.pool` still holds its own, so the allocation
            // outlives the loop.
            unsafe { Arc::decrement_strong_count(Arc::as_ptr(&self.pool)) };
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's strong count is the cache's own, one per stack out, and
    /// one per banked reference; a get takes a banked one over, a put
    /// banks its stack's, and the cache's drop releases them all.
    #[test]
    fn banked_references_are_counted_and_released() {
        let pool = StackPool::new(64 * 1024);
        let strong = || Arc::strong_count(&pool.shared);
        let base = strong();
        let mut c = pool.cache();
        let a = c.get().unwrap();
        let b = c.get().unwrap();
        assert_eq!(strong(), base + 3, "the cache and two stacks");
        c.put(a);
        c.put(b);
        assert_eq!(strong(), base + 3, "two references banked");
        let a = c.get().unwrap();
        assert_eq!(strong(), base + 3, "a banked reference taken over");
        drop(a);
        assert_eq!(strong(), base + 2, "a stack dropped outside the cache");
        drop(c);
        assert_eq!(strong(), base, "the banked reference released");
    }

    #[test]
    fn stacks_cycle_through_the_cache_without_the_shared_list() {
        let pool = StackPool::new(64 * 1024);
        let mut c = pool.cache();
        let s = c.get().unwrap();
        let low = s.low;
        c.put(s);
        assert_eq!(pool.cached(), 1, "the cache's slot is counted");
        assert_eq!(pool.shared.cached.load(Ordering::Relaxed), 0);
        let s = c.get().unwrap();
        assert_eq!(s.low, low, "the warmest slot comes back");
        c.put(s);
        drop(c);
        assert_eq!(
            pool.shared.cached.load(Ordering::Relaxed),
            1,
            "dropped: flushed"
        );
        assert_eq!(pool.cached(), 1);
    }

    #[test]
    fn a_stack_of_another_pool_goes_home() {
        let a = StackPool::new(64 * 1024);
        let b = StackPool::new(64 * 1024);
        let mut c = a.cache();
        let s = b.get().unwrap();
        c.put(s);
        assert_eq!(a.cached(), 0);
        assert_eq!(b.cached(), 1);
    }

    #[test]
    fn trim_flushes_the_cache_when_it_may_release() {
        let pool = StackPool::new(64 * 1024);
        let mut c = pool.cache();
        let stacks: Vec<_> = (0..4).map(|_| c.get().unwrap()).collect();
        for s in stacks {
            c.put(s);
        }
        assert_eq!(c.trim(THREAD_CACHE_CAP + 4), 0, "nothing to release");
        assert_eq!(c.slots.len(), 4, "left alone");
        assert_eq!(c.trim(1), 3);
        assert!(c.slots.is_empty(), "flushed to the shared list");
        assert_eq!(pool.cached(), 4);
    }

    #[test]
    fn spills_a_batch_at_capacity() {
        let pool = StackPool::new(64 * 1024);
        let mut c = pool.cache();
        let stacks: Vec<_> = (0..THREAD_CACHE_CAP).map(|_| c.get().unwrap()).collect();
        for s in stacks {
            c.put(s);
        }
        assert_eq!(
            c.slots.len(),
            THREAD_CACHE_CAP - crate::stack::THREAD_CACHE_BATCH
        );
        assert_eq!(pool.cached(), THREAD_CACHE_CAP);
    }
}
