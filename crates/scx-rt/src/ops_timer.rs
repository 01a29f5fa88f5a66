//! Scheduler timers: the analogue of the BPF timers a sched_ext scheduler
//! arms from its callbacks (`bpf_timer_start`, pinned to a CPU with
//! `BPF_F_TIMER_CPU_PIN`), such as scx_central's 1 ms preemption timer.
//!
//! A scheduler has [`MAX_OPS_TIMERS`] timers, named by a small id. Arming
//! one ([`crate::Ctx::timer_start`]) stores its deadline and CPU here and
//! rings the slice timer thread when the deadline is earlier than the one
//! that thread sleeps until (the same no-oversleep protocol as slice
//! deadlines, `timer` module docs). When a deadline passes, the timer thread
//! disarms the timer, sets its bit in the CPU's `ops_timers_fired` and
//! raises interrupt work on that CPU. The CPU's worker runs
//! [`crate::Scheduler::timer`] at its next check, holding no lock (the
//! kernel runs BPF timer callbacks in softirq context, where `kick_cpu` and
//! the DSQ queries are allowed), and, if the CPU was running a task and
//! nothing else asked for a reschedule, resumes that task without a
//! scheduling pass, as an interrupt would.
//!
//! A timer armed by a scheduler that has since been ejected or detached
//! never calls the new one: each timer remembers the scheduler generation
//! that armed it.

use crate::loom::{AtomicU64, AtomicUsize, Ordering};

/// How many timers a scheduler may use (ids `0..MAX_OPS_TIMERS`).
pub const MAX_OPS_TIMERS: u32 = 8;

/// One timer.
pub(crate) struct OpsTimer {
    /// When it fires (`u64::MAX`: disarmed).
    pub deadline: AtomicU64,
    /// The CPU whose worker runs the callback.
    pub cpu: AtomicUsize,
    /// The scheduler generation that armed it.
    pub gen: AtomicU64,
}

/// Every scheduler timer of a runtime.
pub(crate) struct OpsTimers {
    pub timers: Box<[OpsTimer]>,
}

impl OpsTimers {
    pub(crate) fn new() -> Self {
        Self {
            timers: (0..MAX_OPS_TIMERS)
                .map(|_| OpsTimer {
                    deadline: AtomicU64::new(u64::MAX),
                    cpu: AtomicUsize::new(0),
                    gen: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Arms timer `id` (checked by the caller). The deadline is stored last
    /// (SeqCst), so the timer thread that sees it also sees the CPU and the
    /// generation.
    pub(crate) fn arm(&self, id: u32, deadline: u64, cpu: usize, gen: u64) {
        let t = &self.timers[id as usize];
        t.deadline.store(u64::MAX, Ordering::SeqCst);
        t.cpu.store(cpu, Ordering::Relaxed);
        t.gen.store(gen, Ordering::Relaxed);
        t.deadline.store(deadline, Ordering::SeqCst);
    }

    /// Disarms timer `id`; a callback already raised still runs once.
    pub(crate) fn cancel(&self, id: u32) {
        self.timers[id as usize]
            .deadline
            .store(u64::MAX, Ordering::SeqCst);
    }

    /// Disarms every timer (the scheduler is leaving).
    pub(crate) fn cancel_all(&self) {
        for t in self.timers.iter() {
            t.deadline.store(u64::MAX, Ordering::SeqCst);
        }
    }
}
