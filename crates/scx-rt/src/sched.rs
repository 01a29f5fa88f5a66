//! The scheduling core: the enqueue path, balance with sched_ext's exact
//! decision order, pick/put, the dispatch buffer, consume, the cross-CPU
//! transfer protocol, and the disable (eject) path.
//!
//! Function names follow `kernel/sched/ext.c` so a reader can hold the two
//! side by side; the code is ours. Each function states the locks it expects
//! on entry and holds on return. "rq" below is always a guard of the rq lock
//! of the CPU named `cpu` unless said otherwise.
//!
//! # The step a CPU runs to pick its next task
//!
//! ```text
//! schedule(prev, why)                         rq locked for the whole step,
//!   charge prev's runtime (update_curr)       except inside hand-offs
//!   why = block: dequeue prev (SLEEP)
//!   balance: IN_BALANCE set
//!     1 prev runnable with slice left -> keep (BAL_KEEP)
//!     2 local DSQ non-empty
//!     3 consume the global DSQ
//!     4 up to 32 x { ops.dispatch; flush; keep prev?; local?; global? }
//!       exhausted -> self-kick
//!     5 prev still runnable and no ENQ_LAST -> keep
//!   IN_BALANCE cleared (its one exit)
//!   pick: prev if kept, else head of the local DSQ (zero slice -> refill)
//!   put_prev (stopping; head of local DSQ if slice left, else enqueue)
//!   set_next (unlink, running)
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::consts::{DSP_DFL_MAX_BATCH, DSP_MAX_LOOPS, SLICE_INF};
use crate::dsq::{Dsq, InsertError};
use crate::exit::{ExitInfo, ExitKind, ExitRecord};
use crate::flags::{dsq_id, DeqFlags, EnqFlags, OpsFlags, WakeFlags, DSQ_INVALID};
use crate::idle::IdleMasks;
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, RwLock};
use crate::ops::{CreateDsqError, Ctx, DispatchCtx, EnqueueCtx, Scheduler, SelectCpuCtx};
use crate::rq::{rqflags, Cpu, RqSynced};
use crate::task::{opss, tflags, TaskRef};

/// Monotonic time in ns.
#[inline]
pub(crate) fn now() -> u64 {
    #[cfg(not(scx_rt_loom))]
    return scx_rt_sys::clock::now_ns();
    #[cfg(scx_rt_loom)]
    return 1;
}

/// The attached scheduler and what the core caches about it.
#[derive(Clone)]
pub(crate) struct SchedSlot {
    pub gen: u64,
    pub ops: std::sync::Arc<dyn Scheduler>,
    pub name: String,
    pub flags: OpsFlags,
    pub builtin_idle: bool,
    pub max_batch: usize,
    /// `set_cpumask` is called when a task joins (the mask costs an
    /// allocation, so only for schedulers that ask).
    pub wants_cpumask: bool,
    /// `cpu_online`/`cpu_offline` are implemented (`SCX_HAS_OP`).
    pub hotplug: bool,
    /// The watchdog timeout (`ops.timeout_ms`, defaulted; larger than the
    /// maximum was refused by `validate_ops`).
    pub timeout_ns: u64,
    /// The built-in FIFO the runtime runs when no scheduler is attached
    /// (at build without one, and after every detach or ejection).
    pub fallback: bool,
}

impl SchedSlot {
    pub(crate) fn new(gen: u64, ops: std::sync::Arc<dyn Scheduler>) -> Self {
        let flags = ops.flags();
        let mb = ops.dispatch_max_batch();
        Self {
            gen,
            name: ops.name().to_string(),
            flags,
            builtin_idle: ops.builtin_idle() || flags.contains(OpsFlags::KEEP_BUILTIN_IDLE),
            max_batch: if mb == 0 { DSP_DFL_MAX_BATCH } else { mb } as usize,
            wants_cpumask: ops.wants_cpumask(),
            hotplug: ops.handles_hotplug(),
            timeout_ns: {
                let max = crate::consts::WATCHDOG_MAX_TIMEOUT_MS;
                let ms = match ops.timeout_ms() {
                    0 => max,
                    ms => ms.min(max),
                };
                u64::from(ms) * 1_000_000
            },
            fallback: false,
            ops,
        }
    }

    /// The built-in FIFO as the fallback.
    pub(crate) fn fallback(gen: u64) -> Self {
        Self {
            fallback: true,
            ..Self::new(gen, std::sync::Arc::new(crate::schedulers::Fifo))
        }
    }
}

struct Slots {
    cur: SchedSlot,
    prev: Option<SchedSlot>,
}

