//! [`SmallBox`]: a `dyn Trait` value kept inline when it is small, boxed
//! when it is not.
//!
//! # Why it exists
//!
//! A green task's control block (`scx_rt::task::Task`) owns what the task
//! runs: its closure and its result slot, whose types only the spawner
//! knows, behind a trait object. As a `Box<dyn TaskEntry>` that is a second
//! heap allocation per spawn, and with thousands of tasks alive at once the
//! allocator leaves its per-thread fast path: the malloc and the free cost
//! about 350 instructions per spawn + exit together (callgrind, `spawn`
//! workload). Holding the entry as an unsized tail of the task
//! (`Arc<Task<dyn TaskEntry>>`) avoids the allocation but makes the offset
//! of every field of the task depend on the entry's alignment, read from the
//! vtable on each access. A `SmallBox` keeps the value inside the task, at a
//! fixed offset, when it fits, and boxes it only when it does not.
//!
//! # Representation
//!
//! ```text
//!  SmallBox<D>
//!  ├─ buf: [MaybeUninit<usize>; INLINE_WORDS]
//!  │        holds the T itself         when size_of::<T>() <= INLINE_BYTES
//!  │                                   and align_of::<T>() <= align_of::<usize>()
//!  │        holds a Box<T> (one word)  otherwise
//!  ├─ get:  unsafe fn(*const u8) -> *const D   buf -> &D, for that T and that case
//!  └─ drop: unsafe fn(*mut u8)                  drops what buf holds
//! ```
//!
//! The two functions are monomorphized for `T` (and the case) by
//! [`SmallBox::new`], so they are the value's vtable: a `SmallBox` never
//! reads a type it was not built with. Moving a `SmallBox` moves the bytes
//! of the inline `T`, which is a move of `T` (Rust values have no address
//! identity until pinned, and `SmallBox` does not pin).
//!
//! The buffer is an `UnsafeCell`: the value may have interior mutability
//! (the task's entry does: a lock and the slot its result goes to), and
//! writes through a `&D` must come from a pointer whose provenance allows
//! them; a pointer derived from a shared borrow of plain bytes would not
//! (and a `SmallBox` of plain bytes would be `Freeze`, which lets the
//! compiler treat memory behind `&SmallBox` as read-only). `Send` and
//! `Sync` are then stated by hand, following `D` as a `Box<D>` would.
//!
//! The unsizing coercion from `&T` to `&D` is the caller's, through
//! [`AsDyn`] (stable Rust cannot name "`T` unsizes to `D`" in a bound):
//! an impl is a one-line `fn as_dyn(&self) -> &D { self }`.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};

/// Words of inline storage in a [`SmallBox`].
pub const INLINE_WORDS: usize = 8;

/// Bytes of inline storage in a [`SmallBox`]: a value of at most this size
/// (and at most word alignment) is not boxed.
pub const INLINE_BYTES: usize = INLINE_WORDS * size_of::<usize>();

/// The coercion of a sized value to the trait object `D` that a
/// [`SmallBox<D>`] holds it as. Implement it as `fn as_dyn(&self) ->
/// &(dyn Trait + 'static) { self }`.
pub trait AsDyn<D: ?Sized> {
    /// `self` as a `D`.
    fn as_dyn(&self) -> &D;
}

/// A `D` trait object stored inline when small (module docs).
///
/// It is `Send` and `Sync` when `D` is: [`SmallBox::new`] takes only values
/// that are both, so the erased value never adds a thread restriction that
/// `D` does not state.
pub struct SmallBox<D: ?Sized + 'static> {
    buf: UnsafeCell<[MaybeUninit<usize>; INLINE_WORDS]>,
    get: unsafe fn(*const u8) -> *const D,
    drop: unsafe fn(*mut u8),
    /// Auto traits follow `D` (the buffer alone would be `Send + Sync`).
    _d: PhantomData<Box<D>>,
}

// SAFETY: a `SmallBox<D>` owns its value as a `Box<D>` would (inline or
// boxed), and `new` takes only `Send + Sync` values: it may move to another
// thread when `D` may.
unsafe impl<D: ?Sized + Send + 'static> Send for SmallBox<D> {}
// SAFETY: shared access goes only through `Deref` (a `&D`), as for a
// `Box<D>`: sharing it is sound when sharing a `D` is. The `UnsafeCell` is
// there for provenance (module docs), not for mutation by `SmallBox`.
unsafe impl<D: ?Sized + Sync + 'static> Sync for SmallBox<D> {}

/// `T` fits the inline buffer.
const fn fits<T>() -> bool {
    size_of::<T>() <= INLINE_BYTES && align_of::<T>() <= align_of::<usize>()
}

impl<D: ?Sized + 'static> SmallBox<D> {
    /// Keeps `value` as a `D`: inline when it fits ([`INLINE_BYTES`], word
    /// alignment), else in a `Box`.
    #[inline]
    pub fn new<T: AsDyn<D> + Send + Sync + 'static>(value: T) -> Self {
        let buf = UnsafeCell::new([MaybeUninit::<usize>::uninit(); INLINE_WORDS]);
        let dst = buf.get().cast::<u8>();
        if fits::<T>() {
            // SAFETY: `buf` is `INLINE_BYTES` long, word-aligned, and owned
            // here; `fits` checked that a `T` fits at its start with its
            // alignment. Writing moves `value` in without dropping anything.
            unsafe { dst.cast::<T>().write(value) };
            SmallBox {
                buf,
                get: get_inline::<T, D>,
                drop: drop_inline::<T>,
                _d: PhantomData,
            }
        } else {
            // SAFETY: a `Box<T>` is one word, word-aligned: it fits `buf`.
            unsafe { dst.cast::<Box<T>>().write(Box::new(value)) };
            SmallBox {
                buf,
                get: get_boxed::<T, D>,
                drop: drop_boxed::<T>,
                _d: PhantomData,
            }
        }
    }

    /// Whether the value is stored inline (no heap allocation): the
    /// address it is read at lies in the buffer.
    pub fn is_inline(&self) -> bool {
        let start = self.buf.get() as usize;
        let at = (&**self as *const D).cast::<u8>() as usize;
        (start..start + INLINE_BYTES).contains(&at)
    }
}

