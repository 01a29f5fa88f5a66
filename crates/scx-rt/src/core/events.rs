//! Event counters: the kernel's `scx_bpf_events()` set (Linux 6.15 on,
//! `struct scx_event_stats`), per CPU, summed on read.
//!
//! They count the moments the core overrode or completed what the
//! scheduler asked for, which a scheduler author cannot see from inside
//! the callbacks: a `select_cpu` choice replaced, a dispatch to an offline
//! CPU redirected, a task kept running because nothing else was there, a
//! slice the core filled in, and bypass mode. A steadily rising counter
//! usually points at a policy bug.
//!
//! # The counters
//!
//! | field of [`Events`] | kernel name | counts one when |
//! |---|---|---|
//! | `select_cpu_fallback` | `SCX_EV_SELECT_CPU_FALLBACK` | a wake-up's enqueue lands on a CPU other than the one chosen for it (by `select_cpu`, or by the default selection in bypass): the choice was not a CPU of the runtime, not allowed for the task, or offline, and the core picked a fallback CPU |
//! | `dispatch_local_dsq_offline` | `SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE` | a task dispatched or moved (`dsq_insert`, `dsq_move`) to another CPU's local DSQ went to the global DSQ instead because that CPU is offline |
//! | `dispatch_keep_last` | `SCX_EV_DISPATCH_KEEP_LAST` | balance found nothing else to run and kept the previous task running (`OpsFlags::ENQ_LAST` not set, or bypassing) |
//! | `refill_slice_dfl` | `SCX_EV_REFILL_SLICE_DFL` | the core set a task's slice to the default (`Builder::slice`): a task picked, or kept, with a zero slice; an enqueue the core placed itself (an offline CPU, bypass); a wake-up placed by the default `select_cpu` on an idle CPU |
//! | `bypass_duration` | `SCX_EV_BYPASS_DURATION` | (nanoseconds) bypass mode ended: the time it lasted is added |
//! | `bypass_dispatch` | `SCX_EV_BYPASS_DISPATCH` | bypass placed a task in the global FIFO instead of asking `enqueue` |
//! | `bypass_activate` | `SCX_EV_BYPASS_ACTIVATE` | bypass mode began (depth 0 to 1) |
//!
//! Not kept, because they cannot happen in scx-rt:
//!
//! - `SCX_EV_ENQ_SKIP_EXITING`: counts exiting tasks put on a local DSQ
//!   without `enqueue`. A kernel task runs its exit path (`do_exit`) as a
//!   task that can still be preempted and enqueued; a green task's body
//!   returning is its last switch, and it is never enqueued again
//!   (`OpsFlags::ENQ_EXITING` changes nothing).
//! - `SCX_EV_ENQ_SKIP_MIGRATION_DISABLED`: counts migration-disabled tasks
//!   put on their local DSQ without `enqueue`. scx-rt's migration-disabled
//!   tasks are the tasks bound to their CPU after their first run (crate
//!   docs); that is every started task unless `Builder::allow_migration`,
//!   so they go through `enqueue` like the others (`core::dispatch::can_run_on`
//!   says how their verdicts are kept on their CPU), as if the kernel's
//!   `SCX_OPS_ENQ_MIGRATION_DISABLED` were always set.
//! - `SCX_EV_INSERT_NOT_OWNED`, `SCX_EV_SUB_BYPASS_DISPATCH`: about
//!   sub-schedulers (a scheduler inserting a task another one owns; tasks of
//!   a bypassing descendant). A runtime has one scheduler at a time; a
//!   replaced scheduler's late insertions are stale claims (their `qseq` no
//!   longer matches) and are dropped silently, as the kernel drops them.
//!
//! # Who writes, who reads
//!
//! Each CPU has one [`CpuEvents`] on its own cache line (`RqShared::events`).
//! A counter of CPU `c` changes only while `c`'s rq lock is held: by `c`'s
//! worker in its scheduling step, or by whoever else holds that lock (a
//! wake-up's enqueue on `c`, a dispatch to `c`, a bypass transition, a
//! waker whose task falls back to `c`, which takes the lock for the count
//! alone: a rare event, counted without a check on every wake-up). The
//! lock orders the writers, so a count is a load and a store (no
//! read-modify-write, no contended line: the counters of a CPU are written
//! where its rq is written anyway). Which CPU counts an event:
//!
//! - `select_cpu_fallback`: the fallback CPU, whose rq the task is
//!   enqueued on.
//! - `dispatch_local_dsq_offline`: the dispatching CPU (a `dsq_move`: the
//!   CPU whose rq the moved task was on).
//! - `dispatch_keep_last`, `refill_slice_dfl`, `bypass_dispatch`: the CPU
//!   whose rq the decision was made on.
//! - `bypass_activate`, `bypass_duration`: the CPU that entered or left
//!   bypass, or CPU 0 when that was a thread that is no worker.
//!
//! Readers take no lock: [`Runtime::stats`](crate::Runtime::stats),
//! [`Ctx::events`] (the kernel's `scx_bpf_events()`, from any callback) and
//! the state dump load each counter and add them up over the CPUs, at a
//! cost of O(CPUs) per read. The sum is no snapshot: CPUs count on while it
//! is read, as with the kernel's per-CPU sums.
//!
//! `Runtime::stats` reports the counts since the runtime started;
//! `Ctx::events` and the dump report those of the attached scheduler, since
//! it was attached (the kernel keeps the counters per scheduler instance):
//! the totals minus a baseline taken when the scheduler was installed.
//!
//! The counters are std atomics in every build, loom's included: no
//! protocol reads them, and a loom model would only multiply its
//! interleavings by their loads and stores.

