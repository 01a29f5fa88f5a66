//! DSQ iterators, and moving the tasks they see to another DSQ
//! (`bpf_iter_scx_dsq_new/next/destroy`, `scx_bpf_dsq_move[_vtime]`,
//! `scx_bpf_dsq_move_set_slice/_set_vtime`; SPEC.md §2.7).
//!
//! # The walk
//!
//! An iterator ([`DsqIter`]) names a user DSQ and remembers the DSQ's
//! insertion sequence when it was made. Each step takes the DSQ lock,
//! returns the next task in dispatch order (or reverse, with
//! [`DsqIterFlags::REV`]) after the iterator's cursor that was linked no
//! later than that sequence, and drops the lock. A walk thus sees only the
//! tasks queued when it began, each at most once, whatever is linked or
//! unlinked between its steps; a task that leaves and comes back is not
//! seen again (it was linked after the start). FIFO and vtime-ordered
//! DSQs walk the same way: dispatch order is the order consumers take.
//!
//! # The move
//!
//! `dsq_move(it, p, dst, flags)` is called from `dispatch` (its CPU's rq
//! locked, inside balance) or from a context that holds no rq lock (a
//! scheduler timer, `init*`, `cpu_online`/`cpu_offline`):
//!
//! ```text
//! 1 take p's rq lock: in dispatch, keep this rq if it is p's, else drop
//!   it first (never two rq locks); elsewhere, lock p's rq
//! 2 take the iterated DSQ's lock
//! 3 p lost since the iterator saw it? unlock, return false:
//!     p.dsq is not this DSQ      dequeued, consumed, moved, or elsewhere
//!     p.dsq_seq after the start  it left and was queued here again
//!     holding_cpu >= 0           a consume on another CPU took it off
//!                                and is carrying it to its rq
//!     p.cpu is not the locked rq on its way to another rq
//!     the DSQ was destroyed
//! 4 apply the iterator's slice / vtime overrides
//! 5 unlink p, drop the DSQ lock, and insert it (move_task_between_dsqs):
//!     local DSQ of p's rq     insert, with the post-insert rules (PREEMPT
//!                             zeroes curr's slice; an idle CPU is
//!                             rescheduled)
//!     another CPU's local DSQ p may not run there: the global DSQ;
//!                             else deactivate (MIGRATING), hand off to
//!                             the destination rq, insert there: an idle
//!                             destination is rescheduled (woken), as the
//!                             kernel's activation on a remote rq kicks it
//!     a non-local DSQ         insert, p's rq still held
//! 6 in dispatch, take this rq's lock again; the overrides are cleared
//!   whether or not the move happened
//! ```
//!
//! Why step 3 under these two locks is enough: every path that takes a
//! task off a non-local DSQ holds the task's rq lock (a dequeue, a
//! consume on the task's own CPU, the winning half of a remote consume,
//! another move), except the first half of a remote consume, which
//! unlinks under the DSQ lock and marks `holding_cpu` in the same
//! critical section, and the destruction of a DSQ, which marks it
//! destroyed under its lock before emptying it. A task that passes step 3
//! is therefore still linked here, and stays so until step 5 unlinks it.
//! The loom model `dsq_move` races a move with a dequeue and with a
//! consume from another CPU on this code.
//!
//! The destination is resolved before the DSQ lock is taken (a sparse
//! user-DSQ lookup may take the DSQ table's lock, which ranks above DSQ
//! locks), so an invalid destination is reported even when the move is
//! then found lost; the kernel resolves it after step 3. Whether `p` may
//! run on a local destination is judged after step 3, as in the kernel: a
//! task is bound to its CPU when it first runs, so one that left the DSQ
//! since the walk saw it may no longer be allowed where the scheduler
//! aimed it, and that is a lost move, not an error. Once step 3 passed,
//! `p` cannot start running (and be bound) until step 5 unlinks it.

