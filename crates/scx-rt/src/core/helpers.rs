//! The `scx_bpf_*` helpers: the methods of the callback contexts
//! (`ops`), each callable only from the callbacks whose context carries
//! it. Errors the kernel turns into `scx_ops_error()` are recorded and the
//! helper returns the kernel's fallback value.

use crate::core::errctx::{self, ErrCtx};
use crate::exit::ExitKind;
use crate::flags::{dsq_id, EnqFlags, KickFlags, PickIdleFlags, WakeFlags};
use crate::loom::Ordering;
use crate::ops::*;
use crate::rq::DispatchEntry;
use crate::task::{opss, TaskRef};

impl<'a> Ctx<'a> {
    pub(crate) fn new(sh: &'a Shared, cpu: Option<usize>) -> Self {
        Self {
            sh,
            op: None,
            subject: None,
            cpu: cpu_word(cpu),
            unlocked: false,
        }
    }

    /// The context of a callback that runs with no rq lock held and no
    /// scheduling operation around it (a scheduler timer, `init`,
    /// `init_task`, `cpu_online`/`cpu_offline`: the kernel's "unlocked"
    /// contexts, from which `dsq_move` may take rq locks itself).
    pub(crate) fn new_unlocked(sh: &'a Shared, cpu: Option<usize>) -> Self {
        Self {
            unlocked: true,
            ..Self::new(sh, cpu)
        }
    }

    /// The context of callback `op` about task `p`: errors its helpers
    /// detect name both.
    #[inline]
    pub(crate) fn for_op(
        sh: &'a Shared,
        cpu: Option<usize>,
        op: &'static str,
        p: Option<&'a TaskRef>,
    ) -> Self {
        Self {
            sh,
            op: Some(op),
            subject: p,
            cpu: cpu_word(cpu),
            unlocked: false,
        }
    }

    /// Records an error detected by a helper of this callback (the
    /// kernel's `scx_ops_error()`), naming the callback, task and CPU.
    #[cold]
    pub(crate) fn fail(&self, msg: String) {
        let _g = errctx::enter(self.at());
        self.sh.ops_error(msg);
    }

    /// Makes the errors recorded until the guard drops name this callback.
    pub(crate) fn err_scope(&self) -> errctx::ErrCtxGuard {
        errctx::enter(self.at())
    }

    /// The error context of this callback.
    fn at(&self) -> ErrCtx {
        ErrCtx {
            op: self.op,
            task: self.subject.map(|p| p.id()),
            cpu: self.cpu(),
        }
    }

    /// The CPU running this callback (`None` on a thread that is no worker).
    #[inline]
    pub fn cpu(&self) -> Option<usize> {
        (self.cpu != NO_CPU).then_some(self.cpu as usize)
    }

    /// Number of CPUs (`scx_bpf_nr_cpu_ids`).
    pub fn nr_cpu_ids(&self) -> usize {
        self.sh.nr_cpus
    }

    /// Tasks bound to CPU `cpu` that have not exited, runnable or blocked
    /// (`None`: `cpu` is offline or not a CPU of the runtime). No kfunc:
    /// a kernel task may migrate at every wake-up, so a placement is never
    /// final there, while scx-rt binds a started task to the CPU of its
    /// first run (a green stack must not change threads under its
    /// thread-locals; `migratable` tasks excepted). Where a policy starts a
    /// new task is therefore where it runs for good, and this count is
    /// the load it adds to (the kernel's fork balancing looks at the load
    /// of candidate CPUs for the same reason, `find_idlest_cpu`). A
    /// lock-free read that may lag a concurrent first run or exit.
    pub fn nr_bound_tasks(&self, cpu: usize) -> Option<usize> {
        if cpu >= self.sh.nr_cpus || !self.sh.cpu_online(cpu) {
            return None;
        }
        Some(
            self.sh.cpus[cpu]
                .shared
                .owner
                .nr_bound
                .load(Ordering::Relaxed),
        )
    }

    /// The runtime's default slice: `SLICE_DFL` (20 ms), or what
    /// `Builder::slice` set. The built-in schedulers and the default
    /// `select_cpu` dispatch with it, so a runtime-wide slice needs no
    /// custom scheduler.
    pub fn slice_dfl(&self) -> u64 {
        self.sh.cfg.slice_dfl
    }

