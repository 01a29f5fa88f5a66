//! Green-task stacks: guarded, carved from large slabs, recycled by a pool.
//!
//! # Why slabs and lightweight guards
//!
//! A runtime with a million spawns and ~100k tasks alive at once cannot give
//! every stack its own `mmap` plus an `mprotect`ed guard page: that is two
//! VMAs per stack, and `vm.max_map_count` defaults to 65530. Instead the pool
//! maps *slabs* of [`STACKS_PER_SLAB`] stacks at a time
//! (`MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK`, so only touched
//! pages cost memory) and protects each stack's low end with
//! `madvise(MADV_GUARD_INSTALL)` (Linux >= 6.13), which writes guard markers
//! into the page tables without splitting the VMA. On an older kernel the
//! madvise fails with `EINVAL` and we fall back to `mprotect(PROT_NONE)`
//! guard pages: still correct, but back to ~2 VMAs per stack.
//!
//! # Layout of one slab
//!
//! ```text
//!  high addresses
//!  +-------------------+ <- slot 63 end   = base() of stack 63 (stack grows down)
//!  |   stack 63        |
//!  +-------------------+
//!  |   guard 63        |  faults on any access (guard marker or PROT_NONE)
//!  +-------------------+ <- slot 63 start = limit() of stack 63
//!  |       ...         |
//!  +-------------------+ <- slot 0 end    = base() of stack 0
//!  |   stack 0         |
//!  +-------------------+
//!  |   guard 0         |
//!  +-------------------+ <- slab start    = limit() of stack 0
//!  low addresses
//! ```
//!
//! A stack that overflows runs into its own guard, which lies directly below
//! it, before it could reach the stack of the slot below. Every slab is
//! registered with [`crate::sigsegv`] when it is mapped (and unregistered
//! before it is unmapped), so the fault is reported as a stack overflow.
//!
//! # Cache colour
//!
//! A suspended task's hottest memory is the top of its stack: the frames of
//! its switch point and the registers the switch saved. Every slot has the
//! same size, so without care every stack starts at the same offset in its
//! page, and with the default 256 KiB stack the tops of all stacks fall
//! into the same one or two sets of a CPU's L1 (4 KiB between two addresses
//! that share a set) and a sixteenth of its L2's sets (64 KiB between
//! two). Two hundred tasks yielding in turn then miss in both at every
//! switch: 3.24 misses per yield under cachegrind's 512 KiB 8-way L2. So
//! each slot's region has one page more than the stack size, and the stack
//! starts below the region's top by the slot's *colour*, a multiple of 64
//! bytes under [`COLOR_SPAN`] (2 KiB) chosen by a hash of the slot's
//! address ([`color`]): the tops of many stacks then spread over 32 lines
//! of a page, in each of the L2's sixteen set groups (none of those misses
//! left). The span is a trade: with colours over the whole page the
//! frames of a parked task crossed into a second page more often (10,000
//! idle connections of the echo server: 10,175 bytes each against 8,946),
//! with 2 KiB they did not (8,947), with 1 KiB 0.42 of the misses per yield
//! came back. A stack still has at least its size below its start, and the
//! colour page costs no memory beyond the lines the top frames touch.
//! Overflow reports (`sigsegv`) name the stack size.
//!
//! # Ownership and lifetime
//!
//! Every [`Stack`] holds an `Arc` to its pool's shared state, and dropping a
//! `Stack` returns its slot to that pool (via the dropping thread's cache,
//! below; [`StackPool::put`] is just an explicit drop). Slabs are never unmapped while anything can still
//! use them: they are unmapped when the shared state dies, i.e. when the
//! [`StackPool`] *and* every `Stack` it handed out are gone. So a stack can
//! outlive its pool handle (a task finishing during shutdown) without a
//! dangling mapping.
//!
//! # Per-thread caches
//!
//! Every green task takes a stack on its first resume and returns it when it
//! finishes, on whichever worker it runs; with one worker per CPU a single
//! mutex would be a contention point. So each OS thread keeps a small cache
//! of free slots per pool (at most [`THREAD_CACHE_POOLS`] pools per thread,
//! least recently used evicted): `get` pops from it and, when it is empty,
//! moves up to [`THREAD_CACHE_BATCH`] slots from the shared free list in one
//! lock acquisition (or carves one); `put` pushes onto it and, when it holds
//! [`THREAD_CACHE_CAP`] slots, moves the [`THREAD_CACHE_BATCH`] coldest back
//! in one lock acquisition. A thread's caches go back to their pools when
//! the thread exits (in its thread-local destructors: after the thread's
//! closure returns, so `JoinHandle::join` waits for it but the end of a
//! `std::thread::scope` does not), when evicted, and on
//! [`StackPool::flush_thread_cache`] (which [`StackPool::trim`] calls for the
//! calling thread).
//!
//! Soundness: a thread cache holds only a `Weak` to the pool's shared state,
//! so it never keeps slabs mapped (no leak after the runtime is gone, even
//! if the thread lives on), and it touches its slot addresses only while it
//! holds a strong reference: inside `get` (the caller's `StackPool` holds
//! one), inside a `Stack`'s drop (the `Stack` holds one), or after a
//! successful `Weak::upgrade` (flush at eviction or thread exit). If the
//! shared state dies first, the slabs are unmapped and the cached addresses
//! are simply forgotten, never dereferenced. A live `Weak` also pins the
//! allocation of the dead shared state, so a new pool can never reuse its
//! address and be mistaken for it: slots of two pools never mix.
//!
//! The free list is LIFO so the most recently used (cache-warm) stack is
//! handed out next (the thread caches are LIFO too, and a refill keeps the
//! order). Returning a stack never makes a system call: trimming
//! (releasing all but the top [`TRIM_KEEP`] bytes of cached stacks with
//! `MADV_DONTNEED`; guard markers survive it) is a separate, explicit
//! [`StackPool::trim`], which the runtime calls from idle CPUs. Measured on
//! a 1M-task skynet, trimming on every return beyond a threshold spent ~27%
//! of the run in `madvise` and its TLB shootdowns, for stacks that mostly
//! never touched the trimmed pages. Address space is kept until the pool
//! dies.

use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::page::page_size;

/// Stacks per slab mapping.
pub const STACKS_PER_SLAB: usize = 64;

