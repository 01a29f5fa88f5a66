//! The user-DSQ table: DSQ ids to DSQs (`scx_bpf_create_dsq`,
//! `scx_bpf_destroy_dsq`, and the lookup behind every dispatch, consume and
//! `dsq_nr_queued` that names a user DSQ, SPEC.md §2.8).
//!
//! A policy in the manner of scx_simple moves every task through a user
//! DSQ at every switch, and names the DSQ by id each time (`dsq_nr_queued`,
//! the dispatch, `consume`), so the lookup is on the hot path. Policies
//! number their DSQs from zero (one shared DSQ, one per CPU, one per
//! NUMA node or cgroup level), so small ids get a table that is read
//! without a lock and without counting a reference.
//!
//! # Dense ids (below [`UserDsqs::dense_len`])
//!
//! Each id has a slot. The first `create_dsq` of the id allocates its
//! [`Dsq`]; the slot then holds it until the runtime drops, whatever
//! happens to the DSQ: `destroy_dsq` marks it destroyed (its `id` reads
//! `DSQ_INVALID`), and a later `create_dsq` of the id revives the same
//! object, empty. A lookup is an index, one acquire load (is the slot
//! set) and one of the DSQ's id (is it live), and yields a plain
//! reference that lives as long as the runtime: no lock, no reference
//! count, no write to a shared line.
//!
//! # Sparse ids (the rest)
//!
//! A hash map of reference-counted DSQs under the reader-writer lock, with
//! a per-thread direct-mapped cache in front of it (valid while the
//! table's generation is unchanged), so that a hit neither takes the
//! reader lock (whose count every CPU would write) nor counts a reference.
//! A destroyed DSQ leaves the map and is freed with its last reference.
//!
//! # Who writes what
//!
//! - The reader-writer lock ([`Synced`]): creating and destroying DSQs of
//!   both kinds is serialized by its write lock; it holds the sparse map
//!   and how far the dense slots have been used.
//! - A dense slot: set once, under the write lock; read by anyone.
//! - `Dsq::id`: stored by create and destroy while holding both the write
//!   lock and the DSQ's own lock; read lock-free by lookups and under the
//!   DSQ lock by insertions. The insertion's read decides: a dispatch that
//!   looked a DSQ up just before it was destroyed finds `DSQ_INVALID`
//!   under the lock, records the kernel's error and falls back to the
//!   global DSQ (SPEC.md §2.4 step 1). One that looked it up before a
//!   destroy and a re-create of a dense id links into the revived DSQ, as
//!   if it had run after the create.
//! - `gen`: bumped after every change to the sparse map, under the write
//!   lock; the per-thread caches compare it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use crate::dsq::Dsq;
use crate::flags::{dsq_id, DSQ_INVALID};
use crate::loom::{AtomicU64, Ordering, RwLock};
use crate::task::TaskRef;

/// A user DSQ found by id: one of the dense table (it lives as long as the
/// runtime) or a counted reference to one of the sparse map.
pub(crate) enum UserDsq<'a> {
    Dense(&'a Dsq),
    Sparse(Arc<Dsq>),
}

impl Deref for UserDsq<'_> {
    type Target = Dsq;
    #[inline]
    fn deref(&self) -> &Dsq {
        match self {
            UserDsq::Dense(d) => d,
            UserDsq::Sparse(d) => d,
        }
    }
}

/// What the write lock protects.
struct Synced {
    sparse: HashMap<u64, Arc<Dsq>>,
    /// One past the highest dense id ever created (how far `ids` looks).
    dense_end: usize,
}

/// The user DSQs of one runtime (module docs).
pub(crate) struct UserDsqs {
    dense: Box<[OnceLock<Box<Dsq>>]>,
    synced: RwLock<Synced>,
    gen: AtomicU64,
}

impl UserDsqs {
    /// An empty table with dense slots for the ids below
    /// `DENSE_DSQ_IDS.max(nr_cpus)` (a DSQ per CPU stays dense).
    pub(crate) fn new(nr_cpus: usize) -> Self {
        let n = crate::consts::DENSE_DSQ_IDS.max(nr_cpus);
        Self {
            dense: (0..n).map(|_| OnceLock::new()).collect(),
            synced: RwLock::new(Synced {
                sparse: HashMap::new(),
                dense_end: 0,
            }),
            gen: AtomicU64::new(0),
        }
    }

