//! The [`Scheduler`] trait (`struct sched_ext_ops`) and the typed contexts
//! through which its helpers (`scx_bpf_*`) are called.
//!
//! # Contexts instead of a verifier
//!
//! sched_ext's verifier rejects a BPF program that calls a kfunc from a
//! callback that does not allow it (SPEC.md §7). Here the callback's context
//! type carries exactly the helpers its kfunc mask allows, so a misplaced call
//! is a compile error:
//!
//! | context | callbacks | helpers beyond [`Ctx`]'s "any context" set |
//! |---|---|---|
//! | [`SelectCpuCtx`] | `select_cpu` | `select_cpu_dfl`, direct `dsq_insert`/`dsq_insert_vtime` |
//! | [`EnqueueCtx`] | `enqueue` | direct `dsq_insert`/`dsq_insert_vtime` |
//! | [`DispatchCtx`] | `dispatch` | buffered `dsq_insert`/`dsq_insert_vtime`, `dispatch_nr_slots`, `dispatch_cancel`, `dsq_move_to_local` (and the batched `dsq_move_to_local_batch`, no kfunc), `dsq_move`/`dsq_move_vtime` |
//! | [`CpuReleaseCtx`] | `cpu_release` | `reenqueue_local` |
//! | [`InitCtx`] | `init`, `init_task`, `cpu_online`, `cpu_offline` | `create_dsq`, `dsq_move`/`dsq_move_vtime` (no rq lock held) |
//! | [`Ctx`] | every other callback | the any-context helpers: `kick_cpu`, `dsq_nr_queued`, `dsq_iter`, `now`, the idle-CPU picks, timers, ...; `dsq_move` only from `timer` |
//!
//! The helpers carry the kernel's current names (Linux 6.13 and later:
//! `dsq_insert`, `dsq_insert_vtime`, `dsq_move_to_local`, `dsq_move`); the
//! names before 6.13 (`dispatch`, `dispatch_vtime`, `consume`) still work
//! as deprecated aliases, as the kernel's compat headers keep them.
//! `dsq_move` is a runtime check where the type cannot tell: [`Ctx`] is
//! also the context of the rq-locked callbacks, from which the kernel
//! refuses a move with a scheduler error, and so does scx-rt.
//!
//! Every context derefs to [`Ctx`]. For example, a policy that keeps tasks
//! in its own queue and feeds CPUs from `dispatch`:
//!
//! ```
//! use std::collections::VecDeque;
//! use scx_rt::{DispatchCtx, EnqFlags, EnqueueCtx, Scheduler, TaskRef, DSQ_LOCAL, SLICE_DFL};
//!
//! #[derive(Default)]
//! struct Queue(parking_lot::Mutex<VecDeque<TaskRef>>);
//!
//! impl Scheduler for Queue {
//!     fn enqueue(&self, _ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
//!         self.0.lock().push_back(p.clone()); // the scheduler owns p now
//!     }
//!     fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
//!         while ctx.dispatch_nr_slots() > 0 {
//!             let Some(p) = self.0.lock().pop_front() else { break };
//!             ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
//!         }
//!     }
//! }
//! # let rt = scx_rt::Runtime::builder().nr_cpus(1).scheduler(Queue::default()).build().unwrap();
//! # assert_eq!(rt.block_on(|| 1 + 1), 2);
//! ```
//!
//! Calling a helper where sched_ext forbids it does not compile: the
//! context has no such method (`error[E0599]: no method named … found`).
//! `dsq_move_to_local` exists only in `dispatch`,
//!
//! ```compile_fail
//! use scx_rt::{EnqFlags, EnqueueCtx, Scheduler, TaskRef};
//! struct Bad;
//! impl Scheduler for Bad {
//!     fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, _p: &TaskRef, _f: EnqFlags) {
//!         ctx.dsq_move_to_local(1); // no method named `dsq_move_to_local` found
//!     }
//! }
//! ```
//!
//! `reenqueue_local` only in `cpu_release`,
//!
//! ```compile_fail
//! use scx_rt::{DispatchCtx, EnqFlags, EnqueueCtx, Scheduler, TaskRef};
//! struct Bad;
//! impl Scheduler for Bad {
//!     fn enqueue(&self, _c: &mut EnqueueCtx<'_>, _p: &TaskRef, _f: EnqFlags) {}
//!     fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {
//!         ctx.reenqueue_local(); // no method named `reenqueue_local` found
//!     }
//! }
//! ```
//!
//! `create_dsq` only in the sleepable callbacks,
//!
//! ```compile_fail
//! use scx_rt::{DispatchCtx, EnqFlags, EnqueueCtx, Scheduler, TaskRef};
//! struct Bad;
//! impl Scheduler for Bad {
//!     fn enqueue(&self, _c: &mut EnqueueCtx<'_>, _p: &TaskRef, _f: EnqFlags) {}
//!     fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {
//!         let _ = ctx.create_dsq(1, -1); // no method named `create_dsq` found
//!     }
//! }
//! ```
//!
//! and `select_cpu_dfl` only in `select_cpu`:
//!
//! ```compile_fail
//! use scx_rt::{EnqFlags, EnqueueCtx, Scheduler, TaskRef, WakeFlags};
//! struct Bad;
//! impl Scheduler for Bad {
//!     fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
//!         let _ = ctx.select_cpu_dfl(p, 0, WakeFlags::empty()); // no method `select_cpu_dfl`
//!     }
//! }
//! ```
//!
//! The same calls compile, and run without an error, in the callbacks that
//! allow them: a scheduler that creates a user DSQ in `init`, picks a CPU
//! with `select_cpu_dfl` in `select_cpu`, queues every task on its DSQ and
//! feeds CPUs from it with `dsq_move_to_local` in `dispatch`:
//!
//! ```
//! use scx_rt::{DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx, TaskRef};
//! use scx_rt::{WakeFlags, SLICE_DFL};
//!
//! const SHARED: u64 = 1;
//!
//! struct Good;
//!
//! impl Scheduler for Good {
//!     fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
//!         ctx.create_dsq(SHARED, -1).map_err(|_| -22) // -EINVAL
//!     }
//!     fn select_cpu(
//!         &self,
//!         ctx: &mut SelectCpuCtx<'_>,
//!         p: &TaskRef,
//!         prev_cpu: usize,
//!         wake_flags: WakeFlags,
//!     ) -> i32 {
//!         let (cpu, _idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
//!         cpu as i32
//!     }
//!     fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
//!         ctx.dsq_insert(p, SHARED, SLICE_DFL, EnqFlags::empty());
//!     }
//!     fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
//!         ctx.dsq_move_to_local(SHARED);
//!     }
//! }
//! # let rt = scx_rt::Runtime::builder().nr_cpus(1).scheduler(Good).build().unwrap();
//! # assert_eq!(rt.block_on(|| scx_rt::spawn(|| 6 * 7).join().unwrap()), 42);
//! # assert_eq!(rt.exit_info().map(|e| e.msg), None); // no helper call was an error
//! ```
//!
//! Errors the kernel turns into `scx_ops_error()` (an invalid CPU, a
//! missing DSQ, a buffer overflow) are recorded in the runtime's exit record
//! and eject the scheduler at the next safe point; the helper then returns
//! the kernel's fallback value.
//!
//! # Callbacks run concurrently
//!
//! Like a BPF scheduler's programs, callbacks run on many CPUs at once, so
//! every method takes `&self` and a scheduler keeps its state in atomics or
//! locks (the analogue of BPF maps). A callback must not block: it runs with
//! an rq lock held (except `select_cpu`, `init*`, `exit`, `cpu_on/offline`).

