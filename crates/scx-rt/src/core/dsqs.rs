//! DSQ plumbing of the core: resolving a verdict's DSQ id
//! (`find_dsq_for_dispatch`; the user-DSQ table is `core::user_dsqs`), inserting into local and non-local DSQs
//! with their side effects (SPEC.md §2.4), and the rq's runnable-set
//! bookkeeping. Nothing here calls the scheduler.

use crate::dsq::{Dsq, InsertError};
use crate::flags::{dsq_id, EnqFlags, DSQ_INVALID};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::{rqflags, RqSynced};
use crate::task::{opss, tflags, TaskRef};

use crate::core::clock::now;
use crate::core::user_dsqs::UserDsq;
use crate::ops::CreateDsqError;

/// The runtime's user DSQs (the table is `core::user_dsqs`; here what a
/// change of it does to tasks and errors).
impl Shared {
    /// The live user DSQ `id`, if it exists.
    #[inline]
    pub(crate) fn find_user_dsq(&self, id: u64) -> Option<UserDsq<'_>> {
        self.user_dsqs.find(self.rt_id, id)
    }

    /// The live user DSQ `id` if `id` is a dense id (any other id: `None`).
    #[inline]
    pub(crate) fn dense_user_dsq(&self, id: u64) -> Option<&Dsq> {
        self.user_dsqs.dense(id)
    }

    /// Number of tasks queued on user DSQ `id` (lock-free), if it exists.
    #[inline]
    pub(crate) fn user_dsq_nr_queued(&self, id: u64) -> Option<usize> {
        self.user_dsqs.nr_queued(self.rt_id, id)
    }

    pub(crate) fn create_dsq(&self, id: u64) -> Result<(), CreateDsqError> {
        self.user_dsqs.create(id)
    }

    /// `scx_bpf_destroy_dsq`: destroying a DSQ that holds tasks is an
    /// error of the scheduler, and leaves it intact.
    pub(crate) fn destroy_dsq(&self, id: u64) {
        if self.user_dsqs.destroy(id).is_err() {
            self.ops_error(format!("attempting to destroy in-use dsq {id:#x}"));
        }
    }

    /// Destroys every user DSQ when the scheduler that made them leaves
    /// (ejected, detached, or the built-in default replaced by an attach),
    /// in bypass: a task a racing dispatch put there moves to the global
    /// DSQ.
    pub(crate) fn destroy_user_dsqs(&self) {
        for p in self.user_dsqs.destroy_all(self.rt_id) {
            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
            dispatch_enqueue_nonlocal(self, &self.global, p, EnqFlags::empty());
        }
    }

    /// Ids of every live user DSQ.
    pub(crate) fn user_dsq_ids(&self) -> Vec<u64> {
        self.user_dsqs.ids()
    }
}

/// Where a dispatch lands.
pub(crate) enum Target<'a> {
    Local(usize),
    Global,
    User(UserDsq<'a>),
}

/// The task joins this rq's runnable set. Inline: every enqueue calls it,
/// and out of line it cost a call and a spill per wake-up.
#[inline]
pub(crate) fn activate(rq: &mut RqSynced, p: &TaskRef) {
    if p.has_flag(tflags::RESET_RUNNABLE_AT) {
        // Inside the step (its wake-list drain): the step's reading.
        let t = if rq.clock != 0 { rq.clock } else { now() };
        p.scx.runnable_at.store(t, Ordering::Relaxed);
        p.clear_flag(tflags::RESET_RUNNABLE_AT);
    }
    rq.runnable.add(p);
    rq.nr_running += 1;
}

