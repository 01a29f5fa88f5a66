//! Hot swap: [`crate::Runtime::attach`] and [`crate::Runtime::detach`]
//! while tasks run (SPEC.md §1.4, §6.4, §6.5).
//!
//! The runtime always runs some scheduler: an attached one, or the built-in
//! FIFO fallback (the kernel's fair class). Attaching needs the fallback in
//! place (only one scheduler at a time, `-EBUSY` otherwise) and runs, under
//! the enable lock:
//! 1. bypass on: from here no placement callback runs anywhere and every
//!    queued task waits in the global FIFO;
//! 2. the fork lock taken exclusively (no spawn picks a scheduler
//!    meanwhile); the new scheduler becomes current, `ops.init` runs
//!    (failure: the scheduler is ejected through the disable path, which
//!    still calls `ops.exit`, and the runtime stays on the fallback);
//! 3. `init_task(fork = false)` for every live task (READY), then `enable`,
//!    `set_weight` and `set_cpumask` for each (ENABLED), each under the
//!    task's rq lock;
//! 4. every rq switches to the new generation (rq callbacks now reach the
//!    new scheduler); the fork lock is released;
//! 5. bypass off: the queued tasks go through the new scheduler's
//!    `enqueue`.
//!
//! Detaching records an `Unreg` exit and runs the disable path at once on
//! the calling thread (or waits for a worker already running it): bypass,
//! swap in the fallback, `disable` + `exit_task` for every task of the
//! scheduler, `ops.exit`, user DSQs drained into the global FIFO, bypass
//! off. No task is lost or run twice: the swap only re-queues tasks.
//!
//! Userspace note: a task that is running while its CPU's rq switches
//! generation may see `running` from one scheduler and `stopping` from the
//! other at that one boundary; the kernel avoids it by putting every task
//! through a class switch, which needs the task stopped, and a green task
//! cannot be stopped from outside.

use std::sync::Arc;

use crate::core::error::{call, call_task};
use crate::core::slot::new_slot;
use crate::exit::ExitKind;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::ops::{Ctx, InitCtx, InitTaskArgs, Scheduler};
use crate::task::{Affinity, TaskState};

/// Why [`crate::Runtime::attach`] refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The scheduler failed the checks the kernel makes at load (unknown
    /// ops flag bits, a timeout or dispatch batch above its limit, a bad
    /// name: [`InvalidOps`](crate::InvalidOps), `-EINVAL`/`-E2BIG` in the
    /// kernel). Checked first: nothing was disturbed, no callback of the
    /// refused scheduler ran, and the running scheduler stays.
    #[error("scheduler refused: {0}")]
    Invalid(#[source] crate::ops::InvalidOps),
    /// Another scheduler is attached (`-EBUSY`); nothing was disturbed.
    #[error("scheduler {attached:?} is attached; detach it first")]
    Busy {
        /// The attached scheduler's name.
        attached: String,
    },
    /// `ops.init` failed: the scheduler was ejected (its `exit` ran) and the
    /// runtime runs the fallback. `Runtime::exit_info` has the details.
    #[error("ops.init of {name:?} failed ({code}); the runtime stays on the fallback")]
    InitFailed {
        /// The scheduler's name.
        name: String,
        /// What `init` returned (0 if it panicked).
        code: i32,
    },
}

/// Runs the pending disable path to completion: here if no worker is
/// running it, else waits until the fallback is in place.
pub(crate) fn finish_disable(sh: &Shared) {
    while sh.exit.pending.load(Ordering::Acquire) || sh.disabling.try_lock().is_none() {
        crate::disable::disable(sh);
        std::thread::yield_now();
    }
}