std::thread_local! {
    /// Per-thread cache of the scheduler slot, so that calling a callback
    /// costs no shared atomic (an `Rc` clone is a plain increment).
    static SLOT_CACHE: std::cell::RefCell<Option<(u64, Rc<SchedSlot>)>> =
        const { std::cell::RefCell::new(None) };
    /// (runtime, scheduler generation) this thread last looked a scheduler
    /// up for: the scheduler an error it records belongs to. An error a
    /// late caller records on behalf of a scheduler that has since left
    /// (the kernel's RCU grace period keeps such callers from existing)
    /// must not end its successor.
    static WORKING_FOR: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

std::thread_local! {
    static SPREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

static NEXT_RT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runtime configuration the core needs.
pub(crate) struct Config {
    pub slice_dfl: u64,
    pub idle_poll_ns: u64,
    pub allow_migration: bool,
    pub record_balance: bool,
}

/// State shared by every CPU of one runtime.
pub(crate) struct Shared {
    pub rt_id: u64,
    pub nr_cpus: usize,
    pub cpus: Box<[Cpu]>,
    pub os_cpus: Vec<Option<usize>>,
    pub global: Dsq,
    user_dsqs: RwLock<HashMap<u64, std::sync::Arc<Dsq>>>,
    slots: RwLock<Slots>,
    pub sched_gen: AtomicU64,
    /// The next unused scheduler generation.
    next_gen: AtomicU64,
    pub idle: IdleMasks,
    pub exit: ExitRecord,
    pub last_exit: Mutex<Option<ExitInfo>>,
    pub cfg: Config,
    #[cfg(not(scx_rt_loom))]
    pub stacks: scx_rt_sys::stack::StackPool,
    pub live_tasks: AtomicUsize,
    pub shutdown: AtomicBool,
    pub disabling: Mutex<()>,
    /// Bypass depth (`scx_ops_bypass_depth`): bypass is on while it is
    /// above zero. The lock serializes the transitions.
    pub bypass_depth: Mutex<u32>,
    #[cfg(not(scx_rt_loom))]
    pub timer: crate::timer::TimerState,
    /// Counters (`Runtime::stats`).
    pub nr_ejections: AtomicU64,
    /// Tasks that failed because no stack could be mapped for them.
    pub nr_no_stack: AtomicU64,
    /// Dumps written for the SysRq-D signal.
    pub sysrq_dumps: AtomicU64,
    /// The scheduler's timers (`Ctx::timer_start`).
    pub ops_timers: crate::ops_timer::OpsTimers,
    /// Threads for blocking closures (`spawn_blocking`).
    #[cfg(not(scx_rt_loom))]
    pub blocking: crate::blocking::BlockingPool,
    /// Every live task (`scx_tasks`).
    pub tasks: crate::registry::TaskRegistry,
    /// The fork lock (`scx_fork_rwsem`): `spawn` holds it shared from
    /// choosing the scheduler to registering the task; the passes over
    /// every task (attach, disable) hold it exclusively, so no task is
    /// missed or initialized by the wrong scheduler.
    pub fork_lock: RwLock<()>,
    /// Serializes attach and detach (`scx_ops_enable_mutex`).
    pub enable_lock: Mutex<()>,
    /// Serializes `Runtime::cpu_offline`/`cpu_online`.
    #[cfg(not(scx_rt_loom))]
    pub hotplug: crate::hotplug::Hotplug,
}

/// Where a dispatch lands.
pub(crate) enum Target {
    Local(usize),
    Global,
    User(std::sync::Arc<Dsq>),
}

impl Shared {
    pub(crate) fn new(
        nr_cpus: usize,
        os_cpus: Vec<Option<usize>>,
        sched: std::sync::Arc<dyn Scheduler>,
        cfg: Config,
        #[cfg_attr(scx_rt_loom, allow(unused_variables))] stack_size: usize,
    ) -> Self {
        let slot = SchedSlot::new(1, sched);
        let cpus: Box<[Cpu]> = (0..nr_cpus).map(|c| Cpu::new(c, nr_cpus)).collect();
        for c in cpus.iter() {
            let mut rq = c.rq.lock();
            rq.sched_gen = 1;
            if cfg.record_balance {
                rq.balance_trace = Some(Vec::new());
            }
        }
        let idle = IdleMasks::new(nr_cpus);
        Self {
            rt_id: NEXT_RT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nr_cpus,
            cpus,
            os_cpus,
            global: Dsq::new(dsq_id::GLOBAL),
            user_dsqs: RwLock::new(HashMap::new()),
            slots: RwLock::new(Slots {
                cur: slot,
                prev: None,
            }),
            sched_gen: AtomicU64::new(1),
            next_gen: AtomicU64::new(2),
            idle,
            exit: ExitRecord::new(),
            last_exit: Mutex::new(None),
            cfg,
            #[cfg(not(scx_rt_loom))]
            stacks: scx_rt_sys::stack::StackPool::new(stack_size),
            live_tasks: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            disabling: Mutex::new(()),
            bypass_depth: Mutex::new(0),
            tasks: crate::registry::TaskRegistry::new(),
            fork_lock: RwLock::new(()),
            enable_lock: Mutex::new(()),
            #[cfg(not(scx_rt_loom))]
            timer: crate::timer::TimerState::new(),
            nr_ejections: AtomicU64::new(0),
            nr_no_stack: AtomicU64::new(0),
            sysrq_dumps: AtomicU64::new(0),
            ops_timers: crate::ops_timer::OpsTimers::new(),
            #[cfg(not(scx_rt_loom))]
            hotplug: Default::default(),
            #[cfg(not(scx_rt_loom))]
            blocking: crate::blocking::BlockingPool::new(),
        }
    }

    /// The scheduler of generation `gen` (current, or the one being
    /// replaced while a swap is in progress).
    pub(crate) fn slot(&self, gen: u64) -> Rc<SchedSlot> {
        let key = self.rt_id;
        if let Some(s) = SLOT_CACHE.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(k, s)| *k == key && s.gen == gen)
                .map(|(_, s)| s.clone())
        }) {
            WORKING_FOR.with(|w| w.set((self.rt_id, gen)));
            return s;
        }
        let slots = self.slots.read();
        let s = if slots.cur.gen == gen {
            slots.cur.clone()
        } else {
            match &slots.prev {
                Some(p) if p.gen == gen => p.clone(),
                _ => slots.cur.clone(),
            }
        };
        drop(slots);
        let s = Rc::new(s);
        WORKING_FOR.with(|w| w.set((self.rt_id, s.gen)));
        SLOT_CACHE.with(|c| *c.borrow_mut() = Some((key, s.clone())));
        s
    }

    /// A fresh scheduler generation (never reused: per-thread slot caches
    /// and `WORKING_FOR` compare generations).
    pub(crate) fn new_gen(&self) -> u64 {
        self.next_gen.fetch_add(1, Ordering::AcqRel)
    }

    /// The current scheduler (for callers holding no rq lock).
    /// Marks the current scheduler as the fallback (a runtime built
    /// without one).
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn set_cur_fallback(&self) {
        self.slots.write().cur.fallback = true;
    }

    /// Makes `slot` current; the one it replaces stays reachable (as
    /// `prev`) for the rqs that still use its generation.
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn install(&self, slot: SchedSlot) {
        let gen = slot.gen;
        {
            let mut s = self.slots.write();
            let prev = std::mem::replace(&mut s.cur, slot);
            s.prev = Some(prev);
        }
        self.sched_gen.store(gen, Ordering::Release);
    }

    /// Drops the replaced scheduler once no rq uses its generation.
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn forget_prev_slot(&self) {
        self.slots.write().prev = None;
    }

    pub(crate) fn cur_slot(&self) -> Rc<SchedSlot> {
        self.slot(self.sched_gen.load(Ordering::Acquire))
    }

    pub(crate) fn builtin_idle(&self) -> bool {
        self.cur_slot().builtin_idle
    }

    pub(crate) fn check_builtin_idle(&self, what: &str) -> bool {
        if self.builtin_idle() {
            return true;
        }
        self.ops_error(format!("{what}: built-in idle tracking is disabled"));
        false
    }

    /// Whether `cpu` is online (lock-free; `Runtime::cpu_offline`).
    #[inline]
    pub(crate) fn cpu_online(&self, cpu: usize) -> bool {
        self.cpus[cpu].shared.online.load(Ordering::Acquire)
    }

    pub(crate) fn check_cpu(&self, cpu: usize, what: &str) -> bool {
        if cpu < self.nr_cpus {
            return true;
        }
        self.ops_error(format!("invalid CPU {cpu} in {what}"));
        false
    }

    /// A rotating start point for CPU searches (per thread, so searches
    /// from different CPUs share no counter).
    pub(crate) fn spread_hint(&self) -> usize {
        SPREAD.with(|s| {
            let v = s.get().wrapping_add(1);
            s.set(v);
            v % self.nr_cpus.max(1)
        })
    }

    /// Records an ops error (`scx_ops_error`): the scheduler is ejected at the
    /// next safe point.
    pub(crate) fn ops_error(&self, msg: String) {
        self.record_exit(ExitKind::Error, 0, msg);
    }

    pub(crate) fn record_exit(&self, kind: ExitKind, code: i64, msg: String) {
        let current = self.sched_gen.load(Ordering::Acquire);
        let (rt, gen) = WORKING_FOR.with(|w| w.get());
        if rt == self.rt_id && gen != current {
            return; // a late error of a scheduler that already left
        }
        let name = self.cur_slot().name.clone();
        let mut msg = msg;
        // Errors the runtime detects name where (a scheduler's own
        // `ctx.error` message is passed through as written).
        if kind == ExitKind::Error {
            let c = ERR_CTX.with(|c| c.get());
            let mut parts = Vec::new();
            if let Some(op) = c.op {
                parts.push(format!("ops.{op}"));
            }
            if let Some(t) = c.task {
                parts.push(format!("task {t}"));
            }
            if let Some(cpu) = c.cpu.or_else(worker_cpu) {
                parts.push(format!("cpu {cpu}"));
            }
            if !parts.is_empty() {
                msg = format!("{msg} ({})", parts.join(", "));
            }
        }
        if self.exit.claim(kind, code, msg, &name, current) {
            // Make some worker reach a safe point soon.
            for c in self.cpus.iter() {
                c.resched();
            }
        }
    }

    pub(crate) fn find_user_dsq(&self, id: u64) -> Option<std::sync::Arc<Dsq>> {
        self.user_dsqs.read().get(&id).cloned()
    }

    pub(crate) fn create_dsq(&self, id: u64) -> Result<(), CreateDsqError> {
        if id & dsq_id::FLAG_BUILTIN != 0 {
            return Err(CreateDsqError::Builtin { id });
        }
        let mut t = self.user_dsqs.write();
        if t.contains_key(&id) {
            return Err(CreateDsqError::Exists { id });
        }
        t.insert(id, std::sync::Arc::new(Dsq::new(id)));
        Ok(())
    }

    pub(crate) fn destroy_dsq(&self, id: u64) {
        let mut t = self.user_dsqs.write();
        let Some(d) = t.get(&id).cloned() else {
            return;
        };
        let q = d.q.lock();
        if !q.is_empty() {
            drop(q);
            drop(t);
            self.ops_error(format!("attempting to destroy in-use dsq {id:#x}"));
            return;
        }
        d.id.store(DSQ_INVALID, Ordering::Release);
        drop(q);
        t.remove(&id);
    }

    /// Ids of every user DSQ.
    pub(crate) fn user_dsq_ids(&self) -> Vec<u64> {
        self.user_dsqs.read().keys().copied().collect()
    }
}