use crate::dsq::Cursor;
use crate::flags::{dsq_id, DsqIterFlags, EnqFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::{Ctx, DispatchCtx, Shared};
use crate::rq::RqGuard;
use crate::task::{tflags, TaskRef};

use crate::core::dispatch::{can_run_on, CannotRun};
use crate::core::dsqs::{
    activate, deactivate, dispatch_enqueue_local, dispatch_enqueue_nonlocal, find_dsq_for_dispatch,
    Target,
};
use crate::core::user_dsqs::UserDsq;

/// A walk over the tasks of a user DSQ ([`Ctx::dsq_iter`]): the kernel's
/// `bpf_iter_scx_dsq`, used as `bpf_for_each(scx_dsq, p, id, flags)` is.
/// It yields the tasks queued when it was made, in dispatch order (or
/// reverse), each once; `next` takes the DSQ's lock for the step only.
///
/// The tasks it yields may be moved with
/// [`DispatchCtx::dsq_move`] (or [`Ctx::dsq_move`] from a timer), with a
/// slice or vtime for the next move set here ([`set_slice`](Self::set_slice),
/// [`set_vtime`](Self::set_vtime)).
pub struct DsqIter<'a> {
    dsq: UserDsq<'a>,
    id: u64,
    /// The DSQ's insertion sequence when the walk began.
    seq: u32,
    cursor: Option<Cursor>,
    rev: bool,
    slice: Option<u64>,
    vtime: Option<u64>,
}

/// Why [`Ctx::dsq_iter`] made no iterator (the kernel's
/// `bpf_iter_scx_dsq_new` errors; like the kernel, not a scheduler
/// error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsqIterError {
    /// No user DSQ has this id (`-ENOENT`). Built-in DSQs (local, global)
    /// cannot be walked, as in the kernel.
    #[error("no user dsq {id:#x} to iterate")]
    NoSuchDsq {
        /// The id asked for.
        id: u64,
    },
    /// Flags other than [`DsqIterFlags::REV`] (`-EINVAL`).
    #[error("invalid dsq iterator flags {bits:#x}")]
    InvalidFlags {
        /// The unknown bits.
        bits: u64,
    },
}

impl<'a> DsqIter<'a> {
    /// A walk of `dsq` that sees what is queued now (`bpf_iter_scx_dsq_new`).
    pub(crate) fn new(sh: &'a Shared, id: u64, flags: DsqIterFlags) -> Result<Self, DsqIterError> {
        let unknown = flags.without(DsqIterFlags::REV);
        if !unknown.is_empty() {
            return Err(DsqIterError::InvalidFlags {
                bits: unknown.bits(),
            });
        }
        let dsq = if id & dsq_id::FLAG_BUILTIN == 0 {
            sh.find_user_dsq(id)
        } else {
            None
        };
        let dsq = dsq.ok_or(DsqIterError::NoSuchDsq { id })?;
        let seq = dsq.q.lock().seq;
        Ok(Self::since(dsq, id, seq, flags))
    }

    /// A walk of `dsq` that sees what was queued up to insertion sequence
    /// `seq` (a walk that began then).
    pub(crate) fn since(dsq: UserDsq<'a>, id: u64, seq: u32, flags: DsqIterFlags) -> Self {
        Self {
            dsq,
            id,
            seq,
            cursor: None,
            rev: flags.contains(DsqIterFlags::REV),
            slice: None,
            vtime: None,
        }
    }

    /// The id of the DSQ walked.
    pub fn dsq_id(&self) -> u64 {
        self.id
    }

    /// The slice the next task moved from this walk gets
    /// (`scx_bpf_dsq_move_set_slice`); without it the task keeps its
    /// slice. Cleared by the next move, whether or not it happens.
    pub fn set_slice(&mut self, slice: u64) {
        self.slice = Some(slice);
    }

    /// The vtime the next task moved from this walk gets
    /// (`scx_bpf_dsq_move_set_vtime`); without it the task keeps its
    /// vtime. Cleared by the next move, whether or not it happens.
    pub fn set_vtime(&mut self, vtime: u64) {
        self.vtime = Some(vtime);
    }
}