pub(crate) fn attach(sh: &Shared, ops: Arc<dyn Scheduler>) -> Result<(), AttachError> {
    crate::ops::validate_ops(&*ops).map_err(AttachError::Invalid)?;
    let _e = sh.enable_lock.lock();
    finish_disable(sh);
    let cur = sh.cur_slot();
    if !cur.fallback {
        return Err(AttachError::Busy {
            attached: cur.name.clone(),
        });
    }
    let name = ops.name().to_string();
    // 1. Bypass: nothing is placed by anyone while the tasks switch. The
    //    runtime's own default leaves its DSQs behind (bypass moved every
    //    waiting task to the global DSQ), so the ids are free for the
    //    scheduler being attached.
    crate::core::bypass::bypass(sh, true);
    sh.destroy_user_dsqs();
    // 2. No spawn picks a scheduler until every task has this one.
    let fork = sh.fork_lock.write();
    let new_gen = sh.new_gen();
    sh.exit.reset();
    sh.install(new_slot(new_gen, ops.clone()));
    // This thread now works for the new scheduler: errors `init` records
    // are its own.
    let _ = sh.slot(new_gen);
    let ictx = InitCtx::new(sh, None);
    let init = call(sh, "init", || ops.init(&ictx));
    let failed = match init {
        Some(Ok(())) => None,
        Some(Err(code)) => {
            sh.ops_error(format!("ops.init failed ({code})"));
            Some(code)
        }
        None => Some(0), // panicked: `call` recorded the error
    };
    if failed.is_none() {
        // 3. Every live task joins: init_task for all, then enable for all.
        let slot = sh.slot(new_gen);
        let tasks = sh.tasks.snapshot();
        for p in &tasks {
            let rq = crate::core::enqueue::task_rq_lock(sh, p);
            if p.scx.sched_gen.load(Ordering::Acquire) == new_gen || !sh.tasks.contains(p) {
                // Spawned under the new scheduler already, or exited since
                // the snapshot (the exit path unregisters under this lock).
                continue;
            }
            let ctx = InitCtx::new_locked(sh, Some(rq.cpu));
            if let Some(Err(code)) = call_task(sh, "init_task", p, || {
                slot.ops.init_task(&ctx, p, InitTaskArgs { fork: false })
            }) {
                sh.ops_error(format!("ops.init_task failed ({code}) for task {}", p.id()));
            }
            p.scx.sched_gen.store(new_gen, Ordering::Release);
            p.set_state(TaskState::Ready);
        }
        for p in &tasks {
            let rq = crate::core::enqueue::task_rq_lock(sh, p);
            if p.state() != TaskState::Ready || p.scx.sched_gen.load(Ordering::Acquire) != new_gen {
                continue;
            }
            let ctx = Ctx::new(sh, Some(rq.cpu));
            call_task(sh, "enable", p, || slot.ops.enable(&ctx, p));
            p.set_state(TaskState::Enabled);
            call_task(sh, "set_weight", p, || {
                slot.ops.set_weight(&ctx, p, p.weight())
            });
            if slot.wants_cpumask {
                let mask = match &p.affinity {
                    Affinity::All => crate::cpumask::Cpumask::full(sh.nr_cpus),
                    Affinity::Mask(m) => (**m).clone(),
                };
                call_task(sh, "set_cpumask", p, || {
                    slot.ops.set_cpumask(&ctx, p, &mask)
                });
            }
        }
        // 4. The rqs follow; the fallback is no longer called.
        for c in sh.cpus.iter() {
            let mut rq = c.rq.lock();
            rq.sched_gen = new_gen;
            // The new scheduler saw no `cpu_release` (`core::release`).
            rq.cpu_released = false;
        }
        sh.forget_prev_slot();
        // The watchdog adopts the new scheduler's timeout now, not at the
        // end of the old one's (up to 15 s) period.
        sh.timer.wake();
    }
    drop(fork);
    // 5. Leave bypass: the queued tasks meet the new scheduler's enqueue.
    crate::core::bypass::bypass(sh, false);
    if let Some(code) = failed {
        finish_disable(sh);
        return Err(AttachError::InitFailed { name, code });
    }
    Ok(())
}

/// Detaches the attached scheduler; `false` if none was attached.
pub(crate) fn detach(sh: &Shared, kind: ExitKind, msg: &str) -> bool {
    let _e = sh.enable_lock.lock();
    finish_disable(sh);
    if sh.cur_slot().fallback {
        return false;
    }
    sh.record_exit(kind, 0, msg.to_string());
    finish_disable(sh);
    true
}