/// Runs a scheduler callback, turning a panic into an ops error.
/// Where an error is detected: the callback (or the callback whose verdict
/// is being carried out), its task and CPU. Appended to every error
/// message, so an ejection names all three (SPEC.md §6.3).
#[derive(Clone, Copy, Default)]
pub(crate) struct ErrCtx {
    pub op: Option<&'static str>,
    pub task: Option<u64>,
    pub cpu: Option<usize>,
}

std::thread_local! {
    static ERR_CTX: std::cell::Cell<ErrCtx> = const {
        std::cell::Cell::new(ErrCtx { op: None, task: None, cpu: None })
    };
}

/// Restores the previous error context when dropped.
pub(crate) struct ErrCtxGuard(ErrCtx);

impl Drop for ErrCtxGuard {
    fn drop(&mut self) {
        ERR_CTX.with(|c| c.set(self.0));
    }
}

/// Sets the error context until the guard is dropped.
pub(crate) fn err_ctx(op: &'static str, task: Option<&TaskRef>, cpu: Option<usize>) -> ErrCtxGuard {
    let cpu = cpu.or_else(worker_cpu);
    ErrCtxGuard(ERR_CTX.with(|c| {
        c.replace(ErrCtx {
            op: Some(op),
            task: task.map(|p| p.id()),
            cpu,
        })
    }))
}

/// The CPU of the calling worker thread, if it is one.
fn worker_cpu() -> Option<usize> {
    #[cfg(not(scx_rt_loom))]
    return crate::worker::current_cpu();
    #[cfg(scx_rt_loom)]
    return None;
}

/// Calls scheduler callback `op` about task `p`; see [`call`].
pub(crate) fn call_task<R>(
    sh: &Shared,
    op: &'static str,
    p: &TaskRef,
    f: impl FnOnce() -> R,
) -> Option<R> {
    let _g = err_ctx(op, Some(p), None);
    call_inner(sh, op, f)
}

/// Calls scheduler callback `op`, catching a panic (an ops error naming
/// the callback).
pub(crate) fn call<R>(sh: &Shared, op: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    let _g = err_ctx(op, None, None);
    call_inner(sh, op, f)
}

fn call_inner<R>(sh: &Shared, op: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) => {
            sh.ops_error(format!(
                "scheduler panicked in ops.{op}: {}",
                panic_msg(&*e)
            ));
            None
        }
    }
}

pub(crate) fn panic_msg(e: &(dyn Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

// ---------------------------------------------------------------------
// Bookkeeping helpers (rq locked).

/// The task joins this rq's runnable set.
fn activate(rq: &mut RqSynced, p: &TaskRef) {
    if p.has_flag(tflags::RESET_RUNNABLE_AT) {
        p.scx.runnable_at.store(now(), Ordering::Relaxed);
        p.clear_flag(tflags::RESET_RUNNABLE_AT);
    }
    rq.runnable.add(p);
    rq.nr_running += 1;
}

/// Whether `p` waits on `rq` to run: it belongs to this rq, is runnable
/// and is not running (it is on the rq's runnable list, which the running
/// task leaves at `set_next_task` and a task in flight between two rqs is
/// on neither's). Every pass that walks a snapshot of the runnable list and
/// drops the rq lock between tasks (bypass, hotplug) re-checks a task with
/// this before moving it: in the window the task may have been picked and
/// started, blocked, been consumed by another CPU, or be on its way to
/// this rq. rq locked.
pub(crate) fn waits_on_rq(rq: &RqSynced, p: &TaskRef) -> bool {
    p.cpu() == rq.cpu
        && p.is_queued()
        && !p.has_flag(tflags::MIGRATING)
        && p.scx.runnable_slot.load(Ordering::Relaxed) != usize::MAX
        && rq.curr.as_ref().is_none_or(|c| c.id() != p.id())
}

/// The task leaves this rq's runnable set (it stays QUEUED).
fn deactivate(rq: &mut RqSynced, p: &TaskRef) {
    rq.runnable.remove(p);
    rq.nr_running -= 1;
}

fn sync_local_nr(sh: &Shared, rq: &RqSynced) {
    sh.cpus[rq.cpu]
        .shared
        .local_nr
        .store(rq.local.len(), Ordering::Relaxed);
}

/// `update_curr`: charges the time `p` ran since `exec_start`.
pub(crate) fn update_curr(p: &TaskRef, now: u64) {
    let start = p.scx.exec_start.swap(now, Ordering::Relaxed);
    let delta = now.saturating_sub(start);
    if delta == 0 {
        return;
    }
    p.scx.sum_exec_runtime.fetch_add(delta, Ordering::Relaxed);
    let s = p.slice();
    if s != SLICE_INF {
        p.set_slice(s - s.min(delta));
    }
}

// ---------------------------------------------------------------------
// Inserting into DSQs (SPEC.md §2.4).

/// Resolves a DSQ id relative to the CPU doing the operation
/// (`find_dsq_for_dispatch`). Errors fall back to the global DSQ.
pub(crate) fn find_dsq_for_dispatch(sh: &Shared, cpu: usize, id: u64) -> Target {
    if id == dsq_id::LOCAL {
        return Target::Local(cpu);
    }
    if id & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
        let c = (id & dsq_id::LOCAL_CPU_MASK) as usize;
        if c >= sh.nr_cpus {
            sh.ops_error(format!("invalid CPU {c} in SCX_DSQ_LOCAL_ON verdict"));
            return Target::Global;
        }
        return Target::Local(c);
    }
    if id == dsq_id::GLOBAL {
        return Target::Global;
    }
    if id & dsq_id::FLAG_BUILTIN != 0 {
        sh.ops_error(format!("invalid DSQ ID {id:#x}"));
        return Target::Global;
    }
    match sh.find_user_dsq(id) {
        Some(d) => Target::User(d),
        None => {
            sh.ops_error(format!("non-existent DSQ {id:#x}"));
            Target::Global
        }
    }
}

/// Links `p` into a non-local DSQ (the DSQ lock nests inside whatever rq lock
/// the caller holds).
pub(crate) fn dispatch_enqueue_nonlocal(sh: &Shared, dsq: &Dsq, p: &TaskRef, mut f: EnqFlags) {
    let is_global = std::ptr::eq(dsq, &sh.global);
    let mut q = dsq.q.lock();
    if !is_global && dsq.id.load(Ordering::Acquire) == DSQ_INVALID {
        drop(q);
        sh.ops_error(format!(
            "attempting to dispatch to a destroyed dsq (task {})",
            p.id()
        ));
        return dispatch_enqueue_nonlocal(sh, &sh.global, p, f);
    }
    if f.contains(EnqFlags::DSQ_PRIQ) && is_global {
        sh.ops_error("cannot use vtime ordering for built-in DSQs".to_string());
        f = f.without(EnqFlags::DSQ_PRIQ);
    }
    let r = if f.contains(EnqFlags::DSQ_PRIQ) {
        q.push_vtime(p.clone())
    } else {
        q.push_fifo(p.clone(), f.intersects(EnqFlags::HEAD | EnqFlags::PREEMPT))
    };
    if let Err(e) = r {
        drop(q);
        let id = dsq.id.load(Ordering::Relaxed);
        sh.ops_error(match e {
            InsertError::PriqIntoFifo => format!("DSQ {id:#x} already had FIFO-enqueued tasks"),
            InsertError::FifoIntoPriq => format!("DSQ {id:#x} already had PRIQ-enqueued tasks"),
        });
        return dispatch_enqueue_nonlocal(sh, &sh.global, p, f.without(EnqFlags::DSQ_PRIQ));
    }
    dsq.nr.fetch_add(1, Ordering::Relaxed);
    p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
    p.scx.ddsp_enq_flags.store(0, Ordering::Relaxed);
    if f.contains(EnqFlags::CLEAR_OPSS) {
        p.scx.ops_state.store(opss::NONE, Ordering::Release);
    }
}

/// Links `p` into `rq`'s local DSQ and applies the post-insert rules:
/// `PREEMPT` zeroes the current task's slice and reschedules; an idle target
/// is rescheduled; a busy one is not (it runs until its slice ends).
/// rq locked on entry and return; `p` must be associated with this rq.
pub(crate) fn dispatch_enqueue_local(sh: &Shared, rq: &mut RqSynced, p: &TaskRef, mut f: EnqFlags) {
    if f.contains(EnqFlags::DSQ_PRIQ) {
        sh.ops_error("cannot use vtime ordering for built-in DSQs".to_string());
        f = f.without(EnqFlags::DSQ_PRIQ);
    }
    debug_assert_eq!(p.cpu(), rq.cpu, "local insert of a task of another rq");
    let head = f.intersects(EnqFlags::HEAD | EnqFlags::PREEMPT);
    // A local DSQ is always FIFO, so this cannot fail.
    let _ = rq.local.push_fifo(p.clone(), head);
    sync_local_nr(sh, rq);
    p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
    p.scx.ddsp_enq_flags.store(0, Ordering::Relaxed);
    if f.contains(EnqFlags::CLEAR_OPSS) {
        p.scx.ops_state.store(opss::NONE, Ordering::Release);
    }
    let cpu = &sh.cpus[rq.cpu];
    match &rq.curr {
        Some(c) if f.contains(EnqFlags::PREEMPT) && c.id() != p.id() => {
            c.set_slice(0);
            cpu.shared.stats.preemptions.fetch_add(1, Ordering::Relaxed);
            cpu.resched();
        }
        None if !rq.has(rqflags::IN_BALANCE) => cpu.resched(),
        _ => {}
    }
}

// ---------------------------------------------------------------------
// The enqueue path (SPEC.md §3.3).

/// `enqueue_task_scx`. rq locked on entry and return.
pub(crate) fn enqueue_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    f: EnqFlags,
) {
    if p.is_queued() {
        return;
    }
    p.set_flag(tflags::QUEUED);
    activate(rq, p);
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    call_task(sh, "runnable", p, || slot.ops.runnable(&ctx, p, f));
    do_enqueue_task(sh, rq, p, f);
}

