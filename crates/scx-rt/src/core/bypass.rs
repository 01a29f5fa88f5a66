//! Bypass mode (SPEC.md §6.1).

use crate::flags::{DeqFlags, EnqFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::rqflags;

use crate::core::dequeue::dequeue_task;
use crate::core::dsqs::waits_on_rq;
use crate::core::enqueue::{enqueue_task, process_ddsp_deferred_locals};

/// Raises (`on`) or drops one level of bypass (`scx_ops_bypass`). On the
/// transitions (0→1 and 1→0) every CPU's flag flips under its rq lock and
/// its runnable tasks that are not running are taken off and enqueued
/// again: entering bypass that moves them out of the scheduler's hands
/// into the global FIFO (`do_enqueue_task`'s bypass rule); leaving it hands
/// them back through `enqueue`. While bypassing, no `select_cpu`,
/// `enqueue` or `dispatch` runs, kicks issued by a bypassing CPU are
/// dropped, every CPU consumes the global FIFO, and each tick (and each
/// yield) rotates the running task. Called at a safe point (no lock held).
///
/// The transitions count `SCX_EV_BYPASS_ACTIVATE` (on) and
/// `SCX_EV_BYPASS_DURATION` (off: the time since it went on) on the
/// calling worker's CPU, or CPU 0 for another thread, under that CPU's rq
/// lock in the pass below (`core::events`).
pub(crate) fn bypass(sh: &Shared, on: bool) {
    let mut depth = sh.bypass_depth.lock();
    let was = *depth;
    *depth = if on {
        was + 1
    } else {
        debug_assert!(was > 0, "bypass level dropped below zero");
        was.saturating_sub(1)
    };
    let transition = if on { was == 0 } else { was == 1 };
    if !transition {
        return;
    }
    let now = crate::core::clock::now();
    let counting_cpu = crate::core::current::cpu_in(sh.rt_id).unwrap_or(0);
    for c in sh.cpus.iter() {
        let mut rq = c.lock();
        if c.id == counting_cpu {
            let ev = sh.events_of(c.id);
            if on {
                sh.bypass_since.store(now, Ordering::Relaxed);
                ev.bypass_activate.bump();
            } else {
                let since = sh.bypass_since.load(Ordering::Relaxed);
                ev.bypass_duration.add(now.saturating_sub(since));
            }
        }
        let slot = sh.slot(rq.sched_gen);
        if on {
            rq.flags |= rqflags::BYPASSING;
        } else {
            rq.flags &= !rqflags::BYPASSING;
        }
        c.shared.mostly.bypassing.store(on, Ordering::Release);
        let tasks = rq.runnable_tasks(&sh.tasks);
        for p in tasks {
            // The list was taken under the lock, which enqueue may drop
            // (a remote direct dispatch): skip a task that left meanwhile.
            if !waits_on_rq(&rq, &p) {
                continue;
            }
            dequeue_task(sh, &slot, &mut rq, &p, DeqFlags::SAVE, false);
            p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
            enqueue_task(sh, &slot, &mut rq, p, EnqFlags::empty());
            process_ddsp_deferred_locals(sh, &mut rq);
        }
        c.resched_locked(&mut rq);
        drop(rq);
    }
}