use crate::loom::{Ordering, StatAtomicU64};
use crate::ops::{Ctx, Shared};

/// Event counters (the kernel's `struct scx_event_stats`); the module
/// docs say when each counts. Returned by [`Ctx::events`] (the attached
/// scheduler's) and in [`Stats`](crate::Stats) and
/// [`CpuStats`](crate::CpuStats) (the runtime's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Events {
    /// `SCX_EV_SELECT_CPU_FALLBACK`: wake-ups enqueued on a CPU other than
    /// the one chosen for them (not a CPU of the runtime, not allowed for
    /// the task, or offline).
    pub select_cpu_fallback: u64,
    /// `SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE`: dispatches and moves to another
    /// CPU's local DSQ that went to the global DSQ because that CPU was
    /// offline.
    pub dispatch_local_dsq_offline: u64,
    /// `SCX_EV_DISPATCH_KEEP_LAST`: times a task kept running because
    /// balance found no other task.
    pub dispatch_keep_last: u64,
    /// `SCX_EV_REFILL_SLICE_DFL`: times the core set a task's slice to the
    /// default slice.
    pub refill_slice_dfl: u64,
    /// `SCX_EV_BYPASS_DURATION`: nanoseconds spent in bypass mode, added
    /// when each bypass period ends.
    pub bypass_duration: u64,
    /// `SCX_EV_BYPASS_DISPATCH`: tasks bypass placed in the global FIFO
    /// without asking the scheduler.
    pub bypass_dispatch: u64,
    /// `SCX_EV_BYPASS_ACTIVATE`: times bypass mode began.
    pub bypass_activate: u64,
}

impl Events {
    /// Every counter with its kernel name (`SCX_EV_*`), in the kernel's
    /// order.
    pub fn kernel_names(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("SCX_EV_SELECT_CPU_FALLBACK", self.select_cpu_fallback),
            (
                "SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE",
                self.dispatch_local_dsq_offline,
            ),
            ("SCX_EV_DISPATCH_KEEP_LAST", self.dispatch_keep_last),
            ("SCX_EV_REFILL_SLICE_DFL", self.refill_slice_dfl),
            ("SCX_EV_BYPASS_DURATION", self.bypass_duration),
            ("SCX_EV_BYPASS_DISPATCH", self.bypass_dispatch),
            ("SCX_EV_BYPASS_ACTIVATE", self.bypass_activate),
        ]
        .into_iter()
    }

    /// Counter by counter, `f(self, other)`.
    fn zip(self, o: Events, f: impl Fn(u64, u64) -> u64) -> Events {
        Events {
            select_cpu_fallback: f(self.select_cpu_fallback, o.select_cpu_fallback),
            dispatch_local_dsq_offline: f(
                self.dispatch_local_dsq_offline,
                o.dispatch_local_dsq_offline,
            ),
            dispatch_keep_last: f(self.dispatch_keep_last, o.dispatch_keep_last),
            refill_slice_dfl: f(self.refill_slice_dfl, o.refill_slice_dfl),
            bypass_duration: f(self.bypass_duration, o.bypass_duration),
            bypass_dispatch: f(self.bypass_dispatch, o.bypass_dispatch),
            bypass_activate: f(self.bypass_activate, o.bypass_activate),
        }
    }

    /// The sum of two sets of counts (of two CPUs).
    pub(crate) fn plus(self, o: Events) -> Events {
        self.zip(o, u64::wrapping_add)
    }

    /// The counts since `earlier` was read from the same source, counter
    /// by counter (saturating: counters only grow).
    pub fn since(self, earlier: Events) -> Events {
        self.zip(earlier, u64::saturating_sub)
    }
}

