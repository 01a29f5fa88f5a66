//! `Runtime`, its `Builder`, spawning, joining and shutdown.
//!
//! # Shutdown
//!
//! [`Runtime::shutdown`] (also run on drop) waits until every spawned task
//! has finished — tasks may still spawn children meanwhile — then stops the
//! workers and joins their threads, so no worker thread outlives the
//! runtime. A task blocked forever (a receive nobody will satisfy) keeps
//! shutdown waiting, as joining a thread would; finish or unblock tasks
//! first.
//! Last, the blocking pool (`spawn_blocking`) runs the closures still
//! queued and its threads are joined.

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::consts::{
    DEFAULT_IDLE_POLL, DEFAULT_STACK_SIZE, MAX_CPUS, MAX_STACK_SIZE, SLICE_DFL, SLICE_INF,
};
use crate::core::clock::now;
use crate::core::error::{call, call_task, panic_msg};
use crate::core::shared::Config;
use crate::cpumask::Cpumask;
use crate::exit::ExitInfo;
use crate::flags::WakeFlags;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::ops::{Ctx, InitCtx, InitTaskArgs, InvalidOps, Scheduler};
use crate::sync::wait::{wait_on, wake_all, WaitList};
use crate::task::{Affinity, Task, TaskId, TaskRef, TaskState};
use crate::worker;

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The CPU list is empty.
    #[error("the cpu list is empty")]
    NoCpus,
    /// A CPU is listed twice.
    #[error("cpu {cpu} is listed twice")]
    DuplicateCpu {
        /// The CPU.
        cpu: usize,
    },
    /// A CPU is outside the process's affinity mask.
    #[error("cpu {cpu} is not in this process's affinity mask (usable: {usable})")]
    CpuNotUsable {
        /// The CPU.
        cpu: usize,
        /// The usable CPUs, as a list.
        usable: String,
    },
    /// More CPUs were asked for than pinning can give.
    #[error("{requested} pinned cpus requested but only {available} are usable")]
    TooManyCpus {
        /// Requested.
        requested: usize,
        /// Usable.
        available: usize,
    },
    /// More CPUs than the cpumask width.
    #[error("{requested} cpus requested; at most {max} are supported")]
    CpuLimit {
        /// Requested.
        requested: usize,
        /// Maximum.
        max: usize,
    },
    /// Installing a SysRq signal handler failed (an invalid signal, or one
    /// that cannot be caught).
    #[error("installing the sysrq signal handler failed: {0}")]
    Signal(#[source] std::io::Error),
    /// Reading the affinity mask failed.
    #[error("reading the process affinity mask failed: {0}")]
    Affinity(#[source] std::io::Error),
    /// Pinning a worker failed.
    #[error("pinning the worker of cpu {cpu} failed: {source}")]
    Pin {
        /// The CPU.
        cpu: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Starting a worker thread failed.
    #[error("starting the worker of cpu {cpu} failed: {source}")]
    Spawn {
        /// The CPU.
        cpu: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The green stack size is above [`MAX_STACK_SIZE`].
    #[error("a green stack of {requested} bytes was requested; the maximum is {max} bytes")]
    StackSize {
        /// What `Builder::stack_size` was given.
        requested: usize,
        /// The maximum ([`MAX_STACK_SIZE`], 1 GiB).
        max: usize,
    },
    /// `Builder::slice` was given zero.
    #[error("the default slice is zero; it must be at least 1 ns (`Duration::MAX` for no expiry)")]
    ZeroSlice,
    /// `Builder::max_blocking_threads` was given zero.
    #[error("max_blocking_threads is zero; the blocking pool needs at least 1 thread")]
    NoBlockingThreads,
    /// The scheduler failed the checks the kernel makes at load.
    #[error("scheduler refused: {0}")]
    Scheduler(#[source] InvalidOps),
}

/// Configures and starts a [`Runtime`].
pub struct Builder {
    cpus: Option<Vec<usize>>,
    nr_cpus: Option<usize>,
    pin: bool,
    sched: Option<Arc<dyn Scheduler>>,
    slice: Duration,
    stack_size: usize,
    idle_poll: Duration,
    allow_migration: bool,
    record_balance: bool,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    sysrq: crate::sysrq::SysrqSignals,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            cpus: None,
            nr_cpus: None,
            pin: true,
            sched: None,
            slice: Duration::from_nanos(SLICE_DFL),
            stack_size: DEFAULT_STACK_SIZE,
            idle_poll: DEFAULT_IDLE_POLL,
            allow_migration: false,
            record_balance: false,
            max_blocking_threads: crate::consts::DEFAULT_MAX_BLOCKING_THREADS,
            blocking_keep_alive: crate::consts::DEFAULT_BLOCKING_KEEP_ALIVE,
            sysrq: Default::default(),
        }
    }
}

impl Builder {
    /// The OS cores to run on, one worker (CPU) each; CPU ids inside the
    /// runtime are positions in this list. Default: every usable core.
    ///
    /// `build` refuses an empty list ([`BuildError::NoCpus`]), a core listed
    /// twice ([`BuildError::DuplicateCpu`]), when pinned a core outside the
    /// process's affinity mask ([`BuildError::CpuNotUsable`]), and more
    /// than [`MAX_CPUS`] entries ([`BuildError::CpuLimit`]). Unpinned
    /// (`pin(false)`) the values only need to be distinct.
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Run `n` workers: the first `n` usable cores when pinned; any number
    /// (more than the cores, too) when `pin(false)`.
    ///
    /// `build` refuses 0 ([`BuildError::NoCpus`]), more than the usable
    /// cores when pinned ([`BuildError::TooManyCpus`]), and more than
    /// [`MAX_CPUS`] (1024) unpinned ([`BuildError::CpuLimit`]).
    pub fn nr_cpus(mut self, n: usize) -> Self {
        self.nr_cpus = Some(n);
        self
    }

    /// Pin each worker to its core (default `true`).
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// The scheduler (default: the built-in FIFO).
    pub fn scheduler(mut self, s: impl Scheduler) -> Self {
        self.sched = Some(Arc::new(s));
        self
    }

    /// The default slice (`SLICE_DFL` = 20 ms unless set), in whole
    /// nanoseconds. `build` refuses zero ([`BuildError::ZeroSlice`]); a
    /// duration of `u64::MAX` ns (about 584 years) or more, such as
    /// `Duration::MAX`, is [`SLICE_INF`]: slices never expire.
    pub fn slice(mut self, d: Duration) -> Self {
        self.slice = d;
        self
    }

    /// Green stack size in bytes (virtual: only the pages a task touches
    /// cost memory; default 256 KiB). Rounded up to whole pages and to at
    /// least [`MIN_STACK_SIZE`](crate::consts::MIN_STACK_SIZE) (16 KiB);
    /// `build` refuses more than [`MAX_STACK_SIZE`] (1 GiB) with
    /// [`BuildError::StackSize`].
    ///
    /// Stacks are mapped when tasks first run. If the OS refuses a mapping
    /// then (an address-space limit, `RLIMIT_AS`), the task that needed it
    /// never runs: its [`JoinHandle::join`] returns [`JoinError::NoStack`]
    /// and the runtime goes on with the other tasks.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How long an idle worker spins before sleeping (default 50 µs). Zero
    /// sleeps at once; `Duration::MAX` (anything of `u64::MAX` ns or more)
    /// never sleeps: idle workers spin at 100% CPU, for the lowest wake-up
    /// latency at the cost of a busy core each.
    pub fn idle_poll(mut self, d: Duration) -> Self {
        self.idle_poll = d;
        self
    }

    /// Lets a task that has started running move to another CPU.
    ///
    /// # Safety
    ///
    /// A stackful task that migrates keeps, on its stack, whatever it held
    /// when it was switched out. The caller promises that no task of this
    /// runtime holds, across a switch point (a blocking call, `yield_now`,
    /// `preempt_point`, `sleep`), a reference into a thread-local (inside a
    /// `LocalKey::with` closure) or any `!Send` value (an `Rc`, a
    /// `RefCell` borrow, `rand::thread_rng()`'s handle, a std `MutexGuard`).
    /// Breaking the promise lets two threads use non-thread-safe data at
    /// once: undefined behaviour. See the crate docs.
    pub unsafe fn allow_migration(mut self) -> Self {
        self.allow_migration = true;
        self
    }

    /// Records every balance decision per CPU, for tests and debugging
    /// ([`Runtime::take_balance_trace`]). Off by default.
    pub fn record_balance(mut self, on: bool) -> Self {
        self.record_balance = on;
        self
    }

    /// Most threads the blocking pool ([`crate::spawn_blocking`]) runs at
    /// once (default 512). Further closures wait in its queue. `build`
    /// refuses 0 ([`BuildError::NoBlockingThreads`]).
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for a closure before it
    /// exits (default 10 s). Zero: a thread exits as soon as it finds the
    /// queue empty; `Duration::MAX`: threads stay until shutdown.
    pub fn blocking_keep_alive(mut self, d: Duration) -> Self {
        self.blocking_keep_alive = d;
        self
    }

    /// A signal that prints a state dump to stderr (the SysRq-D analogue,
    /// as [`Runtime::dump`]). The handler is installed for the whole process
    /// and replaces the signal's disposition: choose one the application
    /// does not use (`libc::SIGUSR1`, a real-time signal). The handler only
    /// counts; a watcher thread writes the dump.
    pub fn sysrq_dump_signal(mut self, sig: i32) -> Self {
        self.sysrq.dump = Some(sig);
        self
    }

    /// A signal that detaches the attached scheduler with `ExitKind::Sysrq`
    /// (the SysRq-S analogue, as [`Runtime::sysrq_detach`]); same rules as
    /// [`Builder::sysrq_dump_signal`].
    pub fn sysrq_detach_signal(mut self, sig: i32) -> Self {
        self.sysrq.detach = Some(sig);
        self
    }

    /// Checks the configuration, then starts one worker per CPU. Every
    /// refusal is a [`BuildError`] naming the value and its limit (each
    /// setter documents its own); nothing is started for a refused
    /// configuration. A scheduler given to [`Builder::scheduler`] is checked
    /// as [`Runtime::attach`] checks one ([`BuildError::Scheduler`]).
    pub fn build(self) -> Result<Runtime, BuildError> {
        if self.slice.is_zero() {
            return Err(BuildError::ZeroSlice);
        }
        if self.stack_size > MAX_STACK_SIZE {
            return Err(BuildError::StackSize {
                requested: self.stack_size,
                max: MAX_STACK_SIZE,
            });
        }
        if self.max_blocking_threads == 0 {
            return Err(BuildError::NoBlockingThreads);
        }
        if let Some(s) = &self.sched {
            crate::ops::validate_ops(&**s).map_err(BuildError::Scheduler)?;
        }
        let usable = scx_rt_sys::affinity::usable_cpus().map_err(BuildError::Affinity)?;
        let usable_str = Cpumask::from_cpus(
            usable.iter().max().map_or(1, |m| m + 1),
            usable.iter().copied(),
        )
        .to_string();
        let os: Vec<Option<usize>> = match (&self.cpus, self.nr_cpus) {
            (Some(list), _) => {
                if list.is_empty() {
                    return Err(BuildError::NoCpus);
                }
                let mut seen = std::collections::HashSet::new();
                for &c in list {
                    if !seen.insert(c) {
                        return Err(BuildError::DuplicateCpu { cpu: c });
                    }
                    if self.pin && !usable.contains(&c) {
                        return Err(BuildError::CpuNotUsable {
                            cpu: c,
                            usable: usable_str,
                        });
                    }
                }
                list.iter().map(|&c| self.pin.then_some(c)).collect()
            }
            (None, Some(n)) => {
                if n == 0 {
                    return Err(BuildError::NoCpus);
                }
                if self.pin {
                    if n > usable.len() {
                        return Err(BuildError::TooManyCpus {
                            requested: n,
                            available: usable.len(),
                        });
                    }
                    usable[..n].iter().map(|&c| Some(c)).collect()
                } else {
                    // Checked before the list is allocated.
                    if n > MAX_CPUS {
                        return Err(BuildError::CpuLimit {
                            requested: n,
                            max: MAX_CPUS,
                        });
                    }
                    vec![None; n]
                }
            }
            (None, None) => {
                if usable.is_empty() {
                    return Err(BuildError::NoCpus);
                }
                usable.iter().map(|&c| self.pin.then_some(c)).collect()
            }
        };
        let n = os.len();
        if n > MAX_CPUS {
            return Err(BuildError::CpuLimit {
                requested: n,
                max: MAX_CPUS,
            });
        }
        let fallback = self.sched.is_none();
        let sched: Arc<dyn Scheduler> = self
            .sched
            .unwrap_or_else(|| Arc::new(crate::schedulers::Fifo));
        if self.sysrq.any() {
            crate::sysrq::install(self.sysrq).map_err(BuildError::Signal)?;
        }
        let sh = Arc::new(Shared::new(
            n,
            os.clone(),
            crate::core::slot::new_slot(1, sched.clone()),
            Config {
                slice_dfl: u64::try_from(self.slice.as_nanos()).unwrap_or(SLICE_INF),
                idle_poll_ns: self.idle_poll.as_nanos().min(u64::MAX as u128) as u64,
                allow_migration: self.allow_migration,
                record_balance: self.record_balance,
            },
            self.stack_size,
        ));
        let blocking = Arc::new(crate::blocking::BlockingPool::new());
        blocking.configure(self.max_blocking_threads, self.blocking_keep_alive);
        if fallback {
            sh.set_cur_fallback();
        }
        // ops.init: a failure is an ops error; the runtime then runs on the
        // fallback (and ops.exit still runs, from the disable path).
        let ictx = InitCtx::new(&sh, None);
        if let Some(Err(code)) = call(&sh, "init", || sched.init(&ictx)) {
            sh.ops_error(format!("ops.init failed ({code})"));
        }
        let mut workers = Vec::with_capacity(n + 2);
        let sh2 = sh.clone();
        match std::thread::Builder::new()
            .name("scx-rt-timer".to_string())
            .spawn(move || crate::timer::timer_main(sh2))
        {
            Ok(h) => workers.push(h),
            Err(e) => return Err(BuildError::Spawn { cpu: 0, source: e }),
        }
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Option<std::io::Error>)>();
        for (cpu, oscpu) in os.iter().copied().enumerate() {
            let sh2 = sh.clone();
            let blocking2 = blocking.clone();
            let tx = tx.clone();
            let r = std::thread::Builder::new()
                .name(format!("scx-rt-cpu{cpu}"))
                .spawn(move || {
                    if let Some(o) = oscpu {
                        if let Err(e) = scx_rt_sys::affinity::pin_current_thread(o) {
                            let _ = tx.send((cpu, Some(e)));
                            return;
                        }
                    }
                    let _ = tx.send((cpu, None));
                    drop(tx);
                    worker::worker_main(sh2, blocking2, cpu);
                });
            match r {
                Ok(h) => workers.push(h),
                Err(e) => {
                    stop(&sh, workers);
                    return Err(BuildError::Spawn { cpu, source: e });
                }
            }
        }
        drop(tx);
        let mut err = None;
        for _ in 0..n {
            if let Ok((cpu, Some(e))) = rx.recv() {
                err.get_or_insert(BuildError::Pin {
                    cpu: os[cpu].unwrap_or(cpu),
                    source: e,
                });
            }
        }
        if let Some(e) = err {
            stop(&sh, workers);
            return Err(e);
        }
        if self.sysrq.any() {
            let (sh2, sigs) = (sh.clone(), self.sysrq);
            let seen = crate::sysrq::counts(sigs);
            match std::thread::Builder::new()
                .name("scx-rt-sysrq".to_string())
                .spawn(move || crate::sysrq::watch(sh2, sigs, seen))
            {
                Ok(h) => workers.push(h),
                Err(e) => {
                    stop(&sh, workers);
                    return Err(BuildError::Spawn { cpu: 0, source: e });
                }
            }
        }
        Ok(Runtime {
            sh,
            blocking,
            workers: parking_lot::Mutex::new(workers),
        })
    }
}

/// Stops the runtime's threads: the timer (first in `threads`) once every
/// worker has returned, i.e. once every task has finished.
fn stop(sh: &Shared, mut threads: Vec<std::thread::JoinHandle<()>>) {
    sh.shutdown.store(true, Ordering::Release);
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
    sh: Arc<Shared>,
    workers: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Threads for blocking closures (`spawn_blocking`); the workers hold
    /// it too, for `spawn_blocking` from tasks.
    blocking: Arc<crate::blocking::BlockingPool>,
}

impl Runtime {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

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
        spawn_in(&self.sh, f, Affinity::All)
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
        Ok(spawn_in(&self.sh, f, Affinity::Mask(Arc::new(m))))
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
    /// (from a scheduler callback, [`Ctx::kick_cpu`] treats them as the
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
        let from = worker::cpu_in(&self.sh);
        crate::kick::kick_cpu(&self.sh, from, cpu, flags);
        crate::kick::run_pending(&self.sh, from);
        Ok(())
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
                let s = &c.shared.stats;
                let r = |a: &crate::loom::AtomicU64| a.load(Ordering::Relaxed);
                CpuStats {
                    kicks_sent: r(&s.kicks_sent),
                    kicks_received: r(&s.kicks_received),
                    idle_kicks_skipped: r(&s.idle_kicks_skipped),
                    preemptions: r(&s.preemptions),
                    doorbell_syscalls: r(&s.doorbell_syscalls),
                    wakes_while_polling: r(&s.wakes_while_polling),
                    kick_waits: r(&s.kick_waits),
                    pick_seq: r(&c.shared.pnt_seq),
                }
            })
            .collect();
        Stats {
            live_tasks: self.sh.live_tasks.load(Ordering::Relaxed),
            tasks_without_stack: self.sh.nr_no_stack.load(Ordering::Relaxed),
            ejections: self.sh.nr_ejections.load(Ordering::Relaxed),
            stacks_allocated: self.sh.stacks.allocated(),
            sysrq_dumps: self.sh.sysrq_dumps.load(Ordering::Relaxed),
            cpus,
        }
    }

    /// Waits for every task to finish, then stops and joins the workers,
    /// then runs the blocking closures still queued and joins the blocking
    /// pool's threads.
    pub fn shutdown(&self) {
        let ws: Vec<_> = std::mem::take(&mut *self.workers.lock());
        if ws.is_empty() {
            return;
        }
        stop(&self.sh, ws);
        self.blocking.shutdown();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if crate::worker::cpu_in(&self.sh).is_some() {
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
    /// The pick sequence (bumped at every pick and switch-out).
    pub pick_seq: u64,
}

/// Why `join` returned no value.
#[derive(thiserror::Error)]
pub enum JoinError {
    /// The task panicked; the payload is kept.
    #[error("task panicked")]
    Panicked(Box<dyn std::any::Any + Send + 'static>),
    /// The task never ran: the OS refused the memory for its stack when it
    /// was first scheduled (an address-space limit such as `RLIMIT_AS`, or
    /// a refused overcommit). Its closure was dropped unrun, and it counts
    /// as finished for the scheduler (`exit_task`) and for shutdown.
    #[error("task {id} never ran: no {} KiB stack could be mapped for it: {source}", stack_size / 1024)]
    NoStack {
        /// The task.
        id: TaskId,
        /// The stack size it needed, in bytes.
        stack_size: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl std::fmt::Debug for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(f, "Panicked({:?})", panic_msg(&**p)),
            JoinError::NoStack {
                id,
                stack_size,
                source,
            } => f
                .debug_struct("NoStack")
                .field("id", id)
                .field("stack_size", stack_size)
                .field("source", source)
                .finish(),
        }
    }
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The panic payload.
    ///
    /// # Panics
    /// If the task did not panic ([`JoinError::NoStack`]); see
    /// [`JoinError::try_into_panic`].
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(p) => p,
            Err(e) => panic!("JoinError::into_panic on an error that is no panic: {e}"),
        }
    }

    /// The panic payload, or the error itself when the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn std::any::Any + Send + 'static>, JoinError> {
        match self {
            JoinError::Panicked(p) => Ok(p),
            e => Err(e),
        }
    }

    /// The panic message when the payload is a string; for an error that
    /// is no panic, its description.
    pub fn panic_message(&self) -> String {
        match self {
            JoinError::Panicked(p) => panic_msg(&**p),
            e => e.to_string(),
        }
    }
}

