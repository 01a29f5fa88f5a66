//! Handles on the real per-CPU code for the loom models in `loom-tests`.
//! Compiled only under `--cfg scx_rt_loom`; nothing here re-implements a
//! protocol: each method calls the code the worker threads run.

use crate::loom::Ordering;
use crate::task::TaskRef;

/// One CPU: its rq lock, atomics and doorbell (`rq::Cpu`).
pub struct Cpu(crate::rq::Cpu);

impl Cpu {
    /// CPU `id` of a runtime with `nr_cpus` CPUs.
    pub fn new(id: usize, nr_cpus: usize) -> Self {
        Self(crate::rq::Cpu::new(id, nr_cpus))
    }

    /// `resched_curr`: the waker side of the idle handshake.
    pub fn resched(&self) {
        self.0.resched();
    }

    /// The worker loop's first step before it looks at its queues.
    pub fn clear_need_resched(&self) {
        self.0.shared.need_resched.store(false, Ordering::SeqCst);
    }

    /// Whether a reschedule is pending.
    pub fn need_resched(&self) -> bool {
        self.0.shared.need_resched.load(Ordering::SeqCst)
    }

    /// The worker's idle wait (poll, then sleep on the doorbell).
    pub fn idle_wait(&self) {
        self.0.idle_wait(0, || false, || ());
    }

    /// Links a task token into the local DSQ, with the rq locked (the
    /// queueing part of a local dispatch; the caller rings with `resched`).
    pub fn push_local(&self, p: TaskRef) {
        let mut rq = self.0.rq.lock();
        let _ = rq.local.push_fifo(p, false);
    }

    /// Unlinks the head of the local DSQ, with the rq locked.
    pub fn pop_local(&self) -> Option<TaskRef> {
        self.0.rq.lock().local.pop()
    }
}
