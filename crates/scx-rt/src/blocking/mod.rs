//! The blocking pool: OS threads for code that blocks.
//!
//! A green task runs on its CPU's worker thread until it reaches a switch
//! point. If it makes a blocking system call (a `read` on a pipe, a
//! `std::thread::sleep`, a std `Mutex` held elsewhere, a DNS lookup), the
//! worker thread blocks with it and the whole CPU stops: every other task
//! queued there waits, and a scheduler's dispatch to that CPU goes nowhere.
//! sched_ext never has this problem because the kernel is what blocks;
//! a userspace runtime must move blocking code off its CPUs.
//!
//! [`spawn_blocking`](crate::spawn_blocking) runs a closure on a separate
//! pool of plain OS threads, and the calling task waits for it *green-ly*:
//! it blocks through the runtime's wait lists (`sync::wait`), so its worker
//! keeps running other tasks, and the pool thread wakes it with an ordinary
//! green wake-up when the closure returns.
//!
//! # The pool
//!
//! Like tokio's blocking pool:
//!
//! - jobs go to one FIFO queue under the pool lock;
//! - a job is handed to an idle thread if there is one (notified through a
//!   condition variable); otherwise a new thread is started, up to the cap
//!   ([`DEFAULT_MAX_BLOCKING_THREADS`] unless the builder says otherwise);
//!   at the cap the job waits in the queue for the first thread to finish;
//! - a thread that finds no job for the keep-alive time
//!   ([`DEFAULT_BLOCKING_KEEP_ALIVE`]) exits;
//! - pool threads are not pinned: each takes the process's affinity, not
//!   the affinity of the (pinned) worker that started it, so it does not
//!   compete with that worker for its core.
//!
//! Idle accounting: `idle` counts waiting threads that no job has claimed
//! yet; a spawner that claims one moves it to `notified` and signals the
//! condition variable. A thread waking from its wait consumes a pending
//! notification if there is one (whichever thread wakes first takes the
//! job), else removes itself from `idle`. So a queued job always has a
//! claimed idle thread, a new thread, or a busy thread that will look at
//! the queue before it waits again: no job is stranded.
//!
//! A thread that finished a job counts itself in `idle` *before* it wakes
//! the job's waiter, then re-checks the queue. Otherwise a task that calls
//! `spawn_blocking` in a loop would see no idle thread each time its
//! previous call's thread had not gone back to waiting yet, and would
//! start a new thread per call.
//!
//! # Shutdown
//!
//! [`Runtime::shutdown`](crate::Runtime::shutdown) first waits for every
//! green task, then shuts the pool down: threads finish the jobs still
//! queued or running (nothing is dropped), then exit, and shutdown joins
//! every one of them, including one that exited on its keep-alive just
//! before. A blocking closure that never returns keeps shutdown waiting,
//! as a task that never finishes does.
//!
//! [`DEFAULT_MAX_BLOCKING_THREADS`]: crate::consts::DEFAULT_MAX_BLOCKING_THREADS
//! [`DEFAULT_BLOCKING_KEEP_ALIVE`]: crate::consts::DEFAULT_BLOCKING_KEEP_ALIVE

pub(crate) mod pool;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::join::JoinError;
use crate::sync::wait::{wait_on, wake_all, WaitList};

pub(crate) use pool::{BlockingPool, SpawnError};

/// Runs `f` on a pool thread; the handle gives its value or panic.
pub(crate) fn spawn<F, T>(pool: &BlockingPool, f: F) -> Result<BlockingHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let packet = Arc::new(Packet {
        st: scx_rt_sys::spinlock::SpinMutex::new(PacketState {
            result: None,
            waiters: WaitList::default(),
        }),
    });
    let pk = packet.clone();
    pool.submit(Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let mut s = pk.st.lock();
        s.result = Some(r);
        let ws = s.waiters.take_all();
        // Woken by the pool thread once it counts itself available.
        Box::new(move || wake_all(ws))
    }))?;
    Ok(BlockingHandle { packet })
}

struct PacketState<T> {
    result: Option<std::thread::Result<T>>,
    waiters: WaitList,
}

struct Packet<T> {
    st: scx_rt_sys::spinlock::SpinMutex<PacketState<T>>,
}

/// Owns the result of a closure given to
/// [`spawn_blocking`](crate::spawn_blocking) or
/// [`Runtime::spawn_blocking`](crate::Runtime::spawn_blocking).
///
/// Dropping it detaches the closure: it still runs to completion (and
/// runtime shutdown waits for it), its value is dropped.
pub struct BlockingHandle<T> {
    packet: Arc<Packet<T>>,
}

impl<T> BlockingHandle<T> {
    /// Waits for the closure and returns its value, or
    /// [`JoinError::Panicked`] with the payload if it panicked (the pool
    /// thread survives). Called from a green task it blocks only that task:
    /// its CPU runs other tasks meanwhile. Called from an OS thread it
    /// parks the thread.
    pub fn join(self) -> Result<T, JoinError> {
        wait_on(&self.packet.st, |s| s.result.take(), |s| &mut s.waiters)
            .map_err(JoinError::Panicked)
    }

    /// Whether the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.packet.st.lock().result.is_some()
    }
}

impl<T> std::fmt::Debug for BlockingHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