impl Iterator for DsqIter<'_> {
    type Item = TaskRef;

    /// The next task (`bpf_iter_scx_dsq_next`), under the DSQ lock.
    fn next(&mut self) -> Option<TaskRef> {
        let q = self.dsq.q.lock();
        let (c, p) = q.next_after(self.cursor, self.rev, self.seq)?;
        self.cursor = Some(c);
        Some(p.clone())
    }
}

/// Who calls `dsq_move`.
pub(crate) enum Caller<'r, 'g> {
    /// `ops.dispatch` of CPU `rq.cpu`, whose rq is locked (inside balance).
    Dispatch(&'r mut RqGuard<'g>),
    /// A context that holds no rq lock, running on CPU `cpu` (`None`: a
    /// thread that is no worker; `DSQ_LOCAL` then names the task's CPU).
    Unlocked(Option<usize>),
}

/// `scx_dsq_move`: moves `p`, seen by `it`, to DSQ `dst` (module docs),
/// in vtime order if `vtime_order`. Whether it moved; `false` if it left
/// the DSQ since the walk began, or is in flight to another CPU, or the
/// flags are invalid (an error).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dsq_move(
    sh: &Shared,
    ctx: &Ctx<'_>,
    caller: Caller<'_, '_>,
    it: &mut DsqIter<'_>,
    p: &TaskRef,
    dst: u64,
    f: EnqFlags,
    vtime_order: bool,
) -> bool {
    let slice = it.slice.take();
    let vtime = it.vtime.take();
    if f.intersects(EnqFlags::INTERNAL_MASK) {
        ctx.fail(format!("invalid enq_flags {:#x}", f.0));
        return false;
    }
    let f = if vtime_order {
        f | EnqFlags::DSQ_PRIQ
    } else {
        f
    };
    // A scheduler being ejected moves nothing more (the kernel's
    // `aborting` check: a policy looping on moves cannot hold a CPU).
    if sh.exit.pending.load(Ordering::Relaxed) {
        return false;
    }
    let _g = ctx.err_scope();
    let src = p.cpu();
    let mv = Move {
        it: &*it,
        p,
        dst,
        f,
        slice,
        vtime,
    };
    match caller {
        Caller::Dispatch(rq) if rq.cpu == src => {
            let this = rq.cpu;
            mv.locked(sh, rq, this)
        }
        Caller::Dispatch(rq) => {
            let this = rq.cpu;
            RqGuard::unlocked(rq, || mv.locked(sh, &mut sh.cpus[src].lock(), this))
        }
        Caller::Unlocked(cpu) => mv.locked(sh, &mut sh.cpus[src].lock(), cpu.unwrap_or(src)),
    }
}

/// One move's arguments.
struct Move<'m, 'a> {
    it: &'m DsqIter<'a>,
    p: &'m TaskRef,
    dst: u64,
    f: EnqFlags,
    slice: Option<u64>,
    vtime: Option<u64>,
}

