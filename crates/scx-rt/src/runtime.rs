//! [`Runtime`]: a running runtime's handle (spawning through it, hotplug,
//! attach and detach, bypass, kicks, stats), and shutdown.
//!
//! # Shutdown
//!
//! [`Runtime::shutdown`] (also run on drop) waits until every spawned task
//! has finished — tasks may still spawn children meanwhile — then stops the
//! workers and joins their threads, so no worker thread outlives the
//! runtime. A task blocked forever (a receive nobody will satisfy) keeps
//! shutdown waiting, as joining a thread would; finish or unblock tasks
//! first. The exception is green I/O (`scx_rt::io`, `scx_rt::net`): when
//! shutdown starts, every wait for an fd's readiness, current or later,
//! fails with `ErrorKind::NotConnected`, so a server task blocked in
//! `accept` or `read` gets an error and can return.
//! Last, the blocking pool (`spawn_blocking`) runs the closures still
//! queued and its threads are joined.

use std::panic::resume_unwind;
use std::sync::Arc;

use crate::context;
use crate::core::events::Events;
use crate::cpumask::Cpumask;
use crate::exit::ExitInfo;
use crate::join::JoinError;
use crate::loom::Ordering;
use crate::ops::Scheduler;
use crate::ops::Shared;
use crate::spawn::{spawn_blocking_in, spawn_in, JoinHandle};
use crate::task::Affinity;

/// Stops the runtime's threads: the timer (first in `threads`) once every
/// worker has returned, i.e. once every task has finished.
pub(crate) fn stop(sh: &Shared, mut threads: Vec<std::thread::JoinHandle<()>>) {
    // The flag, then the fence a last exit pairs with (`core::live`, "The
    // last exit"): the workers rescheduled below read the count after it.
    let _ = sh.live.begin_shutdown(&sh.shutdown);
    // Tasks waiting for I/O would keep shutdown waiting for ever: their
    // waits fail from now on (`io`, "Shutdown").
    sh.io.close();
    // A SysRq watcher (if any) sees the shutdown at once.
    scx_rt_sys::sysrq::wake_waiters();
    for c in sh.cpus.iter() {
        c.resched();
    }
    let timer = if threads.is_empty() {
        None
    } else {
        Some(threads.remove(0))
    };
    for w in threads {
        let _ = w.join();
    }
    sh.timer.stop();
    if let Some(t) = timer {
        let _ = t.join();
    }
}

/// A running scx-rt runtime: one pinned worker thread per CPU.
pub struct Runtime {
    pub(crate) sh: Arc<Shared>,
    pub(crate) workers: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Threads for blocking closures (`spawn_blocking`); the workers hold
    /// it too, for `spawn_blocking` from tasks.
    pub(crate) blocking: Arc<crate::blocking::BlockingPool>,
}

impl Runtime {
    /// Number of CPUs (workers).
    pub fn nr_cpus(&self) -> usize {
        self.sh.nr_cpus
    }

