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
//! it, before it could reach the stack of the slot below.
//!
//! # Ownership and lifetime
//!
//! Every [`Stack`] holds an `Arc` to its pool's shared state, and dropping a
//! `Stack` returns its slot to that pool's free list ([`StackPool::put`] is
//! just an explicit drop). Slabs are never unmapped while anything can still
//! use them: they are unmapped when the shared state dies, i.e. when the
//! [`StackPool`] *and* every `Stack` it handed out are gone. So a stack can
//! outlive its pool handle (a task finishing during shutdown) without a
//! dangling mapping.
//!
//! The free list is LIFO so the most recently used (cache-warm) stack is
//! handed out next. Returning a stack never makes a system call: trimming
//! (releasing all but the top [`TRIM_KEEP`] bytes of cached stacks with
//! `MADV_DONTNEED`; guard markers survive it) is a separate, explicit
//! [`StackPool::trim`], which the runtime calls from idle CPUs. Measured on
//! a 1M-task skynet, trimming on every return beyond a threshold spent ~27%
//! of the run in `madvise` and its TLB shootdowns, for stacks that mostly
//! never touched the trimmed pages. Address space is kept until the pool
//! dies.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Stacks per slab mapping.
pub const STACKS_PER_SLAB: usize = 64;

/// Smallest usable stack size (the requested size is rounded up to pages and
/// to at least this).
pub const MIN_STACK_SIZE: usize = 16 * 1024;

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

/// The system page size.
pub fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

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
}

impl Drop for Slab {
    fn drop(&mut self) {
        // SAFETY: `[addr, addr + len)` is exactly one mapping created by
        // `mmap` in `Synced::carve`. Slabs are owned by `Shared`, which only
        // dies when the pool and every `Stack` carved from it are gone, so no
        // one can touch this memory any more.
        let rc = unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        debug_assert_eq!(rc, 0, "munmap of a stack slab failed");
    }
}

/// Pool state shared by the pool handle and every stack it handed out.
struct Shared {
    /// Usable bytes per stack (multiple of the page size).
    stack_size: usize,
    /// Guard bytes below each stack (one page).
    guard_size: usize,
    /// Test hook: use the mprotect fallback even where madvise guards work.
    force_mprotect: bool,
    /// Stacks carved so far (live + cached); slots are never uncarved.
    allocated: AtomicUsize,
    /// Length of `synced.free`, readable without the lock (trim decision).
    cached: AtomicUsize,
    synced: Mutex<Synced>,
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
    fn slot_size(&self) -> usize {
        self.guard_size + self.stack_size
    }

    /// Pops a cached slot or carves a new one (mapping a slab if needed).
    fn get_slot(&self) -> io::Result<usize> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(low) = synced.free.pop() {
            synced.trimmed = synced.trimmed.min(synced.free.len());
            self.cached.store(synced.free.len(), Ordering::Relaxed);
            return Ok(low);
        }
        if synced.carve_next == synced.carve_end {
            let len = self.slot_size() * STACKS_PER_SLAB;
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
            synced.slabs.push(Slab { addr, len });
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

    /// Returns a slot to the free list (no system call).
    fn put_slot(&self, low: usize) {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        synced.free.push(low);
        self.cached.store(synced.free.len(), Ordering::Relaxed);
    }
}

/// A green-task stack with a guard region below it that faults on access.
///
/// Dropping it returns it to the pool it came from.
pub struct Stack {
    /// Slot start: the lowest guard byte.
    low: usize,
    pool: Arc<Shared>,
}

impl Stack {
    /// Usable bytes (excluding the guard).
    pub fn size(&self) -> usize {
        self.pool.stack_size
    }

    /// The guard region: any access faults (SIGSEGV).
    pub fn guard_range(&self) -> Range<usize> {
        self.low..self.low + self.pool.guard_size
    }

    /// The usable stack memory; the stack grows down from `end`.
    pub fn stack_range(&self) -> Range<usize> {
        let start = self.low + self.pool.guard_size;
        start..start + self.pool.stack_size
    }
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
// arch. (4) a slot is in exactly one place at a time (the free list or one
// `Stack`), and the slab is unmapped only after every `Stack` (each holding
// an `Arc<Shared>`) is gone.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.stack_range().end)
            .expect("stack base is never null")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.low).expect("stack limit is never null")
    }
}

/// A pool of stacks of one size. Cheap `get`/`put` (one uncontended mutex
/// each in the common case); `Sync`.
pub struct StackPool {
    shared: Arc<Shared>,
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
    /// least [`MIN_STACK_SIZE`]). Maps nothing until the first `get`.
    pub fn new(stack_size: usize) -> StackPool {
        Self::with_options(stack_size, false)
    }

    fn with_options(stack_size: usize, force_mprotect: bool) -> StackPool {
        let page = page_size();
        let stack_size = stack_size.max(MIN_STACK_SIZE).div_ceil(page) * page;
        StackPool {
            shared: Arc::new(Shared {
                stack_size,
                guard_size: page,
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
            }),
        }
    }

    /// A cached stack, or a newly carved one. Fails only if a slab could not
    /// be mapped or a guard not installed.
    pub fn get(&self) -> io::Result<Stack> {
        let low = self.shared.get_slot()?;
        Ok(Stack {
            low,
            pool: self.shared.clone(),
        })
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

    /// Stacks in the free list.
    pub fn cached(&self) -> usize {
        self.shared.cached.load(Ordering::Relaxed)
    }

    /// Releases the memory (all but the top [`TRIM_KEEP`] bytes) of the
    /// cached stacks beyond the `keep` most recently returned ones, unless
    /// released already. Returns how many stacks it trimmed. Costs nothing
    /// when there is nothing new to trim; otherwise one `madvise` per stack,
    /// so call it off hot paths (the runtime does from idle CPUs).
    pub fn trim(&self, keep: usize) -> usize {
        let sh = &self.shared;
        if sh.cached.load(Ordering::Relaxed) <= keep {
            return 0;
        }
        let mut synced = sh.synced.lock().unwrap_or_else(|e| e.into_inner());
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
    use corosensei::stack::Stack as _;

    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}

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
        assert_eq!(s.base().get(), s.stack_range().end);
        assert_eq!(s.limit().get(), s.guard_range().start);
        assert_eq!(s.base().get() % corosensei::stack::STACK_ALIGNMENT, 0);
        // The whole usable range is writable.
        let r = s.stack_range();
        // SAFETY: `r` is this stack's usable memory, owned by `s` and mapped
        // read-write.
        unsafe { std::ptr::write_bytes(r.start as *mut u8, 0xAB, r.len()) };
        pool.put(s);
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
        assert!(String::from_utf8_lossy(&out.stderr).contains("writing into the guard"));
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
