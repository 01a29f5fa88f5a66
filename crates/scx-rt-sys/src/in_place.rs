//! Building a large value straight into its `Arc`'s allocation.
//!
//! `Arc::new(make())` evaluates `make()` into a temporary on the stack and
//! then moves it into the allocation: for a task control block (several
//! hundred bytes) the move is a `memcpy` of the whole block per spawn (64
//! instructions under callgrind, beside the stores that built the
//! temporary). [`arc_new_with`] allocates first and writes the value into
//! the allocation; with `make` inlined, the compiler builds the fields
//! there directly.
//!
//! Protocol: allocate an uninitialised `Arc<MaybeUninit<T>>` (count 1, no
//! other handle can exist), write the value once through the `Arc`'s own
//! pointer, and only then declare it initialised.
//!
//! [`Vacant`] skips the allocation itself: the last owner of an `Arc`
//! (one check that no other handle exists) drops its value in place and
//! keeps the memory, to build another value there later (a task control
//! block recycled by its CPU: no `malloc` or `free` per spawn).
//!
//! [`VacantStack`] keeps such blocks as a slab allocator keeps its free
//! objects: linked through their own memory. A vacant block's value holds
//! nothing, so its first word holds the pointer to the next block down;
//! the stack is that pointer to its top block and a count. A push or a
//! pop touches the stack and the block (which the spawn that takes it
//! writes next anyway), allocates nothing, and a stack of any height
//! costs no memory beyond its blocks.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// `Arc::new(make())`, without the move of the value into the allocation
/// (module docs). `make` runs after the allocation; if it panics, the
/// allocation is freed and nothing is dropped.
#[inline(always)]
pub fn arc_new_with<T>(make: impl FnOnce() -> T) -> Arc<T> {
    let a = Arc::<T>::new_uninit();
    let slot = Arc::as_ptr(&a).cast_mut();
    // SAFETY: `a` is the only handle to a fresh allocation (no other
    // reference to the value exists, so writing through its pointer races
    // with nothing), `slot` points at its value with the allocation's
    // provenance, and a `MaybeUninit<T>` may be overwritten without a
    // drop. (`Arc::get_mut` would prove the uniqueness with a
    // compare-and-swap on the weak count, an atomic per spawn.)
    unsafe { slot.write(std::mem::MaybeUninit::new(make())) };
    // SAFETY: the value was written just above, completely, so the `Arc`
    // holds an initialised `T`.
    unsafe { a.assume_init() }
}

/// The allocation of an `Arc<T>` whose value was dropped, kept to build
/// another value in (a recycled task control block): no other handle to
/// it exists, and it holds no value (dropping it frees the memory only).
pub struct Vacant<T>(Arc<MaybeUninit<T>>);

impl<T> Default for Vacant<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Vacant<T> {
    /// A new allocation, holding no value.
    #[inline(always)]
    pub fn new() -> Self {
        Vacant(Arc::new_uninit())
    }

    /// Drops `a`'s value in place and keeps its allocation, if `a` is the
    /// only handle to it (`Arc::get_mut`'s check, one compare-and-swap,
    /// with the acquire ordering that makes every earlier owner's accesses
    /// happen before); else `a` back. The drop runs here, as dropping `a`
    /// would have run it.
    #[inline]
    pub fn try_vacate(mut a: Arc<T>) -> Result<Self, Arc<T>> {
        if Arc::get_mut(&mut a).is_none() {
            return Err(a);
        }
        // SAFETY: `MaybeUninit<T>` has `T`'s size and alignment, so the
        // pointer `into_raw` gives back may be turned into an
        // `Arc<MaybeUninit<T>>` (`Arc::from_raw`'s contract), which owns
        // the same allocation and count, and whose drop frees it without
        // dropping a `T`.
        let u = unsafe { Arc::from_raw(Arc::into_raw(a).cast::<MaybeUninit<T>>()) };
        // SAFETY: `u` is the only handle (checked above: no other strong
        // count, no `Weak`; nothing could clone the handle since), so
        // nothing else reads the value; it is initialised and dropped once,
        // here. Should the drop panic, `u` frees the memory on the unwind
        // without dropping it again.
        unsafe { std::ptr::drop_in_place(Arc::as_ptr(&u).cast_mut().cast::<T>()) };
        Ok(Vacant(u))
    }

    /// Builds `make()` straight into the allocation and returns its `Arc`,
    /// the only handle. If `make` panics, the allocation is freed.
    #[inline(always)]
    pub fn fill(self, make: impl FnOnce() -> T) -> Arc<T> {
        let u = self.0;
        let slot = Arc::as_ptr(&u).cast_mut();
        // SAFETY: `u` is the only handle to its allocation (`try_vacate`;
        // or `new`; this type never lends it out), `slot` points at its value with
        // the allocation's provenance, and a `MaybeUninit<T>` may be
        // overwritten without a drop (it holds none: `try_vacate` dropped
        // it).
        unsafe { slot.write(MaybeUninit::new(make())) };
        // SAFETY: the value was written just above, completely.
        unsafe { u.assume_init() }
    }
}

/// A stack of [`Vacant`] blocks linked through their own values (module
/// docs). One thread's (not `Send`, not `Sync`): a thread-local pool.
/// Dropping it frees its blocks.
pub struct VacantStack<T> {
    /// The top block's value (`Arc::into_raw` of its handle), or null.
    /// Each block's value begins with the pointer to the block below it
    /// (null at the bottom).
    top: Cell<*mut MaybeUninit<T>>,
    /// How many blocks the stack holds.
    len: Cell<usize>,
}