    /// Spawns a green task.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_in(&self.sh, f, Affinity::All, crate::consts::WEIGHT_DFL)
    }

    /// Spawns a green task that may only run on CPU `cpu`.
    ///
    /// # Panics
    /// If `cpu` is not a CPU of this runtime (`cpu >= nr_cpus()`);
    /// [`Runtime::try_spawn_on`] returns that as an error instead.
    pub fn spawn_on<F, T>(&self, cpu: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_spawn_on(cpu, f) {
            Ok(h) => h,
            Err(e) => panic!("spawn_on: {e}"),
        }
    }

    /// Spawns a green task that may only run on CPU `cpu`, or returns
    /// [`SpawnError::NoSuchCpu`] (and drops `f`) if `cpu` is not a CPU of
    /// this runtime.
    pub fn try_spawn_on<F, T>(&self, cpu: usize, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if cpu >= self.sh.nr_cpus {
            return Err(SpawnError::NoSuchCpu {
                cpu,
                nr_cpus: self.sh.nr_cpus,
            });
        }
        let m = Cpumask::from_cpus(self.sh.nr_cpus, [cpu]);
        Ok(spawn_in(
            &self.sh,
            f,
            Affinity::Mask(Arc::new(m)),
            crate::consts::WEIGHT_DFL,
        ))
    }

    /// Spawns a green task with scheduling weight `weight`, in the cgroup
    /// scale the scheduler sees in [`TaskRef::weight`](crate::TaskRef::weight)
    /// and `set_weight`: [`WEIGHT_MIN`](crate::consts::WEIGHT_MIN) (1, nice
    /// 19) to [`WEIGHT_MAX`](crate::consts::WEIGHT_MAX) (10 000), where
    /// [`spawn`](Self::spawn) gives [`WEIGHT_DFL`](crate::consts::WEIGHT_DFL)
    /// (100, nice 0). The weight is set before the scheduler's `init_task`,
    /// `enable` and `set_weight` see the task, as the kernel sets a new
    /// task's weight from its nice value; it does not change afterwards.
    /// Returns [`SpawnError::InvalidWeight`] (and drops `f`) for a weight
    /// outside that range.
    ///
    /// ```
    /// let rt = scx_rt::Runtime::builder().nr_cpus(1).build().unwrap();
    /// let h = rt.spawn_weighted(8668, || 1).unwrap(); // nice -20
    /// assert_eq!(h.join().unwrap(), 1);
    /// assert!(rt.spawn_weighted(0, || 2).is_err());
    /// ```
    pub fn spawn_weighted<F, T>(&self, weight: u32, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        use crate::consts::{WEIGHT_MAX, WEIGHT_MIN};
        if !(WEIGHT_MIN..=WEIGHT_MAX).contains(&weight) {
            return Err(SpawnError::InvalidWeight {
                weight,
                min: WEIGHT_MIN,
                max: WEIGHT_MAX,
            });
        }
        Ok(spawn_in(&self.sh, f, Affinity::All, weight))
    }

    /// Runs the blocking closure `f` on this runtime's blocking pool, from
    /// outside a task (inside one, [`crate::spawn_blocking`] does the same).
    /// The handle's `join` parks the calling thread, or only the green task
    /// when called from one.
    ///
    /// # Panics
    /// After [`Runtime::shutdown`], or when no pool thread exists and none
    /// can be started.
    pub fn spawn_blocking<F, T>(&self, f: F) -> crate::BlockingHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_blocking_in(&self.blocking, f)
    }

    /// Threads of the blocking pool alive now (busy or idle).
    pub fn blocking_threads(&self) -> usize {
        self.blocking.threads()
    }

    /// Takes CPU `cpu` offline (SPEC.md §3.12; the steps and the one
    /// userspace deviation, tasks bound to the CPU, are in the `hotplug`
    /// module docs): `ops.cpu_offline` is called (or a scheduler without
    /// hotplug callbacks is ended with the hotplug exit code), the tasks
    /// queued there that may run elsewhere go back through `enqueue` on
    /// online CPUs, and the worker parks once it runs nothing pinned to it.
    pub fn cpu_offline(&self, cpu: usize) -> Result<(), crate::HotplugError> {
        crate::hotplug::cpu_offline(&self.sh, cpu)
    }

    /// Brings an offline CPU back (`ops.cpu_online` first).
    pub fn cpu_online(&self, cpu: usize) -> Result<(), crate::HotplugError> {
        crate::hotplug::cpu_online(&self.sh, cpu)
    }

    /// Attaches `s` while tasks run (hot swap; the steps are in the
    /// `attach` module docs): every live task gets `init_task` and `enable`,
    /// the queued ones go through `s`'s `enqueue`. Refused with
    /// [`AttachError::Busy`](crate::AttachError::Busy) while another
    /// scheduler is attached; a failing `ops.init` ejects `s` (its `exit`
    /// still runs) and leaves the runtime on the built-in FIFO.
    pub fn attach(&self, s: impl Scheduler) -> Result<(), crate::AttachError> {
        crate::attach::attach(&self.sh, Arc::new(s))
    }

    /// Detaches the attached scheduler (an `Unreg` exit): every task leaves
    /// it (`disable`, `exit_task`), `ops.exit` runs, and the runtime goes on
    /// under the built-in FIFO before this returns. `false` if none was
    /// attached.
    pub fn detach(&self) -> bool {
        crate::attach::detach(
            &self.sh,
            crate::exit::ExitKind::Unreg,
            "detached by the application",
        )
    }

    /// Detaches the attached scheduler as the SysRq-S key does
    /// (`ExitKind::Sysrq`); otherwise as [`Runtime::detach`].
    pub fn sysrq_detach(&self) -> bool {
        crate::attach::detach(
            &self.sh,
            crate::exit::ExitKind::Sysrq,
            "SysRq-S: detached by user request",
        )
    }

    /// Puts the runtime in bypass mode until the guard is dropped (the
    /// kernel's `scx_ops_bypass`, which it uses around suspend and while a
    /// scheduler is switched): the scheduler is not asked to place anything
    /// (`select_cpu`, `enqueue`, `dispatch` are not called), every runnable
    /// task is moved to the global FIFO and runs from there with the
    /// default slice, rotating each tick, and kicks issued by bypassing
    /// CPUs are dropped. Guards nest; the last one dropped hands the queued
    /// tasks back to the scheduler through `enqueue`.
    pub fn bypass(&self) -> BypassGuard {
        crate::core::bypass::bypass(&self.sh, true);
        BypassGuard {
            sh: self.sh.clone(),
        }
    }

    /// Whether the runtime is bypassing the scheduler (a guard from
    /// [`Runtime::bypass`] is alive, or a scheduler is being ejected).
    pub fn is_bypassing(&self) -> bool {
        *self.sh.bypass_depth.lock() > 0
    }

    /// Whether `cpu` is online (`false` for a CPU not in the runtime).
    pub fn cpu_is_online(&self, cpu: usize) -> bool {
        cpu < self.sh.nr_cpus && self.sh.cpu_online(cpu)
    }

    /// Runs `f` as a green task and waits for its value (a panic in `f`
    /// resumes here).
    ///
    /// # Panics
    /// If no stack could be allocated for the task
    /// ([`JoinError::NoStack`]); `spawn` and `join` return that as an error.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(v) => v,
            Err(JoinError::Panicked(p)) => resume_unwind(p),
            Err(e) => panic!("block_on: {e}"),
        }
    }

    /// Kicks CPU `cpu` from outside the runtime (`scx_bpf_kick_cpu` from a
    /// thread that is no worker): the kick step runs at once, on this
    /// thread, which holds no rq lock. `WAIT` returns once the target
    /// switched out the task it ran at kick time.
    ///
    /// A CPU that is not in the runtime ([`KickError::NoSuchCpu`]) and
    /// `IDLE` with `PREEMPT` or `WAIT` ([`KickError::IdleWith`]) are the
    /// caller's errors: the kick is refused and the scheduler is left alone
    /// (from a scheduler callback, [`Ctx::kick_cpu`](crate::Ctx::kick_cpu) treats them as the
    /// scheduler's errors, as the kernel does).
    pub fn kick_cpu(&self, cpu: usize, flags: crate::flags::KickFlags) -> Result<(), KickError> {
        use crate::flags::KickFlags;
        if cpu >= self.sh.nr_cpus {
            return Err(KickError::NoSuchCpu {
                cpu,
                nr_cpus: self.sh.nr_cpus,
            });
        }
        if flags.contains(KickFlags::IDLE) && flags.intersects(KickFlags::PREEMPT | KickFlags::WAIT)
        {
            return Err(KickError::IdleWith { flags });
        }
        let from = context::cpu_in(&self.sh);
        crate::kick::kick_cpu(&self.sh, from, cpu, flags);
        crate::kick::run_pending(&self.sh, from);
        Ok(())
    }

    /// Runs `f` on CPU `cpu`'s worker thread ahead of every task, as work of
    /// a scheduling class above sched_ext (a real-time or stop-class task
    /// in the kernel), and returns its value; a panic in `f` resumes here.
    ///
    /// The task the CPU runs is preempted at its next preemption point and
    /// put back as for a higher-class task (head of the local DSQ if it has
    /// slice left, else through `enqueue`); the scheduler gets
    /// [`Scheduler::cpu_release`] with `reason`, `f` runs on the worker's
    /// own stack (in no task), and the CPU's next balance calls
    /// [`Scheduler::cpu_acquire`] (SPEC.md §3.11). A CPU that was idle runs
    /// `f` without a release, as in the kernel. Per-CPU maintenance that
    /// must run on a given CPU and preempt its tasks is the use; a
    /// scheduler author also uses it to test `cpu_release` policies.
    ///
    /// Blocks the calling thread until `f` returned, or only the calling
    /// green task when called from one (the task's CPU may be `cpu`).
    /// `f` must not block (it holds the CPU from every task, as a stop-class
    /// task does). Do not call it from a scheduler callback.
    ///
    /// ```
    /// use scx_rt::CpuPreemptReason;
    /// let rt = scx_rt::Runtime::builder().nr_cpus(2).pin(false).build().unwrap();
    /// let on = rt.run_on_cpu(1, CpuPreemptReason::Stop, || scx_rt::current_cpu()).unwrap();
    /// assert_eq!(on, Some(1));
    /// ```
    pub fn run_on_cpu<F, T>(
        &self,
        cpu: usize,
        reason: crate::ops::CpuPreemptReason,
        f: F,
    ) -> Result<T, RunOnCpuError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if cpu >= self.sh.nr_cpus {
            return Err(RunOnCpuError::NoSuchCpu {
                cpu,
                nr_cpus: self.sh.nr_cpus,
            });
        }
        let (tx, rx) = crate::sync::channel(1);
        let work = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
        if crate::core::release::submit(&self.sh, cpu, reason, work).is_err() {
            return Err(RunOnCpuError::ShutDown);
        }
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(payload)) => resume_unwind(payload),
            // The worker exited with the work queued: it never ran.
            Err(_) => Err(RunOnCpuError::ShutDown),
        }
    }

    /// What ended the last scheduler, if one was ejected or exited.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        self.sh
            .last_exit
            .lock()
            .clone()
            .or_else(|| self.sh.exit.info())
    }

    /// The kind of the exit recorded for the attached scheduler
    /// (`ExitKind::None` while it runs normally).
    pub fn exit_kind(&self) -> crate::exit::ExitKind {
        self.sh.exit.kind()
    }

    /// Name of the attached scheduler.
    pub fn scheduler_name(&self) -> String {
        self.sh.cur_slot().name.clone()
    }

    /// A state dump (SPEC.md §6.6 layout).
    pub fn dump(&self) -> String {
        crate::dump::dump_state(&self.sh, crate::dump::Trigger::User)
    }

    /// The balance decisions CPU `cpu` made since the last call, oldest
    /// first (empty unless `Builder::record_balance(true)`, and for a CPU
    /// not in the runtime). Each balance pass ends with one of `KeepPrev`,
    /// `Local`, `Global`, `KeepPrevLast`, `Idle`; `Dispatch` and `LoopCap`
    /// precede it.
    pub fn take_balance_trace(&self, cpu: usize) -> Vec<crate::rq::BalanceStep> {
        let Some(c) = self.sh.cpus.get(cpu) else {
            return Vec::new();
        };
        let mut rq = c.rq.lock();
        rq.balance_trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let cpus = self
            .sh
            .cpus
            .iter()
            .map(|c| {
                let s = &c.shared.owner.stats;
                let r = |a: &crate::loom::AtomicU64| a.load(Ordering::Relaxed);
                let locked = c.rq.lock().stats;
                CpuStats {
                    kicks_sent: r(&s.kicks_sent),
                    kicks_received: locked.kicks_received,
                    idle_kicks_skipped: locked.idle_kicks_skipped,
                    preemptions: locked.preemptions,
                    doorbell_syscalls: r(&s.doorbell_syscalls),
                    wakes_while_polling: r(&s.wakes_while_polling),
                    kick_waits: r(&s.kick_waits),
                    io_wakeups: r(&s.io_wakeups),
                    io_doorbell_wakes: r(&s.io_doorbell_wakes),
                    io_wakeups_polling: r(&s.io_wakeups_polling),
                    io_wakeups_slept: r(&s.io_wakeups_slept),
                    io_wakeups_sibling: r(&s.io_wakeups_sibling),
                    io_busy_looks: r(&s.io_busy_looks),
                    io_sources: self.sh.io.get(c.id).map_or(0, |r| r.nr_sources()),
                    bound_tasks: c.shared.owner.nr_bound.load(Ordering::Relaxed),
                    pick_seq: c.shared.kick.pick_seq(),
                    events: c.shared.events.read(),
                }
            })
            .collect::<Vec<_>>();
        let events = cpus.iter().fold(Events::default(), |a, c| a.plus(c.events));
        Stats {
            live_tasks: self.sh.live.live(),
            tasks_without_stack: self.sh.nr_no_stack.load(Ordering::Relaxed),
            ejections: self.sh.nr_ejections.load(Ordering::Relaxed),
            stacks_allocated: self.sh.stacks.allocated(),
            sysrq_dumps: self.sh.sysrq_dumps.load(Ordering::Relaxed),
            timer_rings: self.sh.timer.rings.load(Ordering::Relaxed),
            events,
            cpus,
        }
    }

    /// Waits for every task to finish, then stops and joins the workers,
    /// then runs the blocking closures still queued and joins the blocking
    /// pool's threads. Green I/O waits fail from its start on (module
    /// docs, "Shutdown").
    pub fn shutdown(&self) {
        let ws: Vec<_> = std::mem::take(&mut *self.workers.lock());
        if ws.is_empty() {
            return;
        }
        stop(&self.sh, ws);
        crate::trace::at_shutdown(&self.sh);
        self.blocking.shutdown();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if crate::context::cpu_in(&self.sh).is_some() {
            // The last handle was dropped by one of this runtime's own
            // tasks: its worker cannot wait for itself (that task is still
            // live), so a helper thread does the shutdown.
            let ws: Vec<_> = std::mem::take(&mut *self.workers.lock());
            let sh = self.sh.clone();
            let blocking = self.blocking.clone();
            let _ = std::thread::Builder::new()
                .name("scx-rt-shutdown".to_string())
                .spawn(move || {
                    if !ws.is_empty() {
                        stop(&sh, ws);
                        crate::trace::at_shutdown(&sh);
                    }
                    blocking.shutdown();
                });
            return;
        }
        self.shutdown();
    }
}