    /// The current CPU's clock in ns (`scx_bpf_now`): cheap, and
    /// monotonic (never going backwards) on one CPU; values read on
    /// different CPUs may be compared only loosely.
    ///
    /// As in the kernel, a callback of a CPU's scheduling step (with its rq
    /// lock held: `dispatch`, `enqueue` of the task that stopped, `running`,
    /// `stopping`, `tick`, ...) gets the rq clock, the time read once when
    /// the step began: every call in that step returns the same value and
    /// reads no clock. Elsewhere (a timer, `select_cpu`, a wake-up's
    /// `enqueue` on another CPU, after a transfer dropped the rq lock) it
    /// reads `CLOCK_MONOTONIC`, which is never behind a value the rq clock
    /// gave before on that CPU.
    pub fn now(&self) -> u64 {
        #[cfg(not(scx_rt_loom))]
        if let Some(c) = crate::core::current::cpu_in(self.sh.rt_id) {
            let v = self.sh.cpus[c].shared.owner.clock.load(Ordering::Relaxed);
            if v != 0 {
                return v;
            }
        }
        crate::core::clock::now()
    }

    /// Number of tasks queued on a DSQ (`scx_bpf_dsq_nr_queued`), read
    /// without locks; `-ENOENT` (-2) for an unknown id. `DSQ_GLOBAL` is
    /// queryable here (scx-rt has one global DSQ, not one per NUMA node).
    ///
    /// Always inline: the two common questions are a few loads each,
    /// where a call would cost more than the answer. A user DSQ (a
    /// policy's own queues: its dense table's entry), and a valid
    /// `LOCAL_ON | cpu` (work stealing's fork balance and runnext ask it
    /// per enqueue: a bounds check and the CPU's lock-free length).
    #[inline(always)]
    pub fn dsq_nr_queued(&self, dsq: u64) -> i32 {
        if dsq & dsq_id::FLAG_BUILTIN == 0 {
            return self.sh.user_dsq_nr_queued(dsq).map_or(-2, |n| n as i32);
        }
        if dsq & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
            // `cpus` has `nr_cpus` entries: its bounds check is the
            // validity check.
            let c = (dsq & dsq_id::LOCAL_CPU_MASK) as usize;
            if let Some(cpu) = self.sh.cpus.get(c) {
                return cpu.shared.owner.local_nr.load(Ordering::Relaxed) as i32;
            }
        }
        self.builtin_dsq_nr_queued(dsq)
    }

    /// [`Ctx::dsq_nr_queued`] of a built-in DSQ past the inline case (an
    /// invalid `LOCAL_ON` CPU, `LOCAL`, `GLOBAL`, anything else).
    #[inline(never)]
    fn builtin_dsq_nr_queued(&self, dsq: u64) -> i32 {
        if dsq == dsq_id::LOCAL {
            return match self.cpu() {
                Some(c) => self.sh.cpus[c]
                    .shared
                    .owner
                    .local_nr
                    .load(Ordering::Relaxed) as i32,
                None => -2,
            };
        }
        if dsq & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
            let c = (dsq & dsq_id::LOCAL_CPU_MASK) as usize;
            if c >= self.sh.nr_cpus {
                self.error(format!("invalid CPU {c} in dsq_nr_queued"));
                return -2;
            }
            return self.sh.cpus[c]
                .shared
                .owner
                .local_nr
                .load(Ordering::Relaxed) as i32;
        }
        if dsq == dsq_id::GLOBAL {
            return self.sh.global.nr_queued() as i32;
        }
        -2
    }

    /// Destroys a user DSQ (`scx_bpf_destroy_dsq`); ignored if it does not
    /// exist; destroying a non-empty DSQ is an error and leaves it intact.
    pub fn destroy_dsq(&self, dsq: u64) {
        self.sh.destroy_dsq(dsq);
    }

    /// Claims an idle CPU the task may run on (`scx_bpf_pick_idle_cpu`,
    /// with the task's allowed CPUs as the mask).
    #[inline]
    pub fn pick_idle_cpu(&self, p: &TaskRef, flags: PickIdleFlags) -> Option<usize> {
        self.pick_idle_where(|c| p.allowed_on(c), flags)
    }

    /// Claims an idle CPU in `cpus` (`scx_bpf_pick_idle_cpu` with an
    /// explicit mask, as the kernel's helper takes one).
    pub fn pick_idle_cpu_in(
        &self,
        cpus: &crate::cpumask::Cpumask,
        flags: PickIdleFlags,
    ) -> Option<usize> {
        self.pick_idle_where(|c| cpus.test(c), flags)
    }

    /// The two `pick_idle_cpu` forms: an idle CPU for which `ok` holds.
    #[inline]
    fn pick_idle_where(&self, ok: impl Fn(usize) -> bool, flags: PickIdleFlags) -> Option<usize> {
        // No idle CPU (a busy runtime): nothing to claim, and nothing to
        // check (the common case on a spawn or a wake-up under load).
        if self.sh.builtin_idle() && self.sh.idle.cpu.is_empty() {
            return None;
        }
        let _g = self.err_scope();
        if !self.sh.check_builtin_idle("pick_idle_cpu") {
            return None;
        }
        self.sh.idle.pick(self.sh.spread_hint(), ok, flags)
    }

    /// An idle CPU (claimed) the task may use, else any allowed CPU
    /// (`scx_bpf_pick_any_cpu`).
    pub fn pick_any_cpu(&self, p: &TaskRef, flags: PickIdleFlags) -> Option<usize> {
        if self.sh.builtin_idle() {
            if let Some(c) = self
                .sh
                .idle
                .pick(self.sh.spread_hint(), |c| p.allowed_on(c), flags)
            {
                return Some(c);
            }
        }
        let start = self.sh.spread_hint();
        (0..self.sh.nr_cpus)
            .map(|i| (start + i) % self.sh.nr_cpus)
            .find(|&c| p.allowed_on(c))
    }

    /// Claims `cpu` if it is idle (`scx_bpf_test_and_clear_cpu_idle`).
    pub fn test_and_clear_cpu_idle(&self, cpu: usize) -> bool {
        let _g = self.err_scope();
        if !self.sh.check_cpu(cpu, "test_and_clear_cpu_idle")
            || !self.sh.check_builtin_idle("test_and_clear_cpu_idle")
        {
            return false;
        }
        self.sh.idle.test_and_clear(cpu)
    }

    /// Whether the task is running on a CPU (`scx_bpf_task_running`).
    pub fn task_running(&self, p: &TaskRef) -> bool {
        p.scx.on_cpu.load(Ordering::Relaxed)
    }

    /// The task's CPU (`scx_bpf_task_cpu`).
    pub fn task_cpu(&self, p: &TaskRef) -> usize {
        p.cpu()
    }

    /// Asks for a reschedule of `cpu` (`scx_bpf_kick_cpu`). The kick is
    /// deferred to the calling CPU's kick step, which runs once the callback
    /// returns and no rq lock is held. `IDLE` with `PREEMPT` or `WAIT` is an
    /// error.
    pub fn kick_cpu(&self, cpu: usize, flags: KickFlags) {
        // The kick belongs to the CPU executing the callback (the kernel's
        // this_rq), which is not the rq's CPU when a waker on another CPU
        // runs `enqueue`.
        #[cfg(not(scx_rt_loom))]
        let from = crate::context::cpu_in(self.sh);
        #[cfg(scx_rt_loom)]
        let from = self.cpu();
        let _g = self.err_scope();
        crate::kick::kick_cpu(self.sh, from, cpu, flags);
    }

    /// Arms scheduler timer `id` (below
    /// [`MAX_OPS_TIMERS`](crate::ops_timer::MAX_OPS_TIMERS)) to call
    /// [`Scheduler::timer`] on CPU `cpu`'s worker in `delay_ns`
    /// (`bpf_timer_start` with `BPF_F_TIMER_CPU_PIN`). Arming an armed timer
    /// moves its deadline. The resolution is the slice timer's: a timer
    /// fires within a futex timeout's slack (tens of µs) of its deadline,
    /// and on a busy CPU at the running task's next preemption point. A
    /// timer pinned to an offline CPU runs on an online one. An invalid id
    /// or CPU is a scheduler error. A delay that ends past the clock's range
    /// (`u64::MAX` ns) never fires, as if the timer were not armed.
    pub fn timer_start(&self, id: u32, delay_ns: u64, cpu: usize) {
        if id >= crate::ops_timer::MAX_OPS_TIMERS {
            self.fail(format!("invalid timer id {id}"));
            return;
        }
        let _g = self.err_scope();
        if !self.sh.check_cpu(cpu, "timer_start") {
            return;
        }
        let deadline = crate::core::clock::now().saturating_add(delay_ns);
        let gen = self.sh.sched_gen.load(Ordering::Acquire);
        self.sh.ops_timers.arm(id, deadline, delay_ns, cpu, gen);
        #[cfg(not(scx_rt_loom))]
        self.sh.timer.ops_timer_armed(deadline);
    }

    /// Disarms scheduler timer `id` (`bpf_timer_cancel`). A callback that
    /// already fired but has not run yet still runs.
    pub fn timer_cancel(&self, id: u32) {
        if id >= crate::ops_timer::MAX_OPS_TIMERS {
            self.fail(format!("invalid timer id {id}"));
            return;
        }
        self.sh.ops_timers.cancel(id);
    }

    /// Ends the scheduler normally (`scx_bpf_exit`): it is detached and the
    /// runtime falls back to the built-in FIFO.
    pub fn exit(&self, code: i64, msg: impl Into<String>) {
        self.sh.record_exit(ExitKind::UnregBpf, code, msg.into());
    }

    /// Ends the scheduler with an error (`scx_bpf_error`).
    pub fn error(&self, msg: impl Into<String>) {
        self.sh.record_exit(ExitKind::ErrorBpf, 0, msg.into());
    }
}