/// Free slots one thread may cache per pool; reaching it flushes
/// [`THREAD_CACHE_BATCH`] of them back to the pool.
pub const THREAD_CACHE_CAP: usize = 64;

/// Slots moved between a thread cache and the pool's shared free list per
/// lock acquisition.
pub const THREAD_CACHE_BATCH: usize = 32;

/// Pools one thread keeps a cache for; the least recently used is flushed
/// back to its pool when a further pool is used.
pub const THREAD_CACHE_POOLS: usize = 4;

/// Smallest usable stack size (the requested size is rounded up to pages and
/// to at least this).
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest stack size a runtime should ask for (1 GiB): a slab of
/// [`STACKS_PER_SLAB`] such stacks is 64 GiB of address space, which a
/// 64-bit process can map (`MAP_NORESERVE`, so no memory is committed).
/// [`StackPool::new`] takes any size, but beyond this one mapping a slab
/// becomes unlikely, and a size whose slab length overflows `usize` makes
/// every [`StackPool::get`] fail.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Bytes at the top of a trimmed stack that stay resident: most tasks only
/// ever touch the top page or two.
pub const TRIM_KEEP: usize = 16 * 1024;

/// `MADV_GUARD_INSTALL` from `<linux/mman.h>` (Linux 6.13), not yet in libc.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How guard regions are installed, learned at the first install.
static GUARD_MODE: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);
/// Not yet tried.
const GUARD_UNKNOWN: u8 = 0;
/// `MADV_GUARD_INSTALL` works: guards cost no VMA.
const GUARD_MADVISE: u8 = 1;
/// The kernel lacks `MADV_GUARD_INSTALL`: `mprotect(PROT_NONE)` guards.
const GUARD_MPROTECT: u8 = 2;

/// `/proc/sys/vm/max_map_count`, the per-process VMA limit.
pub fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// True when guard regions are installed with `MADV_GUARD_INSTALL` (no extra
/// VMAs); false when the `mprotect` fallback is in use or nothing was
/// installed yet.
pub fn lightweight_guards() -> bool {
    GUARD_MODE.load(Ordering::Relaxed) == GUARD_MADVISE
}

