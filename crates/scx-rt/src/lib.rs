//! scx-rt re-creates the Linux sched_ext scheduling core in userspace, on OS
//! threads.
//!
//! Each worker thread is a CPU pinned to a core. It owns a locked runqueue
//! with a local dispatch queue (DSQ), per-CPU atomic cpumasks and a doorbell.
//! Green (stackful) tasks run on those CPUs with time slices, and a pluggable
//! [`Scheduler`] — a trait with the callbacks of `struct sched_ext_ops` and
//! the `scx_bpf_*` helpers on typed contexts — decides where and when they
//! run.
//!
//! ```
//! let rt = scx_rt::Runtime::builder().nr_cpus(1).build().unwrap();
//! let h = rt.spawn(|| 6 * 7);
//! assert_eq!(h.join().unwrap(), 42);
//! let v = rt.block_on(|| scx_rt::spawn(|| 1).join().unwrap() + 1);
//! assert_eq!(v, 2);
//! ```
//!
//! # Migration and thread-locals: the soundness position
//!
//! A stackful task keeps its whole stack when it is switched out. If it
//! resumed on another worker thread, anything on that stack that is tied to
//! the first thread would be used from the second while the first thread
//! (and the tasks it runs) still use it: a reference obtained inside
//! `thread_local!`'s `with` closure and held across a switch point, an `Rc`,
//! a `RefCell` borrow, `rand::thread_rng()`'s handle. `spawn`'s `Send` bound
//! only covers the closure *before* it runs, so it cannot rule this out —
//! which is why `may` makes its `spawn` unsafe and corosensei makes its
//! coroutines `!Send`.
//!
//! scx-rt's safe API is sound by construction: **a task is free to be placed
//! on any CPU until it first runs; from then on it is bound to that CPU**
//! (its allowed set narrows to that one CPU, as for a kernel task that
//! called `migrate_disable()`). Schedulers still choose the first CPU of
//! every task, the order and the slices; they cannot move a started task,
//! and a verdict that tries is handled as sched_ext handles a disallowed
//! CPU (an error for an explicit `LOCAL_ON`, otherwise the task stays
//! eligible only on its CPU).
//!
//! Free migration of started tasks is an explicit `unsafe` opt-in:
//! [`Builder::allow_migration`], whose contract is that no task holds a
//! thread-bound value across a switch point. The benchmarks and tests that
//! need migration use it and say so.
//!
//! The runtime's own thread-locals are read through `#[inline(never)]`
//! accessors and never held across a switch, so the runtime itself is
//! migration-safe.
//!
//! # Blocking code
//!
//! A green task runs on its CPU's worker thread until a switch point, so a
//! blocking system call in a task (a pipe or file read, `std::thread::sleep`,
//! a std `Mutex`, a C library call) stops that whole CPU: sched_ext has no
//! such case, because there the kernel itself blocks the task. Call such
//! code through [`spawn_blocking`] (or [`Runtime::spawn_blocking`] outside a
//! task): it runs on a separate pool of OS threads, grown on demand up to
//! [`Builder::max_blocking_threads`] and shrunk after
//! [`Builder::blocking_keep_alive`], while the calling task waits green-ly
//! on its [`BlockingHandle`] and its CPU runs other tasks.
//!
//! Sockets and pipes need no pool: [`net`]'s `TcpListener`, `TcpStream`
//! and `UdpSocket`, and [`io::GreenFd`] around any other fd, suspend only
//! the calling task until the fd is ready (a per-CPU epoll reactor behind
//! the doorbell; the protocol is in [`io`]'s docs).
//!
//! # Tracing
//!
//! [`Builder::trace`] records the scheduling events of each CPU (enqueue,
//! dispatch, switch, kicks, preemption, slice expiry, block and wake,
//! migration) into a ring per CPU; [`Runtime::write_trace`] (or the
//! runtime's shutdown) writes them as a Chrome trace-event JSON file that
//! `ui.perfetto.dev` opens, with a track per CPU and per task. Off, each
//! recording point costs one predictable branch; the protocol is in
//! [`trace`]'s docs.
//!
//! # Stack overflow
//!
//! Green stacks have a guard page below them. A task that overflows its
//! stack makes the process print `scx-rt: task N overflowed its S KiB
//! stack` (as Rust does for its threads) and then die by `SIGSEGV`; the
//! handler and the alternate signal stacks it runs on live in
//! `scx_rt_sys::sigsegv`. Choose the stack size with
//! [`Builder::stack_size`].

