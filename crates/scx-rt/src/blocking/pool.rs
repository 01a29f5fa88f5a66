//! The blocking pool's threads and job queue (the protocol is in the
//! `blocking` module docs). Jobs are type-erased closures: the pool knows
//! nothing of tasks or wait lists.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::consts::{DEFAULT_BLOCKING_KEEP_ALIVE, DEFAULT_MAX_BLOCKING_THREADS};

/// A queued closure. It returns what to do after it (wake its waiters),
/// so the pool thread can count itself available again *before* that
/// (see below).
pub(crate) type Job = Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send + 'static>;

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

    /// Queues `job`; it runs on a pool thread and returns what to do
    /// once that thread counts itself available again (wake its waiters).
    pub(crate) fn submit(&self, job: Job) -> Result<(), SpawnError> {
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
            let then = job();
            st = inner.st.lock();
            st.idle += 1;
            drop(st);
            then();
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