/// Why [`Runtime::try_spawn_on`] spawned nothing.
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

struct PacketState<T> {
    result: Option<Result<T, JoinError>>,
    done: bool,
    waiters: WaitList,
}

struct Packet<T> {
    st: parking_lot::Mutex<PacketState<T>>,
}

/// Owns the right to join a task.
pub struct JoinHandle<T> {
    task: TaskRef,
    packet: Arc<Packet<T>>,
    _p: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// Waits for the task and returns its value. Blocks the OS thread, or
    /// only the green task when called from one.
    pub fn join(self) -> Result<T, JoinError> {
        wait_on(
            &self.packet.st,
            |s| if s.done { s.result.take() } else { None },
            |s| &mut s.waiters,
        )
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.packet.st.lock().done
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }
}

impl<T> Packet<T> {
    /// Stores the task's outcome and wakes its joiners.
    fn complete(&self, r: Result<T, JoinError>) {
        let ws = {
            let mut s = self.st.lock();
            s.result = Some(r);
            s.done = true;
            s.waiters.take_all()
        };
        wake_all(ws);
    }
}

std::thread_local! {
    /// Why the task whose unstarted body this thread is dropping never ran
    /// (set only around that drop, by [`fail_unstarted`]).
    static NO_STACK: std::cell::Cell<Option<(usize, std::io::Error)>> =
        const { std::cell::Cell::new(None) };
}