/// Keeps the runtime in bypass mode ([`Runtime::bypass`]) while alive.
#[must_use = "bypass ends when the guard is dropped"]
pub struct BypassGuard {
    sh: Arc<Shared>,
}

impl Drop for BypassGuard {
    fn drop(&mut self) {
        crate::core::bypass::bypass(&self.sh, false);
    }
}

/// Runtime counters.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Tasks spawned and not finished.
    pub live_tasks: usize,
    /// Tasks that never ran because no stack could be mapped for them
    /// (their `join` returned [`JoinError::NoStack`]).
    pub tasks_without_stack: u64,
    /// Schedulers ejected (errors or exits).
    pub ejections: u64,
    /// Green stacks allocated so far (live and cached).
    pub stacks_allocated: usize,
    /// Dumps written for the SysRq-D signal (`Builder::sysrq_dump_signal`).
    pub sysrq_dumps: u64,
    /// Times the timer thread was woken before its time (a futex wake):
    /// by a worker whose slice deadline, or a scheduler timer armed, is
    /// earlier than the thread's next wake-up (`timer` and `ops_timer`
    /// docs: a timer re-armed from its own callback rings nobody).
    pub timer_rings: u64,
    /// The event counters (the kernel's `scx_bpf_events()` set) since the
    /// runtime started, under every scheduler it ran: the sum of the
    /// CPUs' `events`. [`Ctx::events`](crate::Ctx::events) gives the
    /// attached scheduler's own.
    pub events: Events,
    /// Per-CPU counters, indexed by CPU.
    pub cpus: Vec<CpuStats>,
}

