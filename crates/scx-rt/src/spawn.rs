//! Spawning a green task, its join handle, and the blocking-pool entry
//! point.

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::context;
use crate::core::clock::now;
use crate::core::error::{call_op, call_task};
use crate::core::has_op::Op;
use crate::cpumask::Cpumask;
use crate::flags::WakeFlags;
use crate::join::JoinError;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::ops::{Ctx, InitCtx, InitTaskArgs};
use crate::sync::wait::{wait_on, wake_all, WaitList};
use crate::task::{Affinity, Task, TaskEntry, TaskId, TaskRef, TaskState};

struct PacketState<T> {
    result: Option<Result<T, JoinError>>,
    done: bool,
    waiters: WaitList,
}

/// A task's join state.
struct Packet<T> {
    st: parking_lot::Mutex<PacketState<T>>,
}

impl<T> Packet<T> {
    /// Stores the task's outcome and wakes its joiners.
    fn complete(&self, r: Result<T, JoinError>) {
        let ws = {
            let mut s = self.st.lock();
            s.result = Some(r);
            s.done = true;
            s.waiters.take_all()
        };
        wake_all(ws);
    }
}

/// What a spawned task runs (`Task::entry`): the closure until it starts,
/// and the join state. Spawning allocates two blocks: the task, and the
/// closure with its join state (`Task`'s docs, "Layout").
struct Entry<F, T> {
    /// Taken when the task starts, or when it fails before (no stack).
    f: parking_lot::Mutex<Option<F>>,
    packet: Packet<T>,
}

impl<F, T> crate::task::sealed::Sealed for Entry<F, T> {}

impl<F, T> TaskEntry for Entry<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let Some(f) = self.f.lock().take() else {
            return;
        };
        let r = catch_unwind(AssertUnwindSafe(f));
        if r.is_err() && scx_rt_sys::fiber::unwinding_for_drop() {
            // The fiber is being dropped while suspended: let its forced
            // unwind through.
            if let Err(e) = r {
                resume_unwind(e);
            }
            return;
        }
        self.packet.complete(r.map_err(JoinError::Panicked));
    }

    fn fail(&self, id: TaskId, stack_size: usize, source: std::io::Error) {
        let Some(f) = self.f.lock().take() else {
            return;
        };
        drop(f);
        self.packet.complete(Err(JoinError::NoStack {
            id,
            stack_size,
            source,
        }));
    }

    fn join_state(&self) -> &dyn std::any::Any {
        &self.packet
    }
}

/// The body every task's fiber runs: the task's entry, found through the
/// task its worker lends the fiber. Captures nothing, so boxing it for the
/// fiber allocates nothing.
fn run_lent_task() {
    if let Some(t) = context::current_task() {
        t.entry.run();
    }
}

/// Owns the right to join a task.
pub struct JoinHandle<T> {
    task: TaskRef,
    /// Sends and shares like the join state it reads.
    _p: PhantomData<Packet<T>>,
}

impl<T: Send + 'static> JoinHandle<T> {
    fn packet(&self) -> &Packet<T> {
        self.task
            .entry
            .join_state()
            .downcast_ref::<Packet<T>>()
            .expect("a join handle's task has the handle's result type")
    }

    /// Waits for the task and returns its value. Blocks the OS thread, or
    /// only the green task when called from one.
    pub fn join(self) -> Result<T, JoinError> {
        let pk = self.packet();
        wait_on(
            &pk.st,
            |s| if s.done { s.result.take() } else { None },
            |s| &mut s.waiters,
        )
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.packet().st.lock().done
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }
}

/// The first resume of `t` found no stack (`err`): its closure is dropped
/// unrun and its join state completed with [`JoinError::NoStack`], which
/// wakes its joiners. The caller then retires the task as an exited one.
/// No lock held (the joiners are woken here).
pub(crate) fn fail_unstarted(sh: &Shared, t: &TaskRef, err: std::io::Error) {
    let fiber = t.body.lock().take();
    debug_assert!(fiber.as_ref().is_some_and(|f| !f.is_started()));
    drop(fiber);
    sh.nr_no_stack.fetch_add(1, Ordering::Relaxed);
    t.entry.fail(t.id(), sh.stacks.stack_size(), err);
}

