//! The state shared by every CPU of one runtime ([`Shared`]), and the
//! scheduler slots it holds.
//!
//! `Shared` is generic over the scheduler type only so that this file does
//! not name the `Scheduler` trait: the trait's contexts hold a `&Shared`,
//! and the runtime state sits below them. The one instance is
//! `Shared<dyn Scheduler>`, named `ops::Shared`. The behaviour lives in the
//! `core` modules above (`slot`, `error`, `dsqs`, ...), as inherent methods
//! of that alias.

use std::sync::Arc;

use crate::dsq::Dsq;
use crate::exit::{ExitInfo, ExitRecord};
use crate::flags::{dsq_id, OpsFlags};
use crate::loom::{AtomicBool, AtomicU64, Mutex, RwLock};
use crate::rq::Cpu;

use super::idle_mask::IdleMasks;

/// The attached scheduler and what the core caches about it.
pub(crate) struct SchedSlot<S: ?Sized> {
    pub gen: u64,
    pub ops: Arc<S>,
    pub name: String,
    pub flags: OpsFlags,
    pub builtin_idle: bool,
    pub max_batch: usize,
    /// `set_cpumask` is called when a task joins (the mask costs an
    /// allocation, so only for schedulers that ask).
    pub wants_cpumask: bool,
    /// `cpu_online`/`cpu_offline` are implemented (`SCX_HAS_OP`).
    pub hotplug: bool,
    /// The watchdog timeout (`ops.timeout_ms`, defaulted and capped).
    pub timeout_ns: u64,
    /// The built-in FIFO the runtime runs when no scheduler is attached
    /// (at build without one, and after every detach or ejection).
    pub fallback: bool,
    /// Which callbacks are known to be absent (`core::has_op`).
    pub has: Arc<super::has_op::OpsPresence>,
    /// The runtime's event counts when this scheduler was installed: its
    /// own are the totals minus these (`core::events`).
    pub events_base: super::events::Events,
}

impl<S: ?Sized> Clone for SchedSlot<S> {
    fn clone(&self) -> Self {
        Self {
            gen: self.gen,
            ops: self.ops.clone(),
            name: self.name.clone(),
            flags: self.flags,
            builtin_idle: self.builtin_idle,
            max_batch: self.max_batch,
            wants_cpumask: self.wants_cpumask,
            hotplug: self.hotplug,
            timeout_ns: self.timeout_ns,
            fallback: self.fallback,
            has: self.has.clone(),
            events_base: self.events_base,
        }
    }
}

/// The current scheduler and, while a swap is in progress, the one it
/// replaces (rqs switch generation one at a time).
pub(crate) struct Slots<S: ?Sized> {
    pub cur: SchedSlot<S>,
    pub prev: Option<SchedSlot<S>>,
}

static NEXT_RT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What ends a slice when its deadline passes ([`Builder::slice_timer`]);
/// the `timer` module docs give the measurements behind the default.
///
/// Whichever is chosen, a slice ends the same way: the CPU's `tick_pending`
/// and `need_resched` are set, the task switches out at its next
/// preemption point and the scheduler's `tick` runs first (SPEC.md §3.8).
///
/// [`Builder::slice_timer`]: crate::Builder::slice_timer
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SliceTimer {
    /// Each slice by its length: one of [`POLL_SLICE_MAX`] (1 ms) or
    /// less is polled (as [`SliceTimer::Poll`]), a longer one ends by the
    /// worker's timer signal (as [`SliceTimer::Signal`], falling back to
    /// the timer thread likewise). Short slices then cost no interrupt
    /// (which on a VM takes most of a 30 µs slice), long ones no clock
    /// read at each preemption point; `EINTR` can reach a task's raw
    /// system calls only during slices longer than the bound.
    ///
    /// [`POLL_SLICE_MAX`]: crate::consts::POLL_SLICE_MAX
    #[default]
    Auto,
    /// One POSIX timer per worker thread (`scx_rt_sys::expiry`), armed at
    /// the earliest slice deadline and re-armed only when a deadline is
    /// earlier than the armed one or when it fires: no system call on a
    /// common switch, and no spare CPU needed (the signal interrupts the
    /// worker itself, like the kernel's tick). The cost: a task's raw
    /// system calls that Linux does not restart (sleeps and waits with a
    /// timeout, `poll`, `epoll_wait`, socket calls with a timeout) can fail
    /// with `EINTR` when its slice ends during one. A worker that cannot
    /// create its timer (the signal, `SIGRTMIN + 4`, is taken by another
    /// handler, or the timer limit is reached) falls back to `Thread`.
    /// Each expiry costs the worker's CPU an interrupt, a signal frame and
    /// a re-arm (10–25 µs on a VM, against about 2.5 µs for `Thread` and
    /// nothing for `Poll`): with slices of 30 µs or less that is half the
    /// CPU or more, and `Poll` (or `Auto`) does more work.
    Signal,
    /// The runtime's timer thread, which sleeps until the earliest deadline
    /// of all CPUs. No signal reaches task code; a slice ends late when
    /// every CPU is busy and the OS runs the thread late.
    Thread,
    /// `Thread` at real-time priority (`SCHED_FIFO` 1), which the OS runs
    /// as soon as it wakes; where the process may not have it
    /// (`CAP_SYS_NICE` or `RLIMIT_RTPRIO`), exactly `Thread`.
    RealtimeThread,
    /// No timer: each preemption point compares the clock with the slice
    /// deadline its CPU published (the `timer` module docs, "Polled
    /// expiry"). A task switches out only at a preemption point in every
    /// mode, so a slice ends at the same preemption point as with a timer
    /// that fires on time, and an expiry costs the worker nothing but the
    /// switch: no interrupt, no signal frame, no re-arm, no `EINTR`, no
    /// spare CPU. The cost moves to the preemption points: each one reads
    /// the clock while the running task's slice is finite (about 11 ns
    /// on the 2-vCPU EPYC VM, against 2 ns for the flag alone), so code
    /// that passes `preempt_point()` every few tens of ns runs measurably
    /// slower; `SLICE_INF` tasks and idle CPUs read no clock. The mode for
    /// short slices (tens of µs), where a timer's per-expiry cost takes
    /// most of the CPU.
    Poll,
}