impl Move<'_, '_> {
    /// Steps 2 to 5 with `srq` (the rq `p` named when the call began)
    /// locked; `this`: the CPU `DSQ_LOCAL` names. Whether it moved. `srq`
    /// is locked on entry and return (dropped inside a move to another
    /// CPU's local DSQ).
    fn locked(self, sh: &Shared, srq: &mut RqGuard<'_>, this: usize) -> bool {
        let p = self.p;
        let target = find_dsq_for_dispatch(sh, this, self.dst);
        let src = &self.it.dsq;
        let mut q = src.q.lock();
        let lost = !src.is_live()
            || p.scx.dsq.load(Ordering::Acquire) != self.it.id
            || crate::dsq::seq_before(self.it.seq, p.scx.dsq_seq.load(Ordering::Relaxed))
            || p.scx.holding_cpu.load(Ordering::Acquire) >= 0
            || p.cpu() != srq.cpu
            || p.has_flag(tflags::MIGRATING);
        if lost {
            return false;
        }
        // Only now may the task's CPUs be judged: one that left the DSQ
        // may have started running meanwhile, and so be bound to its CPU.
        let mut offline = false;
        let target = match target {
            Target::Local(d) if d != srq.cpu => match can_run_on(sh, p, d, true) {
                Ok(()) => target,
                Err(why) => {
                    offline = why == CannotRun::Offline;
                    Target::Global
                }
            },
            t => t,
        };
        if offline {
            sh.events_of(srq.cpu).dispatch_local_dsq_offline.bump();
        }
        if let Some(v) = self.vtime {
            p.set_dsq_vtime(v);
        }
        if let Some(s) = self.slice {
            p.set_slice(s);
        }
        let removed = q.remove(p);
        debug_assert!(removed, "task {} not on the DSQ it names", p.id());
        if !removed {
            return false;
        }
        src.sync_nr(&q);
        drop(q);
        p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
        crate::trace::dispatch(sh, srq, p, self.dst, self.f);
        let (p, f) = (p.clone(), self.f);
        match target {
            Target::Local(d) if d == srq.cpu => dispatch_enqueue_local(sh, srq, p, f),
            Target::Local(d) => {
                let from = srq.cpu;
                deactivate(srq, &p);
                p.set_flag(tflags::MIGRATING);
                p.scx.cpu.store(d as u32, Ordering::Release);
                RqGuard::unlocked(srq, || {
                    let mut drq = sh.cpus[d].lock();
                    activate(&mut drq, &p);
                    crate::trace::migrate_in(sh, &mut drq, &p, from);
                    p.clear_flag(tflags::MIGRATING);
                    dispatch_enqueue_local(sh, &mut drq, p, f);
                });
            }
            Target::Global => dispatch_enqueue_nonlocal(sh, &sh.global, p, f),
            Target::User(d) => dispatch_enqueue_nonlocal(sh, &d, p, f),
        }
        true
    }
}

impl<'a> Ctx<'a> {
    /// A walk over the tasks queued on user DSQ `dsq` now, in dispatch
    /// order, or reverse with [`DsqIterFlags::REV`]
    /// (`bpf_iter_scx_dsq_new`; any callback, as in the kernel). Built-in
    /// DSQs cannot be walked ([`DsqIterError::NoSuchDsq`], the kernel's
    /// `-ENOENT`).
    ///
    /// ```
    /// # use scx_rt::{Ctx, DsqIterFlags};
    /// fn dump_queue(ctx: &Ctx<'_>) -> Vec<u64> {
    ///     match ctx.dsq_iter(0, DsqIterFlags::REV) {
    ///         Ok(it) => it.map(|p| p.id()).collect(), // tail first
    ///         Err(_) => Vec::new(),
    ///     }
    /// }
    /// ```
    pub fn dsq_iter(&self, dsq: u64, flags: DsqIterFlags) -> Result<DsqIter<'a>, DsqIterError> {
        DsqIter::new(self.sh, dsq, flags)
    }

    /// Moves `p`, queued on the DSQ `it` walks since before the walk began,
    /// to DSQ `dsq` (`scx_bpf_dsq_move`), from a context that holds no rq
    /// lock: a scheduler [`timer`](crate::Scheduler::timer), `init`,
    /// `init_task` of a spawned task, `cpu_online`/`cpu_offline`
    /// (`dispatch` has its own, [`DispatchCtx::dsq_move`]). The
    /// `init_task` of a task adopted at attach runs with that task's rq
    /// lock held here, unlike the kernel's, and is refused. `DSQ_LOCAL` is the local DSQ of the CPU
    /// running the callback. Returns `false`, quietly, if `p` left that
    /// DSQ since (dequeued, consumed, moved) or is on its way to another
    /// CPU; from any other callback (they hold an rq lock) the call is a
    /// scheduler error and moves nothing, as in the kernel.
    pub fn dsq_move(
        &self,
        it: &mut DsqIter<'_>,
        p: &TaskRef,
        dsq: u64,
        enq_flags: EnqFlags,
    ) -> bool {
        self.move_unlocked(it, p, dsq, enq_flags, false)
    }

    fn move_unlocked(
        &self,
        it: &mut DsqIter<'_>,
        p: &TaskRef,
        dsq: u64,
        enq_flags: EnqFlags,
        vtime_order: bool,
    ) -> bool {
        if !self.unlocked {
            it.slice = None;
            it.vtime = None;
            self.fail(
                "dsq_move called from a callback that holds an rq lock (only dispatch and unlocked contexts may move)"
                    .to_string(),
            );
            return false;
        }
        dsq_move(
            self.sh,
            self,
            Caller::Unlocked(self.cpu()),
            it,
            p,
            dsq,
            enq_flags,
            vtime_order,
        )
    }

    /// [`dsq_move`](Self::dsq_move) into the vtime order of user DSQ `dsq`
    /// (`scx_bpf_dsq_move_vtime`), by the task's vtime or the one set with
    /// [`DsqIter::set_vtime`].
    pub fn dsq_move_vtime(
        &self,
        it: &mut DsqIter<'_>,
        p: &TaskRef,
        dsq: u64,
        enq_flags: EnqFlags,
    ) -> bool {
        self.move_unlocked(it, p, dsq, enq_flags, true)
    }
}

