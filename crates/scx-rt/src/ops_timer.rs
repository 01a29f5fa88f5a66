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
//!
//! # A timer re-armed from its own callback (periodic timers)
//!
//! scx_central's timer re-arms itself at every run, as BPF timers do. The
//! callback runs on the worker after the timer thread has fired the timer
//! and gone back to sleep until its next deadline; the re-arm is then
//! earlier than that, and the worker would ring the thread (a futex wake,
//! 2.5-9 µs on the 2-vCPU VM) and wake it twice per period: with a 30 µs
//! period, 33,000 system calls a second on the CPU the timer serves. So
//! the thread expects the re-arm: after firing a timer it wakes no later
//! than the timer's last delay plus [`REARM_SLACK_NS`] from then, and an
//! arm whose deadline is at most `REARM_SLACK_NS` before the time the
//! thread wakes rings nobody. A callback that re-arms with its last delay
//! within `REARM_SLACK_NS` of the firing (the worker was running or
//! polling) therefore costs no system call and one wake-up of the thread
//! per period, and its timer fires at most `REARM_SLACK_NS` late; a later
//! re-arm fires on time after one extra wake-up of the thread, and a
//! timer not re-armed costs that one spurious wake-up.

use crate::loom::{AtomicU64, AtomicUsize, Ordering};

/// How many timers a scheduler may use (ids `0..MAX_OPS_TIMERS`).
pub const MAX_OPS_TIMERS: u32 = 8;

/// How late a scheduler timer may fire so that arming it rings nobody
/// (module docs: a timer re-armed from its own callback).
pub(crate) const REARM_SLACK_NS: u64 = 4_000;

/// One timer.
pub(crate) struct OpsTimer {
    /// When it fires (`u64::MAX`: disarmed).
    pub deadline: AtomicU64,
    /// The CPU whose worker runs the callback.
    pub cpu: AtomicUsize,
    /// The scheduler generation that armed it.
    pub gen: AtomicU64,
    /// The delay it was last armed with (ns): when the timer thread expects
    /// a callback's re-arm (module docs).
    pub period: AtomicU64,
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
                    period: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Arms timer `id` (checked by the caller) for `deadline`, `delay` ns
    /// from now. The deadline is stored last (SeqCst), so the timer thread
    /// that sees it also sees the CPU, the generation and the delay.
    pub(crate) fn arm(&self, id: u32, deadline: u64, delay: u64, cpu: usize, gen: u64) {
        let t = &self.timers[id as usize];
        t.deadline.store(u64::MAX, Ordering::SeqCst);
        t.cpu.store(cpu, Ordering::Relaxed);
        t.gen.store(gen, Ordering::Relaxed);
        t.period.store(delay, Ordering::Relaxed);
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