/// `do_enqueue_task`: the first matching rule places the task.
fn do_enqueue_task(sh: &Shared, rq: &mut MutexGuard<'_, RqSynced>, p: &TaskRef, f: EnqFlags) {
    let sticky = p.scx.sticky_cpu.swap(-1, Ordering::Relaxed);
    if sticky == rq.cpu as i32 {
        return dispatch_enqueue_local(sh, rq, p, f);
    }
    if !rq.online() {
        p.set_slice(sh.cfg.slice_dfl);
        return dispatch_enqueue_local(sh, rq, p, f);
    }
    if rq.bypassing() {
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        p.set_slice(sh.cfg.slice_dfl);
        return dispatch_enqueue_nonlocal(sh, &sh.global, p, f);
    }
    if p.scx.ddsp_dsq_id.load(Ordering::Relaxed) != DSQ_INVALID {
        return direct_dispatch(sh, rq, p, f, "select_cpu");
    }
    let qseq = rq.ops_qseq << opss::QSEQ_SHIFT;
    rq.ops_qseq += 1;
    debug_assert_eq!(p.ops_state() & opss::STATE_MASK, opss::NONE);
    p.scx
        .ops_state
        .store(opss::QUEUEING | qseq, Ordering::Relaxed);
    let slot = sh.slot(rq.sched_gen);
    let mut ctx = EnqueueCtx::new(sh, rq.cpu, p);
    call_task(sh, "enqueue", p, || slot.ops.enqueue(&mut ctx, p, f));
    if ctx.dispatched() {
        direct_dispatch(sh, rq, p, f, "enqueue");
    } else {
        // The scheduler owns the task now.
        p.scx
            .ops_state
            .store(opss::QUEUED | qseq, Ordering::Release);
    }
}

/// Executes a recorded direct-dispatch verdict (SPEC.md §2.5). rq locked.
/// `op` is the callback that gave the verdict (named in errors).
fn direct_dispatch(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    f: EnqFlags,
    op: &'static str,
) {
    let _ctx = err_ctx(op, Some(p), Some(rq.cpu));
    let id = p.scx.ddsp_dsq_id.swap(DSQ_INVALID, Ordering::Relaxed);
    let f = f | EnqFlags(p.scx.ddsp_enq_flags.swap(0, Ordering::Relaxed)) | EnqFlags::CLEAR_OPSS;
    match find_dsq_for_dispatch(sh, rq.cpu, id) {
        Target::Local(c) if c == rq.cpu => dispatch_enqueue_local(sh, rq, p, f),
        Target::Local(c) => {
            // Another CPU's local DSQ: we hold this rq and may not take a
            // second one, so park the task and finish once this rq lock can
            // be dropped (process_ddsp_deferred_locals).
            p.scx.ops_state.store(opss::NONE, Ordering::Release);
            rq.ddsp_deferred_locals
                .push((p.clone(), c, f.without(EnqFlags::CLEAR_OPSS)));
        }
        Target::Global => dispatch_enqueue_nonlocal(sh, &sh.global, p, f),
        Target::User(d) => dispatch_enqueue_nonlocal(sh, &d, p, f),
    }
}

/// Runs the parked remote-local direct dispatches. rq locked on entry and
/// return; dropped in between.
pub(crate) fn process_ddsp_deferred_locals(sh: &Shared, rq: &mut MutexGuard<'_, RqSynced>) {
    // Pop one at a time: the list may change while the lock is dropped.
    while let Some((p, dst, f)) = rq.ddsp_deferred_locals.pop() {
        dispatch_to_local_dsq(sh, rq, dst, &p, f);
    }
}

/// Wakes a task that was off its runqueue (`try_to_wake_up`): `select_cpu`
/// in the waker's context, then the enqueue on the chosen CPU. No lock held
/// on entry or return. `from` is the waker's CPU (None: not a worker).
pub(crate) fn wake_up(sh: &Shared, p: &TaskRef, wake_flags: WakeFlags, from: Option<usize>) {
    let cpu = select_task_rq(sh, p, wake_flags, from);
    p.scx.cpu.store(cpu as u32, Ordering::Relaxed);
    let mut rq = sh.cpus[cpu].rq.lock();
    let enq = if wake_flags.contains(WakeFlags::FORK) {
        EnqFlags::empty()
    } else {
        EnqFlags::WAKEUP
    };
    rq.flags |= rqflags::IN_WAKEUP;
    enqueue_task(sh, &mut rq, p, enq);
    rq.flags &= !rqflags::IN_WAKEUP;
    // The core's wake-up rule: a task arriving on an idle CPU's rq
    // reschedules it, even if the task now sits with the scheduler.
    if rq.curr.is_none() {
        sh.cpus[cpu].resched();
    }
    process_ddsp_deferred_locals(sh, &mut rq);
    drop(rq);
    crate::kick::run_pending(sh, from);
}

