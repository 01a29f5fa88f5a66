//! The registry of live runtimes, by id: how a thread that belongs to no
//! runtime (or to another one) finds the runtime of a task it wakes. The
//! common waker, a worker of the task's own runtime, never looks here.

use std::sync::{Arc, Weak};

use crate::ops::Shared;

static RUNTIMES: parking_lot::Mutex<Vec<(u64, Weak<Shared>)>> = parking_lot::Mutex::new(Vec::new());

/// Registers a new runtime (its builder does).
pub(crate) fn register(sh: &Arc<Shared>) {
    let mut r = RUNTIMES.lock();
    r.retain(|(_, w)| w.strong_count() > 0);
    r.push((sh.rt_id, Arc::downgrade(sh)));
}

/// The runtime with id `rt_id`, while it is alive.
pub(crate) fn find(rt_id: u64) -> Option<Arc<Shared>> {
    RUNTIMES
        .lock()
        .iter()
        .find(|(id, _)| *id == rt_id)
        .and_then(|(_, w)| w.upgrade())
}
