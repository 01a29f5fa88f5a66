//! Handles on crate-private hot paths for the criterion micro-benchmarks
//! (`benches/benches/micro.rs`). Not part of the public API: hidden from the
//! docs and free to change.
//!
//! Nothing here re-implements a data structure or a protocol: each method
//! is a thin call into the code the worker threads run (as `model` is for
//! the loom models), so a benchmark measures the real thing.

use crate::flags::DSQ_INVALID;
use crate::loom::Ordering;
use crate::task::TaskRef;

/// A dispatch queue as a local DSQ holds it (`dsq::DsqQueue`, one run,
/// FIFO or vtime-ordered).
pub struct Dsq(crate::dsq::DsqQueue);

impl Default for Dsq {
    fn default() -> Self {
        Self::new()
    }
}

impl Dsq {
    /// An empty queue.
    pub fn new() -> Self {
        Self(crate::dsq::DsqQueue::new(crate::flags::DSQ_LOCAL))
    }

    /// Links `p` at the tail (`head = false`) or the head in FIFO order.
    /// Returns `false` if the queue holds vtime-ordered tasks.
    #[inline]
    pub fn push_fifo(&mut self, p: TaskRef, head: bool) -> bool {
        self.0.push_fifo(p, head).is_ok()
    }

    /// Links `p` in vtime order (set it with `Task::set_dsq_vtime` first).
    /// Returns `false` if the queue holds FIFO tasks.
    #[inline]
    pub fn push_vtime(&mut self, p: TaskRef) -> bool {
        self.0.push_vtime(p).is_ok()
    }

    /// Unlinks the head task and clears its DSQ link field, as a CPU does
    /// when it starts the task (so the token can be queued again).
    #[inline]
    pub fn pop(&mut self) -> Option<TaskRef> {
        let p = self.0.pop()?;
        p.scx.dsq.store(DSQ_INVALID, Ordering::Relaxed);
        Some(p)
    }

    /// Number of queued tasks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A CPU's doorbell (`doorbell::Doorbell`).
pub struct Doorbell(crate::doorbell::Doorbell);

impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}

impl Doorbell {
    /// A doorbell whose owner is running (nobody sleeps on it).
    pub fn new() -> Self {
        Self(crate::doorbell::Doorbell::new())
    }

    /// The waker side: returns whether it made the wake syscall (never,
    /// unless the owner sleeps).
    #[inline]
    pub fn ring(&self) -> bool {
        self.0.ring()
    }
}

/// The calling worker CPU's side of the slice timer (`timer::TimerState`),
/// for the `slice-timer` workload of `scx-rt-bench`: what `schedule` does at
/// every pick, and the flag the slice timer (the worker's expiry timer, or
/// the timer thread) sets when the slice runs out.
pub struct SliceTimerProbe {
    sh: std::sync::Arc<crate::ops::Shared>,
    cpu: usize,
}

impl SliceTimerProbe {
    /// A handle on the CPU running the calling green task; `None` outside a
    /// task. The task stays on that CPU (started tasks are bound to it).
    pub fn current() -> Option<SliceTimerProbe> {
        match crate::context::current() {
            Some((sh, cpu, Some(_))) => Some(SliceTimerProbe { sh, cpu }),
            _ => None,
        }
    }

    /// Publishes `deadline` (ns on `scx_rt_sys::clock::now_ns`; `u64::MAX`:
    /// none) as this CPU's slice deadline, for a slice of `slice` ns: what
    /// the scheduling step does at every pick (`core::step::publish_deadline`:
    /// the word the preemption points poll, or `TimerState::set_deadline`,
    /// which re-arms the worker's expiry timer (`SliceTimer::Signal`) or
    /// rings the timer thread (`Thread`) only when the deadline is earlier
    /// than the armed one). The task's own pick published a deadline
    /// before; this replaces it.
    #[inline]
    pub fn publish(&self, deadline: u64, slice: u64) {
        crate::core::step::publish_deadline(&self.sh, &self.sh.cpus[self.cpu], deadline, slice);
    }

    /// The deadline this CPU last published (at the pick that switched the
    /// calling task in, unless `publish` replaced it), polled or armed; a
    /// polled one reads `u64::MAX` again once a preemption point found it
    /// passed.
    #[inline]
    pub fn deadline(&self) -> u64 {
        let s = &self.sh.cpus[self.cpu].shared;
        match s.poll_deadline.load(Ordering::Relaxed) {
            u64::MAX => s.owner.slice_deadline.load(Ordering::Relaxed),
            d => d,
        }
    }

    /// What `preempt_point()` checks: whether this CPU's `need_resched` is
    /// set (which the slice timer sets at expiry), or in
    /// `SliceTimer::Poll` whether the published deadline has passed (then
    /// marked as expired, as `preempt_point()` does).
    #[inline]
    pub fn need_resched(&self) -> bool {
        crate::context::need_resched()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    #[test]
    fn dsq_handle_keeps_order_and_relinks() {
        let mut q = Dsq::new();
        let toks: Vec<TaskRef> = (1..=3).map(Task::new_token).collect();
        for t in &toks {
            assert!(q.push_fifo(t.clone(), false));
        }
        assert_eq!(q.len(), 3);
        // FIFO queue refuses a vtime insert.
        assert!(!q.push_vtime(Task::new_token(9)));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|p| p.id()).collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(q.is_empty());
        // Popped tokens can be queued again, now in vtime order.
        for (t, v) in toks.iter().zip([30, 10, 20]) {
            t.set_dsq_vtime(v);
            assert!(q.push_vtime(t.clone()));
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|p| p.id()).collect();
        assert_eq!(order, [2, 3, 1]);
    }

    #[test]
    fn slice_timer_publishes_and_the_slice_timer_fires() {
        assert!(SliceTimerProbe::current().is_none());
        for mode in [
            crate::SliceTimer::Auto,
            crate::SliceTimer::Signal,
            crate::SliceTimer::Thread,
            crate::SliceTimer::Poll,
        ] {
            let rt = crate::Runtime::builder()
                .nr_cpus(1)
                .pin(false)
                .slice_timer(mode)
                .build()
                .unwrap();
            assert!(publish_and_wait(&rt), "{mode:?}: need_resched never set");
        }
    }

    fn publish_and_wait(rt: &crate::Runtime) -> bool {
        rt.block_on(|| {
            let t = SliceTimerProbe::current().expect("inside a task");
            // The default scheduler gives the task a finite slice: its pick
            // published a deadline.
            assert_ne!(t.deadline(), u64::MAX);
            // A 1 ms slice: armed on the timer but in `Poll` mode, where
            // the spin below polls it as `preempt_point()` would.
            let d = scx_rt_sys::clock::now_ns() + 1_000_000;
            t.publish(d, 1_000_000);
            assert_eq!(t.deadline(), d);
            // The real slice timer marks the CPU once `d` passes (a hang
            // guard of 10 s, not a timing assertion).
            let start = std::time::Instant::now();
            while !t.need_resched() && start.elapsed().as_secs() < 10 {
                std::hint::spin_loop();
            }
            let fired =
                t.need_resched() && scx_rt_sys::clock::now_ns() + scx_rt_sys::clock::SKEW_NS >= d;
            t.publish(u64::MAX, crate::SLICE_INF);
            fired
        })
    }

    #[test]
    fn ring_without_sleeper_makes_no_syscall() {
        let d = Doorbell::new();
        assert!(!d.ring());
    }
}