impl DirectDispatch {
    /// Records the verdict "`p` to `dsq`" of the callback of `ctx`, whose
    /// subject `p` must be, once. Inline: a policy gives it constants.
    #[inline]
    fn record(
        &mut self,
        ctx: &Ctx<'_>,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: Option<u64>,
        mut flags: EnqFlags,
    ) {
        let subject = ctx.subject.is_some_and(|s| TaskRef::ptr_eq(s, p));
        if flags.intersects(EnqFlags::INTERNAL_MASK) || !subject || self.verdict.is_some() {
            return self.refuse(ctx, p, flags);
        }
        set_dispatch_slice(p, slice);
        if let Some(v) = vtime {
            p.set_dsq_vtime(v);
            flags |= EnqFlags::DSQ_PRIQ;
        }
        self.verdict = Some((dsq, flags.0));
    }

    /// The error of a [`record`](Self::record) that records nothing, the
    /// first that applies of: invalid flags, a task that is not the
    /// subject, a second verdict.
    #[cold]
    #[inline(never)]
    fn refuse(&self, ctx: &Ctx<'_>, p: &TaskRef, flags: EnqFlags) {
        if flags.intersects(EnqFlags::INTERNAL_MASK) {
            ctx.fail(format!("invalid enq_flags {:#x}", flags.0));
        } else if let Some(s) = ctx.subject.filter(|s| s.id() != p.id()) {
            ctx.fail(format!(
                "dispatching task {} from the enqueue of task {}",
                p.id(),
                s.id()
            ));
        } else {
            ctx.fail(format!("task {} already direct-dispatched", p.id()));
        }
    }

