//! The default scheduler: per-CPU queues with work stealing, written as a
//! sched_ext policy (per-CPU user DSQs, `dispatch` consuming its own and
//! then its siblings'), in the manner of Go's and tokio's schedulers.
//!
//! # Queues
//!
//! Each CPU `c` has two user DSQs besides its local DSQ:
//!
//! - `stealable(c)` (id `c`): tasks that may still run elsewhere (not yet
//!   started, so not yet bound to a worker under the runtime's migration
//!   rule, or migratable). Any CPU may consume them.
//! - `parked(c)` (id `nr_cpus + c`): tasks that may run on `c` only,
//!   waiting behind stealable work (below). Only `c` consumes them.
//!
//! Both families are small ids, which the core looks up in a table
//! without a lock or a thread-local (`core::user_dsqs`).
//!
//! # Placement
//!
//! - A task that may run on `c` only (every task after its first run, and
//!   tasks pinned by affinity) goes straight to `c`'s local DSQ: nobody
//!   else could run it, and the local DSQ is the cheapest queue there is.
//!   Unless stealable tasks wait on `c` (or a drain is on, below): then it
//!   is parked. The core runs a local DSQ before it calls `dispatch`, so
//!   tasks that keep yielding would otherwise starve the stealable queue;
//!   parking lets the local DSQ drain within one round, and the next
//!   `dispatch` starts waiting stealable tasks, then moves the parked
//!   ones back to the local DSQ in one go. Go and tokio check their global
//!   queues periodically for the same reason.
//! - A task woken by the task running on its CPU, while other tasks wait
//!   in that CPU's local DSQ, runs next on the rest of its waker's slice
//!   (below, "Runnext").
//! - A new task spawned from a task goes to the spawner's CPU (wake-affine:
//!   the spawner usually blocks on it soon, as in a chain or a fork-join
//!   tree, and the child then runs with no cross-CPU hand-off). If that
//!   CPU's local DSQ is empty the child goes there, like Go's `runnext`
//!   and tokio's LIFO slot; otherwise to the CPU's stealable DSQ.
//!   Unless the spawner's CPU is overloaded with bound tasks (fork
//!   balancing, below).
//! - A task spawned from outside the runtime, or a migratable task waking,
//!   goes to an idle CPU if there is one (claimed and dispatched to
//!   directly), else to its previous CPU's stealable DSQ.
//!
//! # Fork balancing
//!
//! Go and tokio can afford to start every child on its parent's CPU:
//! their tasks move later, whenever an idle CPU steals. Here a task is
//! bound to the CPU of its first run, so where a child starts is where it
//! lives, and a parent that spawns long-lived children one at a time (an
//! accept loop: accept, spawn, block in the next accept) would start all
//! of them on its own CPU: the child always finds the local DSQ empty, runs
//! there before anyone could steal it, and binds. Measured on the echo
//! server at 64 connections and 2 CPUs, 0/64, 61/3 and 63/1 connections per
//! CPU in three of six repetitions. So `select_cpu` for a fork compares the
//! spawner's CPU with one other CPU, chosen in rotation (the "power of two
//! choices": one probe per spawn, no scan): if the spawner's CPU's load
//! exceeds the other's by more than [`FORK_IMBALANCE`], the child starts
//! on the other CPU. The load is the bound tasks (`Ctx::nr_bound_tasks`:
//! runnable or blocked, since a blocked bound task will run nowhere else)
//! plus the tasks waiting in the CPU's stealable DSQ (a burst accepted at
//! once has not started yet), plus, for the CPU this one last sent children to, those
//! it sent that the target's load does not show yet (a child sent to an
//! idle CPU waits in its wake list until it wakes; counted for at most
//! [`FORK_IN_FLIGHT_NS`], or a past burst would count for ever). This is
//! the kernel's fork balancing (`find_idlest_cpu` at `SD_BALANCE_FORK`).
//! Fork-join and chains keep their locality: a parent that joins its
//! children, or exits after spawning one, never builds up such an excess
//! on its CPU.
//!
//! Stealing binds the stolen task to the thief just as surely, and in a
//! burst it decides more placements than the fork does: an accept loop
//! busy accepting leaves its children queued, and the idle CPU steals and
//! starts them all (63 of 65 on the thief, measured, with fork balancing
//! alone). So a thief takes at most as many as keep its load within
//! [`FORK_IMBALANCE`] of the victim's after the steal (each stolen task
//! moves one unit of load across); the victim runs what is left itself.
//! An idle thief facing a burst still takes half (at most [`STEAL_MAX`]),
//! so stealing for parallelism is unchanged until bound tasks pile up.
//!
//! The scheduler, not the program, is the place for this: the natural
//! server (`scx_rt::spawn` per accepted connection, as with tokio or Go)
//! should be balanced without the user placing connections by hand
//! (`spawn_on` in rotation would also ignore how busy each CPU is). Tests:
//! `sched_work_stealing` (children spawned one at a time: 32/0 without
//! fork balancing) and `io_accept_balance` (bursts of 64 connections:
//! 0/65 and 18/47 without; within 10 with).
//!
//! # Runnext: a woken task inherits its waker's slice
//!
//! A task that wakes a partner on its own CPU and then blocks (a
//! ping-pong pair, a request handed to a worker task and answered) would
//! otherwise send each hop to the tail of the local DSQ, behind every
//! task queued there: with a task that spins beside the pair, each hop
//! waits for that task's whole slice (Go's `BenchmarkPingPongHog`). Go's
//! answer is `runnext`: the woken goroutine runs next and inherits the
//! rest of the waker's time slice, so the pair shares one slice and the
//! spinner still gets its turn when that slice is spent. Here, in
//! sched_ext's terms: when `enqueue` sees `ENQ_WAKEUP` for a task bound to
//! this CPU, made by the task running on it ([`EnqueueCtx::current`]), and
//! the local DSQ is not empty, the task goes to the head of the local DSQ
//! (`ENQ_HEAD`) with the waker's remaining slice instead of a fresh one.
//!
//! The chain such hand-offs form is bounded, so the queued tasks are not
//! starved:
//!
//! - A CPU has one runnext (Go's single slot): the chain's last wakee and
//!   the absolute end of the chain's slice. A wakee of the runnext gets no
//!   more than what is left before that end, even when the runnext started
//!   late (its waker kept running to the end of its own slice), so a chain
//!   of hand-offs lives on one slice, plus at most one inherited turn
//!   started late.
//! - While a chain is open (its end not reached), a wake-up by another
//!   task does not start a second one: that wakee queues at the tail with
//!   a fresh slice, so a waker that wakes many tasks puts one at the head.
//! - A remainder under 1/[`RUNNEXT_MIN_DIV`] of the default slice is not
//!   passed on: the wakee queues at the tail with a fresh slice, and the
//!   chain ends; the tasks queued meanwhile run first.
//!
//! With nothing queued the wakee runs next anyway and gets a fresh slice
//! (nobody waits behind it), which also keeps the clock read off the
//! plain ping-pong path.
//!
//! # Searching CPUs (Go's spinning-M rule)
//!
//! Work put on a stealable DSQ wakes an idle CPU to steal it, but only when
//! no CPU is already searching: at most one CPU is kicked for stealing at
//! a time, so a burst of spawns costs one wake-up rather than one per task
//! (a futex wake is several µs). The kicked CPU is the searcher until its
//! `dispatch` runs; if it finds work and more is queued, it passes the
//! role on by waking the next idle CPU, so parallelism still ramps up.
//!
//! # Stealing from busy CPUs
//!
//! A started task never moves (the runtime's migration rule), so a CPU
//! that is busy with its own tasks must still take its share of the
//! stealable work queued elsewhere, or a burst spawned on one CPU would be
//! started, and bound, there. Every [`CHECK_INTERVAL`]th enqueue of a bound
//! task, a CPU looks for stealable work on the other CPUs (Go's
//! `schedtick % 61`); if there is some, it starts a drain: its bound tasks
//! park until its local DSQ is empty, and then `dispatch` steals before it
//! does anything else.
//!
//! # Dispatch
//!
//! Half of the own stealable DSQ first (after a drain: steal first), then
//! the parked tasks back to the local DSQ, then, with nothing found,
//! steal. Taking half rather than one keeps the ramp-up short when a burst
//! of new tasks waits behind busy ones (each round of the local DSQ starts
//! half of what waits) and leaves the other half to thieves. A thief takes
//! half of the first non-empty stealable DSQ it finds (at most
//! [`STEAL_MAX`] either way), starting at a rotating offset so that
//! thieves spread out; it looks only at DSQs whose lock-free length is
//! non-zero. Either half moves in one batch
//! (`DispatchCtx::dsq_move_to_local_batch`): the DSQ lock once, and a
//! victim's rq lock once, not once per task. A burst of spawns on one of
//! two CPUs had the other steal 42% of the tasks, one hand-off each
//! (uprobes: 212,006 of 500,000 spawns, besides 494,593 single moves out
//! of the own stealable DSQ); batched, the contended rq-lock waits of
//! that burst fell from 155,355 to 126,406. The timing on two vCPUs did
//! not move beyond the noise: there the victim's spawning, not the
//! thief, sets the pace, and each thief is alone on its victim.
//!
//! # The stealable mask
//!
//! Thieves, the look elsewhere and a searcher handing its role on walk a
//! mask of the CPUs whose stealable DSQ may hold tasks, not every CPU: an
//! idle CPU balances at every pick, and a scan of all CPUs' DSQs there
//! would be O(CPUs) per idle transition (with 64 CPUs, 64 lookups before
//! every sleep). The walk costs one load per 64 CPUs plus one length read
//! per marked CPU. The mark may be stale in one direction only:
//!
//! - CPU `c`'s bit is set before a task is inserted into `stealable(c)`,
//!   in `enqueue` on `c`'s rq (the only insertion), under `c`'s rq lock;
//! - it is cleared only under the same lock, right after the DSQ was read
//!   empty: by `c`'s own `dispatch`, or by an enqueue on `c` that took
//!   the slow path and found it empty. No insertion can come between the
//!   read and the clear, so a clear bit means an empty DSQ;
//! - a thief that empties the DSQ leaves the bit set; walkers read the
//!   length of every marked DSQ anyway, and `c` clears it at its next
//!   `dispatch` or slow enqueue.
//!
//! # The behind word
//!
//! A bound task's common enqueue goes to the local DSQ only when nothing
//! waits behind it: no drain on, `parked(c)` and `stealable(c)` empty.
//! Two DSQ lengths looked up by id at every enqueue cost about 30
//! instructions per switch, so each CPU keeps one word, read with one
//! load: `DRAIN`; `PARKED`, set before a task is parked; `STEALABLE`, set
//! and cleared with `c`'s bit of the stealable mask. The argument is the
//! mask's: every write of the word, and every insertion into the two
//! DSQs, is made under `c`'s rq lock; a queue's bit is cleared only right
//! after its DSQ was read empty, under that lock with no drop between.
//! So a clear bit means an empty DSQ; a set bit may be stale (a thief
//! emptied `stealable(c)`), and then the enqueue takes the slow path,
//! which reads the lengths and clears the stale bit.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::consts::SLICE_INF;
use crate::flags::{dsq_id, EnqFlags, KickFlags, PickIdleFlags, WakeFlags};
use crate::ops::{Ctx, DispatchCtx, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx};
use crate::task::TaskRef;