#![warn(missing_docs)]
// The unsafe code (system calls, signal handlers, stack switching) lives in
// scx-rt-sys, behind safe functions. A module here that needs `unsafe` says
// why at its top, with `#![allow(unsafe_code)]`.
#![deny(unsafe_code)]
// Under loom only the concurrency core is compiled; the runtime that uses
// the rest is not, so unused items are expected there.
#![cfg_attr(scx_rt_loom, allow(dead_code, unused_imports))]

#[cfg(not(scx_rt_loom))]
#[doc(hidden)]
pub mod bench_support;
pub mod consts;
pub mod cpumask;
pub mod exit;
pub mod flags;
#[cfg(not(scx_rt_loom))]
pub mod io;
#[cfg(not(scx_rt_loom))]
pub mod net;
pub mod ops;
pub mod ops_timer;
pub mod schedulers;
#[cfg(not(scx_rt_loom))]
pub mod sync;

#[cfg(not(scx_rt_loom))]
mod attach;
#[cfg(not(scx_rt_loom))]
mod blocking;
#[cfg(not(scx_rt_loom))]
mod builder;
#[cfg(not(scx_rt_loom))]
mod context;
pub(crate) mod core;
#[cfg(not(scx_rt_loom))]
mod disable;
mod doorbell;
mod dsq;
mod dump;
#[cfg(not(scx_rt_loom))]
mod hotplug;
mod idle;
mod idle_wait;
mod join;
mod kick;
mod kick_state;
mod loom;
mod registry;
mod rq;
#[cfg(not(scx_rt_loom))]
mod runtime;
#[cfg(not(scx_rt_loom))]
mod runtimes;
#[cfg(not(scx_rt_loom))]
mod sleep;
#[cfg(not(scx_rt_loom))]
mod spawn;
#[cfg(not(scx_rt_loom))]
mod sysrq;
mod task;
#[cfg(not(scx_rt_loom))]
mod task_pool;
mod task_ring;
#[cfg(not(scx_rt_loom))]
mod timer;
pub mod trace;
#[cfg(not(scx_rt_loom))]
mod watchdog;
#[cfg(not(scx_rt_loom))]
mod worker;

#[cfg(scx_rt_loom)]
pub mod model;

pub use crate::core::balance::BalanceStep;
pub use crate::core::dsq_iter::{DsqIter, DsqIterError};
pub use crate::core::events::Events;
pub use crate::core::shared::SliceTimer;
#[cfg(not(scx_rt_loom))]
pub use attach::AttachError;
#[cfg(not(scx_rt_loom))]
pub use blocking::BlockingHandle;
#[cfg(not(scx_rt_loom))]
pub use builder::{BuildError, Builder};
pub use consts::{SLICE_DFL, SLICE_INF};
pub use cpumask::{AtomicCpumask, Cpumask};
pub use exit::{ExitInfo, ExitKind};
pub use flags::{
    DeqFlags, DsqIterFlags, EnqFlags, KickFlags, OpsFlags, PickIdleFlags, WakeFlags, DSQ_GLOBAL,
    DSQ_INVALID, DSQ_LOCAL, DSQ_LOCAL_ON,
};
#[cfg(not(scx_rt_loom))]
pub use hotplug::HotplugError;
#[cfg(not(scx_rt_loom))]
pub use join::JoinError;
pub use ops::{
    CpuAcquireArgs, CpuPreemptReason, CpuReleaseArgs, CpuReleaseCtx, CreateDsqError, Ctx,
    DispatchCtx, DumpCtx, EnqueueCtx, ExitTaskArgs, InitCtx, InitTaskArgs, InvalidOps, Scheduler,
    SelectCpuCtx,
};
pub use rq::rqflags;
#[cfg(not(scx_rt_loom))]
pub use runtime::{BypassGuard, CpuStats, KickError, RunOnCpuError, Runtime, SpawnError, Stats};
#[cfg(not(scx_rt_loom))]
pub use spawn::JoinHandle;
#[doc(hidden)]
pub use task::TaskEntry;
pub use task::{Task, TaskId, TaskRef, TaskState};
pub use trace::{TraceConfig, TraceFull};
#[cfg(not(scx_rt_loom))]
pub use trace::{TraceError, TraceEvent, TraceEventKind, TraceSnapshot};