fn select_task_rq(sh: &Shared, p: &TaskRef, wake_flags: WakeFlags, from: Option<usize>) -> usize {
    let prev = p.cpu();
    if let Some(b) = p.bound_cpu() {
        return b;
    }
    if p.nr_cpus_allowed(sh.nr_cpus) == 1 {
        return fallback_cpu(sh, p, prev);
    }
    // The lock-free mirror: a try-lock that lost a race would have read
    // "not bypassing" and called the scheduler.
    let bypass = sh.cpus[prev].shared.bypassing.load(Ordering::Acquire);
    let cpu = if bypass {
        // The runtime's own placement: the default selection itself, not
        // the `select_cpu_dfl` helper, which a scheduler without built-in
        // idle tracking may not call (SPEC.md §6.1: bypass must not depend
        // on anything the scheduler chose). Its direct-dispatch verdict
        // would be overridden at enqueue anyway.
        let (c, _) = crate::idle::select_cpu_dfl(sh, from, p, prev, wake_flags);
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        c as i64
    } else {
        let slot = sh.cur_slot();
        let mut ctx = SelectCpuCtx::new(sh, from, p);
        match call_task(sh, "select_cpu", p, || {
            slot.ops.select_cpu(&mut ctx, p, prev, wake_flags)
        }) {
            Some(c) => c as i64,
            None => prev as i64,
        }
    };
    if cpu < 0 || cpu as usize >= sh.nr_cpus {
        let _ctx = err_ctx("select_cpu", Some(p), from);
        sh.ops_error(format!("select_cpu returned invalid CPU {cpu}"));
        p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
        return fallback_cpu(sh, p, prev);
    }
    let cpu = cpu as usize;
    if p.allowed_on(cpu) && sh.cpu_online(cpu) {
        cpu
    } else {
        fallback_cpu(sh, p, prev)
    }
}

/// Any online CPU the task may use, preferring `prev`
/// (`select_fallback_rq`). A task allowed only on offline CPUs gets one of
/// them: the runtime never breaks an affinity the user set, where the
/// kernel would (its worker still runs tasks pinned to it, see
/// `Runtime::cpu_offline`).
pub(crate) fn fallback_cpu(sh: &Shared, p: &TaskRef, prev: usize) -> usize {
    if p.allowed_on(prev) && sh.cpu_online(prev) {
        return prev;
    }
    if let Some(c) = p.single_cpu() {
        return c;
    }
    let start = sh.spread_hint();
    let ok = |c: usize| p.allowed_on(c) && sh.cpu_online(c);
    (0..sh.nr_cpus)
        .map(|i| (start + i) % sh.nr_cpus)
        .find(|&c| ok(c))
        .or_else(|| (0..sh.nr_cpus).find(|&c| p.allowed_on(c)))
        .unwrap_or(prev)
}

/// `task_rq_lock`: locks the rq the task belongs to, retrying if it moved
/// while we waited for the lock.
/// A task in flight between two rqs (`MIGRATING`) belongs to neither:
/// wait until it lands. (Found by the loom model `ownership`: without the
/// wait, a dequeue that locked the destination first saw a task that was on
/// no runnable list yet.)
pub(crate) fn task_rq_lock<'a>(sh: &'a Shared, p: &TaskRef) -> MutexGuard<'a, RqSynced> {
    loop {
        let cpu = p.scx.cpu.load(Ordering::Acquire) as usize;
        let rq = sh.cpus[cpu].rq.lock();
        if p.scx.cpu.load(Ordering::Acquire) as usize == cpu && !p.has_flag(tflags::MIGRATING) {
            return rq;
        }
        drop(rq);
        crate::loom::spin_loop();
    }
}

// ---------------------------------------------------------------------
// Dequeue (SPEC.md §3.5).

/// `ops_dequeue`: takes the task back from the scheduler if it owns it.
fn ops_dequeue(sh: &Shared, rq: &RqSynced, p: &TaskRef, f: DeqFlags) {
    loop {
        let s = p.ops_state();
        match s & opss::STATE_MASK {
            opss::NONE => return,
            opss::QUEUEING => {
                debug_assert!(false, "QUEUEING seen under the task's rq lock");
                crate::loom::spin_loop();
            }
            opss::QUEUED => {
                let slot = sh.slot(rq.sched_gen);
                let ctx = Ctx::new(sh, Some(rq.cpu));
                call_task(sh, "dequeue", p, || slot.ops.dequeue(&ctx, p, f));
                if p.scx
                    .ops_state
                    .compare_exchange(s, opss::NONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                // A dispatcher won; wait for it below.
                wait_ops_dispatching(p);
                return;
            }
            _ => {
                wait_ops_dispatching(p);
                return;
            }
        }
    }
}

fn wait_ops_dispatching(p: &TaskRef) {
    while p.ops_state() & opss::STATE_MASK == opss::DISPATCHING {
        crate::loom::spin_loop();
    }
}

/// Unlinks `p` from whatever DSQ it is on, or cancels its transfer.
/// The task's rq (`rq`) locked.
fn dispatch_dequeue(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) {
    let id = p.scx.dsq.load(Ordering::Acquire);
    if id == DSQ_INVALID {
        if let Some(i) = rq
            .ddsp_deferred_locals
            .iter()
            .position(|(q, _, _)| q.id() == p.id())
        {
            rq.ddsp_deferred_locals.remove(i);
        }
        if p.scx.holding_cpu.load(Ordering::Acquire) >= 0 {
            p.scx.holding_cpu.store(-1, Ordering::Release);
        }
        return;
    }
    if id & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
        let removed = rq.local.remove(p);
        debug_assert!(removed, "task {} not on the local DSQ it names", p.id());
        sync_local_nr(sh, rq);
    } else {
        let d = if id == dsq_id::GLOBAL {
            None
        } else {
            sh.find_user_dsq(id)
        };
        let dsq: &Dsq = d.as_deref().unwrap_or(&sh.global);
        let mut q = dsq.q.lock();
        if p.scx.holding_cpu.load(Ordering::Acquire) < 0 {
            if q.remove(p) {
                dsq.nr.fetch_sub(1, Ordering::Relaxed);
            }
        } else {
            // A consumer already unlinked it: tell it that it lost.
            p.scx.holding_cpu.store(-1, Ordering::Release);
        }
    }
    p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
}

/// `dequeue_task_scx` for a task leaving the runqueue. `is_curr`: it is the
/// task this CPU was running. rq locked.
pub(crate) fn dequeue_task(
    sh: &Shared,
    rq: &mut RqSynced,
    p: &TaskRef,
    f: DeqFlags,
    is_curr: bool,
) {
    if !p.is_queued() {
        return;
    }
    ops_dequeue(sh, rq, p, f);
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    if is_curr {
        call_task(sh, "stopping", p, || slot.ops.stopping(&ctx, p, false));
    }
    call_task(sh, "quiescent", p, || slot.ops.quiescent(&ctx, p, f));
    if f.contains(DeqFlags::SLEEP) {
        p.set_flag(tflags::DEQD_FOR_SLEEP);
    } else {
        p.clear_flag(tflags::DEQD_FOR_SLEEP);
    }
    p.clear_flag(tflags::QUEUED);
    deactivate(rq, p);
    dispatch_dequeue(sh, rq, p);
}

// ---------------------------------------------------------------------
// Dispatch buffer, consume, transfers (SPEC.md §2.6, §2.7, §3.9).

/// Performs the buffered dispatches in order. rq locked on entry and return.
pub(crate) fn flush_dispatch_buf(
    sh: &Shared,
    _cpu: usize,
    rq: &mut MutexGuard<'_, RqSynced>,
    nr_tasks: &mut u32,
) {
    let buf = std::mem::take(&mut rq.dispatch_buf);
    *nr_tasks += buf.len() as u32;
    for e in buf {
        finish_dispatch(sh, rq, &e.task, e.qseq, e.dsq_id, e.enq_flags);
    }
}

fn finish_dispatch(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    qseq: u64,
    id: u64,
    f: EnqFlags,
) {
    let _ctx = err_ctx("dispatch", Some(p), Some(rq.cpu));
    loop {
        let s = p.ops_state();
        match s & opss::STATE_MASK {
            // Someone else owns or already moved it.
            opss::NONE | opss::DISPATCHING => return,
            opss::QUEUED => {
                if s & !opss::STATE_MASK != qseq {
                    return; // stale claim: the task was re-enqueued since
                }
                if p.scx
                    .ops_state
                    .compare_exchange(
                        s,
                        opss::DISPATCHING | qseq,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    break;
                }
            }
            // An enqueue is in progress on another CPU that holds that
            // task's rq lock and needs nothing we hold.
            _ => crate::loom::spin_loop(),
        }
    }
    match find_dsq_for_dispatch(sh, rq.cpu, id) {
        Target::Local(c) => dispatch_to_local_dsq(sh, rq, c, p, f),
        Target::Global => dispatch_enqueue_nonlocal(sh, &sh.global, p, f | EnqFlags::CLEAR_OPSS),
        Target::User(d) => dispatch_enqueue_nonlocal(sh, &d, p, f | EnqFlags::CLEAR_OPSS),
    }
}