impl<T> VacantStack<T> {
    /// A `T` holds a link: at least a pointer's size and alignment.
    const LINK_FITS: () = assert!(
        size_of::<T>() >= size_of::<*mut u8>() && align_of::<T>() >= align_of::<*mut u8>(),
        "a vacant block's value must hold a pointer"
    );

    /// An empty stack.
    pub const fn new() -> Self {
        let () = Self::LINK_FITS;
        VacantStack {
            top: Cell::new(std::ptr::null_mut()),
            len: Cell::new(0),
        }
    }

    /// How many blocks the stack holds.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len.get()
    }

    /// Whether the stack holds no block.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Puts `v` on top.
    #[inline(always)]
    pub fn push(&self, v: Vacant<T>) {
        let p = Arc::into_raw(v.0).cast_mut();
        // SAFETY: `p` points at the value of an allocation no other handle
        // reaches (`Vacant`; its own handle now lives on as `p`), which
        // holds no value, so nothing reads what is written there; a `T`
        // has room and alignment for a pointer (`LINK_FITS`); `p` carries
        // the allocation's provenance (`Arc::into_raw`, as `fill` writes
        // through `Arc::as_ptr`).
        unsafe { p.cast::<*mut MaybeUninit<T>>().write(self.top.get()) };
        self.top.set(p);
        self.len.set(self.len.get() + 1);
    }

    /// Takes the top block, if any.
    #[inline(always)]
    pub fn pop(&self) -> Option<Vacant<T>> {
        let p = self.top.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is the top block, pushed by `push` and not popped
        // since (one thread: no other pop races with this one), so its
        // value begins with the link `push` wrote.
        let below = unsafe { p.cast::<*mut MaybeUninit<T>>().read() };
        self.top.set(below);
        self.len.set(self.len.get() - 1);
        // SAFETY: `p` came from `Arc::into_raw` of a `Vacant`'s
        // `Arc<MaybeUninit<T>>` (`push`) and leaves the stack here, once:
        // this takes that handle back. The link left in its value is no
        // value (`MaybeUninit`), which is what a `Vacant` holds.
        Some(Vacant(unsafe { Arc::from_raw(p) }))
    }
}

impl<T> Default for VacantStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for VacantStack<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_value_and_counts_one_owner() {
        let a = arc_new_with(|| [7u64; 64]);
        assert_eq!(Arc::strong_count(&a), 1);
        assert!(a.iter().all(|&x| x == 7));
    }

    #[test]
    fn vacant_refuses_a_shared_or_weakly_held_value() {
        let owner = Arc::new(());
        let a = Arc::new(owner.clone());
        let b = a.clone();
        let a = Vacant::try_vacate(a).err().expect("shared: refused");
        drop(b);
        let w = Arc::downgrade(&a);
        let a = Vacant::try_vacate(a).err().expect("weakly held: refused");
        drop(w);
        assert_eq!(Arc::strong_count(&owner), 2);
        let v = Vacant::try_vacate(a).expect("sole handle");
        // The old value was dropped at once.
        assert_eq!(Arc::strong_count(&owner), 1);
        let a = v.fill(|| owner.clone());
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&owner), 2);
        drop(a);
        assert_eq!(Arc::strong_count(&owner), 1);
        // A panicking fill frees the block, dropping nothing twice.
        let v = Vacant::try_vacate(Arc::new(owner.clone())).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.fill(|| -> Arc<()> { panic!("make failed") })
        }));
        assert!(r.is_err());
        assert_eq!(Arc::strong_count(&owner), 1);
    }

    /// Blocks come back last in, first out, each its own allocation,
    /// and are built in again; the stack frees what it holds when dropped.
    #[test]
    fn a_vacant_stack_gives_its_blocks_back_last_in_first_out() {
        let owner = Arc::new(());
        let s = VacantStack::<(u64, Arc<()>)>::new();
        assert!(s.is_empty() && s.pop().is_none());
        let mut at = Vec::new();
        for i in 0..3 {
            let a = Arc::new((i, owner.clone()));
            at.push(Arc::as_ptr(&a) as usize);
            s.push(Vacant::try_vacate(a).unwrap());
        }
        assert_eq!(s.len(), 3);
        assert_eq!(Arc::strong_count(&owner), 1, "the values were dropped");
        let v = s.pop().unwrap();
        let a = v.fill(|| (7, owner.clone()));
        assert_eq!(Arc::as_ptr(&a) as usize, at[2]);
        assert_eq!(a.0, 7);
        assert_eq!(s.len(), 2);
        s.push(Vacant::try_vacate(a).unwrap());
        let order: Vec<_> = std::iter::from_fn(|| s.pop())
            .map(|v| {
                let a = v.fill(|| (0, owner.clone()));
                Arc::as_ptr(&a) as usize
            })
            .collect();
        assert_eq!(order, [at[2], at[1], at[0]]);
        assert!(s.is_empty());
        for i in 0..5 {
            s.push(Vacant::try_vacate(Arc::new((i, owner.clone()))).unwrap());
        }
        drop(s);
        assert_eq!(Arc::strong_count(&owner), 1);
    }

    #[test]
    fn a_panicking_make_unwinds_through() {
        let owner = Arc::new(());
        let probe = owner.clone();
        let r = std::panic::catch_unwind(move || {
            arc_new_with(move || -> Arc<()> {
                let _keep = probe;
                panic!("make failed")
            })
        });
        assert!(r.is_err());
        // What the closure owned was dropped by the unwind.
        assert_eq!(Arc::strong_count(&owner), 1);
    }
}