/// Held by a task's body until it first runs. If the body is dropped
/// unrun instead (no stack could be mapped for it, [`fail_unstarted`]), it
/// completes the join packet with [`JoinError::NoStack`], so `join` never
/// waits for a task that will not run.
struct Unstarted<T> {
    id: TaskId,
    /// `None` once the body started.
    packet: Option<Arc<Packet<T>>>,
}

impl<T> Unstarted<T> {
    /// The body is running: the packet is its to complete.
    fn started(mut self) -> Arc<Packet<T>> {
        self.packet.take().expect("a body starts once")
    }
}

impl<T> Drop for Unstarted<T> {
    fn drop(&mut self) {
        let Some(pk) = self.packet.take() else {
            return;
        };
        // Set by `fail_unstarted`, the one place that drops an unstarted
        // body while the task is live.
        let (stack_size, source) = NO_STACK.with(|c| c.take()).unwrap_or_else(|| {
            (
                0,
                std::io::Error::other("the task was dropped before it ran"),
            )
        });
        pk.complete(Err(JoinError::NoStack {
            id: self.id,
            stack_size,
            source,
        }));
    }
}

/// The first resume of `t` found no stack (`err`): drops its body unrun,
/// which completes its join packet with [`JoinError::NoStack`] and wakes its
/// joiners. The caller then retires the task as an exited one. No lock
/// held (the joiners are woken here).
pub(crate) fn fail_unstarted(sh: &Shared, t: &TaskRef, err: std::io::Error) {
    let fiber = t.body.lock().take();
    debug_assert!(fiber.as_ref().is_some_and(|f| !f.is_started()));
    sh.nr_no_stack.fetch_add(1, Ordering::Relaxed);
    NO_STACK.with(|c| c.set(Some((sh.stacks.stack_size(), err))));
    drop(fiber);
    // Normally taken by the body's drop; never left for another task.
    NO_STACK.with(|c| c.take());
}