    /// Ids below this have dense slots.
    #[inline]
    pub(crate) fn dense_len(&self) -> u64 {
        self.dense.len() as u64
    }

    /// The dense DSQ `id` (below `dense_len`) if it was ever created, live
    /// or destroyed.
    #[inline]
    fn dense_slot(&self, id: u64) -> Option<&Dsq> {
        self.dense.get(id as usize)?.get().map(|d| &**d)
    }
}

/// A per-thread cache of sparse user-DSQ lookups, valid while the
/// runtime's table generation is unchanged: a direct-mapped array of
/// `DSQ_CACHE_SLOTS` ids. A DSQ destroyed after a lookup is caught where
/// it is used, as with the table (its id reads `DSQ_INVALID` under its
/// lock).
struct DsqCache {
    rt: u64,
    gen: u64,
    slots: Vec<Option<(u64, Arc<Dsq>)>>,
}

/// Slots of the per-thread DSQ cache (a power of two).
const DSQ_CACHE_SLOTS: usize = 256;

/// Multiplicative (Fibonacci) hashing: the top bits of `id * 2^64/phi`
/// depend on every bit of `id`, so ids that differ only in high bits (a
/// policy's families of per-CPU DSQs) do not share a slot.
fn dsq_slot(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - DSQ_CACHE_SLOTS.trailing_zeros())) as usize
}

std::thread_local! {
    static DSQ_CACHE: RefCell<DsqCache> = const {
        RefCell::new(DsqCache { rt: 0, gen: 0, slots: Vec::new() })
    };
}

