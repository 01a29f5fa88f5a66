//! Every tunable and sched_ext constant in one place, one comment each.
//!
//! Model sizes shrink under `cfg(scx_rt_loom)` (STYLE.md habit 9): the same
//! code runs, only the constants differ.

/// Widest CPU id the runtime supports (cpumask width). Masks are sized to the
/// runtime's CPU count at build time, so this bounds only the API.
#[cfg(not(scx_rt_loom))]
pub const MAX_CPUS: usize = 1024;
/// Under loom a cpumask is one word.
#[cfg(scx_rt_loom)]
pub const MAX_CPUS: usize = 64;

/// Default time slice: 20 ms, as the kernel's `SCX_SLICE_DFL`.
pub const SLICE_DFL: u64 = 20_000_000;
/// Infinite slice: the task is never switched out by slice accounting.
pub const SLICE_INF: u64 = u64::MAX;

/// `SliceTimer::Auto` polls the deadline of a slice this long or shorter
/// (ns, one kernel tick at `HZ=1000`) at the preemption points and arms the
/// worker's expiry timer for longer ones. A timer expiry costs the worker
/// 16–25 µs on the 2-vCPU EPYC VM (its interrupt, signal frame and re-arm)
/// and ends the slice about as late: 2% of a 1 ms slice each, 0.1% of the
/// default 20 ms one. Polling a 1 ms slice costs a task that passes a
/// preemption point every 500 ns about as much (2,000 clock reads of 9 ns
/// more than the flag alone), one that passes them less often less (the
/// `timer` module docs, "Which slices are polled").
pub const POLL_SLICE_MAX: u64 = 1_000_000;

/// User DSQ ids below this (or below the CPU count, if larger) are looked
/// up in a dense table, without a lock or a reference count
/// (`core::user_dsqs`); larger ids in a hash map.
#[cfg(not(scx_rt_loom))]
pub const DENSE_DSQ_IDS: usize = 1024;
/// Under loom: two dense ids.
#[cfg(scx_rt_loom)]
pub const DENSE_DSQ_IDS: usize = 2;

/// Smallest task weight (`CGROUP_WEIGHT_MIN`): weights are in the cgroup
/// scale, where nice 19 maps to 1.
pub const WEIGHT_MIN: u32 = 1;
/// A task's weight unless spawned with another (`CGROUP_WEIGHT_DFL`,
/// nice 0).
pub const WEIGHT_DFL: u32 = 100;
/// Largest task weight (`CGROUP_WEIGHT_MAX`; nice -20 maps to 8668).
pub const WEIGHT_MAX: u32 = 10_000;

/// Default dispatch buffer size (`SCX_DSP_DFL_MAX_BATCH`).
pub const DSP_DFL_MAX_BATCH: u32 = 32;
/// Largest `Scheduler::dispatch_max_batch` accepted at attach (the kernel
/// refuses more than `INT_MAX` with `-E2BIG`).
pub const DSP_MAX_BATCH: u32 = i32::MAX as u32;

/// Longest scheduler name in bytes (`SCX_OPS_NAME_LEN` = 128, less the
/// kernel's terminating NUL).
pub const OPS_NAME_MAX: usize = 127;
/// Iterations of the dispatch loop before the CPU kicks itself
/// (`SCX_DSP_MAX_LOOPS`).
pub const DSP_MAX_LOOPS: u32 = 32;

/// Cached stacks whose memory an idle CPU leaves resident; the rest are
/// trimmed (all but their top pages) when a CPU goes to sleep.
pub const STACKS_KEEP_RESIDENT: usize = 1024;

/// Exited task blocks a worker thread always keeps for its spawns
/// (`task_pool`): the floor the epoch decay never goes below.
pub const TASK_POOL_FLOOR: usize = 1024;
/// Most exited task blocks one thread keeps, however large its bursts
/// (`task_pool`): 2^20 blocks of about 400 bytes, about 400 MiB.
pub const TASK_POOL_CAP: usize = 1 << 20;
/// Length of a task pool epoch in nanoseconds (`task_pool`): blocks that
/// no spawn on the thread took during a whole epoch are released at its
/// end, down to `TASK_POOL_FLOOR`.
pub const TASK_POOL_EPOCH_NS: u64 = 1_000_000_000;

/// Most task blocks a busy worker frees at one of its looks (`task_pool`;
/// a look every `IO_POLL_INTERVAL_NS`): the release after a large burst
/// is spread out, some 256 frees (tens of microseconds) per look, instead
/// of delaying the CPU's next task by one free per block. A worker about
/// to sleep frees what is owed in such batches until work arrives.
pub const TASK_POOL_BUSY_RELEASE: usize = 256;

