//! The disable (eject) path (SPEC.md §6.4): bypass, swap in the
//! fallback, every task leaves the old scheduler, `ops.exit`, user DSQs
//! destroyed, bypass off.

use crate::loom::Ordering;
use crate::ops::Shared;

use crate::core::bypass::bypass;
use crate::core::dequeue::task_leave_scheduler;
use crate::core::error::call;
use crate::core::slot::fallback_slot;

/// Ejects the scheduler whose exit was recorded and falls back to the
/// built-in FIFO. Runs at a safe point (no lock held); exactly one thread
/// runs it per exit.
pub(crate) fn disable(sh: &Shared) {
    let Some(_g) = sh.disabling.try_lock() else {
        return;
    };
    if !sh.exit.pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(mut info) = sh.exit.info() else {
        return;
    };
    if info.kind.is_error() {
        info.dump = crate::dump::dump_state(sh, crate::dump::Trigger::Exit(&info));
        sh.exit.set_dump(info.dump.clone());
    }
    // 1. Bypass on every CPU: no placement callback runs from here on, and
    // 2. every runnable task that is not running is re-placed into the
    //    global FIFO: out of the scheduler's hands, user DSQs and local DSQs.
    bypass(sh, true);
    // 3. Swap in the fallback; the old scheduler gets no rq callback after
    //    its rq switched generation. The generation is read under the fork
    //    lock, which an attach holds while it installs a scheduler: an exit
    //    recorded for a scheduler that is no longer the current one (it
    //    left while this exit was on its way) ends nothing.
    let fork = sh.fork_lock.write();
    let old_gen = sh.sched_gen.load(Ordering::Acquire);
    if sh.exit.gen() != old_gen {
        // Forget it, so that the current scheduler's own exit can be
        // recorded.
        sh.exit.reset();
        drop(fork);
        bypass(sh, false);
        return;
    }
    let old = sh.slot(old_gen);
    let new_gen = sh.new_gen();
    sh.install(fallback_slot(new_gen));
    sh.ops_timers.cancel_all();
    for c in sh.cpus.iter() {
        let mut rq = c.rq.lock();
        rq.sched_gen = new_gen;
        // The fallback saw no `cpu_release` (`core::release`).
        rq.cpu_released = false;
    }
    //    Every task leaves the old scheduler: `disable` (if enabled), then
    //    `exit_task` (SPEC.md §6.4 step 7), each under the task's rq lock so
    //    that a task exiting at the same time gets them exactly once.
    for p in sh.tasks.snapshot() {
        task_leave_scheduler(sh, &p, old_gen, false);
    }
    drop(fork);
    // 4. ops.exit, then destroy user DSQs; anything a racing dispatch put
    //    there moves to the global DSQ.
    call(sh, "exit", || old.ops.exit(&info));
    sh.destroy_user_dsqs();
    sh.forget_prev_slot();
    // 5. Leave bypass (or drop our level of it).
    bypass(sh, false);
    sh.nr_ejections.fetch_add(1, Ordering::Relaxed);
    *sh.last_exit.lock() = Some(info);
}