/// Makes `[addr, addr + len)` fault on any access.
///
/// `force_mprotect` skips the lightweight path (tests of the fallback).
fn install_guard(addr: usize, len: usize, force_mprotect: bool) -> io::Result<()> {
    if !force_mprotect && GUARD_MODE.load(Ordering::Relaxed) != GUARD_MPROTECT {
        // SAFETY: `[addr, addr + len)` is page-aligned and lies inside a slab
        // mapping we own that no live `Stack` hands out as usable memory;
        // guard markers only make later accesses fault.
        let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
        if rc == 0 {
            GUARD_MODE.store(GUARD_MADVISE, Ordering::Relaxed);
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
        // EINVAL: the kernel predates MADV_GUARD_INSTALL.
        GUARD_MODE.store(GUARD_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: same range as above, inside our own mapping and never handed
    // out as usable stack memory; PROT_NONE only removes access.
    let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One slab mapping, unmapped on drop.
struct Slab {
    addr: usize,
    len: usize,
    /// Its entry in the guard registry of [`crate::sigsegv`], if any.
    reg: Option<usize>,
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Forget it first: a later mapping at this address is not ours.
        if let Some(i) = self.reg {
            crate::sigsegv::unregister_slab(i);
        }
        // SAFETY: `[addr, addr + len)` is exactly one mapping created by
        // `mmap` in `Shared::carve`. Slabs are owned by `Shared`, which only
        // dies when the pool and every `Stack` carved from it are gone, so no
        // one can touch this memory any more (thread caches still listing
        // its slots only hold a `Weak` and never use them once it is dead).
        let rc = unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        debug_assert_eq!(rc, 0, "munmap of a stack slab failed");
    }
}

/// Pool state shared by the pool handle and every stack it handed out.
pub(crate) struct Shared {
    /// Usable bytes per stack (multiple of the page size), at least.
    stack_size: usize,
    /// Guard bytes below each stack (one page).
    guard_size: usize,
    /// Bytes above each stack for its colour (one page, of which the
    /// colours use [`COLOR_SPAN`]; module docs "Cache colour").
    color_span: usize,
    /// Test hook: use the mprotect fallback even where madvise guards work.
    force_mprotect: bool,
    /// Stacks carved so far (live + cached); slots are never uncarved.
    allocated: AtomicUsize,
    /// Length of `synced.free`, readable without the lock (trim decision).
    pub(crate) cached: AtomicUsize,
    synced: Mutex<Synced>,
    /// The published slot count of every thread cache of this pool (each
    /// written only by its thread); summed by [`StackPool::cached`]. Entries
    /// whose thread cache is gone (strong count 1) are pruned on insertion.
    thread_counts: Mutex<Vec<Arc<AtomicUsize>>>,
    /// Test hook: how many times `synced` was locked.
    #[cfg(test)]
    locks: AtomicUsize,
}

/// The lock-protected half of the pool.
struct Synced {
    /// Low addresses (slot starts) of cached stacks, LIFO.
    free: Vec<usize>,
    /// Next uncarved slot of the newest slab, and its end.
    carve_next: usize,
    carve_end: usize,
    /// Every slab mapped so far, unmapped when `Shared` dies.
    slabs: Vec<Slab>,
    /// The bottom `trimmed` entries of `free` were trimmed already.
    trimmed: usize,
}

impl Shared {
    /// Guard plus stack. Only called once [`Shared::slab_len`] succeeded
    /// (a slab was mapped), so it cannot overflow.
    fn slot_size(&self) -> usize {
        self.guard_size + self.stack_size + self.color_span
    }

    /// Bytes of one slab, or an error if that overflows `usize` (a stack
    /// size near `usize::MAX`).
    fn slab_len(&self) -> io::Result<usize> {
        self.guard_size
            .checked_add(self.stack_size)
            .and_then(|slot| slot.checked_add(self.color_span))
            .and_then(|slot| slot.checked_mul(STACKS_PER_SLAB))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "a slab of {STACKS_PER_SLAB} stacks of {} bytes exceeds the address space",
                        self.stack_size
                    ),
                )
            })
    }

    fn lock(&self) -> MutexGuard<'_, Synced> {
        #[cfg(test)]
        self.locks.fetch_add(1, Ordering::Relaxed);
        self.synced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pops a slot from the shared free list or carves a new one, bypassing
    /// the thread cache (used when the thread cache is unavailable).
    fn get_slot_shared(&self) -> io::Result<usize> {
        let mut synced = self.lock();
        if let Some(low) = synced.free.pop() {
            self.after_take(&mut synced);
            return Ok(low);
        }
        self.carve(&mut synced)
    }

    /// Bookkeeping after slots were taken off the top of `free`.
    fn after_take(&self, synced: &mut Synced) {
        synced.trimmed = synced.trimmed.min(synced.free.len());
        self.cached.store(synced.free.len(), Ordering::Relaxed);
    }

    /// Carves a new slot (mapping a slab if needed), with the lock held.
    fn carve(&self, synced: &mut Synced) -> io::Result<usize> {
        if synced.carve_next == synced.carve_end {
            let len = self.slab_len()?;
            // SAFETY: a fresh anonymous private mapping; no existing memory is
            // affected (no MAP_FIXED) and all arguments are valid.
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                    -1,
                    0,
                )
            };
            if addr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let addr = addr as usize;
            // Name overflows into this slab's guards (sigsegv module doc).
            crate::sigsegv::install_handler();
            let reg = crate::sigsegv::register_slab(
                addr,
                len,
                self.slot_size(),
                self.guard_size,
                self.stack_size,
            );
            synced.slabs.push(Slab { addr, len, reg });
            // Stacks are touched a page at a time: a transparent huge page
            // would back 2 MiB of neighbouring stacks on the first touch.
            // Best effort: failure only costs memory.
            // SAFETY: the range is exactly the mapping we just created.
            let _ = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) };
            synced.carve_next = addr;
            synced.carve_end = addr + len;
        }
        let low = synced.carve_next;
        // Install the guard before the slot is counted: if it fails the slot
        // stays uncarved and the next get retries it.
        install_guard(low, self.guard_size, self.force_mprotect)?;
        synced.carve_next += self.slot_size();
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Ok(low)
    }

    /// Returns slots to the shared free list (no system call); the last one
    /// is handed out first.
    pub(crate) fn put_slots_shared(&self, lows: impl IntoIterator<Item = usize>) {
        let mut synced = self.lock();
        synced.free.extend(lows);
        self.cached.store(synced.free.len(), Ordering::Relaxed);
    }

    /// Takes a slot for a cache whose free slots are `slots` (a thread's
    /// or a [`crate::stack_cache::StackCache`]): its warmest, else up to
    /// [`THREAD_CACHE_BATCH`] moved in from the shared free list under one
    /// lock acquisition, else a carved one.
    pub(crate) fn take_from(&self, slots: &mut Vec<usize>) -> io::Result<usize> {
        if let Some(low) = slots.pop() {
            return Ok(low);
        }
        let mut synced = self.lock();
        let n = synced.free.len().min(THREAD_CACHE_BATCH);
        if n == 0 {
            return self.carve(&mut synced);
        }
        let at = synced.free.len() - n;
        // Keeps the order: the shared list's warmest slot is popped first.
        slots.extend(synced.free.drain(at..));
        self.after_take(&mut synced);
        drop(synced);
        Ok(slots.pop().expect("refilled at least one slot"))
    }

    /// Returns slot `low` to a cache whose free slots are `slots`; at
    /// [`THREAD_CACHE_CAP`] the [`THREAD_CACHE_BATCH`] coldest go back to
    /// the shared free list.
    pub(crate) fn keep_in(&self, slots: &mut Vec<usize>, low: usize) {
        slots.push(low);
        if slots.len() >= THREAD_CACHE_CAP {
            self.put_slots_shared(slots.drain(..THREAD_CACHE_BATCH));
        }
    }

    /// A new cache's published slot count, registered for
    /// [`StackPool::cached`].
    pub(crate) fn register_cache(&self) -> Arc<AtomicUsize> {
        let count = Arc::new(AtomicUsize::new(0));
        let mut counts = self.thread_counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.retain(|c| Arc::strong_count(c) > 1);
        counts.push(count.clone());
        count
    }

    /// Takes a slot: from this thread's cache, else refilled from the shared
    /// free list, else carved.
    fn get_slot(self: &Arc<Self>) -> io::Result<usize> {
        with_thread_caches(|tc| tc.get(self)).unwrap_or_else(|| self.get_slot_shared())
    }

    /// Returns a slot: to this thread's cache, spilling to the shared list.
    fn put_slot(self: &Arc<Self>, low: usize) {
        if with_thread_caches(|tc| tc.put(self, low)).is_none() {
            self.put_slots_shared([low]);
        }
    }
}

/// One thread's cache of free slots of one pool.
struct ThreadCache {
    /// The pool. Weak, so the cache never keeps slabs mapped; see the
    /// module doc ("Soundness") for when `slots` may be used.
    pool: Weak<Shared>,
    /// Free slot starts, LIFO (the last is the warmest).
    slots: Vec<usize>,
    /// `slots.len()`, published for [`StackPool::cached`]; registered in the
    /// pool's `thread_counts`.
    count: Arc<AtomicUsize>,
}

impl ThreadCache {
    fn new(sh: &Arc<Shared>) -> ThreadCache {
        ThreadCache {
            pool: Arc::downgrade(sh),
            slots: Vec::with_capacity(THREAD_CACHE_CAP),
            count: sh.register_cache(),
        }
    }

    fn publish(&self) {
        self.count.store(self.slots.len(), Ordering::Relaxed);
    }

    /// Moves every slot back to the pool's shared free list if the pool is
    /// alive, else forgets them (their slabs are unmapped already).
    fn flush_all(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        if let Some(sh) = self.pool.upgrade() {
            // The pool is alive (we hold `sh`), so the slots are valid slots
            // of its slabs, owned by this cache alone.
            sh.put_slots_shared(self.slots.drain(..));
        } else {
            self.slots.clear();
        }
        self.publish();
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.flush_all();
    }
}

/// All thread caches of one thread, most recently used first.
struct ThreadCaches {
    caches: Vec<ThreadCache>,
}

thread_local! {
    static THREAD_CACHES: RefCell<ThreadCaches> =
        const { RefCell::new(ThreadCaches { caches: Vec::new() }) };
}

