//! `scx_simple` (SPEC.md §8): global FIFO or weighted vtime over one shared
//! user DSQ.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flags::{dsq_id, EnqFlags, KickFlags, PickIdleFlags, WakeFlags};
use crate::ops::{Ctx, DispatchCtx, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx};
use crate::task::TaskRef;

/// The shared user DSQ.
pub const SHARED_DSQ: u64 = 0;

/// scx_simple in FIFO or weighted-vtime mode.
#[derive(Debug)]
pub struct Simple {
    fifo: bool,
    vtime_now: AtomicU64,
    /// Tasks placed directly on an idle CPU's local DSQ.
    pub nr_local: AtomicU64,
    /// Tasks queued on the shared DSQ.
    pub nr_global: AtomicU64,
}

impl Simple {
    /// Global FIFO mode (`scx_simple -f`).
    pub fn fifo() -> Self {
        Self::new(true)
    }

    /// Weighted vtime mode (the default of scx_simple).
    pub fn vtime() -> Self {
        Self::new(false)
    }

    fn new(fifo: bool) -> Self {
        Self {
            fifo,
            vtime_now: AtomicU64::new(0),
            nr_local: AtomicU64::new(0),
            nr_global: AtomicU64::new(0),
        }
    }

    fn vtime_before(a: u64, b: u64) -> bool {
        (a.wrapping_sub(b) as i64) < 0
    }
}

impl Scheduler for Simple {
    fn name(&self) -> &str {
        if self.fifo {
            "simple-fifo"
        } else {
            "simple"
        }
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(SHARED_DSQ, -1).map_err(|_| -17)
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
        if idle {
            self.nr_local.fetch_add(1, Ordering::Relaxed);
            let slice = ctx.slice_dfl();
            ctx.dsq_insert(p, dsq_id::LOCAL, slice, EnqFlags::empty());
        }
        cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        self.nr_global.fetch_add(1, Ordering::Relaxed);
        let slice = ctx.slice_dfl();
        if self.fifo {
            ctx.dsq_insert(p, SHARED_DSQ, slice, enq_flags);
        } else {
            // An idler banks at most one slice of credit.
            let mut vtime = p.dsq_vtime();
            let floor = self.vtime_now.load(Ordering::Relaxed).wrapping_sub(slice);
            if Self::vtime_before(vtime, floor) {
                vtime = floor;
            }
            ctx.dsq_insert_vtime(p, SHARED_DSQ, slice, vtime, enq_flags);
        }
        // scx_simple relies on the kernel to find CPUs for queued work; in
        // userspace we wake one idle CPU so the shared DSQ is drained (not
        // needed for a one-CPU task: its wake-up reschedules its CPU).
        if p.nr_cpus_allowed(ctx.nr_cpu_ids()) > 1 {
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        ctx.dsq_move_to_local(SHARED_DSQ);
    }

    fn running(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        if self.fifo {
            return;
        }
        // Racy by design, as in scx_simple.
        let v = p.dsq_vtime();
        let now = self.vtime_now.load(Ordering::Relaxed);
        if Self::vtime_before(now, v) {
            self.vtime_now.store(v, Ordering::Relaxed);
        }
    }

    fn stopping(&self, ctx: &Ctx<'_>, p: &TaskRef, _runnable: bool) {
        if self.fifo {
            return;
        }
        // A yield (slice 0) is charged as a full slice.
        let full = ctx.slice_dfl();
        let used = full.saturating_sub(p.slice().min(full));
        let w = u64::from(p.weight().max(1));
        p.set_dsq_vtime(p.dsq_vtime().wrapping_add(used * 100 / w));
    }

    fn enable(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        p.set_dsq_vtime(self.vtime_now.load(Ordering::Relaxed));
    }
}
