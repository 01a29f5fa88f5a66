//! The public form of a trace record ([`TraceEvent`]), decoded from the
//! rings' compact records.

use crate::flags::{EnqFlags, KickFlags};
use crate::task::TaskId;

use super::ring::{self, Kind, Record};

/// One scheduling event of a trace ([`Runtime::trace_snapshot`]).
///
/// [`Runtime::trace_snapshot`]: crate::Runtime::trace_snapshot
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Time in ns on the runtime's scheduling clock (`CLOCK_MONOTONIC` to
    /// within well under a µs, `scx_rt_sys::clock`; the scheduling
    /// step's events share the time the step started at).
    pub ts_ns: u64,
    /// The CPU whose runqueue the event happened on.
    pub cpu: usize,
    /// What happened.
    pub kind: TraceEventKind,
}

/// What a [`TraceEvent`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceEventKind {
    /// The scheduler's `enqueue` was called for `task` (a wake-up, a
    /// yield, an expired slice, a re-enqueue); a wake-up placed by a
    /// `select_cpu` verdict skips it and has only its `Dispatch`.
    Enqueue {
        /// The task.
        task: TaskId,
        /// The enqueue flags.
        enq_flags: EnqFlags,
    },
    /// A dispatch verdict was carried out: `task` goes into DSQ `dsq_id`
    /// as the scheduler named it (`DSQ_LOCAL`, `DSQ_LOCAL_ON | cpu`,
    /// `DSQ_GLOBAL` or a user DSQ), from `select_cpu`/`enqueue` (direct
    /// dispatch), `dispatch`, or a `dsq_move`.
    Dispatch {
        /// The task.
        task: TaskId,
        /// The DSQ id named by the verdict.
        dsq_id: u64,
        /// The enqueue flags (without the runtime's internal bits).
        enq_flags: EnqFlags,
    },
    /// The CPU switched from `prev` to `next` (`None`: idle, or
    /// higher-class work). `prev == next`: prev kept running.
    Switch {
        /// The task that stopped.
        prev: Option<TaskId>,
        /// Why `prev` stopped (`None` when it is `None`).
        reason: Option<StopReason>,
        /// The task that runs next.
        next: Option<TaskId>,
    },
    /// A kick reached this CPU (the kick step delivers it, under this
    /// CPU's rq lock): it is both the sending (`from`) and the receiving
    /// end.
    Kick {
        /// The kicking CPU (`None`: a thread that is no worker,
        /// [`Runtime::kick_cpu`](crate::Runtime::kick_cpu)).
        from: Option<usize>,
        /// The kick's flags.
        flags: KickFlags,
        /// An `IDLE` kick dropped because this CPU was busy.
        skipped: bool,
    },
    /// `task`, running on this CPU, had its slice zeroed.
    Preempt {
        /// The task that loses its slice.
        task: TaskId,
        /// Who zeroed it.
        by: PreemptCause,
    },
    /// `task`'s slice ran out (the slice timer fired; the scheduler's
    /// `tick` ran).
    SliceExpired {
        /// The task.
        task: TaskId,
    },
    /// `task` blocked: it left its runqueue.
    Block {
        /// The task.
        task: TaskId,
    },
    /// `task` woke onto this CPU's runqueue; a first enqueue (a spawn)
    /// has no `WAKEUP` in `enq_flags`.
    Wake {
        /// The task.
        task: TaskId,
        /// The enqueue flags of the wake-up.
        enq_flags: EnqFlags,
    },
    /// `task` moved from CPU `from` to CPU `to` (it arrived in `to`'s
    /// local DSQ, or left an offline `from`).
    Migrate {
        /// The task.
        task: TaskId,
        /// The CPU it left.
        from: usize,
        /// The CPU it went to.
        to: usize,
    },
}

/// Why the task before a [`TraceEventKind::Switch`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// `yield_now`.
    Yield,
    /// A preemption point with a reschedule pending (a kick, an expired or
    /// zeroed slice).
    Preempt,
    /// It asked to block (a [`TraceEventKind::Block`] of it precedes the
    /// switch unless a wake-up raced with the block and it stayed
    /// runnable).
    Block,
    /// Its body returned.
    Exit,
}