use std::ops::Deref;

use crate::cpumask::Cpumask;
use crate::exit::ExitInfo;
use crate::flags::{dsq_id, DeqFlags, EnqFlags, OpsFlags, WakeFlags};
use crate::task::TaskRef;

/// The runtime state as the callback contexts see it: the one instance of
/// [`crate::core::shared::Shared`], whose scheduler slots hold this trait.
pub(crate) type Shared = crate::core::shared::Shared<dyn Scheduler>;

/// Arguments of `init_task`.
#[derive(Clone, Copy, Debug)]
pub struct InitTaskArgs {
    /// The task is new (spawned while the scheduler is attached), rather
    /// than an existing task adopted at attach.
    pub fork: bool,
}

/// Arguments of `exit_task`.
#[derive(Clone, Copy, Debug)]
pub struct ExitTaskArgs {
    /// `init_task` ran but the task never became ready.
    pub cancelled: bool,
}

/// A userspace sched_ext scheduler: the callbacks of `struct sched_ext_ops`
/// with the kernel's names and defaults.
///
/// Only [`enqueue`](Scheduler::enqueue) is required. Every other callback
/// defaults to what the kernel does when the op is absent.
#[allow(unused_variables)]
pub trait Scheduler: Send + Sync + 'static {
    /// The scheduler's name (`ops.name`): 1 to
    /// [`OPS_NAME_MAX`](crate::consts::OPS_NAME_MAX) (127) bytes of ASCII
    /// letters, digits, `_`, `.` and `-` (the kernel's object-name rule,
    /// plus `-`). Any other name is refused at build and attach with
    /// [`InvalidOps`].
    fn name(&self) -> &str {
        "scheduler"
    }

    /// `ops.flags`: only the bits of [`OpsFlags::ALL`]. A scheduler that sets
    /// any other bit is refused at build and attach with
    /// [`InvalidOps::UnknownFlags`], which names the bits (the kernel
    /// refuses it at load with `-EINVAL`).
    fn flags(&self) -> OpsFlags {
        OpsFlags::empty()
    }

    /// Dispatch buffer size (`ops.dispatch_max_batch`); 0 means 32. More
    /// than [`DSP_MAX_BATCH`](crate::consts::DSP_MAX_BATCH) (`i32::MAX`) is
    /// refused at build and attach (the kernel's `-E2BIG`). The buffer
    /// grows as the scheduler fills it, so a large value reserves nothing.
    fn dispatch_max_batch(&self) -> u32 {
        0
    }

    /// Whether the runtime keeps its built-in idle masks. The kernel decides
    /// this by whether `update_idle` is implemented (Rust cannot see that a
    /// default method was overridden), so a scheduler that implements
    /// `update_idle` to replace built-in tracking returns `false` here unless
    /// it also sets `OpsFlags::KEEP_BUILTIN_IDLE`.
    fn builtin_idle(&self) -> bool {
        true
    }

    /// Whether `set_cpumask` should be called when a task joins (default
    /// `false`: building the mask costs an allocation per spawn). A
    /// scheduler that tracks affinities returns `true`.
    fn wants_cpumask(&self) -> bool {
        false
    }

    /// The watchdog timeout in ms (`ops.timeout_ms`): a runnable task that
    /// waits longer, or a CPU stuck in one task that long with a reschedule
    /// pending, ends the scheduler with `ErrorStall` (the `watchdog`
    /// module). 0 means the default and maximum,
    /// [`WATCHDOG_MAX_TIMEOUT_MS`](crate::consts::WATCHDOG_MAX_TIMEOUT_MS)
    /// (30 000 ms); a larger value is refused at build and attach with
    /// [`InvalidOps::TimeoutTooLong`] (the kernel's `-E2BIG`).
    fn timeout_ms(&self) -> u32 {
        0
    }

    /// Whether this scheduler implements `cpu_online` and `cpu_offline`
    /// (the kernel's `SCX_HAS_OP(cpu_online)`; Rust cannot see an
    /// override). When `false`, a CPU going offline or online ends the
    /// scheduler with `UnregKern` and exit code
    /// `ECODE_ACT_RESTART | ECODE_RSN_HOTPLUG` (SPEC.md §3.12), and the
    /// runtime goes on under the built-in FIFO.
    fn handles_hotplug(&self) -> bool {
        false
    }

    /// Picks the CPU for a waking task (no rq lock held). Default:
    /// `select_cpu_dfl`, and if it found an idle CPU, direct-dispatch to that
    /// CPU's local DSQ with the default slice.
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        crate::core::has_op::mark(
            crate::core::has_op::Op::SelectCpu,
            std::any::TypeId::of::<Self>(),
        );
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
        if idle {
            let slice = ctx.slice_dfl();
            ctx.dsq_insert(p, dsq_id::LOCAL, slice, EnqFlags::empty());
        }
        cpu as i32
    }

    /// Places a runnable task: direct-dispatch it, or keep it (the scheduler
    /// then owns it until a later `dispatch`).
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags);

    /// A task the scheduler owns leaves the runqueue.
    fn dequeue(&self, ctx: &Ctx<'_>, p: &TaskRef, deq_flags: DeqFlags) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Dequeue,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The CPU's local and the global DSQ are empty: fill the local DSQ.
    /// `prev` is the task that ran last if it is still runnable.
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Dispatch,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// Periodic tick for the running task.
    fn tick(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Tick,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// Scheduler timer `id`, armed with [`Ctx::timer_start`], fired. Runs on
    /// the worker of the CPU the timer was pinned to, with no lock held
    /// (the kernel's BPF timer callback: "any" context, so `kick_cpu` and
    /// the queries work). Re-arm from here for a periodic timer.
    fn timer(&self, ctx: &Ctx<'_>, id: u32) {}

    /// The task became runnable.
    fn runnable(&self, ctx: &Ctx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Runnable,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task starts running on `ctx.cpu()`.
    fn running(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Running,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task stops running; `runnable` says whether it stays runnable.
    fn stopping(&self, ctx: &Ctx<'_>, p: &TaskRef, runnable: bool) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Stopping,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task is no longer runnable.
    fn quiescent(&self, ctx: &Ctx<'_>, p: &TaskRef, deq_flags: DeqFlags) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Quiescent,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// `yield_now` (`to` = None; the return value is ignored). Default: the
    /// task's slice is zeroed, so it goes through `enqueue` at the next
    /// scheduling step.
    fn yield_(&self, ctx: &Ctx<'_>, from: &TaskRef, to: Option<&TaskRef>) -> bool {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Yield,
            std::any::TypeId::of::<Self>(),
        );
        if to.is_none() {
            from.set_slice(0);
        }
        false
    }

    /// The task's weight changed (and right after `enable`).
    fn set_weight(&self, ctx: &Ctx<'_>, p: &TaskRef, weight: u32) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::SetWeight,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task's allowed CPUs changed (and when it joins the scheduler).
    fn set_cpumask(&self, ctx: &Ctx<'_>, p: &TaskRef, mask: &Cpumask) {}

    /// The CPU enters (`idle = true`) or leaves idle.
    fn update_idle(&self, ctx: &Ctx<'_>, cpu: usize, idle: bool) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::UpdateIdle,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The CPU is the scheduler's again after higher-class work took it
    /// (`ops.cpu_acquire`): called at the first balance of `cpu` after a
    /// [`cpu_release`](Scheduler::cpu_release) period, before anything
    /// else of that balance, with the rq locked.
    fn cpu_acquire(&self, ctx: &Ctx<'_>, cpu: usize, args: CpuAcquireArgs) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::CpuAcquire,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// Higher-class work takes `cpu` from the scheduler (`ops.cpu_release`,
    /// SPEC.md §3.11): [`Runtime::run_on_cpu`](crate::Runtime::run_on_cpu)
    /// work preempted the task the CPU ran, which is back on the CPU's
    /// local DSQ (at its head if it had slice left) or with the scheduler.
    /// Called once per release period (until the next
    /// [`cpu_acquire`](Scheduler::cpu_acquire)), with the rq locked, and
    /// only when a task was running: work that finds the CPU idle releases
    /// nothing, as in the kernel. Tasks on the CPU's local DSQ wait until
    /// the CPU comes back unless the scheduler moves them elsewhere with
    /// [`CpuReleaseCtx::reenqueue_local`].
    fn cpu_release(&self, ctx: &mut CpuReleaseCtx<'_>, cpu: usize, args: CpuReleaseArgs) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::CpuRelease,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// A task joins: once per task. An error refuses the task (it runs under
    /// the fallback) and is an ops error.
    fn init_task(&self, ctx: &InitCtx<'_>, p: &TaskRef, args: InitTaskArgs) -> Result<(), i32> {
        crate::core::has_op::mark(
            crate::core::has_op::Op::InitTask,
            std::any::TypeId::of::<Self>(),
        );
        Ok(())
    }

    /// A task leaves for good (finished, or the scheduler detaches).
    fn exit_task(&self, ctx: &Ctx<'_>, p: &TaskRef, args: ExitTaskArgs) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::ExitTask,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task is now scheduled by this scheduler.
    fn enable(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Enable,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// The task is no longer scheduled by this scheduler.
    fn disable(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        crate::core::has_op::mark(
            crate::core::has_op::Op::Disable,
            std::any::TypeId::of::<Self>(),
        );
    }

    /// A CPU came online (`Runtime::cpu_online`). Called before the CPU
    /// runs any scheduler work; return `true` from `handles_hotplug`.
    fn cpu_online(&self, ctx: &InitCtx<'_>, cpu: usize) {}

    /// A CPU went offline (`Runtime::cpu_offline`). From this call on the
    /// CPU calls no `dispatch`, is never an idle CPU, and drops kicks from
    /// other CPUs; tasks the scheduler dispatches to its local DSQ go to
    /// the global DSQ instead. Return `true` from `handles_hotplug`.
    fn cpu_offline(&self, ctx: &InitCtx<'_>, cpu: usize) {}

    /// The scheduler is being attached, before any task joins.
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        Ok(())
    }

    /// The scheduler was detached; every task has left it.
    fn exit(&self, info: &ExitInfo) {}

    /// Adds scheduler state to a dump.
    fn dump(&self, ctx: &mut DumpCtx<'_>) {}

    /// Adds per-CPU state to a dump.
    fn dump_cpu(&self, ctx: &mut DumpCtx<'_>, cpu: usize, idle: bool) {}

    /// Adds per-task state to a dump.
    fn dump_task(&self, ctx: &mut DumpCtx<'_>, p: &TaskRef) {}

    /// The scheduler's own type, which the core compares with the type
    /// its default callbacks report to learn which callbacks are absent
    /// (`core::has_op`). Not to be overridden.
    #[doc(hidden)]
    fn scx_type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<Self>()
    }
}

/// The context of every callback: the "any context" helpers.
pub struct Ctx<'a> {
    pub(crate) sh: &'a Shared,
    /// Where an error a helper detects is attributed (with `cpu`, the
    /// error context, built only for an error): the callback and the
    /// task it is about, whose id is read only then.
    pub(crate) op: Option<&'static str>,
    pub(crate) subject: Option<&'a TaskRef>,
    /// The CPU running the callback, [`NO_CPU`] on a thread that is no
    /// worker (one word: [`Ctx::cpu`] gives it as an `Option`).
    pub(crate) cpu: u32,
    /// The callback holds no rq lock and runs in no scheduling operation
    /// (a timer, `init*`, `cpu_online`/`cpu_offline`): `dsq_move` may be
    /// called and takes the rq lock it needs.
    pub(crate) unlocked: bool,
}

/// [`Ctx::cpu`] of a thread that is no worker.
pub(crate) const NO_CPU: u32 = u32::MAX;

/// The direct-dispatch verdict of a `select_cpu` or `enqueue` call
/// (`scx_bpf_dsq_insert` on the subject, the context's task), kept in the
/// context until the callback returns. The kernel records it in the task
/// (`ddsp_dsq_id`, `ddsp_enq_flags`) at once; here `enqueue`'s verdict is
/// carried out from the context (it never outlives the call, and the
/// enqueue path then neither writes nor clears the task's fields), and
/// `select_cpu`'s is copied into the task when the callback returns, where
/// the enqueue on the selected CPU finds it. Nobody can look at the task's
/// fields in between: the helpers of these callbacks do not read them.
#[derive(Default)]
pub(crate) struct DirectDispatch {
    /// The verdict's DSQ and extra enqueue flags, once one was recorded.
    pub(crate) verdict: Option<(u64, u64)>,
}

/// Context of `select_cpu`.
pub struct SelectCpuCtx<'a> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) dd: DirectDispatch,
}

impl<'a> Deref for SelectCpuCtx<'a> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}

/// Context of `enqueue`.
pub struct EnqueueCtx<'a> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) dd: DirectDispatch,
    /// The enqueueing rq's running task (`rq->curr`), read under the rq
    /// lock the enqueue holds; [`EnqueueCtx::current`] filters it.
    pub(crate) curr: Option<&'a TaskRef>,
}

impl<'a> Deref for EnqueueCtx<'a> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}

/// Context of `dispatch`: owns the CPU's rq lock and dispatch buffer.
pub struct DispatchCtx<'a, 'g> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) rq: &'a mut crate::rq::RqGuard<'g>,
    pub(crate) max_batch: usize,
    /// Tasks dispatched or consumed in this round (`dspc.nr_tasks`).
    pub(crate) nr_tasks: u32,
}

impl<'a> Deref for DispatchCtx<'a, '_> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}

/// Context of `cpu_release`: owns the CPU's rq lock, for
/// [`reenqueue_local`](CpuReleaseCtx::reenqueue_local).
pub struct CpuReleaseCtx<'a> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) rq: &'a mut crate::rq::RqSynced,
    pub(crate) slot: &'a crate::core::slot::SchedSlot,
}

impl<'a> Deref for CpuReleaseCtx<'a> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}

/// Which kind of higher-priority work took a CPU
/// (`enum scx_cpu_preempt_reason`, in `cpu_release`'s arguments).
///
/// The kernel derives it from the scheduling class of the task that
/// preempted; [`Runtime::run_on_cpu`](crate::Runtime::run_on_cpu) names
/// it for the work it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CpuPreemptReason {
    /// A real-time task (`SCX_CPU_PREEMPT_RT`).
    Rt = 0,
    /// A deadline task (`SCX_CPU_PREEMPT_DL`).
    Dl = 1,
    /// The stop class: per-CPU work that preempts everything
    /// (`SCX_CPU_PREEMPT_STOP`).
    Stop = 2,
    /// Anything else (`SCX_CPU_PREEMPT_UNKNOWN`).
    Unknown = 3,
}

/// Arguments of `cpu_release` (`struct scx_cpu_release_args`).
///
/// The kernel also passes the preempting task; the work
/// [`Runtime::run_on_cpu`](crate::Runtime::run_on_cpu) runs is no task of
/// the runtime, so there is none to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuReleaseArgs {
    /// What took the CPU.
    pub reason: CpuPreemptReason,
}

/// Arguments of `cpu_acquire` (`struct scx_cpu_acquire_args`, empty in the
/// kernel too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuAcquireArgs {}

/// Context of the sleepable callbacks (`init`, `init_task`,
/// `cpu_online`/`cpu_offline`).
pub struct InitCtx<'a> {
    pub(crate) ctx: Ctx<'a>,
}

impl<'a> Deref for InitCtx<'a> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}

pub use crate::core::user_dsqs::CreateDsqError;

/// Why a scheduler was refused before it was attached (the checks the
/// kernel makes when a `sched_ext_ops` is loaded, SPEC.md §1.2). Nothing was
/// started or changed: [`Builder::build`](crate::Builder::build) returns it
/// as [`BuildError::Scheduler`](crate::BuildError::Scheduler), and
/// [`Runtime::attach`](crate::Runtime::attach) as
/// [`AttachError::Invalid`](crate::AttachError::Invalid), leaving the
/// running scheduler in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOps {
    /// `Scheduler::flags` has bits outside [`OpsFlags::ALL`].
    #[error("scheduler {name:?} sets unknown ops flag bits {bits:#x} (known flags: {known:#x})")]
    UnknownFlags {
        /// The scheduler's name.
        name: String,
        /// The unknown bits alone.
        bits: u64,
        /// Every bit scx-rt knows ([`OpsFlags::ALL`]).
        known: u64,
    },
    /// `Scheduler::timeout_ms` is above the watchdog's maximum.
    #[error("scheduler {name:?} asks for a watchdog timeout of {ms} ms; the maximum is {max} ms")]
    TimeoutTooLong {
        /// The scheduler's name.
        name: String,
        /// What `timeout_ms` returned.
        ms: u32,
        /// The maximum ([`WATCHDOG_MAX_TIMEOUT_MS`](crate::consts::WATCHDOG_MAX_TIMEOUT_MS)).
        max: u32,
    },
    /// `Scheduler::dispatch_max_batch` is above `i32::MAX`.
    #[error(
        "scheduler {name:?} asks for a dispatch buffer of {requested} slots; the maximum is {max}"
    )]
    DispatchMaxBatch {
        /// The scheduler's name.
        name: String,
        /// What `dispatch_max_batch` returned.
        requested: u32,
        /// The maximum ([`DSP_MAX_BATCH`](crate::consts::DSP_MAX_BATCH)).
        max: u32,
    },
    /// `Scheduler::name` is empty.
    #[error("the scheduler's name is empty")]
    EmptyName,
    /// `Scheduler::name` is longer than the limit.
    #[error("the scheduler's name is {len} bytes long; the maximum is {max} bytes")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum ([`OPS_NAME_MAX`](crate::consts::OPS_NAME_MAX)).
        max: usize,
    },
    /// `Scheduler::name` has a character outside the allowed set.
    #[error(
        "the scheduler's name {name:?} contains {ch:?}; only ASCII letters, digits, '_', '.' and '-' are allowed"
    )]
    NameChar {
        /// The name.
        name: String,
        /// The first character not allowed.
        ch: char,
    },
}