impl DispatchCtx<'_, '_> {
    /// Moves `p`, queued on the DSQ `it` walks since before the walk began,
    /// to DSQ `dsq` (`scx_bpf_dsq_move`): any DSQ, another CPU's local DSQ
    /// included (`DSQ_LOCAL` is this CPU's). The move happens now, not at
    /// the flush of the dispatch buffer. Returns `false`, quietly, if `p`
    /// left that DSQ since (dequeued, consumed by another CPU, moved) or
    /// is on its way to another CPU. A task that may not run on the target
    /// CPU goes to the global DSQ; moving into an idle CPU's local DSQ
    /// wakes it, and `ENQ_PREEMPT` preempts the target's task, as an
    /// insertion does.
    ///
    /// ```
    /// use scx_rt::{DispatchCtx, DsqIterFlags, EnqFlags, DSQ_LOCAL};
    /// // Run the heaviest task queued on DSQ 0 first.
    /// fn dispatch_heaviest(ctx: &mut DispatchCtx<'_, '_>) -> bool {
    ///     let Ok(mut it) = ctx.dsq_iter(0, DsqIterFlags::empty()) else { return false };
    ///     let Some(best) = it.by_ref().max_by_key(|p| p.weight()) else { return false };
    ///     it.set_slice(5_000_000); // for this move only
    ///     ctx.dsq_move(&mut it, &best, DSQ_LOCAL, EnqFlags::empty())
    /// }
    /// ```
    pub fn dsq_move(
        &mut self,
        it: &mut DsqIter<'_>,
        p: &TaskRef,
        dsq: u64,
        enq_flags: EnqFlags,
    ) -> bool {
        dsq_move(
            self.ctx.sh,
            &self.ctx,
            Caller::Dispatch(self.rq),
            it,
            p,
            dsq,
            enq_flags,
            false,
        )
    }

    /// [`dsq_move`](Self::dsq_move) into the vtime order of user DSQ `dsq`
    /// (`scx_bpf_dsq_move_vtime`), by the task's vtime or the one set with
    /// [`DsqIter::set_vtime`].
    pub fn dsq_move_vtime(
        &mut self,
        it: &mut DsqIter<'_>,
        p: &TaskRef,
        dsq: u64,
        enq_flags: EnqFlags,
    ) -> bool {
        dsq_move(
            self.ctx.sh,
            &self.ctx,
            Caller::Dispatch(self.rq),
            it,
            p,
            dsq,
            enq_flags,
            true,
        )
    }
}
