//! Hotplug moves (`Runtime::cpu_offline`): a queued task, or the task
//! that was running on a CPU that went offline, leaves its rq through
//! `dequeue` and joins another through `enqueue`.

use crate::flags::{DeqFlags, EnqFlags};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::{RqGuard, RqSynced};
use crate::task::{tflags, TaskRef};

use crate::core::dequeue::dequeue_task;
use crate::core::enqueue::{enqueue_task, fallback_cpu, process_ddsp_deferred_locals};
use crate::core::slot::SchedSlot;

/// `move_queued_task`: takes a queued task that is not running off `rq`
/// and enqueues it on CPU `dst` (the scheduler sees `dequeue`/`quiescent`
/// here and `runnable`/`enqueue` there). rq locked on entry and return,
/// dropped in between; never two rq locks.
#[cfg_attr(scx_rt_loom, allow(dead_code))]
pub(crate) fn move_queued_task(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqGuard<'_>,
    p: TaskRef,
    dst: usize,
) {
    dequeue_task(sh, slot, rq, &p, DeqFlags::empty(), false);
    crate::trace::migrate_out(sh, rq, &p, dst);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    RqGuard::unlocked(rq, move || migrate_in(sh, p, dst));
}

/// The departure half of moving the task that was running on an offline
/// CPU and may run elsewhere: it leaves this rq (`stopping`, `quiescent`)
/// and is marked in flight. Returns the CPU it goes to; the caller calls
/// `migrate_in` once it dropped the rq lock.
pub(crate) fn migrate_out_curr(
    sh: &Shared,
    slot: &SchedSlot,
    rq: &mut RqSynced,
    p: &TaskRef,
) -> usize {
    dequeue_task(sh, slot, rq, p, DeqFlags::empty(), true);
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    sh.cpus[rq.cpu].shared.kick.advance_pick();
    rq.curr = None;
    let dst = fallback_cpu(sh, p, rq.cpu);
    crate::trace::migrate_out(sh, rq, p, dst);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    dst
}

/// The arrival half of a hotplug move: `p` (MIGRATING, off every rq)
/// joins CPU `dst`. No lock held on entry or return.
pub(crate) fn migrate_in(sh: &Shared, p: TaskRef, dst: usize) {
    let target = &sh.cpus[dst];
    let mut drq = target.lock();
    let slot = sh.slot(drq.sched_gen);
    p.clear_flag(tflags::MIGRATING);
    enqueue_task(sh, &slot, &mut drq, p, EnqFlags::empty());
    if drq.curr.is_none() {
        target.resched_locked(&mut drq);
    }
    process_ddsp_deferred_locals(sh, &mut drq);
}