impl SliceTimer {
    /// Slices shorter than this (ns) are polled at the preemption points
    /// in this mode, longer ones ended by a timer (`SLICE_INF` never is
    /// polled: it has no deadline). One compare per switch
    /// (`core::step::publish_deadline`).
    pub(crate) fn poll_below(self) -> u64 {
        match self {
            SliceTimer::Auto => crate::consts::POLL_SLICE_MAX + 1,
            SliceTimer::Poll => crate::consts::SLICE_INF,
            SliceTimer::Signal | SliceTimer::Thread | SliceTimer::RealtimeThread => 0,
        }
    }
}

/// Runtime configuration the core needs.
pub(crate) struct Config {
    pub slice_dfl: u64,
    pub idle_poll_ns: u64,
    pub allow_migration: bool,
    pub record_balance: bool,
    /// What ends slices (`Builder::slice_timer`).
    pub slice_timer: SliceTimer,
    /// `slice_timer.poll_below()`, derived once at build: the switch's
    /// deadline publication then pays one load and one compare instead of
    /// a match on the mode (`core::step::publish_deadline`).
    pub poll_below: u64,
}

/// State shared by every CPU of one runtime.
pub(crate) struct Shared<S: ?Sized> {
    pub rt_id: u64,
    pub nr_cpus: usize,
    pub cpus: Box<[Cpu]>,
    pub os_cpus: Vec<Option<usize>>,
    pub global: Dsq,
    /// The user DSQs by id (`core::user_dsqs`).
    pub user_dsqs: super::user_dsqs::UserDsqs,
    pub slots: RwLock<Slots<S>>,
    pub sched_gen: AtomicU64,
    /// `builtin_idle` of the current scheduler (`slots.cur`), mirrored so
    /// that an idle helper asks one relaxed load, not a slot lookup.
    /// Written before `sched_gen` (`install`): the scheduler a
    /// `cur_slot()` lookup would find.
    pub cur_builtin_idle: AtomicBool,
    /// The next unused scheduler generation.
    pub next_gen: AtomicU64,
    pub idle: IdleMasks,
    pub exit: ExitRecord,
    pub last_exit: Mutex<Option<ExitInfo>>,
    pub cfg: Config,
    #[cfg(not(scx_rt_loom))]
    pub stacks: scx_rt_sys::stack::StackPool,
    /// Tasks spawned and not exited (`core::live`).
    pub live: crate::core::live::LiveCount,
    pub shutdown: AtomicBool,
    pub disabling: Mutex<()>,
    /// Bypass depth (`scx_ops_bypass_depth`): bypass is on while it is
    /// above zero. The lock serializes the transitions.
    pub bypass_depth: Mutex<u32>,
    /// When bypass mode last began (`clock::now`), for
    /// `SCX_EV_BYPASS_DURATION`; written and read under `bypass_depth`'s
    /// lock (statistics only: `loom::StatAtomicU64`).
    pub bypass_since: crate::loom::StatAtomicU64,
    #[cfg(not(scx_rt_loom))]
    pub timer: super::timer_word::TimerState,
    /// The per-CPU I/O reactors (`io`).
    #[cfg(not(scx_rt_loom))]
    pub io: crate::io::reactor::Reactors,
    /// Counters (`Runtime::stats`).
    pub nr_ejections: AtomicU64,
    /// Tasks that failed because no stack could be mapped for them.
    pub nr_no_stack: AtomicU64,
    /// Dumps written for the SysRq-D signal.
    pub sysrq_dumps: AtomicU64,
    /// The scheduler's timers (`Ctx::timer_start`).
    pub ops_timers: crate::ops_timer::OpsTimers,
    /// Every live task (`scx_tasks`).
    pub tasks: crate::registry::TaskRegistry,
    /// The fork lock (`scx_fork_rwsem`): `spawn` holds it shared from
    /// choosing the scheduler to registering the task; the passes over
    /// every task (attach, disable) hold it exclusively, so no task is
    /// missed or initialized by the wrong scheduler. Per-CPU readers
    /// (`core::fork_lock`).
    pub fork_lock: crate::core::fork_lock::ForkLock,
    /// Serializes attach and detach (`scx_ops_enable_mutex`).
    pub enable_lock: Mutex<()>,
    /// Serializes `Runtime::cpu_offline`/`cpu_online`.
    pub hotplug_lock: parking_lot::Mutex<()>,
    /// The tracing configuration, set at build when tracing is on (the
    /// rings are in the rqs; `trace`).
    pub trace: std::sync::OnceLock<crate::trace::TraceConfig>,
}

