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
        self.0
            .shared
            .remote
            .need_resched
            .store(false, Ordering::SeqCst);
    }

    /// Whether a reschedule is pending.
    pub fn need_resched(&self) -> bool {
        self.0.shared.remote.need_resched.load(Ordering::SeqCst)
    }

    /// The worker's idle wait (poll, then sleep on the doorbell).
    pub fn idle_wait(&self) {
        self.0.idle_wait(0, || false, || ());
    }

    /// The idle wait of a CPU with I/O registered: the sleep publishes
    /// `SLEEPING_IO` (`Doorbell::sleep_io`; the epoll wait itself is the
    /// model's condvar).
    pub fn idle_wait_io(&self) {
        self.0.idle_wait_with(
            0,
            crate::core::clock::now(),
            || false,
            || (),
            Some(&NoEvents),
        );
    }

    /// Links a task token into the local DSQ, with the rq locked (the
    /// queueing part of a local dispatch; the caller rings with `resched`).
    pub fn push_local(&self, p: TaskRef) {
        let mut rq = self.0.rq.lock();
        rq.local.push(p, false);
    }

    /// Unlinks the head of the local DSQ, with the rq locked.
    pub fn pop_local(&self) -> Option<TaskRef> {
        self.0.rq.lock().local.pop()
    }
}

/// The live-task count (`core::live`): the counters and reads the spawn
/// path, the exit in the step, and shutdown use.
pub struct LiveCount(crate::core::live::LiveCount);

impl LiveCount {
    /// A count for `nr_cpus` CPUs, zero.
    pub fn new(nr_cpus: usize) -> Self {
        Self(crate::core::live::LiveCount::new(nr_cpus))
    }

    /// A spawn on CPU `cpu`'s worker (`None`: another thread).
    pub fn spawned(&self, cpu: Option<usize>) {
        self.0.spawned(cpu);
    }

    /// An exit on CPU `cpu`'s worker as the step makes it, with the
    /// runtime's shutdown flag `shutdown`: whether it ends the shutdown.
    pub fn exit(&self, cpu: usize, shutdown: &loom::sync::atomic::AtomicBool) -> bool {
        self.0.exit(cpu, shutdown)
    }

    /// Shutdown's side (`Runtime::shutdown`): set the flag, fence, and
    /// whether nothing is live already.
    pub fn begin_shutdown(&self, shutdown: &loom::sync::atomic::AtomicBool) -> bool {
        self.0.begin_shutdown(shutdown)
    }

    /// Spawns minus exits as `live` reads them (exits first), unclamped.
    pub fn raw(&self) -> i64 {
        self.0.raw()
    }
}

/// The fork lock (`core::fork_lock`): a spawn's shared hold and a pass's
/// exclusive one.
pub struct ForkLock(crate::core::fork_lock::ForkLock);

impl ForkLock {
    /// The lock of a runtime with `nr_cpus` CPUs.
    pub fn new(nr_cpus: usize) -> Self {
        Self(crate::core::fork_lock::ForkLock::new(nr_cpus))
    }

    /// Runs `f` holding the lock shared, as a spawn on CPU `cpu`'s worker
    /// does (`None`: on another thread).
    pub fn read<R>(&self, cpu: Option<usize>, f: impl FnOnce() -> R) -> R {
        let _g = self.0.read(cpu);
        f()
    }

    /// Runs `f` holding the lock exclusively, as attach and disable do.
    pub fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.0.write();
        f()
    }
}

/// The model's reactor: never an I/O event (the sleep itself is the
/// doorbell's condvar under loom, `Doorbell::sleep_io`).
struct NoEvents;

impl crate::idle_wait::IdleIo for NoEvents {
    fn peek(&self) -> bool {
        false
    }

    fn sleep(&self, _timeout: Option<std::time::Duration>) {}
}

/// A scheduler that keeps every task it is given (the policy owns them
/// until a test dispatches them): the models exercise the core's side of
/// the ownership protocol.
struct Keep;

