//! The system page size, cached after the first query. A leaf of this
//! crate: the stack pool and the overflow handler's alternate signal
//! stacks both round to it, so neither has to import the other for it.

use std::sync::atomic::{AtomicUsize, Ordering};

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