/// Bound-task enqueues between two looks at other CPUs' stealable work.
pub const CHECK_INTERVAL: u32 = 61;

/// How many more bound tasks the spawner's CPU may hold than the other CPU
/// probed before a forked child starts on the other (module docs, "Fork
/// balancing"). Small enough that 64 connections accepted on one CPU end
/// within a few of an even split; large enough that fork-join and chains,
/// with a handful of bound tasks at a time, never leave their CPU.
pub const FORK_IMBALANCE: usize = 4;

/// How long, after a spawner last sent a child to another CPU, it counts
/// the children it sent there as in flight (not yet in the target's
/// queues: module docs, "Fork balancing"), in ns. A wake-up reaches an
/// idle CPU in microseconds; a burst of spawns is over in well under this.
pub const FORK_IN_FLIGHT_NS: u64 = 1_000_000;

/// A woken task inherits its waker's remaining slice only while that is
/// at least the default slice divided by this (module docs, "Runnext"):
/// a shorter turn is mostly switching and an early expiry.
pub const RUNNEXT_MIN_DIV: u64 = 16;

/// Most tasks one steal takes.
pub const STEAL_MAX: usize = 32;

/// Most parked tasks one `dispatch` moves back to the local DSQ (the rest
/// stay parked, in order, for the next).
const UNPARK_MAX: usize = 256;