/// Whether `p` may move to CPU `dst` (`task_can_run_on_remote_rq`).
/// `explicit`: the scheduler named the CPU (violations are errors).
///
/// A task bound to its CPU by the runtime's migration rule (crate docs) is
/// the kernel's migration-disabled task, with one deviation: a verdict that
/// would move it is not an error here. In the kernel such tasks are rare;
/// here every started task is one, and a policy written for sched_ext
/// (dispatching whatever it queued to `DSQ_LOCAL`) would be ejected
/// constantly. The task silently goes to the global DSQ, where only its CPU
/// takes it. Violating an affinity the user asked for stays an error.
fn can_run_on(sh: &Shared, p: &TaskRef, dst: usize, explicit: bool) -> bool {
    if let Some(b) = p.bound_cpu() {
        return b == dst;
    }
    // An offline CPU takes no task that could run elsewhere (the kernel's
    // `task_can_run_on_remote_rq` refuses an offline rq without an error).
    if !sh.cpu_online(dst) && p.single_cpu() != Some(dst) {
        return false;
    }
    if !p.allowed_on(dst) {
        if explicit {
            sh.ops_error(format!(
                "SCX_DSQ_LOCAL[_ON] verdict target cpu {dst} not allowed for task {}",
                p.id()
            ));
        }
        return false;
    }
    true
}

/// Moves a task the caller owns (DISPATCHING, or parked) into CPU `dst`'s
/// local DSQ. rq (of the dispatching CPU) locked on entry and return; it is
/// dropped in between for a remote move, and at no point are two rq locks
/// held (hand-off through `holding_cpu`).
pub(crate) fn dispatch_to_local_dsq(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    dst: usize,
    p: &TaskRef,
    f: EnqFlags,
) {
    let me = rq.cpu;
    let src = p.cpu();
    if src == me && dst == me {
        return dispatch_enqueue_local(sh, rq, p, f | EnqFlags::CLEAR_OPSS);
    }
    if src != dst && !can_run_on(sh, p, dst, true) {
        return dispatch_enqueue_nonlocal(sh, &sh.global, p, f | EnqFlags::CLEAR_OPSS);
    }
    // Ownership now rides on holding_cpu.
    p.scx.holding_cpu.store(me as i32, Ordering::Release);
    p.scx.ops_state.store(opss::NONE, Ordering::Release);
    MutexGuard::unlocked(rq, || {
        let mut srq = sh.cpus[src].rq.lock();
        if p.scx.holding_cpu.load(Ordering::Acquire) != me as i32 || p.cpu() != src {
            return; // a dequeue cancelled the transfer
        }
        p.scx.holding_cpu.store(-1, Ordering::Release);
        if src == dst {
            dispatch_enqueue_local(sh, &mut srq, p, f);
            return;
        }
        deactivate(&mut srq, p);
        p.set_flag(tflags::MIGRATING);
        p.scx.cpu.store(dst as u32, Ordering::Release);
        drop(srq);
        let mut drq = sh.cpus[dst].rq.lock();
        activate(&mut drq, p);
        p.clear_flag(tflags::MIGRATING);
        dispatch_enqueue_local(sh, &mut drq, p, f);
    });
}

/// Moves the first task of `dsq` that may run on this CPU into its local DSQ
/// (`consume_dispatch_q`). rq locked on entry and return.
pub(crate) fn consume_dispatch_q(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    dsq: &Dsq,
) -> bool {
    consume_dsq(sh, rq, dsq, false)
}

/// `consume_dispatch_q`, optionally limited to the tasks that may run on
/// this CPU only (`pinned_only`, for an offline CPU).
fn consume_dsq(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    dsq: &Dsq,
    pinned_only: bool,
) -> bool {
    let me = rq.cpu;
    loop {
        if dsq.nr_queued() == 0 {
            return false;
        }
        let mut q = dsq.q.lock();
        let p = if pinned_only {
            q.pop_pinned(me)
        } else {
            q.pop_first_for(me, |p| p.allowed_on(me))
        };
        let Some(p) = p else {
            return false;
        };
        dsq.nr.fetch_sub(1, Ordering::Relaxed);
        if p.cpu() == me {
            drop(q);
            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
            dispatch_enqueue_local(sh, rq, &p, EnqFlags::empty());
            return true;
        }
        // Remote task: mark it in transit while the DSQ lock is held, so a
        // racing dequeue on its rq finds it and cancels us.
        p.scx.holding_cpu.store(me as i32, Ordering::Release);
        drop(q);
        let src = p.cpu();
        let won = MutexGuard::unlocked(rq, || {
            let mut srq = sh.cpus[src].rq.lock();
            if p.scx.holding_cpu.load(Ordering::Acquire) != me as i32 || p.cpu() != src {
                return false;
            }
            p.scx.holding_cpu.store(-1, Ordering::Release);
            p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
            deactivate(&mut srq, &p);
            p.set_flag(tflags::MIGRATING);
            p.scx.cpu.store(me as u32, Ordering::Release);
            true
        });
        if won {
            activate(rq, &p);
            p.clear_flag(tflags::MIGRATING);
            dispatch_enqueue_local(sh, rq, &p, EnqFlags::empty());
            return true;
        }
        // Lost the race with a dequeue: rescan.
    }
}

/// An offline CPU takes the tasks pinned to it out of the global and user
/// DSQs (they can run nowhere else). rq locked on entry and return.
fn consume_pinned(sh: &Shared, rq: &mut MutexGuard<'_, RqSynced>) -> bool {
    if consume_dsq(sh, rq, &sh.global, true) {
        return true;
    }
    sh.user_dsq_ids()
        .into_iter()
        .filter_map(|id| sh.find_user_dsq(id))
        .any(|d| consume_dsq(sh, rq, &d, true))
}

// ---------------------------------------------------------------------
// Hotplug moves (`Runtime::cpu_offline`).

/// `move_queued_task`: takes a queued task that is not running off `rq`
/// and enqueues it on CPU `dst` (the scheduler sees `dequeue`/`quiescent`
/// here and `runnable`/`enqueue` there). rq locked on entry and return,
/// dropped in between; never two rq locks.
#[cfg_attr(scx_rt_loom, allow(dead_code))]
pub(crate) fn move_queued_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    dst: usize,
) {
    dequeue_task(sh, rq, p, DeqFlags::empty(), false);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    MutexGuard::unlocked(rq, || migrate_in(sh, p, dst));
}

/// The departure half of moving the task that was running on an offline
/// CPU and may run elsewhere: it leaves this rq (`stopping`, `quiescent`)
/// and is marked in flight. Returns the CPU it goes to; the caller calls
/// `migrate_in` once it dropped the rq lock.
pub(crate) fn migrate_out_curr(sh: &Shared, rq: &mut RqSynced, p: &TaskRef) -> usize {
    dequeue_task(sh, rq, p, DeqFlags::empty(), true);
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    sh.cpus[rq.cpu]
        .shared
        .pnt_seq
        .fetch_add(1, Ordering::Release);
    rq.curr = None;
    let dst = fallback_cpu(sh, p, rq.cpu);
    p.set_flag(tflags::MIGRATING);
    p.scx.cpu.store(dst as u32, Ordering::Release);
    dst
}

/// The arrival half of a hotplug move: `p` (MIGRATING, off every rq)
/// joins CPU `dst`. No lock held on entry or return.
pub(crate) fn migrate_in(sh: &Shared, p: &TaskRef, dst: usize) {
    let mut drq = sh.cpus[dst].rq.lock();
    p.clear_flag(tflags::MIGRATING);
    enqueue_task(sh, &mut drq, p, EnqFlags::empty());
    if drq.curr.is_none() {
        sh.cpus[dst].resched();
    }
    process_ddsp_deferred_locals(sh, &mut drq);
}