/// Runs `f` on this thread's caches; `None` if they are unavailable (the
/// thread is exiting and they were destroyed already, or re-entrancy).
///
/// Never inlined, so the thread-local's address is computed afresh on every
/// call even if the caller is a fiber that migrates (see `fiber`'s module
/// doc); no reference to the thread-local escapes `f`.
#[inline(never)]
fn with_thread_caches<R>(f: impl FnOnce(&mut ThreadCaches) -> R) -> Option<R> {
    THREAD_CACHES
        .try_with(|tc| tc.try_borrow_mut().ok().map(|mut tc| f(&mut tc)))
        .ok()
        .flatten()
}

impl ThreadCaches {
    /// This thread's cache for `sh`, created (and registered) if needed.
    fn cache(&mut self, sh: &Arc<Shared>) -> &mut ThreadCache {
        let ptr = Arc::as_ptr(sh);
        // `Weak::as_ptr` equality means the same allocation, and a live Weak
        // pins its allocation, so this is `sh`'s cache and no dead pool's.
        match self.caches.iter().position(|c| c.pool.as_ptr() == ptr) {
            Some(0) => {}
            Some(i) => self.caches[..=i].rotate_right(1),
            None => {
                // Forget caches of dead pools, then evict the least recently
                // used one if still full (flushing it back to its pool).
                self.caches.retain(|c| c.pool.strong_count() > 0);
                if self.caches.len() >= THREAD_CACHE_POOLS {
                    self.caches.pop();
                }
                self.caches.insert(0, ThreadCache::new(sh));
            }
        }
        &mut self.caches[0]
    }

    fn get(&mut self, sh: &Arc<Shared>) -> io::Result<usize> {
        let cache = self.cache(sh);
        let r = sh.take_from(&mut cache.slots);
        cache.publish();
        r
    }

    fn put(&mut self, sh: &Arc<Shared>, low: usize) {
        let cache = self.cache(sh);
        sh.keep_in(&mut cache.slots, low);
        cache.publish();
    }

    /// Flushes this thread's cache of `sh`, if any, back to the pool.
    fn flush(&mut self, sh: &Arc<Shared>) {
        let ptr = Arc::as_ptr(sh);
        if let Some(c) = self.caches.iter_mut().find(|c| c.pool.as_ptr() == ptr) {
            c.flush_all();
        }
    }
}

/// A green-task stack with a guard region below it that faults on access.
///
/// Dropping it returns it to the pool it came from.
pub struct Stack {
    /// Slot start: the lowest guard byte.
    pub(crate) low: usize,
    /// Where the stack starts (its highest address): the top of the usable
    /// range less the slot's colour (module docs "Cache colour"), kept
    /// rather than computed: corosensei reads it at every resume of the
    /// fiber on this stack.
    base: corosensei::stack::StackPointer,
    pub(crate) pool: Arc<Shared>,
}

impl Stack {
    /// The stack of slot `low` of `pool`.
    pub(crate) fn new(low: usize, pool: Arc<Shared>) -> Stack {
        let top = low + pool.guard_size + pool.stack_size + pool.color_span;
        let span = COLOR_SPAN.min(pool.color_span);
        let base = corosensei::stack::StackPointer::new(top - color(low, span))
            .expect("stack base is never null");
        Stack { low, base, pool }
    }

    /// Usable bytes (excluding the guard) the stack has at least: below its
    /// start ([`corosensei::stack::Stack::base`]) down to the guard.
    pub fn size(&self) -> usize {
        self.pool.stack_size
    }

    /// The guard region: any access faults (SIGSEGV).
    pub fn guard_range(&self) -> Range<usize> {
        self.low..self.low + self.pool.guard_size
    }

    /// The usable stack memory: the stack grows down from its start
    /// (`base`), at most a colour page below `end` (module docs "Cache
    /// colour").
    pub fn stack_range(&self) -> Range<usize> {
        let start = self.low + self.pool.guard_size;
        start..start + self.pool.stack_size + self.pool.color_span
    }
}

/// The range of colours: a stack starts less than this far below the top
/// of its region (module docs "Cache colour": the span's trade).
const COLOR_SPAN: usize = 2048;

/// The colour of the slot at `low`: how far below the top of its region
/// its stack starts, a multiple of 64 bytes under `span` (module docs
/// "Cache colour"). A hash of the slot's page number, so that neighbouring
/// slots, and slots of different slabs, get different colours.
fn color(low: usize, span: usize) -> usize {
    const LINE: usize = 64;
    let lines = (span / LINE).max(1) as u64;
    let h = ((low >> 12) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // The high bits of the product (the best mixed) pick the line.
    (((h >> 32) * lines) >> 32) as usize * LINE
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("guard", &self.guard_range())
            .field("stack", &self.stack_range())
            .finish()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.pool.put_slot(self.low);
    }
}

// SAFETY: corosensei's obligations for a `Stack` are (1) a guard page that
// catches overflows, (2) at least MIN_STACK_SIZE (4 KiB) usable bytes, (3)
// `base()`/`limit()` aligned to STACK_ALIGNMENT, with `limit()` including the
// guard, and (4) the memory stays valid and exclusively ours while the
// coroutine owns the `Stack`. (1) every slot's lowest page(s) got a guard
// region (MADV_GUARD_INSTALL or PROT_NONE) before the slot was handed out,
// directly below the usable range, and the guard stays installed for the
// slab's lifetime. (2) `StackPool::new` enforces >= 16 KiB. (3) both are
// page-aligned (slabs are page-aligned, guard and stack sizes are page
// multiples), and page alignment exceeds STACK_ALIGNMENT (16) on every
// arch. (4) a slot is in exactly one place at a time (the shared free list,
// one thread cache, or one `Stack`), and the slab is unmapped only after
// every `Stack` (each holding an `Arc<Shared>`) is gone; a thread cache
// hands a slot out only from `get`, whose `StackPool` keeps `Shared` alive.
unsafe impl corosensei::stack::Stack for Stack {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        self.base
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.low).expect("stack limit is never null")
    }
}

/// A pool of stacks of one size. Cheap `get`/`put`: in the common case
/// they only touch the calling thread's cache (no lock); one mutex
/// acquisition per [`THREAD_CACHE_BATCH`] stacks otherwise. `Sync`.
pub struct StackPool {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for StackPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.stack_size())
            .field("allocated", &self.allocated())
            .field("cached", &self.cached())
            .finish()
    }
}