/// [`PerCpu::behind`]: a drain is on.
const DRAIN: u32 = 1;
/// [`PerCpu::behind`]: the CPU's parked DSQ may hold tasks.
const PARKED: u32 = 2;
/// [`PerCpu::behind`]: the CPU's stealable DSQ may hold tasks (the CPU's
/// bit of the stealable mask, kept beside the other two).
const STEALABLE: u32 = 4;

/// Per-CPU policy state, one cache line per CPU.
#[derive(Debug, Default)]
struct PerCpu {
    /// Bound-task enqueues left before the next look elsewhere (counts
    /// down; the look at zero starts it again at [`CHECK_INTERVAL`] - 1,
    /// so every [`CHECK_INTERVAL`]th enqueue looks). Written under this
    /// CPU's rq lock.
    left: AtomicU32,
    /// Looks elsewhere made: the rotating offset they start at. Written
    /// under this CPU's rq lock.
    looks: AtomicU32,
    /// The rotating offset of this CPU's steal scans (below the CPU count).
    /// Owner-written.
    steals: AtomicU32,
    /// What may wait behind a bound task enqueued here (module docs, "The
    /// behind word"): [`DRAIN`], [`PARKED`], [`STEALABLE`]. Written under
    /// this CPU's rq lock only.
    behind: AtomicU32,
    /// Kicked to steal and has not looked yet. Set by the kicker, cleared
    /// by the owner.
    searcher: AtomicBool,
    /// Forks from this CPU, for the rotation of the CPU they compare with.
    /// Owner-written (`select_cpu` of a fork runs on the spawner's CPU), as
    /// are the three below.
    forks: AtomicU32,
    /// The CPU this one last sent a child to (`usize::MAX`: none yet).
    sent_to: AtomicUsize,
    /// `sent_to`'s load when this CPU started counting what it sent there.
    sent_base: AtomicUsize,
    /// Children sent to `sent_to` since then (module docs: in flight).
    sent: AtomicUsize,
    /// When the last of them was sent (`Ctx::now`).
    sent_at: AtomicU64,
    /// The id of the task that last inherited a slice here (0: none; task
    /// ids start at 1). Written under this CPU's rq lock.
    runnext: AtomicU64,
    /// When the slice that `runnext` inherited ends (ns). Written with it.
    chain_end: AtomicU64,
}