impl UserDsqs {
    /// The live user DSQ `id`, if it exists. `rt_id` keys the per-thread
    /// cache (one thread may serve several runtimes).
    #[inline]
    pub(crate) fn find(&self, rt_id: u64, id: u64) -> Option<UserDsq<'_>> {
        if id < self.dense_len() {
            return self.dense(id).map(UserDsq::Dense);
        }
        self.find_sparse(rt_id, id)
    }

    /// The live user DSQ `id` if `id` is a dense id (any other id: `None`).
    #[inline]
    pub(crate) fn dense(&self, id: u64) -> Option<&Dsq> {
        if id >= self.dense_len() {
            return None;
        }
        self.dense_slot(id).filter(|d| d.is_live())
    }

    /// Number of tasks queued on user DSQ `id` (lock-free), if it exists.
    #[inline]
    pub(crate) fn nr_queued(&self, rt_id: u64, id: u64) -> Option<usize> {
        if id < self.dense_len() {
            return self
                .dense_slot(id)
                .filter(|d| d.is_live())
                .map(|d| d.nr_queued());
        }
        self.with_sparse(rt_id, id, |d| d.nr_queued())
    }

    #[inline(never)]
    fn find_sparse(&self, rt_id: u64, id: u64) -> Option<UserDsq<'_>> {
        self.with_sparse(rt_id, id, |d| UserDsq::Sparse(d.clone()))
    }

    /// Runs `f` on sparse user DSQ `id`, if it exists, without counting a
    /// reference on it when the lookup hits the cache. `f` must not look
    /// up DSQs itself.
    fn with_sparse<R>(&self, rt_id: u64, id: u64, f: impl FnOnce(&Arc<Dsq>) -> R) -> Option<R> {
        let gen = self.gen.load(Ordering::Acquire);
        let mut f = Some(f);
        let hit = DSQ_CACHE.with(|c| {
            let c = c.borrow();
            if c.rt != rt_id || c.gen != gen {
                return None;
            }
            match c.slots.get(dsq_slot(id)) {
                Some(Some((k, d))) if *k == id => Some((f.take().expect("called once"))(d)),
                _ => None,
            }
        });
        if hit.is_some() {
            return hit;
        }
        self.with_sparse_slow(rt_id, id, gen, f.take().expect("called once"))
    }

    #[cold]
    fn with_sparse_slow<R>(
        &self,
        rt_id: u64,
        id: u64,
        gen: u64,
        f: impl FnOnce(&Arc<Dsq>) -> R,
    ) -> Option<R> {
        let d = self.synced.read().sparse.get(&id).cloned()?;
        DSQ_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.rt != rt_id || c.gen != gen || c.slots.is_empty() {
                c.rt = rt_id;
                c.gen = gen;
                c.slots.clear();
                c.slots.resize_with(DSQ_CACHE_SLOTS, || None);
            }
            c.slots[dsq_slot(id)] = Some((id, d.clone()));
        });
        Some(f(&d))
    }

    /// Creates user DSQ `id` (`scx_bpf_create_dsq`).
    pub(crate) fn create(&self, id: u64) -> Result<(), CreateDsqError> {
        if id & dsq_id::FLAG_BUILTIN != 0 {
            return Err(CreateDsqError::Builtin { id });
        }
        let mut s = self.synced.write();
        if id < self.dense_len() {
            let d = self.dense[id as usize].get_or_init(|| {
                let d = Dsq::new(id);
                d.id.store(DSQ_INVALID, Ordering::Relaxed);
                Box::new(d)
            });
            let q = d.q.lock();
            if d.is_live() {
                return Err(CreateDsqError::Exists { id });
            }
            debug_assert!(q.is_empty(), "destroyed DSQ {id:#x} holds tasks");
            d.id.store(id, Ordering::Release);
            drop(q);
            s.dense_end = s.dense_end.max(id as usize + 1);
            return Ok(());
        }
        if s.sparse.contains_key(&id) {
            return Err(CreateDsqError::Exists { id });
        }
        s.sparse.insert(id, Arc::new(Dsq::new(id)));
        self.gen.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Destroys user DSQ `id` (`scx_bpf_destroy_dsq`): ignored if it does
    /// not exist; `Err(InUse)` (and the DSQ left intact) if it holds tasks.
    pub(crate) fn destroy(&self, id: u64) -> Result<(), InUse> {
        let mut s = self.synced.write();
        let dense = id < self.dense_len();
        let d: &Dsq = if dense {
            match self.dense_slot(id) {
                Some(d) => d,
                None => return Ok(()),
            }
        } else {
            match s.sparse.get(&id) {
                Some(d) => d,
                None => return Ok(()),
            }
        };
        let q = d.q.lock();
        if !d.is_live() {
            return Ok(()); // a dense DSQ already destroyed
        }
        if !q.is_empty() {
            return Err(InUse);
        }
        d.id.store(DSQ_INVALID, Ordering::Release);
        drop(q);
        if !dense {
            s.sparse.remove(&id);
            self.gen.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Destroys every user DSQ and returns the tasks they held, for the
    /// caller to move elsewhere. Each DSQ is marked destroyed under its
    /// lock, so an insert after this finds it destroyed.
    pub(crate) fn destroy_all(&self, rt_id: u64) -> Vec<TaskRef> {
        let mut left = Vec::new();
        for id in self.ids() {
            if let Some(d) = self.find(rt_id, id) {
                let mut q = d.q.lock();
                d.id.store(DSQ_INVALID, Ordering::Release);
                d.nr.store(0, Ordering::Relaxed);
                left.extend(q.drain());
            }
            if id >= self.dense_len() {
                self.synced.write().sparse.remove(&id);
                self.gen.fetch_add(1, Ordering::Release);
            }
        }
        left
    }

    /// Ids of every live user DSQ.
    pub(crate) fn ids(&self) -> Vec<u64> {
        let s = self.synced.read();
        (0..s.dense_end as u64)
            .filter(|&id| self.dense_slot(id).is_some_and(Dsq::is_live))
            .chain(s.sparse.keys().copied())
            .collect()
    }
}

/// `destroy` refused: the DSQ holds tasks.
#[derive(Debug)]
pub(crate) struct InUse;

/// Why `create_dsq` failed (the kernel's -EINVAL / -EEXIST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateDsqError {
    /// Bit 63 is reserved for built-in DSQs.
    #[error("dsq id {id:#x} has the built-in bit set")]
    Builtin {
        /// The id.
        id: u64,
    },
    /// The id is taken.
    #[error("dsq {id:#x} already exists")]
    Exists {
        /// The id.
        id: u64,
    },
    /// The NUMA node is not valid.
    #[error("invalid node {node}")]
    InvalidNode {
        /// The node.
        node: i32,
    },
}
