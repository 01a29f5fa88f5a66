//! The built-in idle mask (SPEC.md §5): one atomic cpumask, maintained by
//! the workers under their rq lock (set when a CPU goes idle and
//! re-asserted when it picks idle again; cleared when it leaves idle). A
//! claim (`test_and_clear`) reserves the CPU: the claimer is responsible
//! for giving it work or kicking it. scx-rt has no SMT topology, so the
//! "whole core idle" mask equals the CPU mask and `PickIdleFlags::CORE`
//! behaves like no flag. The default selection that reads it is in `idle`.

use crate::cpumask::AtomicCpumask;
use crate::flags::PickIdleFlags;

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

    /// Claims an idle CPU for which `allowed` holds (`scx_pick_idle_cpu`),
    /// searching from `start` (a rotating hint, so that searches from
    /// different CPUs spread out) and wrapping once.
    pub(crate) fn pick(
        &self,
        start: usize,
        allowed: impl Fn(usize) -> bool,
        _flags: PickIdleFlags,
    ) -> Option<usize> {
        if self.cpu.is_empty() {
            return None;
        }
        loop {
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