/// Whether `p` waits on `rq` to run: it belongs to this rq, is runnable
/// and is not running (it is on the rq's runnable list, which the running
/// task leaves at `set_next_task` and a task in flight between two rqs is
/// on neither's). Every pass that walks a snapshot of the runnable list and
/// drops the rq lock between tasks (bypass, hotplug) re-checks a task with
/// this before moving it: in the window the task may have been picked and
/// started, blocked, been consumed by another CPU, or be on its way to
/// this rq. rq locked.
pub(crate) fn waits_on_rq(rq: &RqSynced, p: &TaskRef) -> bool {
    p.cpu() == rq.cpu
        && p.is_queued()
        && !p.has_flag(tflags::MIGRATING)
        && p.scx.on_runnable.load(Ordering::Relaxed)
        && rq.curr.as_ref().is_none_or(|c| c.id() != p.id())
}

/// The task leaves this rq's runnable set (it stays QUEUED).
pub(crate) fn deactivate(rq: &mut RqSynced, p: &TaskRef) {
    rq.runnable.remove(p);
    rq.nr_running -= 1;
}

/// Publishes the local DSQ's length (the lock-free `dsq_nr_queued`).
#[inline]
pub(crate) fn sync_local_nr(sh: &Shared, rq: &RqSynced) {
    sh.cpus[rq.cpu]
        .shared
        .owner
        .local_nr
        .store(rq.local.len(), Ordering::Relaxed);
}

/// Resolves a DSQ id relative to the CPU doing the operation
/// (`find_dsq_for_dispatch`). Errors fall back to the global DSQ.
pub(crate) fn find_dsq_for_dispatch(sh: &Shared, cpu: usize, id: u64) -> Target<'_> {
    if id == dsq_id::LOCAL {
        return Target::Local(cpu);
    }
    if id & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
        let c = (id & dsq_id::LOCAL_CPU_MASK) as usize;
        if c >= sh.nr_cpus {
            sh.ops_error(format!("invalid CPU {c} in SCX_DSQ_LOCAL_ON verdict"));
            return Target::Global;
        }
        return Target::Local(c);
    }
    if id == dsq_id::GLOBAL {
        return Target::Global;
    }
    if id & dsq_id::FLAG_BUILTIN != 0 {
        sh.ops_error(format!("invalid DSQ ID {id:#x}"));
        return Target::Global;
    }
    match sh.find_user_dsq(id) {
        Some(d) => Target::User(d),
        None => {
            sh.ops_error(format!("non-existent DSQ {id:#x}"));
            Target::Global
        }
    }
}

/// Links `p` into a non-local DSQ (the DSQ lock nests inside whatever rq lock
/// the caller holds). An insertion the DSQ refuses is an ops error, and the
/// task goes to the global DSQ instead (SPEC.md §2.4).
pub(crate) fn dispatch_enqueue_nonlocal(sh: &Shared, dsq: &Dsq, p: TaskRef, mut f: EnqFlags) {
    let is_global = std::ptr::eq(dsq, &sh.global);
    if f.contains(EnqFlags::DSQ_PRIQ) && is_global {
        sh.ops_error("cannot use vtime ordering for built-in DSQs".to_string());
        f = f.without(EnqFlags::DSQ_PRIQ);
    }
    if let Err((why, p)) = link_nonlocal(sh, dsq, is_global, p, f) {
        refused(sh, dsq, why, p, f);
    }
}

/// Why a non-local DSQ refused a task.
pub(crate) enum Refused {
    /// The DSQ was destroyed after the caller looked it up.
    Destroyed,
    /// The insertion would mix FIFO and vtime order.
    Order(InsertError),
}

