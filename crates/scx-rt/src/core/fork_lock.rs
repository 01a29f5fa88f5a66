//! The fork lock (the kernel's `scx_fork_rwsem`, a per-CPU rw-semaphore):
//! every spawn holds it shared from choosing the scheduler to registering
//! the task; the passes over every task (attach, disable) hold it
//! exclusively, so no task is missed or initialized by the wrong
//! scheduler.
//!
//! # Readers per CPU
//!
//! Spawns are frequent, the passes rare. A reader on a worker thread
//! counts itself on its CPU's own line (one writer, that thread: a load
//! and a store, no read-modify-write), where a shared reader-writer lock
//! would have every spawn on every CPU write one cache line twice (two
//! locked instructions). Readers on any other thread (outside the runtime,
//! the blocking pool) take the shared lock itself, `slow`.
//!
//! # Reader against writer
//!
//! A fast reader stores its count, then a SeqCst fence, then reads
//! `writer`. The writer takes `slow` exclusively (no slow reader inside,
//! no other writer), stores `writer`, the same fence, then reads every
//! CPU's count and waits for each to drop to zero. Of a reader and the
//! writer, at least one sees the other's store (store buffering, both
//! sides fenced): either the reader sees `writer` and backs out (its
//! count back down, then it waits on `slow` like a foreign reader), or
//! the writer sees its count and waits for it to leave. A reader that
//! leaves stores its count with release and the writer reads it with
//! acquire, so the spawn happens before the pass. The writer clears
//! `writer` (release) before it releases `slow`; a reader that reads it
//! clear afterwards (acquire) sees everything the pass did. The loom
//! model `fork_lock` checks the exclusion, and fails with either fence
//! removed.

use crossbeam_utils::CachePadded;

use crate::loom::{fence, AtomicBool, AtomicU64, Ordering, ReadGuard, RwLock, WriteGuard};

/// The fork lock (module docs).
pub(crate) struct ForkLock {
    /// Readers inside on each CPU's worker thread (written by it only).
    readers: Box<[CachePadded<AtomicU64>]>,
    /// A writer wants in, or is in.
    writer: CachePadded<AtomicBool>,
    /// Taken shared by readers off the workers (and fast readers that met
    /// a writer), exclusively by writers.
    slow: RwLock<()>,
}

/// A reader's hold on the fork lock.
pub(crate) struct ForkRead<'a> {
    lock: &'a ForkLock,
    /// The CPU whose count holds it, or the shared lock's guard.
    how: How<'a>,
}

enum How<'a> {
    Fast(usize),
    Slow(#[allow(dead_code)] ReadGuard<'a, ()>),
}

/// The writer's hold on the fork lock.
pub(crate) struct ForkWrite<'a> {
    lock: &'a ForkLock,
    _slow: WriteGuard<'a, ()>,
}

/// Adds `d` (wrapping) to a count only its owner thread writes.
#[inline]
fn add(c: &AtomicU64, d: u64) {
    #[cfg(not(scx_rt_loom))]
    c.store(c.load(Ordering::Relaxed).wrapping_add(d), Ordering::Release);
    // Loom wants the RMW to see the latest value in its models.
    #[cfg(scx_rt_loom)]
    c.fetch_add(d, Ordering::AcqRel);
}

impl ForkLock {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            readers: (0..nr_cpus).map(|_| CachePadded::default()).collect(),
            writer: CachePadded::default(),
            slow: RwLock::new(()),
        }
    }

    /// Takes the lock shared. `cpu`: the calling thread is CPU `cpu`'s
    /// worker (only that worker may pass `Some(cpu)`); `None` on any other
    /// thread.
    #[inline]
    pub(crate) fn read(&self, cpu: Option<usize>) -> ForkRead<'_> {
        if let Some((i, c)) = cpu.and_then(|i| self.readers.get(i).map(|c| (i, c))) {
            let nested = c.load(Ordering::Relaxed) != 0;
            add(c, 1);
            fence(Ordering::SeqCst);
            // Nested in a read this thread holds (a spawn from a callback
            // of a spawn): no writer is inside, and one waiting waits for
            // the outer read too, so this one must not wait for it.
            if nested || !self.writer.load(Ordering::Acquire) {
                return ForkRead {
                    lock: self,
                    how: How::Fast(i),
                };
            }
            // A writer is in or on its way: wait for it on the shared lock.
            add(c, u64::MAX);
        }
        ForkRead {
            lock: self,
            how: How::Slow(self.slow.read()),
        }
    }

    /// Takes the lock exclusively: no reader inside until it is dropped.
    pub(crate) fn write(&self) -> ForkWrite<'_> {
        let slow = self.slow.write();
        self.writer.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        for c in self.readers.iter() {
            while c.load(Ordering::Acquire) != 0 {
                crate::loom::thread_yield();
            }
        }
        ForkWrite {
            lock: self,
            _slow: slow,
        }
    }
}

impl Drop for ForkRead<'_> {
    #[inline]
    fn drop(&mut self) {
        if let How::Fast(i) = self.how {
            add(&self.lock.readers[i], u64::MAX);
        }
    }
}

impl Drop for ForkWrite<'_> {
    fn drop(&mut self) {
        // Before `slow` is released (the field drops after this).
        self.lock.writer.store(false, Ordering::Release);
    }
}