    /// The verdict, if one was recorded: DSQ and extra enqueue flags.
    #[inline]
    pub(crate) fn verdict(&self) -> Option<(u64, EnqFlags)> {
        self.verdict.map(|(dsq, f)| (dsq, EnqFlags(f)))
    }
}

/// [`Ctx::cpu`] as stored: `None` is [`NO_CPU`].
#[inline(always)]
fn cpu_word(cpu: Option<usize>) -> u32 {
    match cpu {
        Some(c) => c as u32,
        None => NO_CPU,
    }
}

/// Slice rule of every dispatch: non-zero sets it; zero keeps the current
/// slice but never leaves it at 0.
pub(crate) fn set_dispatch_slice(p: &TaskRef, slice: u64) {
    if slice != 0 {
        p.set_slice(slice);
    } else if p.slice() == 0 {
        p.set_slice(1);
    }
}

impl<'a> SelectCpuCtx<'a> {
    pub(crate) fn new(sh: &'a Shared, cpu: Option<usize>, subject: &'a TaskRef) -> Self {
        Self {
            ctx: Ctx::for_op(sh, cpu, "select_cpu", Some(subject)),
            dd: DirectDispatch::default(),
        }
    }

    /// Hands the verdict, if any, to the enqueue on the selected CPU: it
    /// goes into the task's `ddsp_*` fields (`DirectDispatch`).
    pub(crate) fn publish_verdict(&self) {
        if let (Some((dsq, flags)), Some(p)) = (self.dd.verdict(), self.ctx.subject) {
            p.scx.ddsp_dsq_id.store(dsq, Ordering::Relaxed);
            p.scx.ddsp_enq_flags.store(flags.0, Ordering::Relaxed);
        }
    }

