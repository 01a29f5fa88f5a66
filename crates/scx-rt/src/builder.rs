//! [`Builder`]: configuring and starting a [`Runtime`], and every limit a
//! configuration is checked against.

// `Builder::allow_migration` is an `unsafe fn`: its contract (no task holds
// a thread-bound value across a switch point) is one the compiler cannot
// check, so the caller states it with `unsafe`. That declaration is the only
// unsafe code here; the module has no `unsafe` block.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use crate::consts::{
    DEFAULT_IDLE_POLL, DEFAULT_STACK_SIZE, MAX_CPUS, MAX_STACK_SIZE, SLICE_DFL, SLICE_INF,
};
use crate::core::error::call;
use crate::core::shared::Config;
use crate::cpumask::Cpumask;
use crate::ops::Shared;
use crate::ops::{InitCtx, InvalidOps, Scheduler};
use crate::runtime::{stop, Runtime};
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
    /// `TraceConfig::capacity_per_cpu` is 0 or above
    /// [`MAX_TRACE_CAPACITY`](crate::consts::MAX_TRACE_CAPACITY).
    #[error("a trace ring of {requested} events per cpu was requested; it must be 1 to {max}")]
    TraceCapacity {
        /// What `TraceConfig::capacity_per_cpu` was given.
        requested: usize,
        /// The maximum.
        max: usize,
    },
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
    slice_timer: crate::SliceTimer,
    trace: Option<crate::TraceConfig>,
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
            slice_timer: Default::default(),
            trace: None,
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

    /// What ends a task's slice when its deadline passes (default
    /// [`SliceTimer::Auto`](crate::SliceTimer::Auto): slices up to 1 ms
    /// are polled at the task's preemption points, longer ones end by a
    /// timer signal on each worker; neither needs a spare CPU or a system
    /// call on a common switch). [`SliceTimer::Poll`](crate::SliceTimer::Poll)
    /// polls every slice and keeps signals out of task code (no `EINTR`
    /// from a task's raw system calls), at a clock read per preemption
    /// point; [`SliceTimer::Thread`](crate::SliceTimer::Thread) keeps them
    /// out too, at the price of late expiry when every CPU is busy. The
    /// README's "Preemption and slices" section has the measurements.
    pub fn slice_timer(mut self, t: crate::SliceTimer) -> Self {
        self.slice_timer = t;
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
    /// never runs: its [`JoinHandle::join`](crate::JoinHandle::join) returns
    /// [`JoinError::NoStack`](crate::JoinError::NoStack)
    /// and the runtime goes on with the other tasks.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How long an idle worker spins before sleeping (default 50 µs). Zero
    /// sleeps at once; `Duration::MAX` (anything of `u64::MAX` ns or more)
    /// never sleeps: idle workers spin at 100% CPU, for the lowest wake-up
    /// latency at the cost of a busy core each. A spinning worker calls
    /// `sched_yield` every 2 µs, so another thread that shares its OS CPU
    /// runs at once instead of waiting for the end of the OS time slice.
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

    /// Records scheduling events (enqueue, dispatch, switch, kicks,
    /// preemption, slice expiry, block/wake, migration) into a ring per
    /// CPU, for [`Runtime::trace_snapshot`] and [`Runtime::write_trace`]
    /// (Chrome trace-event JSON, which `ui.perfetto.dev` opens), and at
    /// shutdown into the file [`TraceConfig::write_at_shutdown`] names.
    /// Off by default; off, each recording point costs one predictable
    /// branch. The `trace` module docs give the protocol, the README's
    /// "Tracing" section the cost.
    ///
    /// [`TraceConfig::write_at_shutdown`]: crate::TraceConfig::write_at_shutdown
    pub fn trace(mut self, cfg: crate::TraceConfig) -> Self {
        self.trace = Some(cfg);
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
        if let Some(t) = &self.trace {
            let max = crate::consts::MAX_TRACE_CAPACITY;
            if t.capacity_per_cpu == 0 || t.capacity_per_cpu > max {
                return Err(BuildError::TraceCapacity {
                    requested: t.capacity_per_cpu,
                    max,
                });
            }
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
            .unwrap_or_else(|| Arc::new(crate::schedulers::WorkStealing::new()));
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
                slice_timer: self.slice_timer,
                poll_below: self.slice_timer.poll_below(),
            },
            self.stack_size,
        ));
        let blocking = Arc::new(crate::blocking::BlockingPool::new());
        blocking.configure(self.max_blocking_threads, self.blocking_keep_alive);
        if fallback {
            sh.set_cur_fallback();
        }
        if let Some(t) = self.trace {
            crate::trace::install(&sh, t);
        }
        crate::runtimes::register(&sh);
        // ops.init: a failure is an ops error; the runtime then runs on the
        // fallback (and ops.exit still runs, from the disable path).
        let ictx = InitCtx::new(&sh, None);
        if let Some(Err(code)) = call(&sh, "init", || sched.init(&ictx)) {
            sh.ops_error(format!("ops.init failed ({code})"));
        }
        let mut workers = Vec::with_capacity(n + 2);
        let sh2 = sh.clone();
        let housekeeping = housekeeping_cpus(&usable, &os);
        match std::thread::Builder::new()
            .name("scx-rt-timer".to_string())
            .spawn(move || {
                if !housekeeping.is_empty() {
                    // Best effort: unpinned, the thread still runs.
                    let _ = scx_rt_sys::affinity::set_current_thread_cpus(&housekeeping);
                }
                crate::timer::timer_main(sh2)
            }) {
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

impl Runtime {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// The CPUs the timer thread runs on (`timer` docs, "Where the thread
/// runs"): the process's usable CPUs that no worker is pinned to, when
/// every worker is pinned; empty (the thread stays unpinned) when a worker
/// is not pinned or no CPU is left over.
fn housekeeping_cpus(usable: &[usize], workers: &[Option<usize>]) -> Vec<usize> {
    if workers.iter().any(Option::is_none) {
        return Vec::new();
    }
    usable
        .iter()
        .copied()
        .filter(|c| !workers.contains(&Some(*c)))
        .collect()
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::housekeeping_cpus;

    #[test]
    fn housekeeping_is_what_pinned_workers_leave() {
        assert_eq!(
            housekeeping_cpus(&[0, 1, 2, 3], &[Some(0), Some(2)]),
            [1, 3]
        );
        assert_eq!(housekeeping_cpus(&[0, 1], &[Some(0), Some(1)]), [0usize; 0]);
        // An unpinned worker may run anywhere: no CPU is spare.
        assert_eq!(housekeeping_cpus(&[0, 1, 2], &[Some(0), None]), [0usize; 0]);
    }
}