/// Per-CPU queues with work stealing (the runtime's default scheduler).
#[derive(Debug, Default)]
pub struct WorkStealing {
    nr_cpus: AtomicUsize,
    /// Non-zero while a CPU kicked to steal has not looked yet (one at a
    /// time, give or take a race; see `wake_searcher`).
    searching: AtomicUsize,
    pcpu: std::sync::OnceLock<Box<[CachePadded<PerCpu>]>>,
    /// Every CPU (the mask a searcher hands its role on within).
    all: std::sync::OnceLock<crate::cpumask::Cpumask>,
    /// CPUs whose stealable DSQ may hold tasks (module docs, "The
    /// stealable mask"): what thieves and the look elsewhere walk.
    stealable_cpus: std::sync::OnceLock<crate::cpumask::AtomicCpumask>,
}

impl WorkStealing {
    /// A new instance (the runtime builds one when no scheduler is given).
    pub fn new() -> Self {
        Self::default()
    }

    /// The stealable DSQ of CPU `cpu`.
    fn stealable(cpu: usize) -> u64 {
        cpu as u64
    }

    /// The parked DSQ of CPU `cpu`.
    fn parked(&self, cpu: usize) -> u64 {
        (self.nr_cpus() + cpu) as u64
    }

    fn pcpu(&self, cpu: usize) -> Option<&PerCpu> {
        self.pcpu.get().and_then(|p| p.get(cpu)).map(|p| &**p)
    }

    fn nr_cpus(&self) -> usize {
        self.nr_cpus.load(Ordering::Relaxed).max(1)
    }

