//! Recycled task control blocks, per worker thread (the kernel's
//! `task_struct` slab cache, kept per CPU).
//!
//! A task that exits on its CPU while nothing else refers to it (its join
//! handle dropped or joined, no policy keeping it) leaves its control
//! block to that CPU's worker thread instead of freeing it; the next spawn
//! on that thread builds its task in the block. A spawn and exit pair then
//! calls neither `malloc` nor `free` (an `Arc<Task>` is a few hundred
//! bytes: past the allocator's per-thread cache after a burst, both go the
//! slow way, about 150 to 400 instructions per task under callgrind).
//!
//! A block is recycled only when its `Arc` is the last handle
//! ([`Vacant::try_vacate`], one compare-and-swap, which stands in for the
//! decrement of the drop it replaces): no reference to an exited task can
//! ever see its block reused. The task is dropped there, as the drop of
//! its last handle would have dropped it (its entry: the closure's
//! captures or an unread result; its scheduler data; its affinity mask);
//! the block keeps no value. At most [`KEEP`] blocks wait per thread; they
//! are freed with the thread. Thread-local (no lock, no atomic): the exit
//! runs on the worker thread of the CPU, and so does a spawn from a task
//! of that CPU. A spawn from any other thread finds its own list empty
//! and allocates.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use scx_rt_sys::in_place::Vacant;

use crate::task::{Task, TaskRef};

/// Blocks kept per thread (a few hundred bytes each).
const KEEP: usize = 64;

std::thread_local! {
    /// The kept blocks.
    static FREE: RefCell<Vec<Vacant<Task>>> = const { RefCell::new(Vec::new()) };
    /// How many `FREE` holds: a plain cell (no destructor, so no lazy
    /// registration to check), read before `FREE` is touched, so that a
    /// spawn with nothing kept costs a load.
    static KEPT: Cell<usize> = const { Cell::new(0) };
}

/// `p` exited on the calling worker thread: keeps its block for a later
/// spawn when `p` is its last handle, else drops `p` as usual.
#[inline]
pub(crate) fn retire(p: TaskRef) {
    if Arc::strong_count(&p) != 1 {
        return;
    }
    // The task is dropped here, outside the list's borrow: dropping a
    // result may run any code, a spawn included.
    let Ok(v) = Vacant::try_vacate(p) else {
        return;
    };
    let _ = FREE.try_with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP {
            f.push(v);
            KEPT.with(|k| k.set(f.len()));
        }
    });
}

/// A block kept by the calling thread, if any.
#[inline]
pub(crate) fn take() -> Option<Vacant<Task>> {
    if KEPT.with(Cell::get) == 0 {
        return None;
    }
    FREE.try_with(|f| {
        let mut f = f.borrow_mut();
        let v = f.pop();
        KEPT.with(|k| k.set(f.len()));
        v
    })
    .ok()
    .flatten()
}