/// The checks of [`InvalidOps`], in the order the kernel makes them at load
/// (name, then flags, then the limits).
pub(crate) fn validate_ops(ops: &dyn Scheduler) -> Result<(), InvalidOps> {
    use crate::consts::{DSP_MAX_BATCH, OPS_NAME_MAX, WATCHDOG_MAX_TIMEOUT_MS};
    let name = ops.name();
    if name.is_empty() {
        return Err(InvalidOps::EmptyName);
    }
    if name.len() > OPS_NAME_MAX {
        return Err(InvalidOps::NameTooLong {
            len: name.len(),
            max: OPS_NAME_MAX,
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(InvalidOps::NameChar {
            name: name.to_string(),
            ch,
        });
    }
    let unknown = ops.flags().without(OpsFlags::ALL);
    if !unknown.is_empty() {
        return Err(InvalidOps::UnknownFlags {
            name: name.to_string(),
            bits: unknown.bits(),
            known: OpsFlags::ALL.bits(),
        });
    }
    let ms = ops.timeout_ms();
    if ms > WATCHDOG_MAX_TIMEOUT_MS {
        return Err(InvalidOps::TimeoutTooLong {
            name: name.to_string(),
            ms,
            max: WATCHDOG_MAX_TIMEOUT_MS,
        });
    }
    let batch = ops.dispatch_max_batch();
    if batch > DSP_MAX_BATCH {
        return Err(InvalidOps::DispatchMaxBatch {
            name: name.to_string(),
            requested: batch,
            max: DSP_MAX_BATCH,
        });
    }
    Ok(())
}

/// Context of the dump callbacks: `dump` appends text.
pub struct DumpCtx<'a> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) out: String,
}

impl<'a> Deref for DumpCtx<'a> {
    type Target = Ctx<'a>;
    fn deref(&self) -> &Ctx<'a> {
        &self.ctx
    }
}