impl crate::ops::Scheduler for Keep {
    fn enqueue(
        &self,
        _ctx: &mut crate::ops::EnqueueCtx<'_>,
        _p: &TaskRef,
        _f: crate::flags::EnqFlags,
    ) {
    }
}

/// The user DSQ the [`Runtime::with_stash`] policy consumes from.
pub const STASH_SHARED_DSQ: u64 = 0;

/// The policy of the idle-kick model: a private FIFO (a BPF map, in
/// sched_ext terms) in front of one shared user DSQ, with `ENQ_LAST`.
///
/// - `enqueue` appends the task to the FIFO.
/// - `dispatch` moves the FIFO's head to the local DSQ, or, when the FIFO is
///   empty, consumes the shared user DSQ.
///
/// The "then wake an idle CPU" half of the usual pattern is left to the
/// model, which calls `kick` right after the enqueue returns: loom treats a
/// `try_lock` as blocking when another thread takes the lock first, so a
/// kick from inside `enqueue` (rq locked, task QUEUEING) racing with a
/// dispatcher that holds the target's rq lock and waits for QUEUED would be
/// reported as a livelock that cannot happen (a real `try_lock` fails at
/// once). The order push, kick call, kick step is the same.
///
/// With `ENQ_LAST`, a CPU whose only task ran out of slice leaves balance
/// idle while that task is still its `curr`: the one state in which
/// `can_skip_idle_kick` must look at `IN_BALANCE` (a CPU whose task blocked
/// has no `curr` during balance here, see `worker::schedule`).
struct Stash {
    q: crate::loom::Mutex<std::collections::VecDeque<TaskRef>>,
}

impl crate::ops::Scheduler for Stash {
    fn name(&self) -> &str {
        "stash"
    }

    fn flags(&self) -> crate::flags::OpsFlags {
        crate::flags::OpsFlags::ENQ_LAST
    }

    fn enqueue(
        &self,
        _ctx: &mut crate::ops::EnqueueCtx<'_>,
        p: &TaskRef,
        _f: crate::flags::EnqFlags,
    ) {
        self.q.lock().push_back(p.clone());
    }

    fn dispatch(
        &self,
        ctx: &mut crate::ops::DispatchCtx<'_, '_>,
        _cpu: usize,
        _prev: Option<&TaskRef>,
    ) {
        let head = self.q.lock().pop_front();
        match head {
            Some(p) => ctx.dsq_insert(
                &p,
                crate::flags::dsq_id::LOCAL,
                crate::consts::SLICE_DFL,
                crate::flags::EnqFlags::empty(),
            ),
            None => {
                ctx.dsq_move_to_local(STASH_SHARED_DSQ);
            }
        }
    }
}

/// The policy of the wake-up models: every task runs on the CPU it is
/// enqueued on (`enqueue` dispatches it to `DSQ_LOCAL` at once), and each
/// call of `enqueue` is logged (task id, whether it was a wake-up), so a
/// model can check that a woken task was enqueued exactly once.
struct Local {
    log: crate::loom::Mutex<Vec<(crate::task::TaskId, bool)>>,
}

impl crate::ops::Scheduler for Local {
    fn name(&self) -> &str {
        "local"
    }

    fn enqueue(
        &self,
        ctx: &mut crate::ops::EnqueueCtx<'_>,
        p: &TaskRef,
        f: crate::flags::EnqFlags,
    ) {
        self.log
            .lock()
            .push((p.id(), f.contains(crate::flags::EnqFlags::WAKEUP)));
        ctx.dsq_insert(
            p,
            crate::flags::dsq_id::LOCAL,
            crate::consts::SLICE_DFL,
            crate::flags::EnqFlags::empty(),
        );
    }
}