    /// The default CPU selection (`scx_bpf_select_cpu_dfl`, SPEC.md §5):
    /// returns the CPU and whether it is idle (and claimed).
    pub fn select_cpu_dfl(
        &mut self,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> (usize, bool) {
        let sh = self.ctx.sh;
        let _g = self.ctx.err_scope();
        if !sh.check_cpu(prev_cpu, "select_cpu_dfl") {
            return (p.cpu(), false);
        }
        if !sh.check_builtin_idle("select_cpu_dfl") {
            return (prev_cpu, false);
        }
        crate::idle::select_cpu_dfl(sh, self.ctx.cpu(), p, prev_cpu, wake_flags)
    }

    /// Direct dispatch (`scx_bpf_dsq_insert`; `scx_bpf_dispatch` before
    /// Linux 6.13): the verdict is executed once the task is enqueued on
    /// the selected CPU (`ops.enqueue` is then skipped).
    pub fn dsq_insert(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.dd.record(&self.ctx, p, dsq, slice, None, enq_flags);
    }

    /// Direct dispatch in vtime order (`scx_bpf_dsq_insert_vtime`).
    pub fn dsq_insert_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.dd
            .record(&self.ctx, p, dsq, slice, Some(vtime), enq_flags);
    }
}

impl<'a> EnqueueCtx<'a> {
    /// The context of an enqueue on CPU `cpu`'s rq, whose running task is
    /// `curr`.
    pub(crate) fn new(
        sh: &'a Shared,
        cpu: usize,
        subject: &'a TaskRef,
        curr: Option<&'a TaskRef>,
    ) -> Self {
        Self {
            ctx: Ctx::for_op(sh, Some(cpu), "enqueue", Some(subject)),
            dd: DirectDispatch::default(),
            curr,
        }
    }