impl StackPool {
    /// A pool of `stack_size`-byte stacks (rounded up to whole pages, at
    /// least [`MIN_STACK_SIZE`]). Maps nothing until the first `get`. Never
    /// fails: a size too large to map (see [`MAX_STACK_SIZE`]) makes every
    /// `get` return an error instead.
    pub fn new(stack_size: usize) -> StackPool {
        Self::with_options(stack_size, false)
    }

    fn with_options(stack_size: usize, force_mprotect: bool) -> StackPool {
        let page = page_size();
        // Rounding up overflows only within a page of `usize::MAX`: such a
        // size keeps its largest page multiple, whose slab length overflows
        // (`Shared::slab_len`), so `get` fails.
        let stack_size = stack_size
            .max(MIN_STACK_SIZE)
            .checked_next_multiple_of(page)
            .unwrap_or(usize::MAX - usize::MAX % page);
        StackPool {
            shared: Arc::new(Shared {
                stack_size,
                guard_size: page,
                color_span: page,
                force_mprotect,
                allocated: AtomicUsize::new(0),
                cached: AtomicUsize::new(0),
                synced: Mutex::new(Synced {
                    free: Vec::new(),
                    carve_next: 0,
                    carve_end: 0,
                    slabs: Vec::new(),
                    trimmed: 0,
                }),
                thread_counts: Mutex::new(Vec::new()),
                #[cfg(test)]
                locks: AtomicUsize::new(0),
            }),
        }
    }

    /// A cached stack, or a newly carved one. Fails only if a slab could not
    /// be mapped or a guard not installed.
    pub fn get(&self) -> io::Result<Stack> {
        let low = self.shared.get_slot()?;
        Ok(Stack::new(low, self.shared.clone()))
    }

    /// Returns a stack for reuse. Equivalent to dropping it: a stack always
    /// goes back to the pool that carved it.
    pub fn put(&self, s: Stack) {
        debug_assert!(
            Arc::ptr_eq(&s.pool, &self.shared),
            "stack returned to a different pool"
        );
        drop(s);
    }

    /// Usable bytes per stack after rounding.
    pub fn stack_size(&self) -> usize {
        self.shared.stack_size
    }

    /// Stacks currently allocated (live + cached).
    pub fn allocated(&self) -> usize {
        self.shared.allocated.load(Ordering::Relaxed)
    }

    /// Free stacks: the shared free list plus every thread cache of this
    /// pool. Exact when the pool is quiescent (e.g. after joining the
    /// threads that used it); while other threads get and put concurrently
    /// it is an estimate, as a batch moving between a thread cache and the
    /// shared list may be counted twice or not at all for a moment. Locks
    /// a registry of thread caches: not for hot paths.
    pub fn cached(&self) -> usize {
        let sh = &self.shared;
        let shared = sh.cached.load(Ordering::Relaxed);
        let counts = sh.thread_counts.lock().unwrap_or_else(|e| e.into_inner());
        shared
            + counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<usize>()
    }

    /// Returns the calling thread's cached free stacks of this pool to the
    /// shared free list (one lock acquisition if it had any), where other
    /// threads and [`StackPool::trim`] see them. Threads do this on their own
    /// at exit; a thread that stays alive but stops using the pool can call
    /// it so its (at most [`THREAD_CACHE_CAP`]) cached stacks are not
    /// stranded.
    pub fn flush_thread_cache(&self) {
        with_thread_caches(|tc| tc.flush(&self.shared));
    }

    /// Releases the memory (all but the top [`TRIM_KEEP`] bytes) of the
    /// cached stacks beyond the `keep` most recently returned ones, unless
    /// released already. Returns how many stacks it trimmed. Costs nothing
    /// when there is nothing new to trim; otherwise one `madvise` per stack,
    /// so call it off hot paths (the runtime does from idle CPUs).
    ///
    /// Unless the shared free list plus a full thread cache fit in `keep`
    /// (then nothing could be trimmed and it returns at once, leaving the
    /// calling thread's cache alone), it first flushes the calling thread's
    /// cache ([`StackPool::flush_thread_cache`]) and then trims the shared
    /// free list only: stacks in other threads' caches (at most
    /// [`THREAD_CACHE_CAP`] per thread) are never trimmed.
    pub fn trim(&self, keep: usize) -> usize {
        self.shared.trim(keep, || self.flush_thread_cache())
    }
}

impl Shared {
    /// [`StackPool::trim`], with `flush` moving the caller's cache to the
    /// shared free list when something may be trimmed.
    ///
    /// The common answer (nothing to trim) is inline: a worker asks at
    /// every sleep, and the trimming part's frame cost more than the
    /// question.
    #[inline]
    pub(crate) fn trim(&self, keep: usize, flush: impl FnOnce()) -> usize {
        if self.cached.load(Ordering::Relaxed) + THREAD_CACHE_CAP <= keep {
            // Even with the caller's cache flushed (at most
            // THREAD_CACHE_CAP slots) nothing would pass `keep`: leave the
            // cache alone. Flushing it would only make the caller's next
            // `get` refill from the shared list under its lock (a worker
            // trims each time it goes to sleep, so an idle-busy-idle
            // pattern paid that at every task).
            return 0;
        }
        self.trim_some(keep, flush)
    }

