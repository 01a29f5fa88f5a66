//! Scheduling traces: per-CPU rings of scheduling events, recorded when
//! [`Builder::trace`](crate::Builder::trace) turns them on and written as
//! a Chrome trace-event JSON file that `ui.perfetto.dev` and
//! `chrome://tracing` open.
//!
//! # What is recorded
//!
//! | event | recorded where (the rq lock held) |
//! |---|---|
//! | enqueue | `do_enqueue_task`, once `ops.enqueue` returned (a wake-up, a yield, an expired slice; not the paths that skip the scheduler: a `select_cpu` verdict, bypass, an offline CPU) |
//! | dispatch | a verdict carried out: direct dispatch from `select_cpu` or `enqueue`, `finish_dispatch` (from `dispatch`), `dsq_move` |
//! | switch | the end of the scheduling step's pick: prev (and why it stopped) → next |
//! | kick | the kick step (`kick_one_cpu*`), under the target's lock: one record, both ends (sender, receiver) |
//! | preempt | a running task's slice zeroed by a `PREEMPT` kick or an `ENQ_PREEMPT` insertion |
//! | slice expired | the step of a task whose slice timer fired |
//! | block / wake | the step that takes a blocking task off its rq / `enqueue_task` of a wake-up or a spawn (`IN_WAKEUP`) |
//! | migrate | a task arriving on another CPU's local DSQ (dispatch or consume hand-off, `dsq_move`), or leaving an offline CPU |
//!
//! Each record has a timestamp, the CPU (its ring), the event kind, the
//! task id(s) and small arguments (flags, DSQ ids, CPUs); the public form
//! is [`TraceEvent`].
//!
//! # The protocol: who writes a ring, who reads it
//!
//! 1. CPU `c`'s ring is a field of its `RqSynced` (`rq.trace`), so it is
//!    reachable only through `&mut RqSynced`, i.e. with rq `c`'s lock
//!    held: the compiler checks the locking, and the ring is plain data
//!    (no atomics, no unsafe).
//! 2. **Writers** are the code that holds rq `c`'s lock when the event
//!    happens: almost always `c`'s own worker in its scheduling step, and
//!    otherwise whoever acts on `c`'s rq under its lock — a waker
//!    enqueueing a task there, a kicker delivering a kick, a dispatcher
//!    landing a task in `c`'s local DSQ. A ring written only by its owner
//!    thread would lose exactly those events (they happen on other
//!    threads), or need a second, lock-free protocol; the rq lock is
//!    already held at every recording point, so the ring costs no
//!    synchronization of its own. The record's CPU is `c`: the rq the
//!    event happened on (the kicker and a migration's source are
//!    arguments).
//! 3. **Readers** ([`Runtime::trace_snapshot`](crate::Runtime::trace_snapshot),
//!    [`Runtime::write_trace`](crate::Runtime::write_trace), the write at
//!    shutdown) take each rq lock in turn — one at a time, holding nothing
//!    else, as the lock table allows — and copy the ring. The CPU waits
//!    for that copy (a memcpy of at most the ring's capacity) if it needs
//!    its lock meanwhile. After shutdown the workers are gone and the
//!    locks are free.
//! 4. **Time**: a record written by the owner's step takes the rq clock
//!    (`RqOwner::clock`, read once at the step's start, after the lock
//!    was taken); any other writer reads the scheduling clock
//!    (`core::clock`). The lock orders the writers and each reads its
//!    time after taking the lock; two threads' readings may be out of
//!    order by up to about 1.5 µs (`scx_rt_sys::clock`: the TSC read is
//!    not fenced), so the ring
//!    stamps a record no earlier than the one before it (`Ring::push`):
//!    the times in one ring never go down; across rings they are
//!    readings of one clock.
//! 5. **Off** (the default): every `rq.trace` is `None`. Each recording
//!    point is one `if let Some(ring) = rq.trace` on the locked rq, whose
//!    line the step has in cache anyway: one load and one predictable
//!    branch; the recording itself is `#[cold]` and out of line.
//! 6. **Full**: rings never grow; [`TraceFull`] chooses whether the oldest
//!    record is overwritten (the default) or the newest dropped, and every
//!    lost record is counted ([`TraceSnapshot::lost`]).
//!
//! Nothing is recorded outside an rq lock: a kick dropped at the call side
//! (from a bypassing CPU) or sent to an offline CPU leaves no record.