/// Task ids are unique per process. Each thread takes them in blocks from
/// one counter, so spawning from many CPUs shares no cache line per task.
fn next_task_id() -> TaskId {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    std::thread_local! {
        static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            end = next + BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// Queues `f` on the blocking pool `pool` (`spawn_blocking`).
pub(crate) fn spawn_blocking_in<F, T>(
    pool: &crate::blocking::BlockingPool,
    f: F,
) -> crate::BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match pool.spawn(f) {
        Ok(h) => h,
        Err(crate::blocking::SpawnError::ShutDown) => {
            panic!("spawn_blocking on a runtime that was shut down")
        }
        Err(crate::blocking::SpawnError::Thread(e)) => {
            panic!("spawn_blocking: cannot start a blocking-pool thread: {e}")
        }
    }
}

pub(crate) fn spawn_in<F, T>(sh: &Arc<Shared>, f: F, affinity: Affinity) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let packet = Arc::new(Packet {
        st: parking_lot::Mutex::new(PacketState {
            result: None,
            done: false,
            waiters: WaitList::default(),
        }),
    });
    let id = next_task_id();
    let unstarted = Unstarted {
        id,
        packet: Some(packet.clone()),
    };
    let body: scx_rt_sys::fiber::Body = Box::new(move || {
        let pk = unstarted.started();
        let r = catch_unwind(AssertUnwindSafe(f));
        if r.is_err() && scx_rt_sys::fiber::unwinding_for_drop() {
            // The fiber is being dropped while suspended: let its forced
            // unwind through.
            if let Err(e) = r {
                resume_unwind(e);
            }
            return;
        }
        pk.complete(r.map_err(JoinError::Panicked));
    });
    let from = worker::cpu_in(sh);
    let p: TaskRef = Arc::new(Task::new(
        id,
        Some(scx_rt_sys::fiber::Fiber::new(body)),
        affinity,
        sh.cfg.allow_migration,
        now(),
    ));
    sh.live_tasks.fetch_add(1, Ordering::AcqRel);
    let start = from.unwrap_or_else(|| sh.spread_hint());
    let start = if p.allowed_on(start) {
        start
    } else {
        (0..sh.nr_cpus).find(|&c| p.allowed_on(c)).unwrap_or(0)
    };
    p.scx.cpu.store(start as u32, Ordering::Relaxed);
    p.set_slice(sh.cfg.slice_dfl);
    // Shared fork lock: an attach or a disable pass over every task either
    // sees this one registered or happens entirely before it picks its
    // scheduler.
    let fork = sh.fork_lock.read();
    sh.tasks.add(&p);
    let slot = sh.cur_slot();
    p.scx.sched_gen.store(slot.gen, Ordering::Release);
    let ictx = InitCtx::new(sh, from);
    let init = call_task(sh, "init_task", &p, || {
        slot.ops.init_task(&ictx, &p, InitTaskArgs { fork: true })
    });
    if let Some(Err(code)) = init {
        sh.ops_error(format!("ops.init_task failed ({code}) for task {id}"));
    }
    p.set_state(TaskState::Ready);
    let ctx = Ctx::new(sh, from);
    call_task(sh, "enable", &p, || slot.ops.enable(&ctx, &p));
    p.set_state(TaskState::Enabled);
    call_task(sh, "set_weight", &p, || {
        slot.ops.set_weight(&ctx, &p, p.weight())
    });
    if slot.wants_cpumask {
        let mask = match &p.affinity {
            Affinity::All => Cpumask::full(sh.nr_cpus),
            Affinity::Mask(m) => (**m).clone(),
        };
        call_task(sh, "set_cpumask", &p, || {
            slot.ops.set_cpumask(&ctx, &p, &mask)
        });
    }
    drop(fork);
    crate::core::enqueue::wake_up(sh, &p, WakeFlags::FORK, from);
    JoinHandle {
        task: p,
        packet,
        _p: PhantomData,
    }
}