    /// The task whose code made this enqueue happen, when it runs on the
    /// enqueue's own CPU: the kernel's `current` (what
    /// `bpf_get_current_task_btf()` returns in `ops.enqueue`) where it is
    /// an SCX task on the same CPU. In a wake-up this is the waker, which
    /// is how a policy gives a task woken by its CPU's running task the
    /// rest of the waker's slice (Go's `runnext`; the default scheduler
    /// does). `None` when the enqueue is for another CPU (a remote
    /// wake-up), when the CPU's own scheduling step enqueues (a stopped
    /// task going back, a sleep timer firing, queued remote wake-ups: the
    /// kernel's `current` would be the idle task or an interrupt), and on
    /// threads that are no workers.
    ///
    /// Its [`TaskRef::slice`] was charged when it last started running or
    /// was last charged, at [`TaskRef::exec_start`]: its slice ends at
    /// `exec_start() + slice()` (unless `SLICE_INF`), as in the kernel,
    /// where `curr->scx.slice` is charged at ticks.
    ///
    /// Under loom no task code runs (the models push tokens through the
    /// queues), so there is no waker to report.
    pub fn current(&self) -> Option<&'a TaskRef> {
        let curr = self.curr?;
        #[cfg(not(scx_rt_loom))]
        {
            let here = crate::core::current::cpu_in(self.ctx.sh.rt_id) == self.ctx.cpu();
            (here && crate::context::in_task()).then_some(curr)
        }
        #[cfg(scx_rt_loom)]
        {
            let _ = curr;
            None
        }
    }

    /// The direct-dispatch verdict `enqueue` gave, if any.
    #[inline]
    pub(crate) fn verdict(&self) -> Option<(u64, EnqFlags)> {
        self.dd.verdict()
    }

    /// Direct dispatch (`scx_bpf_dsq_insert`; `scx_bpf_dispatch` before
    /// Linux 6.13): executed right after `enqueue` returns; touches no
    /// queue before that. Inline (also into policies of other crates): a
    /// few stores, called at almost every enqueue.
    #[inline]
    pub fn dsq_insert(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.dd.record(&self.ctx, p, dsq, slice, None, enq_flags);
    }

    /// Direct dispatch in vtime order (`scx_bpf_dsq_insert_vtime`).
    pub fn dsq_insert_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.dd
            .record(&self.ctx, p, dsq, slice, Some(vtime), enq_flags);
    }
}

impl<'a, 'g> DispatchCtx<'a, 'g> {
    pub(crate) fn new(
        sh: &'a Shared,
        cpu: usize,
        rq: &'a mut crate::rq::RqGuard<'g>,
        max_batch: usize,
    ) -> Self {
        Self {
            ctx: Ctx::for_op(sh, Some(cpu), "dispatch", None),
            rq,
            max_batch,
            nr_tasks: 0,
        }
    }

    fn buffer(&mut self, p: &TaskRef, dsq: u64, slice: u64, vtime: Option<u64>, mut f: EnqFlags) {
        if f.intersects(EnqFlags::INTERNAL_MASK) {
            self.ctx.fail(format!("invalid enq_flags {:#x}", f.0));
            return;
        }
        if self.rq.dispatch_buf.len() >= self.max_batch {
            self.ctx.fail("dispatch buffer overflow".to_string());
            return;
        }
        set_dispatch_slice(p, slice);
        if let Some(v) = vtime {
            p.set_dsq_vtime(v);
            f |= EnqFlags::DSQ_PRIQ;
        }
        let qseq = p.ops_state() & !opss::STATE_MASK;
        self.rq.dispatch_buf.push(DispatchEntry {
            task: p.clone(),
            qseq,
            dsq_id: dsq,
            enq_flags: f,
        });
    }

    /// Buffers an insertion of `p` into `dsq` (`scx_bpf_dsq_insert`;
    /// `scx_bpf_dispatch` before Linux 6.13); performed after the callback
    /// returns, or at the next `dsq_move_to_local`. An insertion of a task
    /// the scheduler no longer owns is silently dropped.
    pub fn dsq_insert(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.buffer(p, dsq, slice, None, enq_flags);
    }