pub(crate) mod ring;

#[cfg(not(scx_rt_loom))]
mod chrome;
#[cfg(not(scx_rt_loom))]
mod event;
#[cfg(not(scx_rt_loom))]
mod snapshot;

#[cfg(not(scx_rt_loom))]
pub use event::{PreemptCause, StopReason, TraceEvent, TraceEventKind};
#[cfg(not(scx_rt_loom))]
pub(crate) use snapshot::at_shutdown;
#[cfg(not(scx_rt_loom))]
pub use snapshot::{TraceError, TraceSnapshot};

use std::path::PathBuf;

use crate::core::step::Switch;
use crate::flags::{EnqFlags, KickFlags};
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::rq::RqSynced;
use crate::task::TaskRef;

use ring::{Kind, Record, Ring};

/// What a full trace ring does with the next event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceFull {
    /// Overwrite the oldest event (a flight recorder: the trace ends with
    /// the latest events). The default.
    #[default]
    OverwriteOldest,
    /// Drop the new event (the trace keeps the start of the run).
    DropNewest,
}

/// Tracing configuration for [`Builder::trace`](crate::Builder::trace).
///
/// ```
/// use scx_rt::{Runtime, TraceConfig};
/// let path = std::env::temp_dir().join(format!("scx-rt-doc-{}.json", std::process::id()));
/// let rt = Runtime::builder()
///     .nr_cpus(1)
///     .trace(TraceConfig::new().capacity_per_cpu(4096).write_at_shutdown(&path))
///     .build()
///     .unwrap();
/// rt.block_on(|| scx_rt::yield_now());
/// let snap = rt.trace_snapshot().unwrap();
/// assert!(!snap.events.is_empty());
/// rt.shutdown(); // writes `path`
/// assert!(std::fs::metadata(&path).unwrap().len() > 0);
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    pub(crate) capacity_per_cpu: usize,
    pub(crate) when_full: TraceFull,
    pub(crate) path: Option<PathBuf>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            capacity_per_cpu: crate::consts::DEFAULT_TRACE_CAPACITY,
            when_full: TraceFull::default(),
            path: None,
        }
    }
}

impl TraceConfig {
    /// Tracing on, with the defaults: [`DEFAULT_TRACE_CAPACITY`] events
    /// per CPU (40 bytes each), the oldest overwritten when full, and no
    /// file written at shutdown.
    ///
    /// [`DEFAULT_TRACE_CAPACITY`]: crate::consts::DEFAULT_TRACE_CAPACITY
    pub fn new() -> Self {
        Self::default()
    }

    /// Events each CPU's ring holds (reserved at build). `build` refuses
    /// 0 and more than [`MAX_TRACE_CAPACITY`] with
    /// [`BuildError::TraceCapacity`](crate::BuildError::TraceCapacity).
    ///
    /// [`MAX_TRACE_CAPACITY`]: crate::consts::MAX_TRACE_CAPACITY
    pub fn capacity_per_cpu(mut self, n: usize) -> Self {
        self.capacity_per_cpu = n;
        self
    }

    /// What a full ring does ([`TraceFull`]).
    pub fn when_full(mut self, f: TraceFull) -> Self {
        self.when_full = f;
        self
    }