/// Per-CPU counters.
#[derive(Clone, Debug, Default)]
pub struct CpuStats {
    /// Kicks this CPU issued (not dropped at the call side).
    pub kicks_sent: u64,
    /// Kicks that rescheduled this CPU.
    pub kicks_received: u64,
    /// `IDLE` kicks to this CPU skipped because it was busy.
    pub idle_kicks_skipped: u64,
    /// Slices of this CPU's current task zeroed by `PREEMPT` kicks or
    /// `ENQ_PREEMPT` insertions.
    pub preemptions: u64,
    /// Wake-ups of this CPU that took a futex syscall (it slept).
    pub doorbell_syscalls: u64,
    /// Wake-ups of this CPU that found it polling (no syscall).
    pub wakes_while_polling: u64,
    /// `KICK_WAIT`s this CPU completed as the waiter.
    pub kick_waits: u64,
    /// Tasks this CPU woke because their fd became ready, found in its own
    /// I/O reactor or (`io_wakeups_sibling`) in another CPU's (each went
    /// through the scheduler's `select_cpu` and `enqueue`).
    pub io_wakeups: u64,
    /// Wake-ups of this CPU out of an epoll sleep (it had I/O registered)
    /// that a waker's eventfd write made.
    pub io_doorbell_wakes: u64,
    /// Of `io_wakeups`: tasks woken for readiness that the CPU found while
    /// it polled idle (a non-blocking look at its reactor during the idle
    /// poll, `Builder::idle_poll`).
    pub io_wakeups_polling: u64,
    /// Of `io_wakeups`: tasks woken for readiness that ended (or met) the
    /// CPU's epoll sleep. The rest of `io_wakeups` were found by the look
    /// a CPU takes just before it goes idle and by the periodic look of a
    /// busy CPU.
    pub io_wakeups_slept: u64,
    /// Of `io_wakeups`: tasks woken for readiness that this CPU collected
    /// from another CPU's reactor while it had nothing to run (a runtime
    /// whose tasks may migrate, `Builder::allow_migration`; `scx_rt::io`,
    /// "Who collects what").
    pub io_wakeups_sibling: u64,
    /// Non-blocking looks a busy CPU took at its reactor, at most one per
    /// `IO_POLL_INTERVAL_NS` of scheduling steps (one `epoll_wait` each).
    /// The CPU skips the look due right after an epoll sleep returned:
    /// that sleep was the look.
    pub io_busy_looks: u64,
    /// Sources (fds: sockets, pipes) registered with this CPU's reactor
    /// now. A source registers with the CPU of its first blocking call,
    /// which is the CPU its task is bound to unless it is migratable, so
    /// for an echo server this is its connections per CPU.
    pub io_sources: usize,
    /// Tasks bound to this CPU (started, not migratable) that have not
    /// exited, runnable or blocked (`Ctx::nr_bound_tasks`).
    pub bound_tasks: usize,
    /// The pick sequence (bumped at every pick and switch-out).
    pub pick_seq: u64,
    /// The event counters this CPU counted (`core::events` says which CPU
    /// counts what).
    pub events: Events,
}