/// A whole runtime core (`sched::Shared`) without workers: the models play
/// the CPUs' parts by calling the real enqueue, dispatch and dequeue paths.
pub struct Runtime {
    sh: crate::ops::Shared,
    stash: Option<std::sync::Arc<Stash>>,
    local: Option<std::sync::Arc<Local>>,
    /// Per CPU: its last safe point left the wake list to the next step
    /// (`core::irq::safe_point_on`'s answer, which the worker passes to
    /// its step). Only the thread playing the CPU reads and writes it: not
    /// a loom atomic, as it is no shared state of the runtime.
    drain: Box<[std::sync::atomic::AtomicBool]>,
    /// Per CPU: a counted handle of the task the model last made current
    /// there (a step's next, or `set_curr`). `rq.curr` names its task
    /// without a count (`core::curr`); a worker's tasks are kept alive by
    /// the task registry, which model tokens are not in. Model
    /// bookkeeping, not runtime state: no loom lock.
    running: Box<[std::sync::Mutex<Option<TaskRef>>]>,
}

impl Runtime {
    /// A core with `nr_cpus` CPUs and a policy that keeps every task.
    pub fn new(nr_cpus: usize) -> Self {
        Self {
            sh: Self::core(nr_cpus, std::sync::Arc::new(Keep)),
            stash: None,
            local: None,
            drain: Self::no_drain(nr_cpus),
            running: (0..nr_cpus).map(|_| std::sync::Mutex::new(None)).collect(),
        }
    }

    /// A core with `nr_cpus` CPUs running the stash policy (a private FIFO
    /// with `ENQ_LAST` in front of user DSQ [`STASH_SHARED_DSQ`]).
    pub fn with_stash(nr_cpus: usize) -> Self {
        let stash = std::sync::Arc::new(Stash {
            q: crate::loom::Mutex::new(std::collections::VecDeque::new()),
        });
        let sh = Self::core(nr_cpus, stash.clone());
        sh.create_dsq(STASH_SHARED_DSQ)
            .expect("a fresh core has no user DSQ");
        Self {
            sh,
            stash: Some(stash),
            local: None,
            drain: Self::no_drain(nr_cpus),
            running: (0..nr_cpus).map(|_| std::sync::Mutex::new(None)).collect(),
        }
    }

    /// A core with `nr_cpus` CPUs whose policy runs every task on the CPU
    /// it is enqueued on and logs each `enqueue` (see [`Runtime::enqueues`]).
    pub fn with_local(nr_cpus: usize) -> Self {
        let local = std::sync::Arc::new(Local {
            log: crate::loom::Mutex::new(Vec::new()),
        });
        Self {
            sh: Self::core(nr_cpus, local.clone()),
            stash: None,
            local: Some(local),
            drain: Self::no_drain(nr_cpus),
            running: (0..nr_cpus).map(|_| std::sync::Mutex::new(None)).collect(),
        }
    }

    fn no_drain(nr_cpus: usize) -> Box<[std::sync::atomic::AtomicBool]> {
        (0..nr_cpus)
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect()
    }