// ---------------------------------------------------------------------
// balance / pick / put / set_next (SPEC.md §3.6, §3.7).

fn keep_prev_with_slice(rq: &RqSynced, prev: Option<&TaskRef>) -> bool {
    prev.is_some_and(|p| {
        p.is_queued()
            && p.slice() > 0
            && !rq.bypassing()
            && (rq.online() || p.single_cpu() == Some(rq.cpu))
    })
}

/// `balance_one`. Returns whether the CPU has a task to run. rq locked on
/// entry and return (dropped inside hand-offs); `IN_BALANCE` is set for the
/// whole step and cleared at its single exit.
pub(crate) fn balance(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
) -> bool {
    rq.flags |= rqflags::IN_BALANCE;
    rq.flags &= !(rqflags::BAL_PENDING | rqflags::BAL_KEEP);
    let r = balance_inner(sh, rq, prev, trace);
    rq.flags &= !rqflags::IN_BALANCE;
    r
}

/// One decision of the balance step, recorded for tests of the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceStep {
    /// Kept prev (slice left).
    KeepPrev,
    /// The local DSQ had a task.
    Local,
    /// A task was consumed from the global DSQ.
    Global,
    /// `ops.dispatch` was called.
    Dispatch,
    /// Kept prev after the dispatch loop produced nothing.
    KeepPrevLast,
    /// The dispatch loop hit its cap and the CPU kicked itself.
    LoopCap,
    /// Nothing to run.
    Idle,
}

/// Most steps kept per CPU before older ones are dropped.
const BALANCE_TRACE_MAX: usize = 1 << 20;

fn note(trace: &mut Option<Vec<BalanceStep>>, s: BalanceStep) {
    if let Some(t) = trace {
        if t.len() < BALANCE_TRACE_MAX {
            t.push(s);
        }
    }
}

fn balance_inner(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
) -> bool {
    if keep_prev_with_slice(rq, prev) {
        rq.flags |= rqflags::BAL_KEEP;
        note(trace, BalanceStep::KeepPrev);
        return true;
    }
    if !rq.local.is_empty() {
        note(trace, BalanceStep::Local);
        return true;
    }
    if !rq.online() {
        // An offline CPU runs only what is pinned to it (module docs of
        // `Runtime::cpu_offline`); the scheduler is not asked.
        if consume_pinned(sh, rq) {
            note(trace, BalanceStep::Global);
            return true;
        }
        // Only a pinned prev reaches here (the worker moved any other).
        if prev.is_some_and(|p| p.is_queued()) {
            rq.flags |= rqflags::BAL_KEEP;
            note(trace, BalanceStep::KeepPrevLast);
            return true;
        }
        note(trace, BalanceStep::Idle);
        return false;
    }
    if consume_dispatch_q(sh, rq, &sh.global) {
        note(trace, BalanceStep::Global);
        return true;
    }
    let slot = sh.slot(rq.sched_gen);
    if !rq.bypassing() && rq.online() {
        let prev_q = prev.filter(|p| p.is_queued());
        let mut loops = 0;
        loop {
            if rq.bypassing() || sh.exit.pending.load(Ordering::Relaxed) {
                break;
            }
            note(trace, BalanceStep::Dispatch);
            let cpu = rq.cpu;
            let slot = sh.slot(rq.sched_gen);
            let mut ctx = DispatchCtx::new(sh, cpu, rq, slot.max_batch);
            call(sh, "dispatch", || slot.ops.dispatch(&mut ctx, cpu, prev_q));
            let mut nr_tasks = ctx.nr_tasks;
            flush_dispatch_buf(sh, cpu, rq, &mut nr_tasks);
            if keep_prev_with_slice(rq, prev_q) {
                rq.flags |= rqflags::BAL_KEEP;
                note(trace, BalanceStep::KeepPrev);
                return true;
            }
            if !rq.local.is_empty() {
                note(trace, BalanceStep::Local);
                return true;
            }
            if consume_dispatch_q(sh, rq, &sh.global) {
                note(trace, BalanceStep::Global);
                return true;
            }
            if nr_tasks == 0 {
                break;
            }
            loops += 1;
            if loops >= DSP_MAX_LOOPS {
                // Let the next (probably idle) pick run, then retry.
                note(trace, BalanceStep::LoopCap);
                sh.cpus[cpu].shared.set_need_resched();
                break;
            }
        }
    }
    if let Some(p) = prev {
        if p.is_queued() && (!slot.flags.contains(OpsFlags::ENQ_LAST) || rq.bypassing()) {
            rq.flags |= rqflags::BAL_KEEP;
            note(trace, BalanceStep::KeepPrevLast);
            return true;
        }
    }
    note(trace, BalanceStep::Idle);
    false
}

/// `put_prev_task_scx`: prev stops running and stays runnable. rq locked.
fn put_prev_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    p: &TaskRef,
    next_is_task: bool,
    now: u64,
) {
    p.scx.on_cpu.store(false, Ordering::Relaxed);
    sh.cpus[rq.cpu]
        .shared
        .pnt_seq
        .fetch_add(1, Ordering::Release);
    if !p.is_queued() {
        return;
    }
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    call_task(sh, "stopping", p, || slot.ops.stopping(&ctx, p, true));
    if p.has_flag(tflags::RESET_RUNNABLE_AT) {
        p.scx.runnable_at.store(now, Ordering::Relaxed);
        p.clear_flag(tflags::RESET_RUNNABLE_AT);
    }
    rq.runnable.add(p);
    if p.slice() > 0 && !rq.bypassing() {
        // Preempted with slice left: back to the head, no scheduler call.
        dispatch_enqueue_local(sh, rq, p, EnqFlags::HEAD);
    } else if !next_is_task {
        do_enqueue_task(sh, rq, p, EnqFlags::LAST);
    } else {
        do_enqueue_task(sh, rq, p, EnqFlags::empty());
    }
}

/// `set_next_task_scx`: `p`, picked from the head of the local DSQ,
/// starts running. `put_prev_task` ran in between and may have put prev
/// back at the head (slice left, as on a CPU that went offline while its
/// balance had the rq lock dropped), so `p` is unlinked from wherever it
/// is now, as the kernel's `set_next_task_scx` does. rq locked.
fn set_next_task(sh: &Shared, rq: &mut MutexGuard<'_, RqSynced>, p: &TaskRef, now: u64) {
    debug_assert_eq!(
        p.scx.dsq.load(Ordering::Relaxed),
        rq.local.id,
        "cpu {} starting task {} that is not on its local DSQ",
        rq.cpu,
        p.id()
    );
    debug_assert_eq!(
        p.cpu(),
        rq.cpu,
        "task {} runs on a CPU that is not its rq's",
        p.id()
    );
    if rq.local.remove(p) {
        p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
        sync_local_nr(sh, rq);
    }
    p.scx.exec_start.store(now, Ordering::Relaxed);
    rq.runnable.remove(p);
    p.set_flag(tflags::RESET_RUNNABLE_AT);
    p.scx.on_cpu.store(true, Ordering::Relaxed);
    let slot = sh.slot(rq.sched_gen);
    let ctx = Ctx::new(sh, Some(rq.cpu));
    call_task(sh, "running", p, || slot.ops.running(&ctx, p));
}

/// The CPU entered its pick path: releases `KICK_WAIT`ers (SPEC.md §4.3).
pub(crate) fn enter_pick(sh: &Shared, cpu: usize) {
    sh.cpus[cpu].shared.pnt_seq.fetch_add(1, Ordering::Release);
}

