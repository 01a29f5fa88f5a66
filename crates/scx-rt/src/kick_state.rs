//! A CPU's kick state (SPEC.md §4): the CPUs it wants to kick, preempt or
//! wait for, whether its kick step is pending, and its pick sequence.
//!
//! Everything here is written by the CPU's own worker only — the kicker
//! side of `kick_cpu` runs on the kicking CPU, and the pick sequence is
//! the owner's — so the bits are set and cleared with plain stores under
//! that single-writer contract; other CPUs only read the pick sequence
//! (a `KICK_WAIT`er compares it). The protocol that uses these is in
//! `kick`.

use crate::cpumask::AtomicCpumask;
use crate::loom::{AtomicBool, AtomicU64, Ordering};

/// One CPU's kick state.
pub(crate) struct KickState {
    /// CPUs this CPU wants to kick (it is the kicker).
    pub to_kick: AtomicCpumask,
    /// CPUs to kick only if they are idle (`KICK_IDLE`).
    pub to_kick_if_idle: AtomicCpumask,
    /// Kicked CPUs whose current task loses its slice (`KICK_PREEMPT`).
    pub to_preempt: AtomicCpumask,
    /// Kicked CPUs this CPU waits for (`KICK_WAIT`).
    pub to_wait: AtomicCpumask,
    /// The kick step ("irq work") is pending on this CPU.
    pub pending: AtomicBool,
    /// A `KICK_WAIT` is pending: the worker waits at its next safe point.
    pub sync_pending: AtomicBool,
    /// Pick sequence: advanced whenever a task is switched out and at
    /// every pick (the `kick_sync` of SPEC.md §4.3). Read by waiters.
    pick_seq: AtomicU64,
    /// `KICK_WAIT`: each target's pick sequence when this CPU kicked it.
    pub seen_seq: Box<[AtomicU64]>,
}

impl KickState {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            to_kick: AtomicCpumask::new(nr_cpus),
            to_kick_if_idle: AtomicCpumask::new(nr_cpus),
            to_preempt: AtomicCpumask::new(nr_cpus),
            to_wait: AtomicCpumask::new(nr_cpus),
            pending: AtomicBool::new(false),
            sync_pending: AtomicBool::new(false),
            pick_seq: AtomicU64::new(0),
            seen_seq: (0..nr_cpus).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The pick sequence, as another CPU reads it.
    #[inline]
    pub(crate) fn pick_seq(&self) -> u64 {
        self.pick_seq.load(Ordering::Acquire)
    }

    /// The pick sequence as a spin-waiting `KICK_WAIT`er reads it. Under
    /// loom an RMW: loom lets a plain load keep returning a stale value
    /// forever (it does not model eventual visibility), which turns every
    /// spin-wait into an unbounded model; an RMW reads the latest value.
    #[inline]
    pub(crate) fn pick_seq_for_wait(&self) -> u64 {
        #[cfg(not(scx_rt_loom))]
        return self.pick_seq.load(Ordering::Acquire);
        #[cfg(scx_rt_loom)]
        return self.pick_seq.fetch_add(0, Ordering::AcqRel);
    }

    /// The owner advances its pick sequence: it switched a task out or
    /// entered its pick path, which releases whoever waits on it. A plain
    /// store (the owner is the only writer); under loom an RMW, which loom
    /// needs to see the latest value in spin-waits.
    #[inline]
    pub(crate) fn advance_pick(&self) {
        #[cfg(not(scx_rt_loom))]
        {
            let v = self.pick_seq.load(Ordering::Relaxed);
            self.pick_seq.store(v.wrapping_add(1), Ordering::Release);
        }
        #[cfg(scx_rt_loom)]
        self.pick_seq.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes a flag that only this CPU sets and clears: a load first, so
    /// the common "nothing pending" case costs no read-modify-write.
    #[inline]
    pub(crate) fn take(flag: &AtomicBool) -> bool {
        flag.load(Ordering::Acquire) && flag.swap(false, Ordering::AcqRel)
    }
}