    /// Wakes one idle CPU (found by `pick`, which claims it) to steal,
    /// unless one is already searching. Two enqueues racing here may both
    /// start one (each claimed its own idle CPU, which must be kicked): the
    /// throttle is a rate limit, not a lock, and costs no read-modify-write
    /// when every CPU is busy.
    fn wake_searcher(&self, ctx: &Ctx<'_>, pick: impl FnOnce(&Ctx<'_>) -> Option<usize>) {
        if self.searching.load(Ordering::Relaxed) != 0 {
            return;
        }
        let Some(c) = pick(ctx) else {
            return;
        };
        self.searching.store(1, Ordering::Relaxed);
        if let Some(s) = self.pcpu(c) {
            s.searcher.store(true, Ordering::Release);
        }
        ctx.kick_cpu(c, KickFlags::IDLE);
    }

    /// CPU `cpu`'s load for fork balancing: the tasks that will run there,
    /// bound ones and unstarted ones in its stealable DSQ, each counted
    /// once. Not its local DSQ: the tasks there are its bound tasks taking
    /// turns (and at most one unstarted child, the runnext), and counting
    /// them again made a CPU running many yielding tasks look twice as
    /// loaded as a CPU with the same number queued unstarted: of a burst
    /// of 200 yielding tasks (`yield-many`, two CPUs), 44 to 117 started
    /// on the spawner's CPU over 20 runs, and since a task stays where it
    /// started, a run took as long as the larger share; with each task
    /// counted once, 98 to 101. `None`:
    /// offline. Inline: every spawn from a task asks it of its own CPU.
    #[inline(always)]
    fn fork_load(&self, ctx: &Ctx<'_>, cpu: usize) -> Option<usize> {
        let bound = ctx.nr_bound_tasks(cpu)?;
        let stealable = ctx.dsq_nr_queued(Self::stealable(cpu)).max(0) as usize;
        Some(bound + stealable)
    }

    /// Where a child forked on `me` starts: `me`, or the CPU probed this
    /// time if `me`'s load exceeds it by more than [`FORK_IMBALANCE`]
    /// (module docs, "Fork balancing"). A parent with few bound tasks and
    /// an empty queue on its CPU (fork-join, chains) pays three loads and
    /// a compare, inline; the probe of another CPU is out of line.
    #[inline(always)]
    fn fork_balance(&self, ctx: &Ctx<'_>, p: &TaskRef, me: usize) -> usize {
        let n = self.nr_cpus();
        if n < 2 {
            return me;
        }
        let mine = self.fork_load(ctx, me).unwrap_or(0);
        if mine <= FORK_IMBALANCE {
            return me;
        }
        self.fork_probe(ctx, p, me, n, mine)
    }

    /// [`fork_balance`](Self::fork_balance) past its fast check: `me`
    /// (with `n` CPUs) carries `mine`, more than [`FORK_IMBALANCE`].
    #[inline(never)]
    fn fork_probe(&self, ctx: &Ctx<'_>, p: &TaskRef, me: usize, n: usize, mine: usize) -> usize {
        let Some(s) = self.pcpu(me) else {
            return me;
        };
        let k = s.forks.load(Ordering::Relaxed);
        s.forks.store(k.wrapping_add(1), Ordering::Relaxed);
        let other = (me + 1 + k as usize % (n - 1)) % n;
        let Some(seen) = self.fork_load(ctx, other) else {
            return me;
        };
        if seen + FORK_IMBALANCE >= mine {
            // Balanced enough whatever is in flight to `other` (which only
            // adds to its load): no clock read.
            return me;
        }
        // Children sent to an idle CPU sit in its wake list, unseen by
        // `fork_load`, until it wakes: count them while its load shows
        // neither them (it reached `base + sent`) nor a drop below `base`
        // (its tasks exited), and for at most [`FORK_IN_FLIGHT_NS`] after
        // the last send, so that a burst is not sent there whole and a
        // past burst does not count for ever.
        // Only a fork probes, inside its spawn, whose clock reading is
        // the child's `runnable_at` (a new task is runnable from its
        // creation on: `SchedEntity::new`): that reading, not a second one.
        let now = p.runnable_at();
        let (mut base, mut sent) = (seen, 0);
        if s.sent_to.load(Ordering::Relaxed) == other
            && now.saturating_sub(s.sent_at.load(Ordering::Relaxed)) < FORK_IN_FLIGHT_NS
        {
            let (b, k) = (
                s.sent_base.load(Ordering::Relaxed),
                s.sent.load(Ordering::Relaxed),
            );
            if (b..b + k).contains(&seen) {
                (base, sent) = (b, k);
            }
        }
        let theirs = seen.max(base + sent);
        if theirs + FORK_IMBALANCE >= mine || !p.allowed_on(other) {
            return me;
        }
        s.sent_to.store(other, Ordering::Relaxed);
        s.sent_base.store(base, Ordering::Relaxed);
        s.sent.store(sent + 1, Ordering::Relaxed);
        s.sent_at.store(now, Ordering::Relaxed);
        other
    }

    /// Whether another CPU has stealable tasks queued (a scan from a
    /// rotating offset; called once per [`CHECK_INTERVAL`] enqueues).
    fn work_elsewhere(&self, ctx: &Ctx<'_>, cpu: usize, salt: u32) -> bool {
        self.stealable_cpus.get().is_some_and(|m| {
            m.find_from(salt as usize, |v| {
                v != cpu && ctx.dsq_nr_queued(Self::stealable(v)) > 0
            })
            .is_some()
        })
    }

    /// Clears `cpu`'s stealable mark (the mask's bit and the behind word's)
    /// if its stealable DSQ is empty (its own `dispatch` or a slow enqueue
    /// on it, rq of `cpu` locked: no insertion into the DSQ can come
    /// between the length read and the clear).
    fn unmark_if_empty(&self, ctx: &Ctx<'_>, me: &PerCpu, cpu: usize) {
        if let Some(m) = self.stealable_cpus.get() {
            if m.test(cpu) && ctx.dsq_nr_queued(Self::stealable(cpu)) <= 0 {
                m.clear(cpu);
                Self::clear_behind(me, STEALABLE);
            }
        }
    }

    /// Sets `bits` in `me`'s behind word (rq of its CPU locked).
    fn set_behind(me: &PerCpu, bits: u32) {
        let b = me.behind.load(Ordering::Relaxed);
        if b & bits != bits {
            me.behind.store(b | bits, Ordering::Relaxed);
        }
    }

    /// Clears `bits` in `me`'s behind word (rq of its CPU locked).
    fn clear_behind(me: &PerCpu, bits: u32) {
        let b = me.behind.load(Ordering::Relaxed);
        if b & bits != 0 {
            me.behind.store(b & !bits, Ordering::Relaxed);
        }
    }

    /// Marks `cpu`'s stealable DSQ as possibly holding tasks (before a
    /// task is inserted into it; rq of `cpu` locked). A load first: the
    /// bit is usually set already while tasks keep arriving.
    fn mark_stealable(&self, me: &PerCpu, cpu: usize) {
        if let Some(m) = self.stealable_cpus.get() {
            if !m.test(cpu) {
                m.set(cpu);
            }
        }
        Self::set_behind(me, STEALABLE);
    }

    /// How many of `victim`'s stealable tasks `thief` may take: as many as
    /// keep its load (`fork_load`) within [`FORK_IMBALANCE`] of what the
    /// victim's would be after the steal, each stolen task moving one unit
    /// of load from the victim to the thief (module docs, "Fork balancing":
    /// a stolen task binds to the thief). Zero when the thief is already
    /// that far ahead: the victim runs its own stealable tasks, so none
    /// waits for good. Unlimited for an offline CPU's queue.
    fn steal_allowance(&self, ctx: &Ctx<'_>, thief: usize, victim: usize) -> usize {
        match (self.fork_load(ctx, thief), self.fork_load(ctx, victim)) {
            (Some(mine), Some(theirs)) => (theirs + FORK_IMBALANCE).saturating_sub(mine) / 2,
            _ => usize::MAX,
        }
    }

    /// Takes half (at most [`STEAL_MAX`]) of the first other CPU's
    /// stealable DSQ that has tasks; whether it took any.
    fn steal(&self, ctx: &mut DispatchCtx<'_, '_>, me: &PerCpu, cpu: usize) -> bool {
        let n = self.nr_cpus();
        // The offset rotates per scan (a counter of this CPU's, not the
        // clock: an idle CPU scans at every pick, and the division of a
        // modulo per victim is avoided by wrapping).
        let k = me.steals.load(Ordering::Relaxed);
        let Some(mask) = self.stealable_cpus.get() else {
            return false;
        };
        // `k` rotates below `n`, so `start` needs no division.
        let k = k as usize;
        me.steals
            .store(if k + 1 >= n { 0 } else { k as u32 + 1 }, Ordering::Relaxed);
        let start = cpu + 1 + k.min(n - 1);
        let start = if start >= n { start - n } else { start };
        mask.find_from(start, |victim| {
            if victim == cpu || ctx.dsq_nr_queued(Self::stealable(victim)) <= 0 {
                return false;
            }
            let allowance = self.steal_allowance(ctx, cpu, victim);
            allowance > 0 && Self::take_half(ctx, Self::stealable(victim), allowance) > 0
        })
        .is_some()
    }

    /// The enqueue of every case but the common one (`Scheduler::enqueue`
    /// returns that one before it gets here): a bound task's, which is the
    /// [`CHECK_INTERVAL`]th since the last look elsewhere when `look`
    /// (`enqueue` counted it; a drain being on, it does not count), or a
    /// task that may run elsewhere.
    #[inline(never)]
    fn enqueue_rest(
        &self,
        ctx: &mut EnqueueCtx<'_>,
        p: &TaskRef,
        enq_flags: EnqFlags,
        me: &PerCpu,
        look: bool,
    ) {
        let slice = ctx.slice_dfl();
        let cpu = p.cpu();
        // On a one-CPU runtime nobody can steal: every task is handled as
        // bound to it (no stealable DSQ to go through and take back).
        let bound = p.single_cpu() == Some(cpu) || self.nr_cpus() == 1;
        let marks = me.behind.load(Ordering::Relaxed);
        let mut drain = marks & DRAIN != 0;
        if look {
            let salt = me.looks.load(Ordering::Relaxed);
            me.looks.store(salt.wrapping_add(1), Ordering::Relaxed);
            if self.work_elsewhere(ctx, cpu, salt) {
                drain = true;
                Self::set_behind(me, DRAIN);
            }
        }
        // Work that must run before this task queues behind it: stealable
        // tasks waiting here, parked tasks, or a drain in progress. An
        // unmarked queue is empty; a marked one found empty (a thief
        // emptied it, or a dequeue) is unmarked here, under the same lock
        // as the read (module docs, "The behind word"), so the common
        // enqueue is short again.
        let stealable = marks & STEALABLE != 0 && {
            let n = ctx.dsq_nr_queued(Self::stealable(cpu)) > 0;
            if !n {
                self.unmark_if_empty(ctx, me, cpu);
            }
            n
        };
        let parked = marks & PARKED != 0 && {
            let n = ctx.dsq_nr_queued(self.parked(cpu)) > 0;
            if !n {
                Self::clear_behind(me, PARKED);
            }
            n
        };
        let behind = drain || stealable || parked;
        if bound {
            let mut to = (dsq_id::LOCAL, slice, enq_flags);
            if behind {
                to.0 = self.parked(cpu);
                Self::set_behind(me, PARKED);
            } else if enq_flags.contains(EnqFlags::WAKEUP)
                && ctx.dsq_nr_queued(dsq_id::LOCAL_ON | cpu as u64) > 0
            {
                // Tasks wait here: a wakee of this CPU's running task may
                // pass them (runnext).
                if let Some(left) = self.inherit(ctx, me, p) {
                    to = (dsq_id::LOCAL, left, enq_flags | EnqFlags::HEAD);
                }
            }
            ctx.dsq_insert(p, to.0, to.1, to.2);
            return;
        }
        if !behind && ctx.dsq_nr_queued(dsq_id::LOCAL_ON | cpu as u64) == 0 {
            // The next task this CPU runs (Go's `runnext`).
            ctx.dsq_insert(p, dsq_id::LOCAL, slice, enq_flags);
            return;
        }
        self.mark_stealable(me, cpu);
        ctx.dsq_insert(p, Self::stealable(cpu), slice, enq_flags);
        self.wake_searcher(ctx, |ctx| ctx.pick_idle_cpu(p, PickIdleFlags::empty()));
    }

    /// The runnext rule (module docs): the slice task `p`, woken and bound
    /// to this CPU while tasks wait in its local DSQ, inherits from its
    /// waker, if it inherits; the caller then queues it at the head of the
    /// local DSQ. rq locked (the waker's CPU is `p`'s). Out of line: the
    /// plain enqueue (a yield, a wake-up with nothing queued) stays short.
    #[inline(never)]
    fn inherit(&self, ctx: &EnqueueCtx<'_>, me: &PerCpu, p: &TaskRef) -> Option<u64> {
        let waker = ctx.current()?;
        let slice = waker.slice();
        if slice == SLICE_INF {
            return None;
        }
        let now = ctx.now();
        let mut end = waker.exec_start().saturating_add(slice);
        let runnext = me.runnext.load(Ordering::Relaxed);
        let chain_end = me.chain_end.load(Ordering::Relaxed);
        if runnext == waker.id() {
            // The waker runs on an inherited slice: the chain's end holds.
            end = end.min(chain_end);
        } else if runnext != 0 && now < chain_end {
            // Another chain is open on this CPU: one runnext at a time.
            return None;
        }
        let left = end.saturating_sub(now);
        if left == 0 || left < ctx.slice_dfl() / RUNNEXT_MIN_DIV {
            me.runnext.store(0, Ordering::Relaxed);
            return None;
        }
        me.runnext.store(p.id(), Ordering::Relaxed);
        me.chain_end.store(end, Ordering::Relaxed);
        Some(left)
    }

    /// Moves half of DSQ `dsq`'s tasks (rounded up, at most
    /// [`STEAL_MAX`] and at most `cap`) to the local DSQ; how many it moved.
    fn take_half(ctx: &mut DispatchCtx<'_, '_>, dsq: u64, cap: usize) -> usize {
        let queued = ctx.dsq_nr_queued(dsq);
        if queued <= 0 {
            return 0;
        }
        let want = (queued as usize).div_ceil(2).min(STEAL_MAX).min(cap);
        // In one batch: a victim's tasks arrive with one hold of its rq
        // lock, not one per task (`DispatchCtx::dsq_move_to_local_batch`).
        ctx.dsq_move_to_local_batch(dsq, want)
    }
}