/// One counter of one CPU. It changes only under that CPU's rq lock
/// (module docs), so counting is a load and a store.
#[derive(Default)]
pub(crate) struct Counter(StatAtomicU64);

impl Counter {
    /// Counts one event. The caller holds the rq lock of the CPU whose
    /// counter this is.
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Adds `n` (same contract as `bump`).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The count (any thread, no lock).
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One CPU's event counters (`RqShared::events`), written under its rq
/// lock.
#[derive(Default)]
pub(crate) struct CpuEvents {
    pub select_cpu_fallback: Counter,
    pub dispatch_local_dsq_offline: Counter,
    pub dispatch_keep_last: Counter,
    pub refill_slice_dfl: Counter,
    pub bypass_duration: Counter,
    pub bypass_dispatch: Counter,
    pub bypass_activate: Counter,
}

impl CpuEvents {
    /// The counts (no lock; module docs).
    pub(crate) fn read(&self) -> Events {
        Events {
            select_cpu_fallback: self.select_cpu_fallback.get(),
            dispatch_local_dsq_offline: self.dispatch_local_dsq_offline.get(),
            dispatch_keep_last: self.dispatch_keep_last.get(),
            refill_slice_dfl: self.refill_slice_dfl.get(),
            bypass_duration: self.bypass_duration.get(),
            bypass_dispatch: self.bypass_dispatch.get(),
            bypass_activate: self.bypass_activate.get(),
        }
    }
}

impl Shared {
    /// CPU `cpu`'s counters; count only with its rq lock held.
    #[inline]
    pub(crate) fn events_of(&self, cpu: usize) -> &CpuEvents {
        &self.cpus[cpu].shared.events
    }

    /// The runtime's counts since it started, summed over the CPUs.
    pub(crate) fn events_total(&self) -> Events {
        self.cpus
            .iter()
            .map(|c| c.shared.events.read())
            .fold(Events::default(), Events::plus)
    }

    /// The counts of the scheduler the calling thread works for (the one
    /// whose callback asks; else the attached one), since it was
    /// installed. Reads the slots under their lock rather than through
    /// `Shared::slot`, which would make the thread work for the current
    /// scheduler: a callback of the scheduler being replaced would then
    /// have its later errors charged to its successor.
    pub(crate) fn events_of_scheduler(&self) -> Events {
        let base = {
            let slots = self.slots.read();
            match &slots.prev {
                Some(p) if super::slot::working_for() == (self.rt_id, p.gen) => p.events_base,
                _ => slots.cur.events_base,
            }
        };
        self.events_total().since(base)
    }
}

impl Ctx<'_> {
    /// The event counters of this scheduler since it was attached, summed
    /// over the CPUs (`scx_bpf_events`; the `core::events` module docs say
    /// when each counts). Callable from any callback; it takes no lock and
    /// reads every CPU's counters, so its cost grows with the CPU count.
    pub fn events(&self) -> Events {
        self.sh.events_of_scheduler()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_counter_by_counter() {
        let c = CpuEvents::default();
        c.refill_slice_dfl.add(5);
        c.bypass_activate.bump();
        let base = c.read();
        c.refill_slice_dfl.bump();
        c.dispatch_keep_last.add(3);
        let d = c.read().since(base);
        assert_eq!(d.refill_slice_dfl, 1);
        assert_eq!(d.dispatch_keep_last, 3);
        assert_eq!(d.bypass_activate, 0);
        assert_eq!(c.read().bypass_activate, 1);
    }

    #[test]
    fn kernel_names_name_every_counter_once() {
        let e = Events {
            select_cpu_fallback: 1,
            dispatch_local_dsq_offline: 2,
            dispatch_keep_last: 3,
            refill_slice_dfl: 4,
            bypass_duration: 5,
            bypass_dispatch: 6,
            bypass_activate: 7,
        };
        let names: Vec<_> = e.kernel_names().collect();
        let values: Vec<u64> = names.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6, 7]);
        assert!(names.iter().all(|(n, _)| n.starts_with("SCX_EV_")));
    }
}