/// Why [`Runtime::try_spawn_on`] or [`Runtime::spawn_weighted`] spawned
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The runtime has no such CPU.
    #[error("no cpu {cpu} in this runtime ({nr_cpus} cpus)")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs in the runtime.
        nr_cpus: usize,
    },
    /// The weight is outside the cgroup scale.
    #[error("task weight {weight} is outside {min}..={max}")]
    InvalidWeight {
        /// The weight asked for.
        weight: u32,
        /// The smallest weight ([`WEIGHT_MIN`](crate::consts::WEIGHT_MIN)).
        min: u32,
        /// The largest weight ([`WEIGHT_MAX`](crate::consts::WEIGHT_MAX)).
        max: u32,
    },
}

/// Why [`Runtime::run_on_cpu`] ran nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunOnCpuError {
    /// The runtime has no such CPU.
    #[error("no cpu {cpu} in this runtime ({nr_cpus} cpus)")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs in the runtime.
        nr_cpus: usize,
    },
    /// The runtime shut down: its workers run nothing more.
    #[error("the runtime has shut down")]
    ShutDown,
}

/// Why [`Runtime::kick_cpu`] refused a kick.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KickError {
    /// The runtime has no such CPU.
    #[error("no cpu {cpu} in this runtime ({nr_cpus} cpus)")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs in the runtime.
        nr_cpus: usize,
    },
    /// `IDLE` combined with `PREEMPT` or `WAIT`.
    #[error("kick flags {flags:?}: IDLE cannot be combined with PREEMPT or WAIT")]
    IdleWith {
        /// The flags given.
        flags: crate::flags::KickFlags,
    },
}
