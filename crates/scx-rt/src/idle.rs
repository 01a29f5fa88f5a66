//! Built-in idle tracking (SPEC.md §5).
//!
//! The default CPU selection (`scx_select_cpu_dfl`) over the idle mask
//! (`core::idle_mask`, which says how the mask is kept).

use crate::flags::{PickIdleFlags, WakeFlags};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::task::TaskRef;

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
                && sh.cpus[w].shared.owner.local_nr.load(Ordering::Relaxed) == 0
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
    if let Some(c) = sh.idle.pick(
        sh.spread_hint(),
        |c| p.allowed_on(c),
        PickIdleFlags::empty(),
    ) {
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