    /// Write the trace (Chrome trace-event JSON) to `path` when the
    /// runtime shuts down ([`Runtime::shutdown`](crate::Runtime::shutdown)
    /// or drop), after its workers stopped. A failure to write is printed
    /// to stderr; [`Runtime::write_trace`](crate::Runtime::write_trace)
    /// returns it instead.
    pub fn write_at_shutdown(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// Gives every CPU of `sh` its ring (at build, before the workers start).
#[cfg(not(scx_rt_loom))]
pub(crate) fn install(sh: &Shared, cfg: TraceConfig) {
    for c in sh.cpus.iter() {
        c.rq.lock().trace = Some(Box::new(Ring::new(cfg.capacity_per_cpu, cfg.when_full)));
    }
    let _ = sh.trace.set(cfg);
}

// ---------------------------------------------------------------------
// Recording points. Each is `#[inline(always)]`: with tracing off it is
// one load and one branch at the call site; its arguments are computed
// only inside the branch.
// ---------------------------------------------------------------------

/// The step found `p` stopped for `why` (remembered for the switch
/// record). rq of the stepping CPU locked.
#[inline(always)]
pub(crate) fn stop(rq: &mut RqSynced, p: &TaskRef, why: Switch) {
    if rq.trace.is_some() {
        stopped(rq, p, why);
    }
}

/// The step's pick is done: prev (from `stop`) → `next`.
#[inline(always)]
pub(crate) fn switch(sh: &Shared, rq: &mut RqSynced, next: Option<&TaskRef>) {
    if rq.trace.is_some() {
        switched(sh, rq, next);
    }
}

/// `ops.enqueue` was called for `p` with `f`; `dispatched`: it gave a
/// direct-dispatch verdict (recorded too, from the task's `ddsp_*`
/// fields, which `direct_dispatch` consumes next). One check for both
/// events: this is on every yield's path.
#[inline(always)]
pub(crate) fn enqueue(
    sh: &Shared,
    rq: &mut RqSynced,
    p: &TaskRef,
    f: EnqFlags,
    verdict: Option<(u64, EnqFlags)>,
) {
    if rq.trace.is_some() {
        enqueued(sh, rq, p, f, verdict);
    }
}

/// `p` carries a direct-dispatch verdict from `select_cpu` (in its
/// `ddsp_*` fields), about to be executed with `f`.
#[inline(always)]
pub(crate) fn direct_dispatch(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, f: EnqFlags) {
    if rq.trace.is_some() {
        direct_dispatched(sh, rq, p, f);
    }
}

/// A verdict for `p` is carried out: DSQ `dsq_id` (as named), flags `f`.
#[inline(always)]
pub(crate) fn dispatch(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, dsq_id: u64, f: EnqFlags) {
    if rq.trace.is_some() {
        task_event(sh, rq, Kind::Dispatch, p, dsq_id, f.0);
    }
}

/// `p` became runnable on this rq (`enqueue_task`) with `f`: recorded
/// when it is a wake-up or a spawn (`IN_WAKEUP`, set by
/// `enqueue_woken`), not for the re-enqueues of hotplug and bypass.
#[inline(always)]
pub(crate) fn wake(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, f: EnqFlags) {
    if rq.trace.is_some() {
        woken(sh, rq, p, f);
    }
}

/// `p` blocks: it leaves this rq.
#[inline(always)]
pub(crate) fn block(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) {
    if rq.trace.is_some() {
        task_event(sh, rq, Kind::Block, p, 0, 0);
    }
}

/// `p`'s slice timer fired.
#[inline(always)]
pub(crate) fn slice_expired(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) {
    if rq.trace.is_some() {
        task_event(sh, rq, Kind::SliceExpired, p, 0, 0);
    }
}

/// `p` arrived on this rq from CPU `from`.
#[inline(always)]
pub(crate) fn migrate_in(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, from: usize) {
    if rq.trace.is_some() {
        let to = rq.cpu as u64;
        task_event(sh, rq, Kind::Migrate, p, from as u64, to);
    }
}

/// `p` leaves this rq for CPU `to` (an offline CPU's move).
#[inline(always)]
pub(crate) fn migrate_out(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, to: usize) {
    if rq.trace.is_some() {
        let from = rq.cpu as u64;
        task_event(sh, rq, Kind::Migrate, p, from, to as u64);
    }
}

/// An `ENQ_PREEMPT` insertion zeroed the slice of this rq's current task;
/// the inserted task is the head of the local DSQ.
#[inline(always)]
pub(crate) fn enq_preempt(sh: &Shared, rq: &mut RqSynced) {
    if rq.trace.is_some() {
        enq_preempted(sh, rq);
    }
}

/// A kick from `from` (None: no worker) reached this rq with `flags`;
/// `skipped`: an idle kick dropped because the target was busy. A
/// `PREEMPT` kick that zeroes a running task's slice also records the
/// preemption; call before the slice is zeroed.
#[inline(always)]
pub(crate) fn kick(
    sh: &Shared,
    rq: &mut RqSynced,
    from: Option<usize>,
    flags: KickFlags,
    skipped: bool,
) {
    if rq.trace.is_some() {
        kicked(sh, rq, from, flags, skipped);
    }
}

// ---------------------------------------------------------------------
// The recording bodies, out of line.
// ---------------------------------------------------------------------

/// The trace clock of a record in CPU `cpu`'s ring (module docs, rule 4).
/// rq `cpu` locked by the caller.
#[inline(always)]
fn clock(sh: &Shared, cpu: usize) -> u64 {
    let c = sh.cpus[cpu].shared.owner.clock.load(Ordering::Relaxed);
    if c != 0 {
        c
    } else {
        crate::core::clock::now()
    }
}

/// Appends a record to `rq`'s ring (if tracing is on). Inlined into the
/// cold recording functions: one call per event from the hot path.
#[inline(always)]
fn put(sh: &Shared, rq: &mut RqSynced, kind: Kind, task: u64, a: u64, b: u64) {
    let ts = clock(sh, rq.cpu);
    if let Some(r) = rq.trace.as_deref_mut() {
        r.push(Record {
            ts,
            task,
            a,
            b,
            kind,
        });
    }
}

#[cold]
#[inline(never)]
fn task_event(sh: &Shared, rq: &mut RqSynced, kind: Kind, p: &TaskRef, a: u64, b: u64) {
    put(sh, rq, kind, p.id(), a, b);
}

#[cold]
#[inline(never)]
fn enqueued(
    sh: &Shared,
    rq: &mut RqSynced,
    p: &TaskRef,
    f: EnqFlags,
    verdict: Option<(u64, EnqFlags)>,
) {
    put(sh, rq, Kind::Enqueue, p.id(), f.0, 0);
    if let Some((id, extra)) = verdict {
        put(sh, rq, Kind::Dispatch, p.id(), id, f.0 | extra.0);
    }
}

#[cold]
#[inline(never)]
fn direct_dispatched(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, f: EnqFlags) {
    // The Dispatch record of `select_cpu`'s verdict, from the fields
    // `direct_dispatch` reads next.
    let id = p.scx.ddsp_dsq_id.load(Ordering::Relaxed);
    let extra = p.scx.ddsp_enq_flags.load(Ordering::Relaxed);
    put(sh, rq, Kind::Dispatch, p.id(), id, f.0 | extra);
}

#[cold]
#[inline(never)]
fn woken(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, f: EnqFlags) {
    if rq.has(crate::rq::rqflags::IN_WAKEUP) {
        put(sh, rq, Kind::Wake, p.id(), f.0, 0);
    }
}

#[cold]
#[inline(never)]
fn stopped(rq: &mut RqSynced, p: &TaskRef, why: Switch) {
    let why = match why {
        Switch::Yield => ring::STOP_YIELD,
        Switch::Preempt => ring::STOP_PREEMPT,
        Switch::Block => ring::STOP_BLOCK,
        Switch::Exit => ring::STOP_EXIT,
    };
    if let Some(r) = rq.trace.as_deref_mut() {
        r.stopped = Some((p.id(), why));
    }
}

#[cold]
#[inline(never)]
fn switched(sh: &Shared, rq: &mut RqSynced, next: Option<&TaskRef>) {
    let next = next.map_or(0, |n| n.id());
    let Some(r) = rq.trace.as_deref_mut() else {
        return;
    };
    let (prev, why) = r.stopped.take().unwrap_or((0, ring::STOP_NONE));
    // An idle CPU that woke and found nothing: no switch.
    if prev == 0 && next == 0 {
        return;
    }
    put(sh, rq, Kind::Switch, next, prev, why);
}

#[cold]
#[inline(never)]
fn enq_preempted(sh: &Shared, rq: &mut RqSynced) {
    let victim = rq.curr.as_ref().map_or(0, |c| c.id());
    let by = rq.local.iter().next().map_or(0, |p| p.id());
    put(sh, rq, Kind::Preempt, victim, ring::PREEMPT_BY_ENQ, by);
}

#[cold]
#[inline(never)]
fn kicked(sh: &Shared, rq: &mut RqSynced, from: Option<usize>, flags: KickFlags, skipped: bool) {
    let from = from.map_or(ring::NO_CPU, |c| c as u64);
    let victim = rq.curr.as_ref().map(|c| c.id());
    let b = flags.0 | if skipped { ring::KICK_SKIPPED } else { 0 };
    put(sh, rq, Kind::Kick, 0, from, b);
    if let (Some(v), true) = (victim, flags.contains(KickFlags::PREEMPT) && !skipped) {
        put(sh, rq, Kind::Preempt, v, ring::PREEMPT_BY_KICK, from);
    }
}
