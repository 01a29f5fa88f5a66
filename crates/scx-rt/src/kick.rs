//! Kicking CPUs (`scx_bpf_kick_cpu`, SPEC.md §4) — the first cut.
//!
//! The call side records the target in the *calling* CPU's masks
//! (`cpus_to_kick`, `cpus_to_kick_if_idle`, `cpus_to_preempt`) and marks its
//! kick step ("irq work") pending; the step runs on the kicking CPU as soon
//! as it holds no rq lock: at the end of the outer operation (a wake-up, a
//! spawn) or at the worker's next safe point. A thread that is no worker
//! keeps its kicks in a thread-local list, run the same way.
//!
//! Still to come with the kick issue: `WAIT` (accepted, currently behaves as
//! a plain kick), bypass dropping, hotplug rules, and the kick benchmarks.

use std::cell::RefCell;

use crate::flags::KickFlags;
use crate::loom::Ordering;
use crate::rq::{rqflags, RqSynced};
use crate::sched::Shared;

std::thread_local! {
    /// Kicks requested from a thread that is not a worker of `rt_id`.
    static FOREIGN: RefCell<Vec<(u64, usize, KickFlags)>> = const { RefCell::new(Vec::new()) };
}

/// `can_skip_idle_kick`: a busy CPU that is not inside balance will pass
/// through a full scheduling cycle before idling. Target rq locked.
pub(crate) fn can_skip_idle_kick(rq: &RqSynced) -> bool {
    rq.curr.is_some() && !rq.has(rqflags::IN_BALANCE)
}

pub(crate) fn kick_cpu(sh: &Shared, from: Option<usize>, cpu: usize, mut flags: KickFlags) {
    if !sh.check_cpu(cpu, "kick_cpu") {
        return;
    }
    if flags.contains(KickFlags::IDLE) && flags.intersects(KickFlags::PREEMPT | KickFlags::WAIT) {
        sh.ops_error("kick_cpu: IDLE cannot be combined with PREEMPT or WAIT".to_string());
        flags = KickFlags::IDLE;
    }
    let Some(me) = from else {
        FOREIGN.with(|f| f.borrow_mut().push((sh.rt_id, cpu, flags)));
        return;
    };
    let s = &sh.cpus[me].shared;
    if flags.contains(KickFlags::IDLE) {
        if let Some(rq) = sh.cpus[cpu].rq.try_lock() {
            if can_skip_idle_kick(&rq) {
                return;
            }
        }
        s.cpus_to_kick_if_idle.set(cpu);
    } else {
        s.cpus_to_kick.set(cpu);
        if flags.contains(KickFlags::PREEMPT) {
            s.cpus_to_preempt.set(cpu);
        }
        if flags.contains(KickFlags::WAIT) {
            s.cpus_to_wait.set(cpu);
        }
    }
    s.kick_pending.store(true, Ordering::Release);
}

/// `kick_one_cpu`. No rq lock held on entry.
fn kick_one_cpu(sh: &Shared, me: Option<usize>, cpu: usize, preempt: bool) {
    let rq = sh.cpus[cpu].rq.lock();
    if rq.online() || Some(cpu) == me {
        if preempt {
            if let Some(c) = &rq.curr {
                c.set_slice(0);
            }
        }
        sh.cpus[cpu].resched();
    }
}

/// `kick_one_cpu_if_idle`. No rq lock held on entry.
fn kick_one_cpu_if_idle(sh: &Shared, me: Option<usize>, cpu: usize) {
    let rq = sh.cpus[cpu].rq.lock();
    if !can_skip_idle_kick(&rq) && (rq.online() || Some(cpu) == me) {
        sh.cpus[cpu].resched();
    }
}

/// The kick step of CPU `me` (`kick_cpus_irq_workfn`), or of the calling
/// foreign thread when `me` is None. Holds no rq lock on entry.
pub(crate) fn run_pending(sh: &Shared, me: Option<usize>) {
    let Some(me) = me else {
        let mine: Vec<(u64, usize, KickFlags)> = FOREIGN.with(|f| {
            let mut f = f.borrow_mut();
            let (mine, rest): (Vec<_>, Vec<_>) = f.drain(..).partition(|k| k.0 == sh.rt_id);
            *f = rest;
            mine
        });
        for (_, cpu, flags) in mine {
            if flags.contains(KickFlags::IDLE) {
                kick_one_cpu_if_idle(sh, None, cpu);
            } else {
                kick_one_cpu(sh, None, cpu, flags.contains(KickFlags::PREEMPT));
            }
        }
        return;
    };
    let s = &sh.cpus[me].shared;
    if !s.kick_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    for cpu in s.cpus_to_kick.iter().collect::<Vec<_>>() {
        let preempt = s.cpus_to_preempt.test_and_clear(cpu);
        s.cpus_to_wait.clear(cpu);
        kick_one_cpu(sh, Some(me), cpu, preempt);
        s.cpus_to_kick.clear(cpu);
        s.cpus_to_kick_if_idle.clear(cpu);
    }
    for cpu in s.cpus_to_kick_if_idle.iter().collect::<Vec<_>>() {
        kick_one_cpu_if_idle(sh, Some(me), cpu);
        s.cpus_to_kick_if_idle.clear(cpu);
    }
}