/// The insertion itself: links `p` into `dsq` (a user DSQ unless
/// `is_global`; vtime order only into a user DSQ) with the effects of
/// SPEC.md §2.4, or gives the task back with the reason the DSQ refused it,
/// for the caller to report with [`refused`]. The callers on the hot path
/// name the callback in an error only once one happened.
#[inline(always)]
pub(crate) fn link_nonlocal(
    sh: &Shared,
    dsq: &Dsq,
    is_global: bool,
    p: TaskRef,
    f: EnqFlags,
) -> Result<(), (Refused, TaskRef)> {
    let mut q = dsq.q.lock();
    if !is_global && !dsq.is_live() {
        return Err((Refused::Destroyed, p));
    }
    p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
    p.scx.ddsp_enq_flags.store(0, Ordering::Relaxed);
    let bound = p.single_cpu();
    let r = if f.contains(EnqFlags::DSQ_PRIQ) {
        q.push_vtime(p)
    } else {
        q.push_fifo(p, f.intersects(EnqFlags::HEAD | EnqFlags::PREEMPT))
    };
    match r {
        Ok(p) => {
            // Released only once linked, under the DSQ lock: a dequeue that
            // sees NONE finds the task on the DSQ (SPEC.md §3.4).
            if f.contains(EnqFlags::CLEAR_OPSS) {
                p.scx.ops_state.store(opss::NONE, Ordering::Release);
            }
        }
        Err((e, p)) => return Err((Refused::Order(e), p)),
    }
    dsq.sync_nr(&q);
    drop(q);
    if let Some(c) = bound {
        // A task that may run on one CPU only (bound after its first run,
        // the runtime's migration rule) is consumed from a shared DSQ by
        // that CPU alone, which may be idle (an offline CPU also sleeps
        // until told): tell it. The kernel needs no such step; the binding
        // is userspace's. The ring may come from under the dispatcher's rq
        // lock (the lock table's one exception to rule 5: rare, and the
        // woken CPU needs no lock the ringer holds).
        if crate::core::current::cpu() != Some(c) {
            sh.cpus[c].resched();
        }
    }
    Ok(())
}

/// Reports why `dsq` refused `p` (an ops error) and inserts the task into
/// the global DSQ instead.
#[cold]
pub(crate) fn refused(sh: &Shared, dsq: &Dsq, why: Refused, p: TaskRef, f: EnqFlags) {
    match why {
        Refused::Destroyed => {
            sh.ops_error(format!(
                "attempting to dispatch to a destroyed dsq (task {})",
                p.id()
            ));
            dispatch_enqueue_nonlocal(sh, &sh.global, p, f);
        }
        Refused::Order(e) => {
            let id = dsq.id.load(Ordering::Relaxed);
            sh.ops_error(match e {
                InsertError::PriqIntoFifo => {
                    format!("DSQ {id:#x} already had FIFO-enqueued tasks")
                }
                InsertError::FifoIntoPriq => {
                    format!("DSQ {id:#x} already had PRIQ-enqueued tasks")
                }
            });
            dispatch_enqueue_nonlocal(sh, &sh.global, p, f.without(EnqFlags::DSQ_PRIQ));
        }
    }
}

/// Links `p` into `rq`'s local DSQ and applies the post-insert rules:
/// `PREEMPT` zeroes the current task's slice and reschedules; an idle target
/// is rescheduled; a busy one is not (it runs until its slice ends).
/// rq locked on entry and return (the doorbell, if any, rings when it is
/// released); `p` must be associated with this rq.
pub(crate) fn dispatch_enqueue_local(sh: &Shared, rq: &mut RqSynced, p: TaskRef, f: EnqFlags) {
    dispatch_enqueue_local_inline(sh, rq, p, f)
}