/// Task ids are unique per process. Each thread takes them in blocks from
/// one counter, so spawning from many CPUs shares no cache line per task.
fn next_task_id() -> TaskId {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    std::thread_local! {
        static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            end = next + BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// Queues `f` on the blocking pool `pool` (`spawn_blocking`).
pub(crate) fn spawn_blocking_in<F, T>(
    pool: &crate::blocking::BlockingPool,
    f: F,
) -> crate::BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match crate::blocking::spawn(pool, f) {
        Ok(h) => h,
        Err(crate::blocking::SpawnError::ShutDown) => {
            panic!("spawn_blocking on a runtime that was shut down")
        }
        Err(crate::blocking::SpawnError::Thread(e)) => {
            panic!("spawn_blocking: cannot start a blocking-pool thread: {e}")
        }
    }
}

/// Spawns `f` as a green task that may run where `affinity` allows, with
/// scheduling weight `weight` (in `WEIGHT_MIN..=WEIGHT_MAX`, checked by the
/// caller), set before `init_task`, as the kernel sets a forked task's
/// weight before `enable`.
pub(crate) fn spawn_in<F, T>(
    sh: &Arc<Shared>,
    f: F,
    affinity: Affinity,
    weight: u32,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let id = next_task_id();
    let entry = Entry {
        f: parking_lot::Mutex::new(Some(f)),
        packet: Packet {
            st: parking_lot::Mutex::new(PacketState {
                result: None,
                done: false,
                waiters: WaitList::default(),
            }),
        },
    };
    let from = context::cpu_in(sh);
    let p: TaskRef = Arc::new(Task::new(
        id,
        sh.rt_id,
        Some(scx_rt_sys::fiber::Fiber::new(Box::new(run_lent_task))),
        affinity,
        sh.cfg.allow_migration,
        now(),
        Box::new(entry),
    ));
    if weight != crate::consts::WEIGHT_DFL {
        p.scx.weight.store(weight, Ordering::Relaxed);
    }
    sh.live.spawned(from);
    let start = from.unwrap_or_else(|| sh.spread_hint());
    let start = if p.allowed_on(start) {
        start
    } else {
        (0..sh.nr_cpus).find(|&c| p.allowed_on(c)).unwrap_or(0)
    };
    p.scx.cpu.store(start as u32, Ordering::Relaxed);
    p.set_slice(sh.cfg.slice_dfl);
    // Shared fork lock: an attach or a disable pass over every task either
    // sees this one registered or happens entirely before it picks its
    // scheduler.
    let fork = sh.fork_lock.read();
    sh.tasks.add(&p);
    let slot = sh.cur_slot();
    p.scx.sched_gen.store(slot.gen, Ordering::Release);
    if slot.has.has(Op::InitTask) {
        let ictx = InitCtx::new(sh, from);
        let init = call_op(sh, &slot, Op::InitTask, Some(&p), || {
            slot.ops.init_task(&ictx, &p, InitTaskArgs { fork: true })
        });
        if let Some(Err(code)) = init {
            sh.ops_error(format!("ops.init_task failed ({code}) for task {id}"));
        }
    }
    p.set_state(TaskState::Ready);
    if slot.has.has(Op::Enable) {
        let ctx = Ctx::for_op(sh, from, "enable", Some(&p));
        call_op(sh, &slot, Op::Enable, Some(&p), || {
            slot.ops.enable(&ctx, &p)
        });
    }
    p.set_state(TaskState::Enabled);
    if slot.has.has(Op::SetWeight) {
        let ctx = Ctx::for_op(sh, from, "set_weight", Some(&p));
        call_op(sh, &slot, Op::SetWeight, Some(&p), || {
            slot.ops.set_weight(&ctx, &p, p.weight())
        });
    }
    if slot.wants_cpumask {
        let mask = match &p.affinity {
            Affinity::All => Cpumask::full(sh.nr_cpus),
            Affinity::Mask(m) => (**m).clone(),
        };
        let ctx = Ctx::for_op(sh, from, "set_cpumask", Some(&p));
        call_task(sh, "set_cpumask", &p, || {
            slot.ops.set_cpumask(&ctx, &p, &mask)
        });
    }
    drop(fork);
    crate::core::enqueue::wake_up_in(sh, Some(&slot), p.clone(), WakeFlags::FORK, from);
    JoinHandle {
        task: p,
        _p: PhantomData,
    }
}
