//! `rq.curr`: the task a CPU runs, named without a reference count.
//!
//! Every switch names a new current task under the rq lock. A counted
//! handle there would cost an increment per switch for next and a
//! decrement for prev, two atomic read-modify-writes on the tasks' counts
//! (of five per switch before this file), for a name whose task is known
//! to be alive for other reasons. [`Curr`] is an uncounted handle
//! (`scx_rt_sys::alias::ArcAlias`), and this file holds the one `unsafe`
//! call it needs, outside `scx-rt-sys` because the argument for it is the
//! runtime's own protocol, not an OS or memory fact:
//!
//! # Why the named task is alive
//!
//! A task is named by `rq.curr` only from the pick that makes it current
//! (`core::pick::pick_next_task`) until the same CPU, under the same rq
//! lock, names another or none. For that whole window a counted handle
//! exists:
//!
//! - **Runtime tasks** are in the task registry (`Shared::tasks`, counted
//!   handles) from their spawn, before their first enqueue, until the step
//!   in which they exit (`core::step`, `Switch::Exit`), which clears
//!   `rq.curr` under the rq lock *before* it removes the task from the
//!   registry. Nothing else removes a task from the registry. (The worker
//!   running the task also holds a counted handle, from the pick until the
//!   step after its run, but the registry alone suffices, also inside the
//!   step between the put of prev, which may drop the worker's handle,
//!   and the naming of next.)
//! - **Model tokens** (`model`, loom) are not registered: the model keeps
//!   a counted handle of every task it makes current, per CPU, until it
//!   makes another current there.
//!
//! Every reader of `rq.curr` holds the rq lock, so no reader sees a name
//! outside that window.

#![allow(unsafe_code)]

use std::ops::Deref;

use scx_rt_sys::alias::ArcAlias;

use crate::task::{Task, TaskRef};

/// The uncounted name of a CPU's current task (module docs).
pub(crate) struct Curr(ArcAlias<Task>);

impl Curr {
    /// Names `p`, which the caller makes its rq's current task under the
    /// rq lock (the pick, or a model's `set_curr`).
    #[inline(always)]
    pub(crate) fn new(p: &TaskRef) -> Self {
        // SAFETY: the module docs' argument: from this pick until the rq
        // names another task, a counted handle of `p` exists (the task
        // registry's, or the model's), and `rq.curr` is read only under
        // the rq lock within that window.
        Self(unsafe { ArcAlias::new(p) })
    }
}

impl Deref for Curr {
    type Target = TaskRef;

    #[inline(always)]
    fn deref(&self) -> &TaskRef {
        &self.0
    }
}
