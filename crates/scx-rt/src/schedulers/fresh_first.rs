//! `FreshFirst`: two global FIFOs, one for tasks that have just become
//! runnable and one for tasks whose slice ran out, the first served first.
//! A policy for request-serving tasks of unknown length (a few long ones
//! among many short ones), where a slice is meant to bound a short task's
//! wait behind a long one.
//!
//! # Why not one FIFO
//!
//! Under one global FIFO with a slice, a long task whose slice runs out is
//! enqueued at the tail (sched_ext's slice-exhaustion re-enqueue: no
//! `ENQ_*` flag, the tail of the DSQ the scheduler picks), behind the
//! short tasks that arrived while it ran, which is right; but a short task
//! that arrives while `k` long tasks take turns queues behind all of them
//! and waits `k` slices, each stretched by the expiry's lateness. Measured
//! (`scx-rt-bench bimodal`, one worker CPU, 30 µs slices, 10% load, a
//! scheduling trace): the short tail waited 107-133 µs behind three long
//! tasks each running 39 µs per turn, and runs with more long tasks in
//! progress waited longer. `Simple`'s vtime order does not fix it: a new
//! task starts at the current vtime, level with the long tasks that have
//! not had their turn of the round, and waits for them.
//!
//! # Protocol
//!
//! - `enqueue`: a task enqueued with its slice used up (`slice() == 0`:
//!   the slice expired, or it yielded) goes to [`EXPIRED_DSQ`]; any other
//!   (spawned, woken, or preempted with slice left) to [`FRESH_DSQ`], with
//!   a fresh slice (`slice_dfl`) either way and the caller's `enq_flags`.
//!   An idle CPU is kicked for a task that may run on more than one CPU,
//!   as the built-in `Fifo` does.
//! - `dispatch`: [`FRESH_DSQ`] first, then [`EXPIRED_DSQ`]; but after
//!   [`FRESH_BURST`] fresh tasks in a row while expired ones waited, one
//!   expired task goes first, so a stream of arrivals cannot starve a
//!   long task (it gets at least one slice per `FRESH_BURST + 1`).
//! - `select_cpu`: not implemented, so the default runs (`select_cpu_dfl`;
//!   a task placed on an idle CPU goes straight to its local DSQ).
//!
//! The kernel's sched_ext tells the two cases apart the same way: a task
//! re-enqueued because its slice was exhausted keeps a zero slice, while
//! a new or woken task arrives with one (`SCX_SLICE_DFL` at init).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flags::{EnqFlags, KickFlags, PickIdleFlags};
use crate::ops::{DispatchCtx, EnqueueCtx, InitCtx, Scheduler};
use crate::task::TaskRef;

/// Tasks that became runnable (spawned, woken) or were preempted with
/// slice left.
pub const FRESH_DSQ: u64 = 0;
/// Tasks whose slice ran out (expired or yielded).
pub const EXPIRED_DSQ: u64 = 1;
/// Fresh tasks dispatched in a row, while expired ones wait, before one
/// expired task goes first.
pub const FRESH_BURST: u64 = 8;

/// Fresh tasks first, then tasks whose slice ran out (module docs).
#[derive(Debug, Default)]
pub struct FreshFirst {
    /// Fresh tasks dispatched since an expired one last was (approximate
    /// across CPUs: a starvation bound, not an order).
    fresh_run: AtomicU64,
}

impl FreshFirst {
    /// The policy, with the runtime's slice (`Builder::slice`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for FreshFirst {
    fn name(&self) -> &str {
        "fresh-first"
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(FRESH_DSQ, -1).map_err(|_| -17)?;
        ctx.create_dsq(EXPIRED_DSQ, -1).map_err(|_| -17)
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        // No counter of our own here: a shared read-modify-write per
        // enqueue would be this policy's only write every CPU shares
        // (`dsq_nr_queued` gives the queues' lengths).
        let dsq = if p.slice() == 0 {
            EXPIRED_DSQ
        } else {
            FRESH_DSQ
        };
        let slice = ctx.slice_dfl();
        ctx.dsq_insert(p, dsq, slice, enq_flags);
        if p.nr_cpus_allowed(ctx.nr_cpu_ids()) > 1 {
            if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
                ctx.kick_cpu(c, KickFlags::IDLE);
            }
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, prev: Option<&TaskRef>) {
        if self.fresh_run.load(Ordering::Relaxed) >= FRESH_BURST
            && ctx.dsq_move_to_local(EXPIRED_DSQ)
        {
            self.fresh_run.store(0, Ordering::Relaxed);
            return;
        }
        // An expired task waits if one is queued, or if `prev` is one: a
        // runnable prev is enqueued after `dispatch` (sched_ext's order),
        // so its slice, run out, says where it is going.
        let expired_waits = ctx.dsq_nr_queued(EXPIRED_DSQ) > 0
            || prev.is_some_and(|p| p.is_queued() && p.slice() == 0);
        if ctx.dsq_move_to_local(FRESH_DSQ) {
            if expired_waits {
                self.fresh_run.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if ctx.dsq_move_to_local(EXPIRED_DSQ) {
            self.fresh_run.store(0, Ordering::Relaxed);
        }
    }
}
