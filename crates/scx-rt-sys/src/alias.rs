//! A second, uncounted handle to an `Arc`'s value.
//!
//! Cloning an `Arc` and dropping the clone are two atomic read-modify-
//! writes on the value's count. Where a structure must name a value that
//! another handle is known to keep alive for as long as the name exists
//! (the task a CPU runs, named by its runqueue while the worker running it
//! holds the counted handle), those two atomics buy nothing. [`ArcAlias`]
//! is such a name: a bitwise copy of an `Arc` that is never dropped, so it
//! neither increments nor decrements the count.
//!
//! Protocol: the alias is made from a live `Arc` ([`ArcAlias::new`]) by
//! copying its pointer, and its drop does nothing. Through it one may read
//! the value and take counted clones (`(*alias).clone()`: an increment of
//! a count that is not zero, so a valid new `Arc`), exactly as through the
//! original, as long as some counted handle still exists. Ending that
//! window before the alias is dropped or overwritten is the caller's
//! obligation, and the only one.

use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

/// An uncounted handle to an `Arc`'s value (module docs).
pub struct ArcAlias<T>(ManuallyDrop<Arc<T>>);

impl<T> ArcAlias<T> {
    /// A handle to `a`'s value that does not count.
    ///
    /// # Safety
    ///
    /// Until the alias is dropped or overwritten, and at every use of it
    /// (a dereference, a clone of the `Arc` it derefs to), at least one
    /// counted handle to the value must exist: the alias does not keep it
    /// alive.
    #[inline(always)]
    pub unsafe fn new(a: &Arc<T>) -> Self {
        // SAFETY: a bitwise copy of a live `Arc` is a second `Arc` with the
        // same pointer and provenance. It is wrapped in `ManuallyDrop`
        // at once and never taken out, so its drop, which would decrement
        // a count it never incremented, never runs; every other use is
        // valid while a counted handle exists, which the caller guarantees.
        Self(ManuallyDrop::new(unsafe { std::ptr::read(a) }))
    }
}

impl<T> Deref for ArcAlias<T> {
    type Target = Arc<T>;

    #[inline(always)]
    fn deref(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ArcAlias<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_neither_counts_nor_frees() {
        let a = Arc::new(String::from("task"));
        // SAFETY: `a` outlives the alias.
        let alias = unsafe { ArcAlias::new(&a) };
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(alias.as_str(), "task");
        assert!(Arc::ptr_eq(&a, &alias));
        let counted = (*alias).clone();
        assert_eq!(Arc::strong_count(&a), 2);
        drop(counted);
        // Going out of scope does not decrement either.
        {
            let _gone = alias;
        }
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(a.as_str(), "task");
    }
}
