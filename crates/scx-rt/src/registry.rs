//! Every live task of a runtime (the kernel's `scx_tasks` list), for the
//! passes that must reach all of them: `exit_task` when a scheduler leaves,
//! `init_task`/`enable` when one is attached. Sharded by task id so that
//! spawns and exits on different CPUs rarely meet on a lock.

use crossbeam_utils::CachePadded;

use crate::loom::{Mutex, Ordering};
use crate::task::TaskRef;

const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    slots: Vec<Option<TaskRef>>,
    free: Vec<usize>,
}

/// The live-task registry.
pub(crate) struct TaskRegistry {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

impl TaskRegistry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Shard::default())))
                .collect(),
        }
    }

    fn shard_of(p: &TaskRef) -> usize {
        (p.id() as usize) % SHARDS
    }

    /// Registers a new task.
    pub(crate) fn add(&self, p: &TaskRef) {
        let mut sh = self.shards[Self::shard_of(p)].lock();
        let i = match sh.free.pop() {
            Some(i) => {
                sh.slots[i] = Some(p.clone());
                i
            }
            None => {
                sh.slots.push(Some(p.clone()));
                sh.slots.len() - 1
            }
        };
        p.scx.reg_slot.store(i, Ordering::Relaxed);
    }

    /// Forgets a task that exited.
    pub(crate) fn remove(&self, p: &TaskRef) {
        let mut sh = self.shards[Self::shard_of(p)].lock();
        // `reg_slot` is written only under its shard's lock (here and in
        // `add`): a load and a store, not a read-modify-write.
        let i = p.scx.reg_slot.load(Ordering::Relaxed);
        if i == usize::MAX {
            return;
        }
        p.scx.reg_slot.store(usize::MAX, Ordering::Relaxed);
        debug_assert!(sh.slots[i].as_ref().is_some_and(|q| q.id() == p.id()));
        sh.slots[i] = None;
        sh.free.push(i);
    }

    /// Whether `p` is still registered (it has not exited).
    pub(crate) fn contains(&self, p: &TaskRef) -> bool {
        p.scx.reg_slot.load(Ordering::Relaxed) != usize::MAX
    }

    /// The tasks alive now.
    pub(crate) fn snapshot(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            out.extend(s.lock().slots.iter().flatten().cloned());
        }
        out
    }
}