    /// Takes what CPU `cpu`'s last safe point left to its next step.
    fn take_drain(&self, cpu: usize) -> bool {
        self.drain[cpu].swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn core(
        nr_cpus: usize,
        sched: std::sync::Arc<dyn crate::ops::Scheduler>,
    ) -> crate::ops::Shared {
        crate::ops::Shared::new(
            nr_cpus,
            vec![None; nr_cpus],
            crate::core::slot::new_slot(1, sched),
            crate::core::shared::Config {
                slice_dfl: crate::consts::SLICE_DFL,
                idle_poll_ns: 0,
                allow_migration: true,
                record_balance: false,
                slice_timer: Default::default(),
                poll_below: crate::SliceTimer::default().poll_below(),
            },
            0,
        )
    }

    /// Takes the head of the stash policy's FIFO, as its `dispatch` would
    /// before dispatching it (the task stays QUEUED with its qseq).
    pub fn take_stashed(&self) -> Option<TaskRef> {
        self.stash.as_ref()?.q.lock().pop_front()
    }

    /// How many tasks the stash policy's FIFO holds.
    pub fn stashed(&self) -> usize {
        self.stash.as_ref().map_or(0, |s| s.q.lock().len())
    }

    /// One scheduling step of CPU `cpu` whose previous task `prev` stopped
    /// at a preemption point: the worker's own step (`core::step`: the
    /// wake-ups its last safe point left it, charge prev, balance, pick,
    /// put prev, set next, the idle transition, the parked remote direct
    /// dispatches), then what it leaves for after the rq lock. Returns the task to run (`None`: idle).
    pub fn schedule(&self, cpu: usize, prev: Option<&TaskRef>) -> Option<TaskRef> {
        let prev = prev.map(|p| (p.clone(), crate::core::step::Switch::Preempt));
        self.step_and_finish(cpu, prev)
    }

    /// The worker's step of CPU `cpu` for `prev` (with the drain its last
    /// safe point left), then the step's after-unlock work.
    fn step_and_finish(
        &self,
        cpu: usize,
        prev: Option<(TaskRef, crate::core::step::Switch)>,
    ) -> Option<TaskRef> {
        let mut slot = self.sh.cur_slot();
        let mut after = crate::core::step::After::default();
        let drain = self.take_drain(cpu);
        let c = &self.sh.cpus[cpu];
        let next = crate::core::step::step(&self.sh, c, &mut slot, prev, drain, &mut after);
        self.keep_running(cpu, next.as_ref());
        crate::core::step::finish(&self.sh, cpu, &mut after);
        next
    }

    /// The last part of the worker's safe point, after its interrupt work
    /// and kick step: `need_resched` and `resched_req` cleared, then
    /// `need_resched` set again if interrupt work was raised since
    /// (`core::irq::clear_resched_on`).
    pub fn clear_need_resched(&self, cpu: usize) {
        crate::core::irq::clear_resched_on(&self.sh.cpus[cpu]);
    }

    /// The worker's idle wait (poll, then sleep on the doorbell), ended by
    /// a resched or by the worker's own `extra` condition of `worker::idle`:
    /// a pending kick step, pending interrupt work (a queued wake-up), an
    /// exit, or the shutdown of the last task.
    ///
    /// The condition is the worker's (`core::irq::idle_wake`). A wake-up
    /// queued by `Cpu::queue_wakeup` relies on its `irq_pending` term (the
    /// `wakelist` model fails without it).
    pub fn idle(&self, cpu: usize) {
        let sh = &self.sh;
        sh.cpus[cpu].idle_wait(
            sh.cfg.idle_poll_ns,
            || crate::core::irq::idle_wake(sh, cpu),
            || (),
        );
    }

    /// CPU `cpu`'s interrupt work (`core::irq::run_irq_work`, as the
    /// worker runs it): the queued wake-ups, fired scheduler timers, then
    /// the kick step.
    pub fn irq_work(&self, cpu: usize) {
        crate::core::irq::run_irq_work(&self.sh, cpu, None);
    }

    /// CPU `cpu`'s safe point before a step (`core::irq::safe_point_on`, as
    /// the worker runs it; the loom build has no disable path). When it
    /// took interrupt work, the next [`schedule`](Self::schedule) or
    /// [`schedule_after_block`](Self::schedule_after_block) of the CPU
    /// drains its wake list, as the worker's step does.
    pub fn safe_point(&self, cpu: usize) {
        if crate::core::irq::safe_point_on(&self.sh, &self.sh.cpus[cpu]) {
            self.drain[cpu].store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One scheduling step of CPU `cpu` whose running task `prev` blocked
    /// (the worker's step with `Switch::Block`: dequeue for sleep, wake
    /// state `OFF_RQ`), then what it leaves for after the rq lock. Returns
    /// the task to run (`None`: idle).
    pub fn schedule_after_block(&self, cpu: usize, prev: &TaskRef) -> Option<TaskRef> {
        let prev = Some((prev.clone(), crate::core::step::Switch::Block));
        self.step_and_finish(cpu, prev)
    }

    /// A task `id` that ran on CPU `cpu` and blocked: off its runqueue
    /// (wake state `OFF_RQ`, not queued) and bound to `cpu`, as a
    /// non-migratable task is after its first run, so that its wake-up
    /// goes to `cpu` without asking the policy.
    pub fn asleep_on(&self, cpu: usize, id: crate::task::TaskId) -> TaskRef {
        let p = crate::task::Task::new_token(id);
        p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
        p.bound_cpu.store(cpu as i32, Ordering::Relaxed);
        p.wake.store(crate::task::wake::OFF_RQ, Ordering::Relaxed);
        p
    }

    /// Wakes the blocked task `p` from CPU `from` (`None`: a thread that is
    /// no worker), as a green wait queue does (`context::wake_task`): the
    /// waker that wins the `OFF_RQ -> ON_RQ` transition runs the real
    /// `wake_up`, which queues the wake-up on an idle target
    /// (`Cpu::queue_wakeup`) or enqueues under the target's rq lock.
    pub fn wake(&self, from: Option<usize>, p: &TaskRef) {
        if p.wake_claim() {
            crate::core::enqueue::wake_up(&self.sh, p.clone(), crate::flags::WakeFlags::TTWU, from);
        }
    }

    /// Wakes the blocked task `p` the way [`Runtime::wake`] does when it
    /// finds CPU `cpu` idle, without the look: `wake_claim`, then
    /// `Cpu::queue_wakeup` (enqueue flags `WAKEUP`) for `cpu`. The idle hint
    /// `wake_up` reads is a lock-free hint that may be stale, so a wake-up
    /// may be queued for a CPU that has just picked a task.
    pub fn wake_queued(&self, cpu: usize, p: &TaskRef) {
        if p.wake_claim() {
            p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
            self.sh.cpus[cpu].queue_wakeup(p.clone(), crate::flags::EnqFlags::WAKEUP);
        }
    }

    /// Whether CPU `cpu` has interrupt work pending (`irq_pending`).
    pub fn irq_pending(&self, cpu: usize) -> bool {
        self.sh.cpus[cpu]
            .shared
            .remote
            .irq_pending
            .load(Ordering::SeqCst)
    }

    /// How many wake-ups wait on CPU `cpu`'s wake list.
    pub fn wake_list_len(&self, cpu: usize) -> usize {
        self.sh.cpus[cpu].shared.remote.wake_list.lock().len()
    }

    /// How many times the policy of [`Runtime::with_local`] was asked to
    /// enqueue `p`, as (wake-ups, other enqueues).
    pub fn enqueues(&self, p: &TaskRef) -> (usize, usize) {
        let Some(l) = &self.local else {
            return (0, 0);
        };
        let log = l.log.lock();
        let count = |wakeup: bool| {
            log.iter()
                .filter(|&&(id, w)| id == p.id() && w == wakeup)
                .count()
        };
        (count(true), count(false))
    }

    /// The task CPU `cpu` runs (`None`: idle).
    pub fn curr(&self, cpu: usize) -> Option<TaskRef> {
        self.sh.cpus[cpu].rq.lock().curr.as_deref().cloned()
    }

    /// Keeps a counted handle of `p`, which CPU `cpu`'s rq now names as
    /// its current task (`None`: it names none), until the model makes
    /// another current there (`running`).
    fn keep_running(&self, cpu: usize, p: Option<&TaskRef>) {
        let old = std::mem::replace(
            &mut *self.running[cpu].lock().unwrap_or_else(|e| e.into_inner()),
            p.cloned(),
        );
        // The handle it replaces may be a task's last: dropped after the
        // lock, as the runtime drops last references (the rq lock table's
        // rule 6).
        drop(old);
    }

    /// Length of CPU `cpu`'s local DSQ.
    pub fn local_len(&self, cpu: usize) -> usize {
        self.sh.cpus[cpu].rq.lock().local.len()
    }

    /// Runnable tasks accounted to CPU `cpu`'s rq (`nr_running`).
    pub fn nr_running(&self, cpu: usize) -> u32 {
        self.sh.cpus[cpu].rq.lock().nr_running
    }

    /// Makes `p` runnable on `cpu` (`enqueue_task_scx`): the policy keeps it
    /// (ops state QUEUED with a fresh qseq).
    pub fn enqueue(&self, cpu: usize, p: &TaskRef) {
        p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
        let mut rq = self.sh.cpus[cpu].lock();
        let slot = self.sh.slot(rq.sched_gen);
        crate::core::enqueue::enqueue_task(
            &self.sh,
            &slot,
            &mut rq,
            p.clone(),
            crate::flags::EnqFlags::empty(),
        );
    }

    /// What `DispatchCtx::dispatch` does on `cpu`: buffers a claim on `p`
    /// (with the qseq it has now) for `dsq`.
    pub fn buffer_dispatch(&self, cpu: usize, p: &TaskRef, dsq: u64) {
        let qseq = p.ops_state() & !crate::task::opss::STATE_MASK;
        self.sh.cpus[cpu]
            .rq
            .lock()
            .dispatch_buf
            .push(crate::rq::DispatchEntry {
                task: p.clone(),
                qseq,
                dsq_id: dsq,
                enq_flags: crate::flags::EnqFlags::empty(),
            });
    }

    /// Flushes `cpu`'s dispatch buffer (`flush_dispatch_buf`), as balance
    /// does after `ops.dispatch` returns.
    pub fn flush(&self, cpu: usize) {
        let mut rq = self.sh.cpus[cpu].lock();
        let mut n = 0;
        crate::core::dispatch::flush_dispatch_buf(&self.sh, cpu, &mut rq, &mut n);
    }

    /// Takes `p` off its runqueue and puts it back (an attribute change:
    /// `dequeue_task_scx(SAVE)` then `enqueue_task_scx`) under its rq lock.
    pub fn requeue(&self, p: &TaskRef) {
        let mut rq = crate::core::enqueue::task_rq_lock(&self.sh, p);
        let slot = self.sh.slot(rq.sched_gen);
        crate::core::dequeue::dequeue_task(
            &self.sh,
            &slot,
            &mut rq,
            p,
            crate::flags::DeqFlags::SAVE,
            false,
        );
        crate::core::enqueue::enqueue_task(
            &self.sh,
            &slot,
            &mut rq,
            p.clone(),
            crate::flags::EnqFlags::empty(),
        );
    }

    /// Moves the first task of the global DSQ that `cpu` may run into its
    /// local DSQ (`consume_dispatch_q` on the global DSQ).
    pub fn consume_global(&self, cpu: usize) -> bool {
        let mut rq = self.sh.cpus[cpu].lock();
        crate::core::dispatch::consume_dispatch_q(&self.sh, &mut rq, &self.sh.global)
    }

    /// Creates user DSQ `id` (`create_dsq`).
    pub fn create_dsq(&self, id: u64) {
        self.sh.create_dsq(id).expect("a fresh DSQ id");
    }

    /// User DSQ `id`'s insertion sequence now: a DSQ walk begun now sees
    /// the tasks linked up to it.
    pub fn dsq_seq(&self, id: u64) -> u32 {
        self.sh.find_user_dsq(id).expect("a live DSQ").q.lock().seq
    }

    /// A walk of user DSQ `id` that began when the DSQ's insertion
    /// sequence was `seq` ([`Runtime::dsq_seq`]): the real iterator
    /// (`DsqIter`), started earlier, so that a model thread can carry a
    /// walk begun before the other threads ran.
    pub fn dsq_iter_since(&self, id: u64, seq: u32) -> crate::DsqIter<'_> {
        let d = self.sh.find_user_dsq(id).expect("a live DSQ");
        crate::DsqIter::since(d, id, seq, crate::flags::DsqIterFlags::empty())
    }

    /// What `DispatchCtx::dsq_move` does in `ops.dispatch` of CPU `cpu`:
    /// with that CPU's rq locked inside balance (`IN_BALANCE`), moves `p`,
    /// seen by walk `it`, to DSQ `dst` (`core::dsq_iter`). Whether it
    /// moved.
    pub fn dsq_move(&self, cpu: usize, it: &mut crate::DsqIter<'_>, p: &TaskRef, dst: u64) -> bool {
        let mut rq = self.sh.cpus[cpu].lock();
        rq.flags |= crate::rq::rqflags::IN_BALANCE;
        let ctx = crate::ops::Ctx::for_op(&self.sh, Some(cpu), "dispatch", None);
        let moved = crate::core::dsq_iter::dsq_move(
            &self.sh,
            &ctx,
            crate::core::dsq_iter::Caller::Dispatch(&mut rq),
            it,
            p,
            dst,
            crate::flags::EnqFlags::empty(),
            false,
        );
        rq.flags &= !crate::rq::rqflags::IN_BALANCE;
        moved
    }

    /// `dsq_move_to_local` of user DSQ `id` on CPU `cpu`: moves the DSQ's
    /// first task that may run there into its local DSQ
    /// (`consume_dispatch_q`). Whether a task moved.
    pub fn consume_user(&self, cpu: usize, id: u64) -> bool {
        let d = self.sh.find_user_dsq(id).expect("a live DSQ");
        let mut rq = self.sh.cpus[cpu].lock();
        crate::core::dispatch::consume_dispatch_q(&self.sh, &mut rq, &d)
    }

    /// `dsq_move_to_local_batch` of user DSQ `id` on CPU `cpu`: moves up to
    /// `max` of the DSQ's first tasks that may run there into its local
    /// DSQ, in one batch (`core::dispatch::consume_dsq_batch`). How many
    /// moved.
    pub fn consume_user_batch(&self, cpu: usize, id: u64, max: usize) -> usize {
        let d = self.sh.find_user_dsq(id).expect("a live DSQ");
        let mut rq = self.sh.cpus[cpu].lock();
        crate::core::dispatch::consume_dsq_batch(&self.sh, &mut rq, &d, max)
    }

    /// Every place `p` is in: ("local", cpu), ("global", 0), ("user", id)
    /// or ("policy", 0) (owned by the scheduler, ops state QUEUED).
    /// Invariant 1 says exactly one while it is runnable.
    pub fn places(&self, p: &TaskRef) -> Vec<(&'static str, usize)> {
        let mut v = Vec::new();
        for c in self.sh.cpus.iter() {
            let rq = c.rq.lock();
            let n = rq.local.iter().filter(|q| q.id() == p.id()).count();
            v.extend(std::iter::repeat_n(("local", c.id), n));
        }
        let n = self
            .sh
            .global
            .q
            .lock()
            .iter()
            .filter(|q| q.id() == p.id())
            .count();
        v.extend(std::iter::repeat_n(("global", 0), n));
        for id in self.sh.user_dsq_ids() {
            if let Some(d) = self.sh.find_user_dsq(id) {
                let n = d.q.lock().iter().filter(|q| q.id() == p.id()).count();
                v.extend(std::iter::repeat_n(("user", id as usize), n));
            }
        }
        if p.ops_state() & crate::task::opss::STATE_MASK == crate::task::opss::QUEUED {
            v.push(("policy", 0));
        }
        v
    }

    /// The task's qseq (ops state without the state bits).
    pub fn qseq(&self, p: &TaskRef) -> u64 {
        p.ops_state() >> crate::task::opss::QSEQ_SHIFT
    }

    /// The CPU whose rq the task belongs to.
    pub fn task_cpu(&self, p: &TaskRef) -> usize {
        p.cpu()
    }

    /// Whether a transfer of `p` is in flight (`holding_cpu` set).
    pub fn in_transit(&self, p: &TaskRef) -> bool {
        p.scx.holding_cpu.load(Ordering::Acquire) >= 0
    }

    /// A token task `id` that may not migrate, as every task of a runtime
    /// built without `Builder::allow_migration`: [`Runtime::first_run`]
    /// binds it to a CPU.
    pub fn unmigratable_token(&self, id: crate::task::TaskId) -> TaskRef {
        std::sync::Arc::new(crate::task::Task::new(
            id,
            0,
            None,
            crate::task::Affinity::All,
            false,
            0,
            scx_rt_sys::small_box::SmallBox::new(crate::task::NoEntry),
        ))
    }

    /// CPU `cpu` starts running `p` for the first time: a task that may
    /// not migrate is bound to that CPU, as `worker::run_task` binds it.
    pub fn first_run(&self, cpu: usize, p: &TaskRef) {
        if !p.migratable && p.bound_cpu.load(Ordering::Relaxed) < 0 {
            p.bound_cpu.store(cpu as i32, Ordering::Relaxed);
        }
    }

    /// The message of the exit recorded so far (an ops error), if any.
    pub fn exit_msg(&self) -> Option<String> {
        self.sh.exit.info().map(|i| i.msg)
    }
}

impl Runtime {
    /// Makes `p` the task CPU `cpu` runs (its rq's `curr`).
    pub fn set_curr(&self, cpu: usize, p: &TaskRef) {
        p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
        self.keep_running(cpu, Some(p));
        self.sh.cpus[cpu].rq.lock().curr = Some(crate::core::curr::Curr::new(p));
    }

    /// `scx_bpf_kick_cpu(cpu, flags)` called on CPU `from`.
    pub fn kick(&self, from: usize, cpu: usize, flags: crate::flags::KickFlags) {
        crate::kick::kick_cpu(&self.sh, Some(from), cpu, flags);
    }

    /// CPU `cpu`'s kick step (its "irq work"), as its worker runs it.
    pub fn kick_step(&self, cpu: usize) {
        crate::kick::run_pending(&self.sh, Some(cpu));
    }

    /// CPU `cpu`'s `KICK_WAIT` wait, as its worker runs it at a safe point.
    pub fn wait_step(&self, cpu: usize) {
        crate::kick::wait_for_targets(&self.sh, cpu);
    }

    /// CPU `cpu` runs its current task until a preemption point of the task
    /// sees `need_resched`: a task polls that flag at each of its points and
    /// switches out at the first one that finds it set. loom cannot model an
    /// unbounded poll (a load may keep returning a stale value), so the model
    /// waits for the same flag in the worker's real idle wait, which the
    /// `resched` doorbell ring ends. If nothing ever sets `need_resched`, loom
    /// reports the CPU blocked forever. Nothing else runs on the CPU
    /// meanwhile: no kick step, no timer, no self-kick.
    pub fn run_until_resched(&self, cpu: usize) {
        let c = &self.sh.cpus[cpu];
        while !c.shared.remote.need_resched.load(Ordering::SeqCst) {
            c.idle_wait(0, || false, || ());
        }
    }

    /// CPU `cpu`'s pick sequence (`pnt_seq`, the `kick_sync` of SPEC.md
    /// §4.3): moves whenever the CPU enters its pick path, switches a task
    /// out, or waits in a `KICK_WAIT`.
    pub fn pick_seq(&self, cpu: usize) -> u64 {
        self.sh.cpus[cpu].shared.kick.pick_seq()
    }

    /// Whether CPU `cpu` has a reschedule pending.
    pub fn need_resched(&self, cpu: usize) -> bool {
        self.sh.cpus[cpu]
            .shared
            .remote
            .need_resched
            .load(Ordering::SeqCst)
    }

    /// Whether CPU `cpu` still has kicks of any kind recorded.
    pub fn kicks_pending(&self, cpu: usize) -> bool {
        let k = &self.sh.cpus[cpu].shared.kick;
        !(k.to_kick.is_empty()
            && k.to_kick_if_idle.is_empty()
            && k.to_preempt.is_empty()
            && k.to_wait.is_empty())
    }
}