/// Default green stack size (virtual; only touched pages cost memory).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Largest green stack size `Builder::stack_size` accepts (1 GiB, as Go's
/// goroutine limit): the stack pool maps stacks in slabs of 64, so one slab
/// of the largest stacks is 64 GiB of address space, and a larger size is
/// refused at build instead of failing at every spawn.
pub const MAX_STACK_SIZE: usize = scx_rt_sys::stack::MAX_STACK_SIZE;

/// Smallest green stack size; smaller requests are rounded up to it.
pub const MIN_STACK_SIZE: usize = scx_rt_sys::stack::MIN_STACK_SIZE;

/// Default cap on the threads of a runtime's blocking pool
/// (`spawn_blocking`), as tokio's.
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 512;

/// How long an idle blocking-pool thread waits for work before it exits.
pub const DEFAULT_BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an idle worker spins (POLLING, a kick needs no syscall) before it
/// sleeps on its doorbell.
#[cfg(not(scx_rt_loom))]
pub const DEFAULT_IDLE_POLL: std::time::Duration = std::time::Duration::from_micros(50);
/// Under loom the poll phase is one spin round.
#[cfg(scx_rt_loom)]
pub const DEFAULT_IDLE_POLL: std::time::Duration = std::time::Duration::from_nanos(0);

/// How often an idle worker's poll phase gives its OS CPU away
/// (`sched_yield`, `Cpu::idle_wait_with`), in nanoseconds. On a CPU the
/// runtime shares with other threads (its own timer thread, a
/// blocking-pool thread, another process: the `echo` benchmark's clients
/// on a 2-CPU machine), a spinning worker would keep the CPU until the OS
/// scheduler's slice ends (a few ms under EEVDF, which lets the running
/// thread run on after a wake-up), often delaying the very thread whose
/// work it waits for. With nothing else runnable the call returns at once
/// (about 0.3 µs on the 2-vCPU EPYC VM), so a kick still finds the CPU
/// polling. The cost falls where a thread did take the CPU: a kick made
/// meanwhile is seen when the OS runs the worker again (the CPU shows as
/// polling, so the kicker rings nothing), as a kick to a spinning worker
/// that the OS had preempted always was; a runtime's CPUs that nothing
/// else uses (pinned-core setups) never pay it.
pub const IDLE_YIELD_NS: u64 = 2_000;

/// Spin-loop hints between two clock reads of the idle poll.
#[cfg(not(scx_rt_loom))]
pub const IDLE_SPIN_BATCH: u32 = 64;
/// Under loom: one spin round.
#[cfg(scx_rt_loom)]
pub const IDLE_SPIN_BATCH: u32 = 1;

/// Default watchdog timeout (`SCX_WATCHDOG_MAX_TIMEOUT`).
pub const WATCHDOG_MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Size of the dump buffer when the scheduler does not choose one.
pub const EXIT_DUMP_DFL_LEN: usize = 32768;

/// The watchdog's default and maximum timeout in ms, the kernel's
/// `SCX_WATCHDOG_MAX_TIMEOUT` (30 s).
pub const WATCHDOG_MAX_TIMEOUT_MS: u32 = 30_000;

/// How often, at most, a busy CPU with I/O registered checks its reactor
/// without blocking (`io`, "Who waits where"), in nanoseconds: the longest
/// a CPU-bound stretch of scheduling steps delays an I/O wake-up, plus the
/// slice of the task that runs meanwhile.
pub const IO_POLL_INTERVAL_NS: u64 = 200_000;

/// How often, at most, an idle CPU with I/O registered looks at its reactor
/// without blocking while it polls (`Cpu::idle_wait_with`), in
/// nanoseconds: readiness that arrives during the idle poll is found
/// within this, instead of when the poll ends and the CPU sleeps in
/// `epoll_wait`.
pub const IO_IDLE_PEEK_NS: u64 = 2_000;

/// Events one reactor wait returns at most (more wait for the next).
pub const IO_EVENTS_PER_POLL: usize = 256;

/// Events a CPU's trace ring holds by default (`TraceConfig::new`): 40 bytes
/// each, 2.5 MiB per CPU; a yield records three (enqueue, dispatch, switch).
pub const DEFAULT_TRACE_CAPACITY: usize = 65_536;

/// The most events a CPU's trace ring may hold (640 MiB per CPU), so that a
/// typo cannot reserve the machine's memory at build.
pub const MAX_TRACE_CAPACITY: usize = 1 << 24;