/// Who zeroed a running task's slice ([`TraceEventKind::Preempt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreemptCause {
    /// A `PREEMPT` kick from CPU `from` (`None`: no worker).
    Kick {
        /// The kicking CPU.
        from: Option<usize>,
    },
    /// An `ENQ_PREEMPT` insertion of `task` into this CPU's local DSQ.
    EnqPreempt {
        /// The inserted task.
        task: TaskId,
    },
}

fn opt_task(id: u64) -> Option<TaskId> {
    (id != 0).then_some(id)
}

fn opt_cpu(c: u64) -> Option<usize> {
    (c != ring::NO_CPU).then_some(c as usize)
}

impl TraceEvent {
    /// Decodes a record of CPU `cpu`'s ring.
    pub(crate) fn decode(cpu: usize, r: &Record) -> Self {
        let kind = match r.kind {
            Kind::Enqueue => TraceEventKind::Enqueue {
                task: r.task,
                enq_flags: EnqFlags(r.a).without(EnqFlags::INTERNAL_MASK),
            },
            Kind::Dispatch => TraceEventKind::Dispatch {
                task: r.task,
                dsq_id: r.a,
                enq_flags: EnqFlags(r.b).without(EnqFlags::INTERNAL_MASK),
            },
            Kind::Switch => TraceEventKind::Switch {
                prev: opt_task(r.a),
                reason: match r.b {
                    ring::STOP_YIELD => Some(StopReason::Yield),
                    ring::STOP_PREEMPT => Some(StopReason::Preempt),
                    ring::STOP_BLOCK => Some(StopReason::Block),
                    ring::STOP_EXIT => Some(StopReason::Exit),
                    _ => None,
                },
                next: opt_task(r.task),
            },
            Kind::Kick => TraceEventKind::Kick {
                from: opt_cpu(r.a),
                flags: KickFlags(r.b & !ring::KICK_SKIPPED),
                skipped: r.b & ring::KICK_SKIPPED != 0,
            },
            Kind::Preempt => TraceEventKind::Preempt {
                task: r.task,
                by: if r.a == ring::PREEMPT_BY_ENQ {
                    PreemptCause::EnqPreempt { task: r.b }
                } else {
                    PreemptCause::Kick { from: opt_cpu(r.b) }
                },
            },
            Kind::SliceExpired => TraceEventKind::SliceExpired { task: r.task },
            Kind::Block => TraceEventKind::Block { task: r.task },
            Kind::Wake => TraceEventKind::Wake {
                task: r.task,
                enq_flags: EnqFlags(r.a).without(EnqFlags::INTERNAL_MASK),
            },
            Kind::Migrate => TraceEventKind::Migrate {
                task: r.task,
                from: r.a as usize,
                to: r.b as usize,
            },
        };
        TraceEvent {
            ts_ns: r.ts,
            cpu,
            kind,
        }
    }
}

impl TraceEventKind {
    /// The event's name in the Chrome trace ("enqueue", "dispatch",
    /// "switch", "kick", "preempt", "slice expired", "block", "wake",
    /// "migrate").
    pub fn name(&self) -> &'static str {
        match self {
            TraceEventKind::Enqueue { .. } => "enqueue",
            TraceEventKind::Dispatch { .. } => "dispatch",
            TraceEventKind::Switch { .. } => "switch",
            TraceEventKind::Kick { .. } => "kick",
            TraceEventKind::Preempt { .. } => "preempt",
            TraceEventKind::SliceExpired { .. } => "slice expired",
            TraceEventKind::Block { .. } => "block",
            TraceEventKind::Wake { .. } => "wake",
            TraceEventKind::Migrate { .. } => "migrate",
        }
    }

    /// The task the event is about (`Switch`: next, else prev; `Kick`:
    /// none).
    pub fn task(&self) -> Option<TaskId> {
        match *self {
            TraceEventKind::Enqueue { task, .. }
            | TraceEventKind::Dispatch { task, .. }
            | TraceEventKind::Preempt { task, .. }
            | TraceEventKind::SliceExpired { task }
            | TraceEventKind::Block { task }
            | TraceEventKind::Wake { task, .. }
            | TraceEventKind::Migrate { task, .. } => Some(task),
            TraceEventKind::Switch { prev, next, .. } => next.or(prev),
            TraceEventKind::Kick { .. } => None,
        }
    }
}
