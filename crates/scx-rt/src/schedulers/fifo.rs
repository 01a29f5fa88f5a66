//! The built-in FIFO: the default scheduler and the fallback after an
//! ejection. It is what sched_ext does with no BPF scheduler callbacks at
//! all — every task goes to the global DSQ with the default slice (the
//! runtime's, `Builder::slice`), and an
//! idle CPU found at wake-up gets the task directly — plus one kick so that
//! work queued in the global DSQ never waits for a sleeping CPU.

use crate::flags::{dsq_id, EnqFlags, KickFlags, PickIdleFlags};
use crate::ops::{EnqueueCtx, Scheduler};
use crate::task::TaskRef;

/// Global FIFO scheduling.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fifo;

impl Scheduler for Fifo {
    fn name(&self) -> &str {
        "fifo"
    }

    /// The built-in class follows hotplug without callbacks, like the
    /// kernel's fair class.
    fn handles_hotplug(&self) -> bool {
        true
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        let slice = ctx.slice_dfl();
        ctx.dsq_insert(p, dsq_id::GLOBAL, slice, enq_flags);
        // An idle CPU is woken to consume the global DSQ. A task that may
        // run on one CPU only needs none: the enqueue runs on that CPU's rq,
        // and an idle CPU is rescheduled by the wake-up itself.
        if p.nr_cpus_allowed(ctx.nr_cpu_ids()) > 1 {
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
        }
    }
}
