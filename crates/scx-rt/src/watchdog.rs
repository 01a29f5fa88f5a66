//! The watchdog (SPEC.md §6.2), run by the slice timer thread every half
//! timeout, so a stall is reported within (timeout, 1.5 × timeout].
//!
//! Two checks per CPU:
//! - **Runnable stall** (the kernel's `check_rq_for_timeouts`): a runnable
//!   task that has not run for longer than the scheduler's timeout ends the
//!   scheduler with `ERROR_STALL`, naming the task, its CPU and how long it
//!   waited; the disable path adds the dump (where `runnable_at` shows as a
//!   negative delta). A scheduler that holds tasks and never dispatches
//!   them, or loops in `dispatch` without producing any, is caught here.
//! - **Stuck CPU** (userspace only): a green task runs until it reaches a
//!   switch point. One that blocks its worker thread in a system call, or
//!   spins without `preempt_point()`, holds the CPU forever, and the kernel
//!   has no such failure (it preempts). A CPU whose worker has had a
//!   reschedule pending (a kick, an expired slice) without entering its
//!   pick path for longer than the timeout is reported the same way, naming
//!   the CPU and the task it is stuck in. Such a CPU keeps its bound tasks
//!   until the task returns; the rest of the runtime goes on under the
//!   fallback (the disable path needs nothing from the stuck worker).
//!   Blocking calls belong on `spawn_blocking`.

use crate::exit::ExitKind;
use crate::loom::Ordering;
use crate::ops::Shared;

/// What the watchdog remembers between rounds.
pub(crate) struct Watchdog {
    /// Each CPU's pick sequence at the previous round.
    seq: Vec<u64>,
    /// Since when each CPU has had a reschedule pending without picking (0:
    /// not stuck).
    stuck_since: Vec<u64>,
    /// When the next round is due.
    pub next: u64,
    /// The timeout the schedule was made for (a newly attached scheduler
    /// may bring a shorter one).
    timeout: u64,
}

impl Watchdog {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            seq: vec![0; nr_cpus],
            stuck_since: vec![0; nr_cpus],
            next: 0,
            timeout: 0,
        }
    }

    /// One round at `now` with the current scheduler's timeout. Returns
    /// when the next round is due.
    pub(crate) fn round(&mut self, sh: &Shared, now: u64) -> u64 {
        let timeout = sh.cur_slot().timeout_ns;
        if timeout != self.timeout {
            // A new scheduler: its first round is half its timeout away.
            self.timeout = timeout;
            self.next = self.next.min(now.saturating_add(timeout / 2));
            self.stuck_since.iter_mut().for_each(|s| *s = 0);
        }
        if now < self.next {
            return self.next;
        }
        self.next = now.saturating_add(timeout / 2);
        if sh.exit.pending.load(Ordering::Acquire) {
            return self.next; // an exit is already on its way
        }
        // The runnable tasks, by CPU: one look at the task registry per
        // round (the runnable lists keep no tasks, `rq::RunnableList`),
        // checked under each rq lock below. A task that moved to another
        // CPU meanwhile is looked at in the next round.
        let mut by_cpu: Vec<Vec<crate::task::TaskRef>> = vec![Vec::new(); sh.cpus.len()];
        for p in sh.tasks.snapshot() {
            if p.scx.on_runnable.load(Ordering::Relaxed) {
                if let Some(v) = by_cpu.get_mut(p.cpu()) {
                    v.push(p);
                }
            }
        }
        for (cpu, c) in sh.cpus.iter().enumerate() {
            // Runnable stall: the task that has waited longest.
            let oldest = {
                let rq = c.rq.lock();
                // The running task is on the runnable list too (`pick`);
                // it is not waiting.
                by_cpu[cpu]
                    .iter()
                    .filter(|p| p.cpu() == cpu && p.scx.on_runnable.load(Ordering::Relaxed))
                    .filter(|p| rq.curr.as_ref().is_none_or(|c| c.id() != p.id()))
                    .map(|p| (p.runnable_at(), p.id()))
                    .min()
            };
            if let Some((at, id)) = oldest {
                let waited = now.saturating_sub(at);
                if waited > timeout {
                    sh.record_exit(
                        ExitKind::ErrorStall,
                        0,
                        format!("task {id} on cpu {cpu} failed to run for {}", secs(waited)),
                    );
                    return self.next;
                }
            }
            // Stuck CPU: a reschedule pending and no pick since last round.
            let seq = c.shared.kick.pick_seq();
            let pending = c.shared.remote.need_resched.load(Ordering::Acquire)
                && !c.shared.owner.idle.load(Ordering::Acquire);
            if !pending || seq != self.seq[cpu] {
                self.seq[cpu] = seq;
                self.stuck_since[cpu] = if pending { now } else { 0 };
                continue;
            }
            if self.stuck_since[cpu] == 0 {
                self.stuck_since[cpu] = now;
                continue;
            }
            let stuck = now.saturating_sub(self.stuck_since[cpu]);
            if stuck > timeout {
                let task =
                    c.rq.lock()
                        .curr
                        .as_ref()
                        .map_or_else(|| "no task".to_string(), |p| format!("task {}", p.id()));
                sh.record_exit(
                    ExitKind::ErrorStall,
                    0,
                    format!(
                        "cpu {cpu} stuck in {task} for {}: it has not reached a \
                         preemption point (a blocking call belongs on spawn_blocking)",
                        secs(stuck)
                    ),
                );
                return self.next;
            }
        }
        self.next
    }
}

/// `1.234s`, the kernel's `%u.%03us`.
fn secs(ns: u64) -> String {
    let ms = ns / 1_000_000;
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}
