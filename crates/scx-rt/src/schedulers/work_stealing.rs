//! The default scheduler: per-CPU queues with work stealing, written as a
//! sched_ext policy (per-CPU user DSQs, `dispatch` consuming its own and
//! then its siblings'), in the manner of Go's and tokio's schedulers.
//!
//! # Placement
//!
//! - A task that may run on one CPU only (every task after its first run,
//!   under the runtime's migration rule, and tasks pinned by affinity) is
//!   dispatched straight to its CPU's local DSQ: nobody else could run it.
//!   Unless tasks wait in that CPU's shared DSQ: then it queues behind them
//!   (the core runs a local DSQ before it calls `dispatch`, so tasks that
//!   keep yielding would otherwise starve the shared DSQ; Go and tokio
//!   check their global queues periodically for the same reason).
//! - A new task spawned from a task goes to the spawner's CPU (wake-affine:
//!   the spawner usually blocks on it soon, as in a chain or a fork-join
//!   tree, and the child then runs with no cross-CPU hand-off). If that
//!   CPU's local DSQ is empty the child goes there, like Go's `runnext`
//!   and tokio's LIFO slot; otherwise to the CPU's shared DSQ, where idle
//!   CPUs may steal it.
//! - A task spawned from outside the runtime, or a migratable task waking,
//!   goes to an idle CPU if there is one (claimed and dispatched to
//!   directly), else to its previous CPU's shared DSQ.
//!
//! # Searching CPUs (Go's spinning-M rule)
//!
//! Work put on a shared DSQ wakes an idle CPU to steal it, but only when no
//! CPU is already searching: at most one CPU is kicked for stealing at a
//! time, so a burst of spawns costs one wake-up rather than one per task
//! (a futex wake is several µs). The kicked CPU is the searcher until its
//! `dispatch` runs; if it finds work and more is queued, it passes the
//! role on by waking the next idle CPU, so parallelism still ramps up.
//!
//! # Dispatch
//!
//! A CPU consumes its own shared DSQ first, then steals from the others,
//! starting at a rotating offset so that thieves spread out. A CPU only
//! looks at a DSQ whose lock-free length is non-zero.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::flags::{dsq_id, EnqFlags, KickFlags, PickIdleFlags, WakeFlags};
use crate::ops::{DispatchCtx, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx};
use crate::task::TaskRef;

/// Per-CPU queues with work stealing (the runtime's default scheduler).
#[derive(Debug, Default)]
pub struct WorkStealing {
    nr_cpus: AtomicUsize,
    /// CPUs kicked to steal that have not looked yet (at most one is
    /// kicked at a time; see the module docs).
    searching: AtomicUsize,
    /// Which CPUs are the searcher.
    searcher: std::sync::OnceLock<Box<[AtomicBool]>>,
    /// Every CPU (the mask a searcher hands its role on within).
    all: std::sync::OnceLock<crate::cpumask::Cpumask>,
}

impl WorkStealing {
    /// A new instance (the runtime builds one when no scheduler is given).
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared DSQ of CPU `cpu`.
    fn dsq(cpu: usize) -> u64 {
        cpu as u64
    }

    /// Wakes one idle CPU (found by `pick`, which claims it) to steal,
    /// unless one is already searching.
    fn wake_searcher(
        &self,
        ctx: &crate::ops::Ctx<'_>,
        pick: impl FnOnce(&crate::ops::Ctx<'_>) -> Option<usize>,
    ) {
        if self.searching.load(Ordering::Relaxed) != 0
            || self
                .searching
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match pick(ctx) {
            Some(c) => {
                if let Some(s) = self.searcher.get() {
                    s[c].store(true, Ordering::Release);
                }
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
            None => self.searching.store(0, Ordering::Release),
        }
    }
}

impl Scheduler for WorkStealing {
    fn name(&self) -> &str {
        "work-stealing"
    }

    /// The built-in policy follows hotplug without callbacks of its own:
    /// an offline CPU's shared DSQ is stolen from like any other.
    fn handles_hotplug(&self) -> bool {
        true
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        let n = ctx.nr_cpu_ids();
        self.nr_cpus.store(n, Ordering::Relaxed);
        let _ = self
            .searcher
            .set((0..n).map(|_| AtomicBool::new(false)).collect());
        let _ = self.all.set(crate::cpumask::Cpumask::full(n));
        for c in 0..n {
            ctx.create_dsq(Self::dsq(c), -1).map_err(|_| -17)?;
        }
        Ok(())
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        // A child of a running task stays with its parent (module docs).
        if wake_flags.contains(WakeFlags::FORK) {
            if let Some(me) = ctx.cpu() {
                if p.allowed_on(me) {
                    return me as i32;
                }
            }
        }
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
        if idle {
            let slice = ctx.slice_dfl();
            ctx.dispatch(p, dsq_id::LOCAL, slice, EnqFlags::empty());
        }
        cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        let slice = ctx.slice_dfl();
        let cpu = p.cpu();
        // Tasks already waiting in this CPU's shared DSQ run first: the
        // core consumes a local DSQ before it asks `dispatch`, so a task
        // put there now would overtake them, and tasks that keep yielding
        // would starve them.
        let waiting = ctx.dsq_nr_queued(Self::dsq(cpu)) > 0;
        if !waiting
            && (p.single_cpu() == Some(cpu)
                || ctx.dsq_nr_queued(dsq_id::LOCAL_ON | cpu as u64) == 0)
        {
            // Only this CPU may run it, or its local DSQ is empty (the
            // next task it runs, Go's `runnext`).
            ctx.dispatch(p, dsq_id::LOCAL, slice, enq_flags);
            return;
        }
        ctx.dispatch(p, Self::dsq(cpu), slice, enq_flags);
        if p.single_cpu().is_none() {
            self.wake_searcher(ctx, |ctx| ctx.pick_idle_cpu(p, PickIdleFlags::empty()));
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        let searcher = self
            .searcher
            .get()
            .is_some_and(|s| s[cpu].swap(false, Ordering::AcqRel));
        if searcher {
            self.searching.store(0, Ordering::Release);
        }
        let n = self.nr_cpus.load(Ordering::Relaxed).max(1);
        let mut found = false;
        if ctx.dsq_nr_queued(Self::dsq(cpu)) > 0 && ctx.consume(Self::dsq(cpu)) {
            found = true;
        } else {
            let start = ctx.now() as usize;
            for i in 0..n {
                let victim = (start + i) % n;
                if victim != cpu
                    && ctx.dsq_nr_queued(Self::dsq(victim)) > 0
                    && ctx.consume(Self::dsq(victim))
                {
                    found = true;
                    break;
                }
            }
        }
        // A searcher that found work hands the role on while work remains.
        if searcher && found && (0..n).any(|v| ctx.dsq_nr_queued(Self::dsq(v)) > 0) {
            if let Some(all) = self.all.get() {
                self.wake_searcher(ctx, |ctx| ctx.pick_idle_cpu_in(all, PickIdleFlags::empty()));
            }
        }
    }
}
