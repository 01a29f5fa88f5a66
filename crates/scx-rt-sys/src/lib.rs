//! `scx-rt-sys`: every unsafe OS touch point of scx-rt, behind small safe
//! wrappers, and nothing else.
//!
//! The runtime crate (`scx-rt`) is meant to be free of `unsafe`; whatever it
//! needs from the kernel or from raw memory lives here, one concept per
//! module:
//!
//! - [`futex`]: block on an `AtomicU32` (the idle doorbell), optionally with a
//!   timeout;
//! - [`eventfd`]: a pollable doorbell for the I/O-aware idle loop;
//! - [`affinity`]: the usable CPUs of the process, thread pinning,
//!   `sched_getcpu`;
//! - [`clock`]: monotonic nanoseconds;
//! - [`page`]: the system page size;
//! - [`stack`]: guarded green-task stacks carved from large slabs, and the
//!   pool that recycles them;
//! - [`stack_cache`]: one owner's private cache of a pool's stacks,
//!   passed down instead of found through a thread-local (a worker's);
//! - [`spinlock`]: the spin lock behind the rq and DSQ locks;
//! - [`fiber`]: a stackful green context (a corosensei coroutine on one of
//!   our stacks) with lazy stack allocation, and `suspend` for the body.
//! - [`sigsegv`]: the `SIGSEGV` handler, alternate signal stacks and the
//!   lock-free guard registry that turn a green stack overflow into "task N
//!   overflowed its S KiB stack" before the process dies by `SIGSEGV`.
//! - [`sysrq`]: opt-in signals counted by a minimal handler, for the SysRq
//!   analogues (dump, detach) that a runtime's watcher thread performs;
//! - [`epoll`]: an owned epoll instance (tokens, not pointers, in its
//!   events) and a one-fd `poll(2)`, for the I/O reactor;
//! - [`sock`]: a non-blocking `connect`, its completion (`SO_ERROR`), and
//!   `O_NONBLOCK` on any fd;
//! - [`rlimit`]: the open-file limit, read and raised (benchmarks holding
//!   many sockets);
//! - [`sigtimer`]: per-thread POSIX timers that set a flag from a
//!   real-time signal handler, and the calling thread's timer slack;
//! - [`expiry`]: the per-thread slice-expiry timer, a one-shot POSIX timer
//!   re-armed lazily whose handler compares a published deadline with the
//!   clock and raises the thread's flags;
//! - [`small_box`]: a `dyn Trait` value kept inline when small (a task's
//!   entry inside its control block, one allocation per spawn).
//! - [`in_place`]: a large value built straight into its `Arc`'s
//!   allocation (a task's control block, no move per spawn), and
//!   `Vacant`, the allocation of a dropped `Arc` value kept for another
//!   (a recycled control block).
//! - [`alias`]: a second, uncounted handle to an `Arc`'s value, for a
//!   name that a counted handle elsewhere keeps alive (the running task
//!   of a runqueue: no count per switch).
//!
//! Layers, each using only those below it: the leaves (`page`, `clock`,
//! `affinity`, `spinlock`, `rlimit`, `small_box`, `alias`, and `futex`, `eventfd`, `epoll`, `sock`,
//! `sigtimer` over a private `timespec`; `expiry` over `clock` and `sigtimer`; `sysrq` over
//! `futex`); `sigsegv`; `stack`, which registers
//! its slabs with `sigsegv`, and `stack_cache` over it; `fiber`, which runs on `stack`s and labels the
//! running one for `sigsegv`.
//!
//! Rules for this crate: every `unsafe` block has a `// SAFETY:` comment
//! right above it (clippy's `undocumented_unsafe_blocks`, CI runs with
//! `-D warnings`); `unsafe fn` bodies use inner `unsafe` blocks
//! (`unsafe_op_in_unsafe_fn = "deny"`); anything the OS can refuse returns
//! `std::io::Result`.
//!
//! Target: Linux (x86_64 and aarch64).

#![cfg(target_os = "linux")]

pub mod affinity;
pub mod alias;
pub mod clock;
pub mod epoll;
pub mod eventfd;
pub mod expiry;
pub mod fiber;
pub mod futex;
pub mod in_place;
pub mod page;
pub mod rlimit;
pub mod sigsegv;
pub mod sigtimer;
pub mod small_box;
pub mod sock;
pub mod spinlock;
pub mod stack;
pub mod stack_cache;
pub mod sysrq;
mod timespec;
