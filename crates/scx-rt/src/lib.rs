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

#![warn(missing_docs)]
// Under loom only the concurrency core is compiled; the runtime that uses
// the rest is not, so unused items are expected there.
#![cfg_attr(scx_rt_loom, allow(dead_code, unused_imports))]

pub mod consts;
pub mod cpumask;
pub mod exit;
pub mod flags;
pub mod ops;
pub mod schedulers;
#[cfg(not(scx_rt_loom))]
pub mod sync;

mod doorbell;
mod dsq;
mod dump;
mod idle;
mod kick;
mod loom;
mod rq;
#[cfg(not(scx_rt_loom))]
mod runtime;
mod sched;
mod task;
#[cfg(not(scx_rt_loom))]
mod timer;
#[cfg(not(scx_rt_loom))]
mod worker;

#[cfg(scx_rt_loom)]
pub mod model;

pub use consts::{SLICE_DFL, SLICE_INF};
pub use cpumask::{AtomicCpumask, Cpumask};
pub use exit::{ExitInfo, ExitKind};
pub use flags::{
    DeqFlags, EnqFlags, KickFlags, OpsFlags, PickIdleFlags, WakeFlags, DSQ_GLOBAL, DSQ_INVALID,
    DSQ_LOCAL, DSQ_LOCAL_ON,
};
pub use ops::{
    CreateDsqError, Ctx, DispatchCtx, DumpCtx, EnqueueCtx, ExitTaskArgs, InitCtx, InitTaskArgs,
    Scheduler, SelectCpuCtx,
};
pub use rq::rqflags;
#[cfg(not(scx_rt_loom))]
pub use runtime::{BuildError, Builder, CpuStats, JoinError, JoinHandle, Runtime, Stats};
pub use sched::BalanceStep;
pub use task::{Task, TaskId, TaskRef, TaskState};

#[cfg(not(scx_rt_loom))]
use std::time::{Duration, Instant};

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
    let (sh, _, _) = worker::current().expect("scx_rt::spawn called outside a scx-rt task");
    runtime::spawn_in(&sh, f, task::Affinity::All)
}

/// Gives up the CPU: the task's slice ends and it goes back through the
/// scheduler (`sched_yield`). Outside a task, yields the OS thread.
#[cfg(not(scx_rt_loom))]
pub fn yield_now() {
    if worker::in_task() {
        scx_rt_sys::fiber::suspend(worker::SW_YIELD);
    } else {
        std::thread::yield_now();
    }
}

/// A preemption point (the kernel's `cond_resched()`): switches out only
/// when the CPU has a reschedule pending; otherwise costs a thread-local
/// read and a relaxed load.
#[cfg(not(scx_rt_loom))]
#[inline]
pub fn preempt_point() {
    if worker::need_resched() && worker::in_task() {
        scx_rt_sys::fiber::suspend(worker::SW_PREEMPT);
    }
}

/// The CPU running the calling task or worker.
#[cfg(not(scx_rt_loom))]
pub fn current_cpu() -> Option<usize> {
    worker::current_cpu()
}

/// The id of the calling green task.
#[cfg(not(scx_rt_loom))]
pub fn task_id() -> Option<TaskId> {
    worker::current().and_then(|(_, _, t)| t.map(|t| t.id()))
}

/// Whether the caller runs inside a green task.
#[cfg(not(scx_rt_loom))]
pub fn in_task() -> bool {
    worker::in_task()
}

/// Sleeps for `d`: blocks only the green task (its CPU keeps a timer and
/// wakes on time without a polling thread); outside a task, sleeps the
/// thread.
#[cfg(not(scx_rt_loom))]
pub fn sleep(d: Duration) {
    sleep_until(Instant::now() + d)
}

/// Sleeps until `deadline`.
#[cfg(not(scx_rt_loom))]
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        let Some((sh, cpu, Some(t))) = worker::current() else {
            std::thread::sleep(left);
            continue;
        };
        let when = sched::now().saturating_add(left.as_nanos().min(u64::MAX as u128) as u64);
        {
            let mut rq = sh.cpus[cpu].rq.lock();
            rq.timer_seq += 1;
            let seq = rq.timer_seq;
            rq.timers.push(std::cmp::Reverse(rq::Timer {
                deadline: when,
                seq,
                task: t,
            }));
            let next = rq.next_timer().unwrap_or(u64::MAX);
            sh.cpus[cpu]
                .shared
                .next_timer
                .store(next, std::sync::atomic::Ordering::Relaxed);
        }
        drop(sh);
        sync::wait::park();
    }
}
