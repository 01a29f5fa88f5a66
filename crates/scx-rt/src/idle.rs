//! Built-in idle tracking (SPEC.md §5).
//!
//! One idle cpumask, maintained by the workers under their rq lock: set when
//! a CPU goes idle (and re-asserted when it picks idle again, so a CPU whose
//! bit was claimed but that received no work reappears), cleared when it
//! leaves idle. A claim (`test_and_clear`) reserves the CPU: the claimer is
//! responsible for giving it work or kicking it. scx-rt has no SMT topology,
//! so the "whole core idle" mask equals the CPU mask and
//! `PickIdleFlags::CORE` behaves like no flag.

use crate::cpumask::AtomicCpumask;
use crate::flags::{PickIdleFlags, WakeFlags};
use crate::loom::Ordering;
use crate::sched::Shared;
use crate::task::TaskRef;

pub(crate) struct IdleMasks {
    pub cpu: AtomicCpumask,
}

impl IdleMasks {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        let cpu = AtomicCpumask::new(nr_cpus);
        cpu.fill();
        Self { cpu }
    }

    pub(crate) fn test_and_clear(&self, cpu: usize) -> bool {
        self.cpu.test_and_clear(cpu)
    }

    /// Claims an idle CPU for which `allowed` holds (`scx_pick_idle_cpu`).
    pub(crate) fn pick(
        &self,
        sh: &Shared,
        allowed: impl Fn(usize) -> bool,
        _flags: PickIdleFlags,
    ) -> Option<usize> {
        if self.cpu.is_empty() {
            return None;
        }
        let start = sh.spread_hint();
        loop {
            // Idle bits from a rotating start point, wrapping once.
            let c = self
                .cpu
                .iter()
                .filter(|&c| c >= start)
                .find(|&c| allowed(c))
                .or_else(|| {
                    self.cpu
                        .iter()
                        .take_while(|&c| c < start)
                        .find(|&c| allowed(c))
                })?;
            if self.cpu.test_and_clear(c) {
                return Some(c);
            }
        }
    }
}

/// `scx_select_cpu_dfl`: returns (cpu, found idle).
pub(crate) fn select_cpu_dfl(
    sh: &Shared,
    waker: Option<usize>,
    p: &TaskRef,
    prev: usize,
    wake_flags: WakeFlags,
) -> (usize, bool) {
    // 1. A sync wake-up onto the waker's CPU, if it will be free.
    if wake_flags.contains(WakeFlags::SYNC) {
        if let Some(w) = waker {
            if !sh.idle.cpu.is_empty()
                && sh.cpus[w].shared.local_nr.load(Ordering::Relaxed) == 0
                && p.allowed_on(w)
            {
                return (w, true);
            }
        }
    }
    // 2. (SMT whole-core preference: no SMT topology here.)
    // 3. prev_cpu, if idle.
    if p.allowed_on(prev) && sh.idle.test_and_clear(prev) {
        return (prev, true);
    }
    // 4. Any idle CPU the task may use.
    if let Some(c) = sh
        .idle
        .pick(sh, |c| p.allowed_on(c), PickIdleFlags::empty())
    {
        return (c, true);
    }
    // 5. prev_cpu (validated: never a CPU outside the task's mask).
    if p.allowed_on(prev) {
        (prev, false)
    } else {
        (
            (0..sh.nr_cpus).find(|&c| p.allowed_on(c)).unwrap_or(prev),
            false,
        )
    }
}
