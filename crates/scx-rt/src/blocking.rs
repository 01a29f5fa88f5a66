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

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::consts::{DEFAULT_BLOCKING_KEEP_ALIVE, DEFAULT_MAX_BLOCKING_THREADS};
use crate::runtime::JoinError;
use crate::sync::wait::{wait_on, wake_all, WaitList, Waiter};

/// A queued closure. It returns the waiters to wake, so the pool thread
/// can count itself available again *before* it wakes them (see below).
type Job = Box<dyn FnOnce() -> Vec<Waiter> + Send + 'static>;

/// The pool of one runtime (a field of its shared state).
pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    st: parking_lot::Mutex<PoolState>,
    /// Idle threads wait here for a job or for shutdown.
    cv: parking_lot::Condvar,
}

/// The pool's state, behind its lock.
struct PoolState {
    /// Jobs not yet taken by a thread, FIFO.
    queue: VecDeque<Job>,
    /// Live pool threads.
    threads: usize,
    /// Threads waiting for work that no spawner has claimed.
    idle: usize,
    /// Claims sent to idle threads and not yet consumed.
    notified: usize,
    /// Most threads alive at once.
    cap: usize,
    /// How long a thread waits for work before it exits.
    keep_alive: Duration,
    /// Set by `shutdown`: threads drain the queue and exit.
    shutdown: bool,
    /// Join handles of live threads, by thread number.
    handles: HashMap<u64, std::thread::JoinHandle<()>>,
    /// The thread that exited on its keep-alive last: joined by the next
    /// one that does, or by shutdown.
    last_exited: Option<std::thread::JoinHandle<()>>,
    /// Next thread number.
    next_id: u64,
}

/// Why a job could not be queued.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The pool was shut down with its runtime.
    ShutDown,
    /// No pool thread exists and starting one failed.
    Thread(std::io::Error),
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                st: parking_lot::Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    notified: 0,
                    cap: DEFAULT_MAX_BLOCKING_THREADS,
                    keep_alive: DEFAULT_BLOCKING_KEEP_ALIVE,
                    shutdown: false,
                    handles: HashMap::new(),
                    last_exited: None,
                    next_id: 0,
                }),
                cv: parking_lot::Condvar::new(),
            }),
        }
    }

    /// Sets the thread cap (at least 1) and the keep-alive.
    pub(crate) fn configure(&self, cap: usize, keep_alive: Duration) {
        let mut st = self.inner.st.lock();
        st.cap = cap.max(1);
        st.keep_alive = keep_alive;
    }

    /// Live pool threads.
    pub(crate) fn threads(&self) -> usize {
        self.inner.st.lock().threads
    }

    /// Runs `f` on a pool thread; the handle gives its value or panic.
    pub(crate) fn spawn<F, T>(&self, f: F) -> Result<BlockingHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let packet = Arc::new(Packet {
            st: parking_lot::Mutex::new(PacketState {
                result: None,
                waiters: WaitList::default(),
            }),
        });
        let pk = packet.clone();
        self.submit(Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let mut s = pk.st.lock();
            s.result = Some(r);
            // Woken by the pool thread after the lock is released.
            s.waiters.take_all()
        }))?;
        Ok(BlockingHandle { packet })
    }

    fn submit(&self, job: Job) -> Result<(), SpawnError> {
        let mut st = self.inner.st.lock();
        if st.shutdown {
            return Err(SpawnError::ShutDown);
        }
        st.queue.push_back(job);
        if st.idle > 0 {
            st.idle -= 1;
            st.notified += 1;
            self.inner.cv.notify_one();
        } else if st.threads < st.cap {
            let id = st.next_id;
            let inner = self.inner.clone();
            // Started under the lock, so the thread cannot look for its
            // handle before it is in the map.
            match std::thread::Builder::new()
                .name("scx-rt-blocking".to_string())
                .spawn(move || thread_main(inner, id))
            {
                Ok(h) => {
                    st.next_id += 1;
                    st.threads += 1;
                    st.handles.insert(id, h);
                }
                Err(e) if st.threads == 0 => {
                    // Nobody would ever run it.
                    st.queue.pop_back();
                    return Err(SpawnError::Thread(e));
                }
                // A busy thread takes it when it is done.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Runs the queued jobs, stops every thread and joins them. Later
    /// spawns fail with [`SpawnError::ShutDown`]. Idempotent.
    pub(crate) fn shutdown(&self) {
        let (handles, last) = {
            let mut st = self.inner.st.lock();
            st.shutdown = true;
            self.inner.cv.notify_all();
            (std::mem::take(&mut st.handles), st.last_exited.take())
        };
        for (_, h) in handles {
            let _ = h.join();
        }
        if let Some(h) = last {
            let _ = h.join();
        }
    }
}

/// A thread counted in `idle` (or claimed out of it by a spawner) takes
/// itself out before looking at the queue: it consumes a pending claim if
/// there is one (whichever thread gets here first takes the job), else
/// leaves `idle`.
fn leave_idle(st: &mut PoolState) {
    if st.notified > 0 {
        st.notified -= 1;
    } else {
        st.idle -= 1;
    }
}

/// The loop of one pool thread (`id` is its key in `handles`).
fn thread_main(inner: Arc<Inner>, id: u64) {
    // Take the process's affinity, not the pinned worker's we inherited.
    if let Ok(cpus) = scx_rt_sys::affinity::usable_cpus() {
        let _ = scx_rt_sys::affinity::set_current_thread_cpus(&cpus);
    }
    let mut st = inner.st.lock();
    // Here (at the top of every round) this thread is not counted in
    // `idle`, and it holds the lock.
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            // Jobs catch their own panics (`spawn`).
            let waiters = job();
            st = inner.st.lock();
            st.idle += 1;
            drop(st);
            wake_all(waiters);
            st = inner.st.lock();
            leave_idle(&mut st);
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let keep_alive = st.keep_alive;
        let timed_out = inner.cv.wait_for(&mut st, keep_alive).timed_out();
        leave_idle(&mut st);
        if timed_out && st.queue.is_empty() && !st.shutdown {
            break;
        }
    }
    st.threads -= 1;
    let prev = if st.shutdown {
        // Shutdown holds our handle and joins us.
        None
    } else {
        // Leave our handle for the next exiting thread or for shutdown,
        // and join the one that exited before us.
        let me = st.handles.remove(&id);
        std::mem::replace(&mut st.last_exited, me)
    };
    drop(st);
    if let Some(h) = prev {
        let _ = h.join();
    }
}

struct PacketState<T> {
    result: Option<std::thread::Result<T>>,
    waiters: WaitList,
}

struct Packet<T> {
    st: parking_lot::Mutex<PacketState<T>>,
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
