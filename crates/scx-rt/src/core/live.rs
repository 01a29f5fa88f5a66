//! The live-task count, per CPU: how many spawned tasks have not exited,
//! without a shared counter that every spawn and exit writes.
//!
//! # Counters
//!
//! Each CPU has two monotonic counters on a line of its own, written only
//! by its worker thread (one writer: a load and a store, no
//! read-modify-write): `spawned`, the tasks spawned on that thread (from a
//! task or from a callback), and `exited`, the tasks that exited there.
//! Spawns from any other thread (outside the runtime, the blocking pool,
//! another runtime's workers) count on one shared `foreign` counter, an
//! atomic add: they are rare, and slow anyway. The count is
//! `Σ spawned + foreign − Σ exited`. A spawn on 64 CPUs then writes its own
//! cache line, where one shared counter would bounce between all of them.
//!
//! # Reading: exits first
//!
//! [`LiveCount::live`] reads every `exited` counter, then every `spawned`
//! one. A task's spawn happens before its exit (the spawn's store, then
//! the enqueue's lock release, then the run), so every exit the first pass
//! counted has its spawn counted by the second: the sum never undercounts
//! a task that exited, and a task live at the first pass is either counted
//! (its spawn seen, its exit not) or was spawned after the second pass
//! read its spawner's counter, while its spawner, itself live, is counted
//! the same way. Down to the first task, spawned before anyone reads: a
//! zero read this way means no task was live when the first pass ran.
//! (Reading spawns first could see a task's exit and miss its spawn: a
//! zero with that task's parent still running. The loom model
//! `live_count` fails that way when the passes are swapped.)
//!
//! # The last exit
//!
//! During shutdown the worker whose task exits checks for zero to wake
//! every worker ([`LiveCount::exit`]). Two last tasks exiting at once on
//! two CPUs must not both read the other's exit as not done yet (store
//! buffering): each side stores its exit, then a SeqCst fence, then reads
//! the shutdown flag and the count, so at least one of them sees both
//! exits. Shutdown ([`LiveCount::begin_shutdown`]) stores the flag, fences
//! the same way and reads the count, and the workers it reschedules read
//! it again: a last exit either sees the flag set or its exit is seen by
//! the shutdown side. (The loom model `live_count` fails without either
//! fence.)

use crossbeam_utils::CachePadded;

use crate::loom::{fence, AtomicBool, AtomicU64, Ordering};

/// One CPU's counters (owner-written).
#[derive(Default)]
struct CpuLive {
    spawned: AtomicU64,
    exited: AtomicU64,
}

/// The live-task count (module docs).
pub(crate) struct LiveCount {
    cpus: Box<[CachePadded<CpuLive>]>,
    foreign: CachePadded<AtomicU64>,
}

/// One more on a counter only its owner thread writes.
#[inline]
fn bump(c: &AtomicU64) {
    #[cfg(not(scx_rt_loom))]
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
    // Loom wants the RMW to see the latest value in its models.
    #[cfg(scx_rt_loom)]
    c.fetch_add(1, Ordering::AcqRel);
}

impl LiveCount {
    pub(crate) fn new(nr_cpus: usize) -> Self {
        Self {
            cpus: (0..nr_cpus).map(|_| CachePadded::default()).collect(),
            foreign: CachePadded::default(),
        }
    }

    /// A task was spawned on CPU `cpu`'s worker thread (`None`: on another
    /// thread). Only that worker may pass `Some(cpu)`.
    #[inline]
    pub(crate) fn spawned(&self, cpu: Option<usize>) {
        match cpu.and_then(|c| self.cpus.get(c)) {
            Some(c) => bump(&c.spawned),
            None => {
                self.foreign.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// A task exited on CPU `cpu`'s worker thread (the only caller for
    /// `cpu`). Returns whether this exit ends a shutdown: `shutdown` is
    /// set and no task is live, so every worker must look. The fence
    /// between the exit's store and the reads makes two simultaneous last
    /// exits, or a last exit and [`begin_shutdown`](Self::begin_shutdown),
    /// see each other (module docs, "The last exit").
    pub(crate) fn exit(&self, cpu: usize, shutdown: &AtomicBool) -> bool {
        if let Some(c) = self.cpus.get(cpu) {
            bump(&c.exited);
        }
        fence(Ordering::SeqCst);
        shutdown.load(Ordering::Acquire) && self.live() == 0
    }

    /// Shutdown's side: sets `shutdown`, then the same fence, then reads
    /// the count (whether no task is live already). The caller then
    /// reschedules every worker, which read the count again.
    pub(crate) fn begin_shutdown(&self, shutdown: &AtomicBool) -> bool {
        shutdown.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        self.live() == 0
    }

    /// The number of live tasks (module docs). O(CPUs): for shutdown, idle
    /// checks during shutdown and statistics.
    pub(crate) fn live(&self) -> usize {
        self.raw().max(0) as usize
    }

    /// Spawns minus exits, read exits first (module docs); never negative
    /// (the loom model `live_count` checks that through `model`).
    pub(crate) fn raw(&self) -> i64 {
        let exited: u64 = self
            .cpus
            .iter()
            .map(|c| c.exited.load(Ordering::Acquire))
            .sum();
        let spawned: u64 = self
            .cpus
            .iter()
            .map(|c| c.spawned.load(Ordering::Acquire))
            .sum::<u64>()
            + self.foreign.load(Ordering::Acquire);
        spawned as i64 - exited as i64
    }
}