    /// [`Shared::trim`] past its inline check.
    #[inline(never)]
    fn trim_some(&self, keep: usize, flush: impl FnOnce()) -> usize {
        let sh = self;
        flush();
        if sh.cached.load(Ordering::Relaxed) <= keep {
            return 0;
        }
        let mut synced = sh.lock();
        let upto = synced.free.len().saturating_sub(keep);
        let from = synced.trimmed;
        let len = sh.stack_size.saturating_sub(TRIM_KEEP);
        if len > 0 {
            for &low in &synced.free[from.min(upto)..upto] {
                let start = low + sh.guard_size;
                // SAFETY: `[start, start + len)` is the lower part of a
                // cached slot's usable stack, inside a slab this pool owns;
                // the slot is in the free list and we hold its lock, so no
                // stack uses it. DONTNEED on private anonymous memory
                // zero-fills it on the next touch; guard markers below stay.
                let _ =
                    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            }
        }
        synced.trimmed = synced.trimmed.max(upto);
        upto.saturating_sub(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigsegv::{classify, guard_at, GuardHit};
    use corosensei::stack::Stack as _;

    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}

    #[test]
    fn trim_below_keep_leaves_the_thread_cache_alone() {
        let pool = StackPool::new(64 * 1024);
        drop(pool.get().unwrap());
        // The slot sits in this thread's cache, not in the shared list.
        assert_eq!(pool.shared.cached.load(Ordering::Relaxed), 0);
        assert_eq!(pool.trim(THREAD_CACHE_CAP + 1), 0);
        assert_eq!(
            pool.shared.cached.load(Ordering::Relaxed),
            0,
            "a trim with nothing to release flushed the thread cache"
        );
        assert_eq!(pool.cached(), 1);
        // A trim that may release does flush it (and keeps one resident).
        assert_eq!(pool.trim(1), 0);
        assert_eq!(pool.shared.cached.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn types_are_send_sync() {
        assert_send::<Stack>();
        assert_send::<StackPool>();
        assert_sync::<StackPool>();
    }

    #[test]
    fn sizes_and_ranges() {
        let pool = StackPool::new(1);
        assert_eq!(pool.stack_size(), MIN_STACK_SIZE.max(page_size()));
        let pool = StackPool::new(64 * 1024 + 1);
        assert_eq!(pool.stack_size() % page_size(), 0);
        assert!(pool.stack_size() > 64 * 1024);
        assert_eq!(pool.allocated(), 0);
        let s = pool.get().unwrap();
        assert_eq!(s.size(), pool.stack_size());
        assert_eq!(s.guard_range().end, s.stack_range().start);
        assert!(s.guard_range().len() >= 4096);
        // The stack starts within the colour page at the top of its range,
        // with at least its size below.
        let (base, r) = (s.base().get(), s.stack_range());
        assert!(base <= r.end && r.end - base < page_size());
        assert!(base - r.start >= s.size());
        assert_eq!(s.limit().get(), s.guard_range().start);
        assert_eq!(s.base().get() % corosensei::stack::STACK_ALIGNMENT, 0);
        // The whole usable range is writable.
        let r = s.stack_range();
        // SAFETY: `r` is this stack's usable memory, owned by `s` and mapped
        // read-write.
        unsafe { std::ptr::write_bytes(r.start as *mut u8, 0xAB, r.len()) };
        pool.put(s);
    }

    /// The colours of many slots spread over the colour span: the tops of
    /// a pool's stacks do not share a few cache sets (module docs "Cache
    /// colour").
    #[test]
    fn stack_tops_spread_over_the_colour_span() {
        let pool = StackPool::new(64 * 1024);
        let stacks: Vec<_> = (0..128).map(|_| pool.get().unwrap()).collect();
        let mut lines = std::collections::HashSet::new();
        for s in &stacks {
            lines.insert(s.base().get() % page_size() / 64);
        }
        // 128 hashed colours over the span's 32 lines (about 31 distinct
        // expected): a constant colour gives 1.
        assert!(lines.len() >= 16, "tops on only {} lines", lines.len());
        let mut stacks = stacks;
        stacks.drain(..).for_each(|s| pool.put(s));
        assert_eq!(color(0x1234_5000, 0), 0, "no span, no colour");
        assert!(color(0x1234_5000, 4096) < 4096);
    }

    #[test]
    fn pool_reuses_stacks() {
        let pool = StackPool::new(64 * 1024);
        let a = pool.get().unwrap();
        let a_range = a.stack_range();
        assert_eq!(pool.allocated(), 1);
        pool.put(a);
        assert_eq!(pool.cached(), 1);
        let b = pool.get().unwrap();
        assert_eq!(b.stack_range(), a_range);
        assert_eq!(pool.allocated(), 1);
        drop(b); // dropping returns it too
        assert_eq!(pool.cached(), 1);
        for _ in 0..1000 {
            let s = pool.get().unwrap();
            pool.put(s);
        }
        assert_eq!(pool.allocated(), 1);
    }

    #[test]
    fn distinct_stacks_do_not_overlap() {
        let pool = StackPool::new(16 * 1024);
        let stacks: Vec<_> = (0..(STACKS_PER_SLAB * 2 + 3))
            .map(|_| pool.get().unwrap())
            .collect();
        let mut ranges: Vec<_> = stacks
            .iter()
            .map(|s| s.guard_range().start..s.stack_range().end)
            .collect();
        ranges.sort_by_key(|r| r.start);
        for w in ranges.windows(2) {
            assert!(w[0].end <= w[1].start);
        }
        assert_eq!(pool.allocated(), stacks.len());
    }

    /// Sizes too large to map: `new` does not overflow while rounding, and
    /// `get` fails with an error (never a panic), every time.
    #[test]
    fn huge_stack_sizes_fail_get_cleanly() {
        for size in [
            usize::MAX,
            usize::MAX - page_size(),
            usize::MAX / STACKS_PER_SLAB,
        ] {
            let pool = StackPool::new(size);
            assert_eq!(pool.stack_size() % page_size(), 0);
            for _ in 0..2 {
                let e = pool.get().expect_err("a huge stack was allocated");
                assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "{size:#x}: {e}");
            }
            assert_eq!(pool.allocated(), 0);
        }
    }

    #[test]
    fn stack_outlives_pool_handle() {
        let pool = StackPool::new(16 * 1024);
        let s = pool.get().unwrap();
        drop(pool);
        let r = s.stack_range();
        // SAFETY: the stack keeps its slab mapped even though the pool
        // handle is gone.
        unsafe { std::ptr::write_bytes(r.start as *mut u8, 1, r.len()) };
        drop(s);
    }

    #[test]
    fn trimming_releases_cold_stacks_and_keeps_them_usable() {
        let pool = StackPool::new(64 * 1024);
        let stacks: Vec<_> = (0..100).map(|_| pool.get().unwrap()).collect();
        for s in &stacks {
            let r = s.stack_range();
            // SAFETY: `r` is this stack's usable memory, mapped read-write.
            unsafe { std::ptr::write_bytes(r.start as *mut u8, 1, r.len()) };
        }
        drop(stacks);
        assert_eq!(pool.cached(), 100);
        assert_eq!(pool.trim(10), 90);
        assert_eq!(pool.trim(10), 0, "already trimmed");
        // The 10 most recently returned stacks were kept as they were.
        let warm: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
        for s in &warm {
            // SAFETY: mapped read-write usable memory of a live stack.
            assert_eq!(unsafe { *(s.stack_range().start as *const u8) }, 1);
        }
        // The next ones were trimmed: their low pages read as zero and work.
        let s = pool.get().unwrap();
        let r = s.stack_range();
        // SAFETY: `r` is this stack's usable memory, mapped read-write.
        unsafe {
            assert_eq!(*(r.start as *const u8), 0);
            std::ptr::write_bytes(r.start as *mut u8, 7, r.len());
        }
        drop(s);
        drop(warm);
        assert_eq!(pool.allocated(), 100);
    }

    /// Requirement: 150,000 live 64 KiB stacks from one pool at once, under
    /// the default vm.max_map_count (65530).
    #[test]
    fn many_live_stacks() {
        const N: usize = 150_000;
        let pool = StackPool::new(64 * 1024);
        let mut stacks = Vec::with_capacity(N);
        for i in 0..N {
            let s = pool.get().unwrap_or_else(|e| {
                panic!(
                    "stack {i} failed: {e} (max_map_count {:?}, lightweight guards {})",
                    max_map_count(),
                    lightweight_guards()
                )
            });
            // Touch the top word of every 64th stack (keeps RSS small).
            if i % 64 == 0 {
                let top = s.stack_range().end - 8;
                // SAFETY: `top` is inside this stack's usable memory.
                unsafe { (top as *mut u64).write(i as u64) };
            }
            stacks.push(s);
        }
        assert_eq!(pool.allocated(), N);
        if lightweight_guards() {
            // Slabs, not stacks, cost VMAs: far fewer than one per stack.
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let vmas = maps.lines().count();
            assert!(vmas < N / 8, "{vmas} VMAs for {N} stacks");
        }
        for (i, s) in stacks.iter().enumerate().step_by(64) {
            let top = s.stack_range().end - 8;
            // SAFETY: as above; written in the loop before.
            assert_eq!(unsafe { (top as *const u64).read() }, i as u64);
        }
        drop(stacks);
        assert_eq!(pool.cached(), N);
        assert_eq!(pool.allocated(), N);
    }

    /// Slots in the pool's shared free list (not counting thread caches).
    fn shared_len(pool: &StackPool) -> usize {
        pool.shared.cached.load(Ordering::Relaxed)
    }

    fn locks(pool: &StackPool) -> usize {
        pool.shared.locks.load(Ordering::Relaxed)
    }

    #[test]
    fn warm_get_put_takes_no_lock() {
        let pool = StackPool::new(16 * 1024);
        // Warm-up: carve 10 stacks and return them to this thread's cache.
        let warm: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
        drop(warm);
        assert_eq!(pool.cached(), 10);
        let (locks0, shared0) = (locks(&pool), shared_len(&pool));
        for i in 0..10_000 {
            let held: Vec<_> = (0..(i % 10) + 1).map(|_| pool.get().unwrap()).collect();
            drop(held);
        }
        assert_eq!(locks(&pool), locks0, "warm get/put took the shared lock");
        assert_eq!(shared_len(&pool), shared0);
        assert_eq!(pool.allocated(), 10);
        assert_eq!(pool.cached(), 10);
    }

    #[test]
    fn refill_and_flush_move_batches() {
        let pool = StackPool::new(16 * 1024);
        let held: Vec<_> = (0..200).map(|_| pool.get().unwrap()).collect();
        drop(held);
        assert_eq!(pool.cached(), 200);
        // The thread cache stays below its capacity; the rest is shared.
        assert!(shared_len(&pool) >= 200 - THREAD_CACHE_CAP);
        let locks0 = locks(&pool);
        let held: Vec<_> = (0..200).map(|_| pool.get().unwrap()).collect();
        assert_eq!(pool.allocated(), 200, "reused, not carved");
        // At most one lock per batch (plus one for the leftover cache).
        assert!(locks(&pool) - locks0 <= 200 / THREAD_CACHE_BATCH + 1);
        drop(held);
        pool.flush_thread_cache();
        assert_eq!(shared_len(&pool), 200);
        assert_eq!(pool.cached(), 200);
    }

    #[test]
    fn exiting_thread_returns_its_cache() {
        let pool = Arc::new(StackPool::new(16 * 1024));
        let p = pool.clone();
        std::thread::spawn(move || {
            let held: Vec<_> = (0..100).map(|_| p.get().unwrap()).collect();
            drop(held);
            assert_eq!(p.cached(), 100);
            assert!(shared_len(&p) < 100, "some stay in the thread cache");
        })
        .join()
        .unwrap();
        assert_eq!(shared_len(&pool), 100, "thread exit flushed its cache");
        assert_eq!(pool.cached(), 100);
        let held: Vec<_> = (0..100).map(|_| pool.get().unwrap()).collect();
        assert_eq!(pool.allocated(), 100);
        drop(held);
    }

    #[test]
    fn stack_dropped_on_another_thread_goes_to_its_cache() {
        let pool = StackPool::new(16 * 1024);
        let s = pool.get().unwrap();
        let r = s.stack_range();
        // `join`, not `thread::scope`: a scope ends when the closures return,
        // before the threads' thread-local destructors (the flush) have run.
        std::thread::spawn(move || drop(s)).join().unwrap();
        assert_eq!(shared_len(&pool), 1);
        assert_eq!(pool.get().unwrap().stack_range(), r);
    }

    /// The pool dies (handle and every stack gone) while another thread
    /// still caches some of its slots: the slabs are unmapped anyway (the
    /// cache holds no strong reference), and the thread later neither hands
    /// out nor touches those dead slots.
    #[test]
    fn pool_dies_while_another_thread_caches_slots() {
        use std::sync::mpsc::channel;
        let pool = Arc::new(StackPool::new(16 * 1024));
        let weak = Arc::downgrade(&pool.shared);
        let live = pool.get().unwrap();
        let (cached_tx, cached_rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        let p = pool.clone();
        let t = std::thread::spawn(move || {
            let held: Vec<_> = (0..50).map(|_| p.get().unwrap()).collect();
            drop(held);
            drop(p);
            cached_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // A new pool on this thread gets fresh slots, never the dead ones.
            let other = StackPool::new(16 * 1024);
            let held: Vec<_> = (0..100).map(|_| other.get().unwrap()).collect();
            assert_eq!(other.allocated(), 100);
            for s in &held {
                let r = s.stack_range();
                // SAFETY: `r` is this live stack's usable memory.
                unsafe { std::ptr::write_bytes(r.start as *mut u8, 3, r.len()) };
            }
            drop(held);
            assert_eq!(other.cached(), 100);
            // Exiting forgets the dead pool's slots without touching them.
        });
        cached_rx.recv().unwrap();
        assert_eq!(pool.cached(), 50);
        // Dropping the handle while a stack lives keeps the slabs mapped.
        drop(pool);
        assert!(weak.upgrade().is_some());
        let r = live.stack_range();
        // SAFETY: the live stack keeps its slab mapped.
        unsafe { std::ptr::write_bytes(r.start as *mut u8, 1, r.len()) };
        drop(live);
        // The other thread's cache did not keep the pool (and its slabs).
        assert!(weak.upgrade().is_none(), "thread cache leaked the pool");
        go_tx.send(()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn two_pools_on_one_thread_do_not_mix() {
        let a = StackPool::new(16 * 1024);
        let b = StackPool::new(32 * 1024);
        let mut seen_a = std::collections::HashSet::new();
        let mut seen_b = std::collections::HashSet::new();
        for round in 0..50 {
            let sa: Vec<_> = (0..(round % 7) + 1).map(|_| a.get().unwrap()).collect();
            let sb: Vec<_> = (0..(round % 5) + 1).map(|_| b.get().unwrap()).collect();
            for s in &sa {
                assert_eq!(s.size(), a.stack_size());
                seen_a.insert(s.guard_range().start);
            }
            for s in &sb {
                assert_eq!(s.size(), b.stack_size());
                seen_b.insert(s.guard_range().start);
            }
            // Return them crosswise interleaved.
            for (x, y) in sa.into_iter().zip(sb) {
                drop(y);
                drop(x);
            }
        }
        assert!(seen_a.is_disjoint(&seen_b));
        assert_eq!(seen_a.len(), a.allocated());
        assert_eq!(seen_b.len(), b.allocated());
        assert_eq!(a.cached(), a.allocated());
        assert_eq!(b.cached(), b.allocated());
    }

    #[test]
    fn more_pools_than_thread_caches() {
        let pools: Vec<_> = (0..THREAD_CACHE_POOLS + 2)
            .map(|i| StackPool::new((16 + 4 * i) * 1024))
            .collect();
        for _ in 0..20 {
            for p in &pools {
                let s = p.get().unwrap();
                assert_eq!(s.size(), p.stack_size());
                drop(s);
            }
        }
        for p in &pools {
            // Round robin over more pools than caches evicts (flushes) each
            // cache before its pool comes round again: one stack suffices.
            assert_eq!(p.allocated(), 1);
            assert_eq!(p.cached(), 1);
        }
        // Only the most recently used pools still have a thread cache.
        let in_shared = pools.iter().filter(|p| shared_len(p) == 1).count();
        assert_eq!(in_shared, 2);
    }

    /// Several threads hammer one pool; no slot is ever handed out twice
    /// at once, and the counts add up afterwards.
    #[test]
    fn concurrent_get_put_is_exclusive() {
        let pool = Arc::new(StackPool::new(16 * 1024));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000u64 {
                        if (i * 7919 + t) % 3 != 0 || held.is_empty() {
                            let s = pool.get().unwrap();
                            let top = s.stack_range().end - 8;
                            let tag = (t << 32) | i;
                            // SAFETY: `top` is inside this live stack.
                            unsafe { (top as *mut u64).write_volatile(tag) };
                            held.push((s, tag));
                        }
                        if held.len() > 100 || i % 5 == 0 {
                            let n = held.len() / 2 + 1;
                            for (s, tag) in held.drain(..n.min(held.len())) {
                                let top = s.stack_range().end - 8;
                                // SAFETY: as above, written when taken.
                                assert_eq!(unsafe { (top as *const u64).read_volatile() }, tag);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.cached(), pool.allocated());
        assert_eq!(shared_len(&pool), pool.allocated(), "exits flushed");
    }

    /// Every slab the pool maps is in the overflow handler's registry.
    #[test]
    fn registry_knows_guards_of_live_slabs_only() {
        let pool = StackPool::new(64 * 1024);
        let s = pool.get().unwrap();
        let g = s.guard_range();
        let r = s.stack_range();
        assert_eq!(guard_at(g.start), Some((g.clone(), 64 * 1024)));
        assert_eq!(guard_at(g.end - 1), Some((g.clone(), 64 * 1024)));
        assert_eq!(guard_at(r.start), None, "usable memory is no guard");
        assert_eq!(guard_at(r.end - 1), None);
        assert!(matches!(
            classify(g.start),
            Some(GuardHit::Other { stack_size, .. }) if stack_size == 64 * 1024
        ));
        drop(s);
    }

    const CHILD_ENV: &str = "SCX_RT_SYS_GUARD_CHILD";

    /// Child half of the guard tests: does nothing unless the parent set
    /// `CHILD_ENV`, then writes into a guard region (must die by SIGSEGV).
    #[test]
    fn guard_write_child() {
        let Ok(mode) = std::env::var(CHILD_ENV) else {
            return;
        };
        let pool = StackPool::with_options(64 * 1024, mode == "mprotect");
        let s = pool.get().unwrap();
        // Writing just below the usable range must hit the guard.
        let addr = s.stack_range().start - 1;
        assert!(s.guard_range().contains(&addr));
        eprintln!("writing into the guard at {addr:#x}");
        // SAFETY: none — this write is meant to fault; the process is
        // expected to die with SIGSEGV before anything observes it.
        unsafe { std::ptr::write_volatile(addr as *mut u8, 1) };
        // Not reached when the guard works.
        std::process::exit(0);
    }

    fn run_guard_child(mode: &str) {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "stack::tests::guard_write_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD_ENV, mode)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "child status {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("writing into the guard"),
            "stderr: {stderr}"
        );
        // Not an overflow of a running fiber, but one of our guards: the
        // report names the stack size and the address (sigsegv module).
        let addr = stderr
            .split("writing into the guard at ")
            .nth(1)
            .and_then(|s| s.lines().next())
            .expect("child printed the address");
        let expected =
            format!("scx-rt: access to the guard page of a 64 KiB green stack at {addr}\n");
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in stderr: {stderr}"
        );
    }

    #[test]
    fn guard_write_segfaults() {
        run_guard_child("default");
    }

    #[test]
    fn guard_write_segfaults_mprotect_fallback() {
        run_guard_child("mprotect");
    }
}