impl Scheduler for WorkStealing {
    fn name(&self) -> &str {
        "work-stealing"
    }

    /// The built-in policy follows hotplug without callbacks of its own:
    /// an offline CPU's stealable DSQ is stolen from like any other, and
    /// the core lets an offline CPU take its own parked tasks.
    fn handles_hotplug(&self) -> bool {
        true
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        let n = ctx.nr_cpu_ids();
        self.nr_cpus.store(n, Ordering::Relaxed);
        let _ = self.pcpu.set(
            (0..n)
                .map(|_| {
                    CachePadded::new(PerCpu {
                        sent_to: AtomicUsize::new(usize::MAX),
                        ..Default::default()
                    })
                })
                .collect(),
        );
        let _ = self.all.set(crate::cpumask::Cpumask::full(n));
        let _ = self
            .stealable_cpus
            .set(crate::cpumask::AtomicCpumask::new(n));
        for c in 0..n {
            ctx.create_dsq(Self::stealable(c), -1).map_err(|_| -17)?;
            ctx.create_dsq(self.parked(c), -1).map_err(|_| -17)?;
        }
        Ok(())
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        // A child of a running task stays with its parent unless the
        // parent's CPU is overloaded with bound tasks (module docs).
        if wake_flags.contains(WakeFlags::FORK) {
            if let Some(me) = ctx.cpu() {
                if p.allowed_on(me) {
                    return self.fork_balance(ctx, p, me) as i32;
                }
            }
        }
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
        if idle {
            let slice = ctx.slice_dfl();
            ctx.dsq_insert(p, dsq_id::LOCAL, slice, EnqFlags::empty());
        }
        cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, enq_flags: EnqFlags) {
        let cpu = p.cpu();
        if let Some(me) = self.pcpu(cpu) {
            // The common enqueue (a yield, a wake-up with nothing queued,
            // of a task bound here, between two looks elsewhere): straight
            // to the local DSQ, in a frame small enough to stay cheap.
            // Nothing behind (one load for the drain and both queues'
            // marks, module docs "The behind word").
            let bound = p.single_cpu() == Some(cpu) || self.nr_cpus() == 1;
            let behind = me.behind.load(Ordering::Relaxed);
            if bound && behind & DRAIN == 0 {
                let left = me.left.load(Ordering::Relaxed);
                if left == 0 {
                    me.left.store(CHECK_INTERVAL - 1, Ordering::Relaxed);
                    return self.enqueue_rest(ctx, p, enq_flags, me, true);
                }
                me.left.store(left - 1, Ordering::Relaxed);
                if behind == 0
                    && (!enq_flags.contains(EnqFlags::WAKEUP)
                        || ctx.dsq_nr_queued(dsq_id::LOCAL_ON | cpu as u64) == 0)
                {
                    let slice = ctx.slice_dfl();
                    ctx.dsq_insert(p, dsq_id::LOCAL, slice, enq_flags);
                    return;
                }
            }
            return self.enqueue_rest(ctx, p, enq_flags, me, false);
        }
        let slice = ctx.slice_dfl();
        ctx.dsq_insert(p, dsq_id::LOCAL, slice, enq_flags);
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        let Some(me) = self.pcpu(cpu) else {
            return;
        };
        // Load first: the swap (a kicker may set the flag again at any
        // time, and a lost flag would leave `searching` set for good) only
        // when it is set.
        let searcher =
            me.searcher.load(Ordering::Relaxed) && me.searcher.swap(false, Ordering::AcqRel);
        if searcher {
            self.searching.store(0, Ordering::Relaxed);
        }
        let drain = me.behind.load(Ordering::Relaxed) & DRAIN != 0;
        Self::clear_behind(me, DRAIN);
        let mut found = drain && self.steal(ctx, me, cpu);
        // An unmarked queue is empty (module docs, "The behind word"):
        // an idle CPU with nothing queued looks up no DSQ of its own. The
        // marks are read afresh at each use: a move may drop the rq lock,
        // and an enqueue meanwhile marks what it queued.
        if me.behind.load(Ordering::Relaxed) & STEALABLE != 0 {
            if !found {
                found = Self::take_half(ctx, Self::stealable(cpu), usize::MAX) > 0;
            }
            self.unmark_if_empty(ctx, me, cpu);
        }
        // Parked tasks back to the local DSQ, behind what was just taken.
        let mut unparked = 0;
        if me.behind.load(Ordering::Relaxed) & PARKED != 0 {
            while unparked < UNPARK_MAX
                && ctx.dsq_nr_queued(self.parked(cpu)) > 0
                && ctx.dsq_move_to_local(self.parked(cpu))
            {
                unparked += 1;
            }
            // Read empty and unmarked with no lock drop between (a move
            // above may have dropped it, not this read).
            if ctx.dsq_nr_queued(self.parked(cpu)) <= 0 {
                Self::clear_behind(me, PARKED);
            }
        }
        if !found && unparked == 0 {
            found = self.steal(ctx, me, cpu);
        }
        // A searcher that found work hands the role on while work remains.
        if searcher && found {
            let more = self.stealable_cpus.get().is_some_and(|m| {
                m.find_from(cpu, |v| ctx.dsq_nr_queued(Self::stealable(v)) > 0)
                    .is_some()
            });
            if more {
                if let Some(all) = self.all.get() {
                    self.wake_searcher(ctx, |ctx| {
                        ctx.pick_idle_cpu_in(all, PickIdleFlags::empty())
                    });
                }
            }
        }
    }
}