impl<D: ?Sized + 'static> std::ops::Deref for SmallBox<D> {
    type Target = D;

    #[inline]
    fn deref(&self) -> &D {
        // SAFETY: `get` is the function `new` chose for what `buf` holds (a
        // `T`, or a `Box<T>`), and `buf` holds it until `drop`. The returned
        // pointer is derived from the cell's pointer (or from the box it
        // owns), so it is valid, with the cell's permissions, for the
        // borrow of `self`.
        unsafe { &*(self.get)(self.buf.get().cast::<u8>()) }
    }
}

impl<D: ?Sized + 'static> Drop for SmallBox<D> {
    fn drop(&mut self) {
        // SAFETY: `drop` is the function `new` chose for what `buf` holds,
        // which is initialized and dropped only here, once.
        unsafe { (self.drop)(self.buf.get_mut().as_mut_ptr().cast::<u8>()) }
    }
}

/// # Safety
///
/// `p` points to an initialized `T`, valid for the returned borrow.
unsafe fn get_inline<T: AsDyn<D>, D: ?Sized>(p: *const u8) -> *const D {
    // SAFETY: forwarded to our caller.
    let t = unsafe { &*p.cast::<T>() };
    t.as_dyn()
}

/// # Safety
///
/// `p` points to an initialized `Box<T>`.
unsafe fn get_boxed<T: AsDyn<D>, D: ?Sized>(p: *const u8) -> *const D {
    // SAFETY: forwarded to our caller.
    let t: &T = unsafe { &*p.cast::<Box<T>>() };
    t.as_dyn()
}

/// # Safety
///
/// `p` points to an initialized `T` that is not used again.
unsafe fn drop_inline<T>(p: *mut u8) {
    // SAFETY: forwarded to our caller.
    unsafe { p.cast::<T>().drop_in_place() }
}

/// # Safety
///
/// `p` points to an initialized `Box<T>` that is not used again.
unsafe fn drop_boxed<T>(p: *mut u8) {
    // SAFETY: forwarded to our caller.
    unsafe { p.cast::<Box<T>>().drop_in_place() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    trait Speak: Send + Sync {
        fn speak(&self) -> usize;
    }

    struct Small(usize, Arc<AtomicUsize>);
    struct Large([usize; INLINE_WORDS + 1], Arc<AtomicUsize>);
    struct Zst;

    impl Speak for Small {
        fn speak(&self) -> usize {
            self.0
        }
    }
    impl Speak for Large {
        fn speak(&self) -> usize {
            self.0.iter().sum()
        }
    }
    impl Speak for Zst {
        fn speak(&self) -> usize {
            7
        }
    }
    impl Drop for Small {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }
    impl Drop for Large {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }
    impl AsDyn<dyn Speak> for Small {
        fn as_dyn(&self) -> &(dyn Speak + 'static) {
            self
        }
    }
    impl AsDyn<dyn Speak> for Large {
        fn as_dyn(&self) -> &(dyn Speak + 'static) {
            self
        }
    }
    impl AsDyn<dyn Speak> for Zst {
        fn as_dyn(&self) -> &(dyn Speak + 'static) {
            self
        }
    }

    #[test]
    fn small_values_live_inline_and_large_ones_boxed() {
        let drops = Arc::new(AtomicUsize::new(0));
        let s: SmallBox<dyn Speak> = SmallBox::new(Small(5, drops.clone()));
        let l: SmallBox<dyn Speak> = SmallBox::new(Large([1; INLINE_WORDS + 1], drops.clone()));
        let z: SmallBox<dyn Speak> = SmallBox::new(Zst);
        assert!(s.is_inline());
        assert!(!l.is_inline());
        assert!(z.is_inline());
        assert_eq!(s.speak(), 5);
        assert_eq!(l.speak(), INLINE_WORDS + 1);
        assert_eq!(z.speak(), 7);
        // Moving the box moves the inline value with it.
        let moved = vec![s, l];
        assert_eq!(moved[0].speak(), 5);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(moved);
        assert_eq!(drops.load(Ordering::Relaxed), 2, "each value dropped once");
    }

    #[test]
    fn over_aligned_values_are_boxed() {
        #[repr(align(32))]
        struct Aligned(u8);
        impl Speak for Aligned {
            fn speak(&self) -> usize {
                assert_eq!(self as *const Self as usize % 32, 0);
                self.0 as usize
            }
        }
        impl AsDyn<dyn Speak> for Aligned {
            fn as_dyn(&self) -> &(dyn Speak + 'static) {
                self
            }
        }
        let a: SmallBox<dyn Speak> = SmallBox::new(Aligned(3));
        assert!(!a.is_inline());
        assert_eq!(a.speak(), 3);
    }
}