/// Spawns a green task from inside a task of the same runtime.
///
/// # Panics
/// When called outside a task; use [`Runtime::spawn`] there.
#[cfg(not(scx_rt_loom))]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // A worker spawns from its own CPU (the spawn does not switch).
    context::with_worker(|sh, cpu| {
        spawn::spawn_from(sh, Some(cpu), f, task::Affinity::All, consts::WEIGHT_DFL)
    })
    .expect("scx_rt::spawn called outside a scx-rt task")
}

/// Runs the blocking closure `f` on the runtime's blocking pool (a separate
/// set of OS threads) and returns a handle to its result; `join` on it
/// blocks only the calling green task, so its CPU keeps running other
/// tasks meanwhile.
///
/// This is the way to call code that blocks in the OS (file or pipe reads,
/// `std::thread::sleep`, a std `Mutex`, DNS lookups, a C library call):
/// called directly in a task, it stops the task's whole CPU until it
/// returns. A panic in `f` comes back as [`JoinError::Panicked`] from
/// [`BlockingHandle::join`]. The pool starts threads on demand up to
/// [`Builder::max_blocking_threads`]; beyond that, closures queue.
///
/// ```
/// let rt = scx_rt::Runtime::builder().nr_cpus(1).build().unwrap();
/// let n = rt.block_on(|| {
///     scx_rt::spawn_blocking(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0))
///         .join()
///         .unwrap()
/// });
/// assert!(n > 0);
/// ```
///
/// # Panics
/// When called outside a task (use [`Runtime::spawn_blocking`] there), or
/// when no pool thread exists and none can be started.
#[cfg(not(scx_rt_loom))]
pub fn spawn_blocking<F, T>(f: F) -> BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool =
        context::blocking_pool().expect("scx_rt::spawn_blocking called outside a scx-rt task");
    spawn::spawn_blocking_in(&pool, f)
}

/// Gives up the CPU: the task's slice ends and it goes back through the
/// scheduler (`sched_yield`). Outside a task, yields the OS thread.
///
/// Inlined into the caller: what stays out of line is the switch itself
/// (`try_suspend`, never inlined), so a yield is one call, not two.
#[cfg(not(scx_rt_loom))]
#[inline]
pub fn yield_now() {
    // A green task runs inside a fiber and only there.
    if !scx_rt_sys::fiber::try_suspend(context::SW_YIELD) {
        std::thread::yield_now();
    }
}

/// A preemption point (the kernel's `cond_resched()`): switches out only
/// when the CPU has a reschedule pending or the running task's slice has
/// run out; otherwise costs a thread-local read and two relaxed loads,
/// and a clock read while a polled slice runs (`SliceTimer::Poll`, and the
/// default's slices of up to 1 ms: about 11.5 ns in all, against 3 ns).
#[cfg(not(scx_rt_loom))]
#[inline]
pub fn preempt_point() {
    if context::need_resched() {
        // A scheduler callback runs on the worker's own stack, not in a
        // fiber: it does not switch.
        scx_rt_sys::fiber::try_suspend(context::SW_PREEMPT);
    }
}

/// The CPU running the calling task or worker.
#[cfg(not(scx_rt_loom))]
pub fn current_cpu() -> Option<usize> {
    context::current_cpu()
}

/// The id of the calling green task.
#[cfg(not(scx_rt_loom))]
pub fn task_id() -> Option<TaskId> {
    context::current().and_then(|(_, _, t)| t.map(|t| t.id()))
}

/// Whether the caller runs inside a green task.
#[cfg(not(scx_rt_loom))]
pub fn in_task() -> bool {
    context::in_task()
}

#[cfg(not(scx_rt_loom))]
pub use sleep::{sleep, sleep_until};
