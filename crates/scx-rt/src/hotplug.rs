//! CPU hotplug at run time (SPEC.md §3.12): [`crate::Runtime::cpu_offline`]
//! and [`crate::Runtime::cpu_online`].
//!
//! Going offline, in order:
//! 1. A scheduler without hotplug callbacks (`Scheduler::handles_hotplug`)
//!    is ended with `UnregKern` and `ECODE_ACT_RESTART | ECODE_RSN_HOTPLUG`
//!    ("cpu N going offline"); the CPU goes offline anyway and the runtime
//!    goes on under the built-in FIFO, as the kernel goes on under the fair
//!    class.
//! 2. The rq's `ONLINE` flag is cleared under its lock and the CPU leaves
//!    the idle masks: from here kicks from other CPUs are dropped (a CPU
//!    kicking itself still works, the seed's rule), no `dispatch` runs
//!    there, `select_cpu` and `DSQ_LOCAL_ON` verdicts naming it fall back to
//!    an online CPU, and an enqueue on its rq goes straight to its local
//!    DSQ without the scheduler (`do_enqueue_task`'s offline rule).
//! 3. `ops.cpu_offline(cpu)`.
//! 4. Every task queued on the CPU that may run elsewhere is moved to an
//!    online CPU through `dequeue` and `enqueue` (the kernel's
//!    `migrate_tasks`); the running one moves at its next switch point.
//!
//! Userspace deviation: tasks bound to the CPU stay. A started task is bound
//! to its worker thread (the crate's migration rule: its stack may hold
//! thread-affine state), and moving it would be unsound where the kernel
//! would simply break its affinity. So an offline CPU's worker still runs
//! the tasks pinned to it, taking them from its local DSQ and from the
//! pinned runs of the global and user DSQs, never asking the scheduler and
//! never taking other work; once it has none it sleeps on its doorbell
//! ("parks"). With `Builder::allow_migration` no task is bound, and an
//! offline CPU runs only tasks whose affinity names it alone.
//!
//! Coming online: `ops.cpu_online(cpu)` first (the CPU does no scheduler
//! work before it), then `ONLINE` is set and the CPU reschedules, joining
//! the idle masks at its next idle pick.

use crate::core::error::call;
use crate::core::migrate::move_queued_task;
use crate::exit::{ExitKind, ECODE_ACT_RESTART, ECODE_RSN_HOTPLUG};
use crate::loom::Ordering;
use crate::ops::InitCtx;
use crate::ops::Shared;
use crate::rq::rqflags;
use crate::task::TaskRef;

/// Why a hotplug request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HotplugError {
    /// The runtime has no such CPU.
    #[error("no cpu {cpu} in this runtime ({nr_cpus} cpus)")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs in the runtime.
        nr_cpus: usize,
    },
    /// The CPU is already in the requested state.
    #[error("cpu {cpu} is already {}", if *online { "online" } else { "offline" })]
    AlreadyInState {
        /// The CPU asked for.
        cpu: usize,
        /// Its state.
        online: bool,
    },
    /// Taking the last online CPU down would leave nowhere to run.
    #[error("cpu {0} is the last online cpu")]
    LastCpu(usize),
}

fn check(sh: &Shared, cpu: usize, want_online: bool) -> Result<(), HotplugError> {
    if cpu >= sh.nr_cpus {
        return Err(HotplugError::NoSuchCpu {
            cpu,
            nr_cpus: sh.nr_cpus,
        });
    }
    let online = sh.cpu_online(cpu);
    if online != want_online {
        return Err(HotplugError::AlreadyInState { cpu, online });
    }
    Ok(())
}

/// Ends the current scheduler when it cannot follow hotplug.
fn check_callbacks(sh: &Shared, cpu: usize, going: &str) -> bool {
    let slot = sh.cur_slot();
    if slot.hotplug {
        return true;
    }
    sh.record_exit(
        ExitKind::UnregKern,
        ECODE_ACT_RESTART | ECODE_RSN_HOTPLUG,
        format!("cpu {cpu} going {going}"),
    );
    false
}

pub(crate) fn cpu_offline(sh: &Shared, cpu: usize) -> Result<(), HotplugError> {
    let _g = sh.hotplug_lock.lock();
    check(sh, cpu, true)?;
    if !(0..sh.nr_cpus).any(|c| c != cpu && sh.cpu_online(c)) {
        return Err(HotplugError::LastCpu(cpu));
    }
    let tell = check_callbacks(sh, cpu, "offline");
    let c = &sh.cpus[cpu];
    {
        let mut rq = c.rq.lock();
        rq.flags &= !rqflags::ONLINE;
        c.shared.mostly.online.store(false, Ordering::Release);
    }
    sh.idle.cpu.clear(cpu);
    if tell {
        let slot = sh.cur_slot();
        let ctx = InitCtx::new(sh, None);
        call(sh, "cpu_offline", || slot.ops.cpu_offline(&ctx, cpu));
    }
    // Move what may run elsewhere; the running task goes at its switch.
    let mut rq = c.lock();
    let movable: Vec<TaskRef> = rq
        .runnable_tasks(&sh.tasks)
        .into_iter()
        .filter(|p| {
            p.single_cpu() != Some(cpu) && rq.curr.as_ref().is_none_or(|c| c.id() != p.id())
        })
        .collect();
    let slot = sh.slot(rq.sched_gen);
    for p in movable {
        // The list was taken under the lock, but the lock is dropped
        // between moves: skip a task that was picked (and may be running
        // now), blocked, or moved away meanwhile.
        if !crate::core::dsqs::waits_on_rq(&rq, &p) {
            continue;
        }
        let dst = crate::core::enqueue::fallback_cpu(sh, &p, cpu);
        move_queued_task(sh, &slot, &mut rq, p, dst);
    }
    drop(rq);
    // The current task (if it may move) leaves at its next switch; the
    // worker also re-runs its idle pick without joining the idle masks.
    c.resched();
    Ok(())
}

pub(crate) fn cpu_online(sh: &Shared, cpu: usize) -> Result<(), HotplugError> {
    let _g = sh.hotplug_lock.lock();
    check(sh, cpu, false)?;
    if check_callbacks(sh, cpu, "online") {
        let slot = sh.cur_slot();
        let ctx = InitCtx::new(sh, None);
        call(sh, "cpu_online", || slot.ops.cpu_online(&ctx, cpu));
    }
    let c = &sh.cpus[cpu];
    {
        let mut rq = c.rq.lock();
        rq.flags |= rqflags::ONLINE;
        c.shared.mostly.online.store(true, Ordering::Release);
    }
    c.resched();
    Ok(())
}