/// [`dispatch_enqueue_local`] inlined into the enqueue path's common
/// verdict (`core::enqueue`): one call less per switch.
#[inline(always)]
pub(crate) fn dispatch_enqueue_local_inline(
    sh: &Shared,
    rq: &mut RqSynced,
    p: TaskRef,
    mut f: EnqFlags,
) {
    if f.contains(EnqFlags::DSQ_PRIQ) {
        sh.ops_error("cannot use vtime ordering for built-in DSQs".to_string());
        f = f.without(EnqFlags::DSQ_PRIQ);
    }
    debug_assert_eq!(p.cpu(), rq.cpu, "local insert of a task of another rq");
    let head = f.intersects(EnqFlags::HEAD | EnqFlags::PREEMPT);
    if p.scx.ddsp_dsq_id.load(Ordering::Relaxed) != DSQ_INVALID {
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
    }
    if p.scx.ddsp_enq_flags.load(Ordering::Relaxed) != 0 {
        p.scx.ddsp_enq_flags.store(0, Ordering::Relaxed);
    }
    if f.contains(EnqFlags::CLEAR_OPSS) {
        p.scx.ops_state.store(opss::NONE, Ordering::Release);
    }
    let preempt =
        f.contains(EnqFlags::PREEMPT) && rq.curr.as_ref().is_some_and(|c| c.id() != p.id());
    rq.local.push(p, head);
    let cpu = &sh.cpus[rq.cpu];
    cpu.shared
        .owner
        .local_nr
        .store(rq.local.len(), Ordering::Relaxed);
    if preempt {
        if let Some(c) = &rq.curr {
            c.set_slice(0);
        }
        rq.stats.preemptions += 1;
        crate::trace::enq_preempt(sh, rq);
        cpu.resched_locked(rq);
    } else if rq.curr.is_none() && !rq.has(rqflags::IN_BALANCE) && !rq.picking {
        cpu.resched_locked(rq);
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod user_dsq_tests {
    use super::*;
    use crate::flags::EnqFlags;
    use crate::ops::CreateDsqError;
    use crate::task::Task;
    use std::sync::Arc;

    fn core() -> Shared {
        Shared::new(
            2,
            vec![None; 2],
            crate::core::slot::new_slot(1, Arc::new(crate::schedulers::Simple::fifo())),
            crate::core::shared::Config {
                slice_dfl: crate::consts::SLICE_DFL,
                idle_poll_ns: 0,
                allow_migration: true,
                record_balance: false,
                slice_timer: Default::default(),
                poll_below: crate::SliceTimer::default().poll_below(),
            },
            crate::consts::DEFAULT_STACK_SIZE,
        )
    }

    #[test]
    fn create_destroy_and_create_again_dense_and_sparse() {
        let sh = core();
        let sparse = sh.user_dsqs.dense_len() + 7;
        for id in [3, sparse] {
            assert!(sh.find_user_dsq(id).is_none());
            assert_eq!(sh.user_dsq_nr_queued(id), None);
            sh.create_dsq(id).unwrap();
            assert!(matches!(
                sh.create_dsq(id),
                Err(CreateDsqError::Exists { id: i }) if i == id
            ));
            assert_eq!(sh.user_dsq_nr_queued(id), Some(0));
            assert_eq!(sh.dense_user_dsq(id).is_some(), id == 3);
            assert_eq!(sh.user_dsq_ids(), vec![id]);
            // A lookup made before the destroy: its insertion is refused.
            let stale = sh.find_user_dsq(id).unwrap();
            sh.destroy_dsq(id);
            sh.destroy_dsq(id); // ignored
            assert!(sh.find_user_dsq(id).is_none());
            assert_eq!(sh.user_dsq_nr_queued(id), None);
            assert!(sh.user_dsq_ids().is_empty());
            let r = link_nonlocal(&sh, &stale, false, Task::new_token(1), EnqFlags::empty());
            assert!(matches!(r, Err((Refused::Destroyed, _))));
            drop(stale);
            // The id can be created again, empty and live.
            sh.create_dsq(id).unwrap();
            let d = sh.find_user_dsq(id).unwrap();
            assert!(d.is_live() && d.nr_queued() == 0);
            link_nonlocal(&sh, &d, false, Task::new_token(2), EnqFlags::empty())
                .unwrap_or_else(|_| panic!("refused"));
            assert_eq!(sh.user_dsq_nr_queued(id), Some(1));
            sh.destroy_user_dsqs();
            assert!(sh.find_user_dsq(id).is_none());
            assert_eq!(sh.global.nr_queued(), 1, "the left task moved to global");
            sh.global.q.lock().drain();
            sh.global.nr.store(0, Ordering::Relaxed);
        }
    }
}
