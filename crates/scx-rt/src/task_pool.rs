//! Recycled task control blocks, per worker thread (the kernel's
//! `task_struct` slab cache, kept per CPU).
//!
//! The last reference to an exited task, dropped on a worker thread,
//! leaves the task's control block to that thread instead of freeing it;
//! the next spawn on that thread builds its task in the block. Two drops
//! come here: the exit of a task nothing else refers to (its join handle
//! dropped before, no policy keeping it), on its CPU's worker; and the
//! join of a handle that outlived its task (a burst of spawns joined
//! afterwards), on whichever worker joins it. A spawn and exit pair then
//! calls neither `malloc` nor `free` (an `Arc<Task>` is about 400 bytes:
//! past the allocator's per-thread cache after a burst, both go the slow
//! way, about 200 instructions each under callgrind).
//!
//! A block is recycled only when its `Arc` is the last handle
//! ([`Vacant::try_vacate`], one compare-and-swap, which stands in for the
//! decrement of the drop it replaces): no reference to an exited task can
//! ever see its block reused. The task is dropped there, as the drop of
//! its last handle would have dropped it (its entry: the closure's
//! captures or an unread result; its scheduler data; its affinity mask);
//! the block keeps no value. So retiring is exactly that drop plus a push
//! onto a thread-local list: it may run wherever the drop could (the rq
//! lock-order rule on last references holds for it as for any drop).
//!
//! At most [`KEEP`] blocks wait per thread (about 400 KiB), freed with the
//! thread; past that the block is freed at once. A burst larger than that
//! reuses `KEEP` blocks and allocates the rest: memory a burst used is not
//! held for good beyond the bound (the stack cache keeps
//! `consts::STACKS_KEEP_RESIDENT` stacks resident on the same reasoning).
//! Thread-local (no lock, no atomic): an exit runs on the worker thread of
//! the CPU, and so does a spawn from a task of that CPU. A spawn from any
//! other thread finds its own list empty and allocates; joins off the
//! workers do not retire (`JoinHandle::join`), so no thread that never
//! spawns collects blocks.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use scx_rt_sys::in_place::Vacant;

use crate::task::{Task, TaskRef};

/// Blocks kept per thread (module docs: about 400 bytes each).
pub(crate) const KEEP: usize = 1024;

std::thread_local! {
    /// The kept blocks.
    static FREE: RefCell<Vec<Vacant<Task>>> = const { RefCell::new(Vec::new()) };
    /// How many `FREE` holds: a plain cell (no destructor, so no lazy
    /// registration to check), read before `FREE` is touched, so that a
    /// spawn with nothing kept costs a load.
    static KEPT: Cell<usize> = const { Cell::new(0) };
}

/// `p`, an exited task, is dropped on the calling worker thread: keeps its
/// block for a later spawn when `p` is its last handle, else drops `p` as
/// usual.
#[inline]
pub(crate) fn retire(p: TaskRef) {
    // A full list keeps nothing: `p` is dropped as usual (no vacating
    // compare-and-swap, no push).
    if Arc::strong_count(&p) != 1 || KEPT.with(Cell::get) >= KEEP {
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

/// Whether the calling thread's list has room for another block (a
/// full one makes [`retire`] a plain drop).
#[inline]
pub(crate) fn has_room() -> bool {
    KEPT.with(Cell::get) < KEEP
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

/// How many blocks the calling thread keeps.
#[cfg(test)]
pub(crate) fn kept() -> usize {
    KEPT.with(Cell::get)
}
