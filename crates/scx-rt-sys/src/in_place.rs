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