/// Balance, pick, put prev, set next. Returns the task to run (`None`:
/// idle). rq locked on entry and return.
pub(crate) fn pick_next_task(
    sh: &Shared,
    rq: &mut MutexGuard<'_, RqSynced>,
    prev: Option<&TaskRef>,
    trace: &mut Option<Vec<BalanceStep>>,
    now: u64,
) -> Option<TaskRef> {
    enter_pick(sh, rq.cpu);
    balance(sh, rq, prev, trace);
    let next = if rq.has(rqflags::BAL_KEEP) {
        let p = prev.cloned();
        if let Some(p) = &p {
            if p.slice() == 0 {
                p.set_slice(sh.cfg.slice_dfl);
            }
        }
        p
    } else {
        // SPEC.md §11 invariant 9: a CPU starts only the head of its local
        // DSQ, or continues prev.
        let n = rq.local.peek().cloned();
        if let Some(n) = &n {
            if n.slice() == 0 {
                if !rq.zero_slice_warned && !rq.bypassing() {
                    rq.zero_slice_warned = true;
                }
                n.set_slice(sh.cfg.slice_dfl);
            }
        }
        n
    };
    let same = matches!((prev, &next), (Some(a), Some(b)) if a.id() == b.id());
    if !same {
        if let Some(p) = prev {
            put_prev_task(sh, rq, p, next.is_some(), now);
        }
        if let Some(n) = &next {
            set_next_task(sh, rq, n, now);
        }
    }
    rq.curr = next.clone();
    next
}

/// `p` leaves the scheduler of generation `gen` (if that is the one it was
/// initialized by and it has not left yet): `disable` when enabled, then
/// `exit_task`. Takes the task's rq lock; no lock held on entry.
pub(crate) fn task_leave_scheduler(sh: &Shared, p: &TaskRef, gen: u64, cancelled: bool) {
    let rq = task_rq_lock(sh, p);
    task_leave_scheduler_locked(sh, &rq, p, gen, cancelled);
}

/// `task_leave_scheduler` with the task's rq already locked.
pub(crate) fn task_leave_scheduler_locked(
    sh: &Shared,
    rq: &RqSynced,
    p: &TaskRef,
    gen: u64,
    cancelled: bool,
) {
    if p.scx.sched_gen.load(Ordering::Acquire) != gen || p.state() == crate::task::TaskState::None {
        return;
    }
    let slot = sh.slot(gen);
    if slot.gen != gen {
        return; // that scheduler is gone (cannot happen while it is prev)
    }
    let ctx = Ctx::new(sh, Some(rq.cpu));
    if p.state() == crate::task::TaskState::Enabled {
        call_task(sh, "disable", p, || slot.ops.disable(&ctx, p));
        p.set_state(crate::task::TaskState::Ready);
    }
    call_task(sh, "exit_task", p, || {
        slot.ops
            .exit_task(&ctx, p, crate::ops::ExitTaskArgs { cancelled })
    });
    p.set_state(crate::task::TaskState::None);
    p.scx.sched_gen.store(0, Ordering::Release);
    p.clear_data();
}

// ---------------------------------------------------------------------
// Bypass (SPEC.md §6.1).

/// Raises (`on`) or drops one level of bypass (`scx_ops_bypass`). On the
/// transitions (0→1 and 1→0) every CPU's flag flips under its rq lock and
/// its runnable tasks that are not running are taken off and enqueued
/// again: entering bypass that moves them out of the scheduler's hands
/// into the global FIFO (`do_enqueue_task`'s bypass rule); leaving it hands
/// them back through `enqueue`. While bypassing, no `select_cpu`,
/// `enqueue` or `dispatch` runs, kicks issued by a bypassing CPU are
/// dropped, every CPU consumes the global FIFO, and each tick (and each
/// yield) rotates the running task. Called at a safe point (no lock held).
pub(crate) fn bypass(sh: &Shared, on: bool) {
    let mut depth = sh.bypass_depth.lock();
    let was = *depth;
    *depth = if on {
        was + 1
    } else {
        debug_assert!(was > 0, "bypass level dropped below zero");
        was.saturating_sub(1)
    };
    let transition = if on { was == 0 } else { was == 1 };
    if !transition {
        return;
    }
    for c in sh.cpus.iter() {
        let mut rq = c.rq.lock();
        if on {
            rq.flags |= rqflags::BYPASSING;
        } else {
            rq.flags &= !rqflags::BYPASSING;
        }
        c.shared.bypassing.store(on, Ordering::Release);
        let tasks: Vec<TaskRef> = rq.runnable.iter().cloned().collect();
        for p in tasks {
            // The list was taken under the lock, which enqueue may drop
            // (a remote direct dispatch): skip a task that left meanwhile.
            if !waits_on_rq(&rq, &p) {
                continue;
            }
            dequeue_task(sh, &mut rq, &p, DeqFlags::SAVE, false);
            p.scx.ddsp_dsq_id.store(DSQ_INVALID, Ordering::Relaxed);
            enqueue_task(sh, &mut rq, &p, EnqFlags::empty());
            process_ddsp_deferred_locals(sh, &mut rq);
        }
        drop(rq);
        c.resched();
    }
}

// ---------------------------------------------------------------------
// The disable (eject) path (SPEC.md §6.4, reduced: per-task disable and
// exit_task on detach come with the hot-swap work).

/// Ejects the scheduler whose exit was recorded and falls back to the
/// built-in FIFO. Runs at a safe point (no lock held); exactly one thread
/// runs it per exit.
pub(crate) fn disable(sh: &Shared) {
    let Some(_g) = sh.disabling.try_lock() else {
        return;
    };
    if !sh.exit.pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(mut info) = sh.exit.info() else {
        return;
    };
    if info.kind.is_error() {
        info.dump = crate::dump::dump_state(sh, crate::dump::Trigger::Exit(&info));
        sh.exit.set_dump(info.dump.clone());
    }
    // 1. Bypass on every CPU: no placement callback runs from here on, and
    // 2. every runnable task that is not running is re-placed into the
    //    global FIFO: out of the scheduler's hands, user DSQs and local DSQs.
    bypass(sh, true);
    // 3. Swap in the fallback; the old scheduler gets no rq callback after
    //    its rq switched generation. The generation is read under the fork
    //    lock, which an attach holds while it installs a scheduler: an exit
    //    recorded for a scheduler that is no longer the current one (it
    //    left while this exit was on its way) ends nothing.
    let fork = sh.fork_lock.write();
    let old_gen = sh.sched_gen.load(Ordering::Acquire);
    if sh.exit.gen() != old_gen {
        // Forget it, so that the current scheduler's own exit can be
        // recorded.
        sh.exit.reset();
        drop(fork);
        bypass(sh, false);
        return;
    }
    let old = sh.slot(old_gen);
    let new_gen = sh.new_gen();
    sh.install(SchedSlot::fallback(new_gen));
    sh.ops_timers.cancel_all();
    for c in sh.cpus.iter() {
        c.rq.lock().sched_gen = new_gen;
    }
    //    Every task leaves the old scheduler: `disable` (if enabled), then
    //    `exit_task` (SPEC.md §6.4 step 7), each under the task's rq lock so
    //    that a task exiting at the same time gets them exactly once.
    for p in sh.tasks.snapshot() {
        task_leave_scheduler(sh, &p, old_gen, false);
    }
    drop(fork);
    // 4. ops.exit, then destroy user DSQs; anything a racing dispatch put
    //    there moves to the global DSQ.
    call(sh, "exit", || old.ops.exit(&info));
    for id in sh.user_dsq_ids() {
        if let Some(d) = sh.find_user_dsq(id) {
            let left: Vec<TaskRef> = {
                let mut q = d.q.lock();
                d.nr.store(0, Ordering::Relaxed);
                q.drain()
            };
            for p in left {
                p.scx.dsq.store(DSQ_INVALID, Ordering::Release);
                dispatch_enqueue_nonlocal(sh, &sh.global, &p, EnqFlags::empty());
            }
            d.id.store(DSQ_INVALID, Ordering::Release);
        }
        sh.user_dsqs.write().remove(&id);
    }
    sh.forget_prev_slot();
    // 5. Leave bypass (or drop our level of it).
    bypass(sh, false);
    sh.nr_ejections.fetch_add(1, Ordering::Relaxed);
    *sh.last_exit.lock() = Some(info);
}