    /// Buffers a vtime-ordered insertion (`scx_bpf_dsq_insert_vtime`;
    /// `scx_bpf_dispatch_vtime` before Linux 6.13).
    pub fn dsq_insert_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.buffer(p, dsq, slice, Some(vtime), enq_flags);
    }

    /// Free slots in the dispatch buffer (`scx_bpf_dispatch_nr_slots`).
    pub fn dispatch_nr_slots(&self) -> usize {
        self.max_batch - self.rq.dispatch_buf.len()
    }

    /// Drops the most recent buffered dispatch (`scx_bpf_dispatch_cancel`).
    pub fn dispatch_cancel(&mut self) {
        if self.rq.dispatch_buf.pop().is_none() {
            self.ctx.fail("dispatch buffer underflow".to_string());
        }
    }

    /// Flushes the buffer, then moves the first task of user DSQ `dsq` that
    /// may run here into this CPU's local DSQ (`scx_bpf_dsq_move_to_local`;
    /// `scx_bpf_consume` before Linux 6.13).
    pub fn dsq_move_to_local(&mut self, dsq: u64) -> bool {
        let Some(d) = self.move_source(dsq) else {
            return false;
        };
        if crate::core::dispatch::consume_dispatch_q(self.ctx.sh, self.rq, &d) {
            self.nr_tasks += 1;
            true
        } else {
            false
        }
    }

    /// Moves up to `max` of the first tasks of user DSQ `dsq` that may run
    /// here into this CPU's local DSQ, in the DSQ's order; how many it
    /// moved. No kfunc: what up to `max` calls of
    /// [`dsq_move_to_local`](Self::dsq_move_to_local) in a row move (until
    /// one moves nothing), with fewer lock round trips. In the kernel each
    /// such move of another CPU's task takes that CPU's rq lock and drops
    /// this one's; here a batch takes the source rq's lock once per run of
    /// its tasks (at most 32 tasks a pass), and the DSQ's lock once per
    /// pass: what a thief taking half of a busy CPU's queue needs, since
    /// the victim keeps taking its own rq lock meanwhile (the default
    /// scheduler steals this way, `schedulers::work_stealing`). The tasks
    /// arrive in the DSQ's order, as one by one.
    pub fn dsq_move_to_local_batch(&mut self, dsq: u64, max: usize) -> usize {
        let Some(d) = self.move_source(dsq) else {
            return 0;
        };
        let moved = crate::core::dispatch::consume_dsq_batch(self.ctx.sh, self.rq, &d, max);
        self.nr_tasks += moved as u32;
        moved
    }

    /// The first steps of a move to the local DSQ: the buffered dispatches
    /// are carried out, then user DSQ `dsq` is looked up (`None`, after
    /// an ops error: `dsq` names none).
    fn move_source(&mut self, dsq: u64) -> Option<crate::core::user_dsqs::UserDsq<'a>> {
        let sh = self.ctx.sh;
        let cpu = self.rq.cpu;
        crate::core::dispatch::flush_dispatch_buf(sh, cpu, self.rq, &mut self.nr_tasks);
        let found = if dsq & dsq_id::FLAG_BUILTIN == 0 {
            sh.find_user_dsq(dsq)
        } else {
            None
        };
        if found.is_none() {
            self.consume_invalid(dsq);
        }
        found
    }

    /// `dsq_move_to_local` of an id that names no user DSQ: an error.
    #[cold]
    fn consume_invalid(&self, dsq: u64) {
        if dsq & dsq_id::FLAG_BUILTIN != 0 {
            self.ctx
                .fail(format!("dsq_move_to_local: invalid DSQ ID {dsq:#x}"));
        } else {
            self.ctx
                .fail(format!("dsq_move_to_local: non-existent DSQ {dsq:#x}"));
        }
    }
}

impl<'a> InitCtx<'a> {
    /// The context of a sleepable callback that holds no rq lock (the
    /// kernel's "unlocked" context: `dsq_move` allowed).
    pub(crate) fn new(sh: &'a Shared, cpu: Option<usize>) -> Self {
        Self {
            ctx: Ctx::new_unlocked(sh, cpu),
        }
    }

    /// The context of `init_task` for a task adopted at attach, which runs
    /// here with the task's rq lock held (the kernel's does not): a
    /// `dsq_move` from it is refused as from any rq-locked callback.
    pub(crate) fn new_locked(sh: &'a Shared, cpu: Option<usize>) -> Self {
        Self {
            ctx: Ctx::new(sh, cpu),
        }
    }

    /// Creates a user DSQ (`scx_bpf_create_dsq`). `node` is accepted for
    /// fidelity and must be -1 or 0 (scx-rt has one node).
    pub fn create_dsq(&self, dsq: u64, node: i32) -> Result<(), CreateDsqError> {
        if !(-1..=0).contains(&node) {
            return Err(CreateDsqError::InvalidNode { node });
        }
        self.ctx.sh.create_dsq(dsq)
    }
}

impl<'a> DumpCtx<'a> {
    pub(crate) fn new(sh: &'a Shared, cpu: Option<usize>) -> Self {
        Self {
            ctx: Ctx::new(sh, cpu),
            out: String::new(),
        }
    }

    /// Appends text to the dump (`scx_bpf_dump`).
    pub fn dump(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
    }
}