impl<S: ?Sized> Shared<S> {
    /// The state of a runtime of `nr_cpus` CPUs that starts under `slot`
    /// (generation 1).
    pub(crate) fn new(
        nr_cpus: usize,
        os_cpus: Vec<Option<usize>>,
        slot: SchedSlot<S>,
        cfg: Config,
        #[cfg_attr(scx_rt_loom, allow(unused_variables))] stack_size: usize,
    ) -> Self {
        let cpus: Box<[Cpu]> = (0..nr_cpus).map(|c| Cpu::new(c, nr_cpus)).collect();
        for c in cpus.iter() {
            let mut rq = c.rq.lock();
            rq.sched_gen = slot.gen;
            if cfg.record_balance {
                rq.balance_trace = Some(Vec::new());
            }
        }
        Self {
            rt_id: NEXT_RT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nr_cpus,
            cpus,
            os_cpus,
            global: Dsq::new(dsq_id::GLOBAL),
            user_dsqs: super::user_dsqs::UserDsqs::new(nr_cpus),
            sched_gen: AtomicU64::new(slot.gen),
            cur_builtin_idle: AtomicBool::new(slot.builtin_idle),
            next_gen: AtomicU64::new(slot.gen + 1),
            slots: RwLock::new(Slots {
                cur: slot,
                prev: None,
            }),
            idle: IdleMasks::new(nr_cpus),
            exit: ExitRecord::new(),
            last_exit: Mutex::new(None),
            cfg,
            #[cfg(not(scx_rt_loom))]
            stacks: scx_rt_sys::stack::StackPool::new(stack_size),
            live: crate::core::live::LiveCount::new(nr_cpus),
            shutdown: AtomicBool::new(false),
            disabling: Mutex::new(()),
            bypass_depth: Mutex::new(0),
            bypass_since: crate::loom::StatAtomicU64::new(0),
            tasks: crate::registry::TaskRegistry::new(),
            fork_lock: crate::core::fork_lock::ForkLock::new(nr_cpus),
            enable_lock: Mutex::new(()),
            #[cfg(not(scx_rt_loom))]
            timer: super::timer_word::TimerState::new(),
            #[cfg(not(scx_rt_loom))]
            io: crate::io::reactor::Reactors::new(nr_cpus),
            nr_ejections: AtomicU64::new(0),
            nr_no_stack: AtomicU64::new(0),
            sysrq_dumps: AtomicU64::new(0),
            ops_timers: crate::ops_timer::OpsTimers::new(),
            hotplug_lock: parking_lot::Mutex::new(()),
            trace: std::sync::OnceLock::new(),
        }
    }

    /// Whether `cpu` is online (lock-free; `Runtime::cpu_offline`).
    #[inline]
    pub(crate) fn cpu_online(&self, cpu: usize) -> bool {
        self.cpus[cpu]
            .shared
            .mostly
            .online
            .load(crate::loom::Ordering::Acquire)
    }

    /// A rotating start point for CPU searches (per thread, so searches
    /// from different CPUs share no counter).
    pub(crate) fn spread_hint(&self) -> usize {
        SPREAD.with(|s| {
            let v = s.get().wrapping_add(1);
            s.set(v);
            v % self.nr_cpus.max(1)
        })
    }
}

std::thread_local! {
    static SPREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
