//! Hotplug moves (`Runtime::cpu_offline`): a queued task, or the task
//! that was running on a CPU that went offline, leaves its rq through
//! `dequeue` and joins another through `enqueue`.

use crate::flags::{DeqFlags, EnqFlags};
use crate::loom::{MutexGuard, Ordering};
use crate::ops::Shared;
use crate::rq::RqSynced;
use crate::task::{tflags, TaskRef};

use crate::core::dequeue::dequeue_task;
use crate::core::enqueue::{enqueue_task, fallback_cpu, process_ddsp_deferred_locals};

/// `move_queued_task`: takes a queued task that is not running off `rq`
/// and enqueues it on CPU `dst` (the scheduler sees `dequeue`/`quiescent`
/// here and `runnable`/`enqueue` there). rq locked on entry and return,
/// dropped in between; never two rq locks.
#[cfg_attr(scx_rt_loom, allow(dead_code))]
pub(crate) fn move_queued_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    dst: usize,
) {
    dequeue_task(sh, rq, p, DeqFlags::empty(), false);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    MutexGuard::unlocked(rq, || migrate_in(sh, p, dst));
}

/// The departure half of moving the task that was running on an offline
/// CPU and may run elsewhere: it leaves this rq (`stopping`, `quiescent`)
/// and is marked in flight. Returns the CPU it goes to; the caller calls
/// `migrate_in` once it dropped the rq lock.
pub(crate) fn migrate_out_curr(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) -> usize {
    dequeue_task(sh, rq, p, DeqFlags::empty(), true);
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    sh.cpus[rq.cpu]
        .shared
        .pnt_seq
        .fetch_add(1, Ordering::Release);
    rq.curr = None;
    let dst = fallback_cpu(sh, p, rq.cpu);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    dst
}

/// The arrival half of a hotplug move: `p` (MIGRATING, off every rq)
/// joins CPU `dst`. No lock held on entry or return.
pub(crate) fn migrate_in(sh: &Shared, p: &TaskRef, dst: usize) {
    let mut drq = sh.cpus[dst].rq.lock();
    p.clear_flag(tflags::MIGRATING);
    enqueue_task(sh, &mut drq, p, EnqFlags::empty());
    if drq.curr.is_none() {
        sh.cpus[dst].resched();
    }
    process_ddsp_deferred_locals(sh, &mut drq);
}
