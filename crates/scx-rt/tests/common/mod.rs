//! Helpers shared by the scheduler integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::{ExitInfo, Runtime, Scheduler};

/// How long any test body may take before we call it a hang.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// A runtime with `n` unpinned CPUs running `s`.
pub fn rt_with(n: usize, s: impl Scheduler) -> Runtime {
    Runtime::builder()
        .nr_cpus(n)
        .pin(false)
        .scheduler(s)
        .build()
        .expect("runtime build")
}

/// Runs `f` on its own thread and waits at most [`HANG_TIMEOUT`] for it.
/// A panic in `f` is resumed here; a timeout panics with `what`.
pub fn guard<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(format!("guard: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn guard thread");
    match rx.recv_timeout(HANG_TIMEOUT) {
        Ok(Ok(v)) => {
            let _ = h.join();
            v
        }
        Ok(Err(e)) => std::panic::resume_unwind(e),
        Err(_) => panic!("HANG: `{what}` did not finish within {HANG_TIMEOUT:?}"),
    }
}

/// Polls `cond` until it holds or [`HANG_TIMEOUT`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    // Shorter than the guard's limit so that this message wins.
    let deadline = Instant::now() + HANG_TIMEOUT - Duration::from_secs(15);
    while !cond() {
        if Instant::now() > deadline {
            panic!("HANG: waited too long for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the runtime has ejected at least one scheduler, then returns
/// the exit record (with its dump).
pub fn wait_ejected(rt: &Runtime) -> ExitInfo {
    wait_until("the scheduler to be ejected", || rt.stats().ejections >= 1);
    rt.exit_info()
        .expect("an ejected scheduler leaves exit info")
}

/// Per-task run counters: every task body bumps its slot once.
pub struct Counts {
    pub runs: Vec<AtomicU32>,
}

impl Counts {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            runs: (0..n).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    pub fn hit(&self, i: usize) {
        self.runs[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Panics unless every slot was hit exactly once.
    pub fn assert_exactly_once(&self, ctx: &str) {
        let bad: Vec<(usize, u32)> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.load(Ordering::Relaxed)))
            .filter(|&(_, r)| r != 1)
            .take(10)
            .collect();
        assert!(
            bad.is_empty(),
            "{ctx}: tasks not run exactly once (index, runs): {bad:?}"
        );
    }
}

/// A mixed workload from outside the runtime: `top` tasks; every task bumps
/// its counter, every `yield_every`-th yields `nr_yields` times, and every
/// task spawns `nested` children (each counted too) and joins them.
/// Returns after every task was joined; checks exactly-once completion.
pub fn mixed_workload(
    rt: &Runtime,
    top: usize,
    nested: usize,
    yield_every: usize,
    nr_yields: usize,
) {
    let total = top * (1 + nested);
    let counts = Counts::new(total);
    let done = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..top)
        .map(|i| {
            let counts = counts.clone();
            let done = done.clone();
            rt.spawn(move || {
                counts.hit(i);
                if yield_every > 0 && i % yield_every == 0 {
                    for _ in 0..nr_yields {
                        scx_rt::yield_now();
                    }
                }
                let kids: Vec<_> = (0..nested)
                    .map(|k| {
                        let counts = counts.clone();
                        let done = done.clone();
                        let idx = top + i * nested + k;
                        scx_rt::spawn(move || {
                            counts.hit(idx);
                            if k % 2 == 0 {
                                scx_rt::yield_now();
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                            idx
                        })
                    })
                    .collect();
                for (k, h) in kids.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), top + i * nested + k);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().expect("task panicked"), i);
    }
    assert_eq!(done.load(Ordering::Relaxed), total as u64);
    counts.assert_exactly_once("mixed workload");
}

// ---------------------------------------------------------------------
// A scheduler assembled from closures, for small targeted policies.

use std::collections::VecDeque;

use parking_lot::Mutex;
use scx_rt::{
    DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, InitTaskArgs, SelectCpuCtx, TaskRef, WakeFlags,
};

/// The tag a test stores before spawning a task; `FnSched::init_task`
/// attaches it to the task (init_task runs synchronously in `spawn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(pub u64);

/// Tag of tasks spawned while no particular tag was set.
pub const NO_TAG: u64 = u64::MAX;

/// The tag attached to `p`, if any.
pub fn tag_of(p: &TaskRef) -> u64 {
    p.data::<Tag>().map_or(NO_TAG, |t| t.0)
}

type EnqFn = dyn Fn(&mut EnqueueCtx<'_>, &TaskRef, EnqFlags) + Send + Sync;
type DspFn = dyn Fn(&mut DispatchCtx<'_, '_>, usize, Option<&TaskRef>) + Send + Sync;
type InitFn = dyn Fn(&InitCtx<'_>) -> Result<(), i32> + Send + Sync;
type SelFn = dyn Fn(&mut SelectCpuCtx<'_>, &TaskRef, usize) -> i32 + Send + Sync;
type InitTaskFn = dyn Fn(&InitCtx<'_>, &TaskRef) -> Result<(), i32> + Send + Sync;

/// A scheduler whose callbacks are closures. `select_cpu` defaults to
/// "stay on prev_cpu, no direct dispatch", so every wake-up reaches
/// `enqueue`. `init_task` attaches the current [`FnSched::tag`] value.
pub struct FnSched {
    pub name: &'static str,
    pub tag: Arc<AtomicU64>,
    pub max_batch: u32,
    enqueue: Box<EnqFn>,
    dispatch: Option<Box<DspFn>>,
    init: Option<Box<InitFn>>,
    select_cpu: Option<Box<SelFn>>,
    init_task: Option<Box<InitTaskFn>>,
}

impl FnSched {
    pub fn new(
        name: &'static str,
        enqueue: impl Fn(&mut EnqueueCtx<'_>, &TaskRef, EnqFlags) + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            tag: Arc::new(AtomicU64::new(NO_TAG)),
            max_batch: 0,
            enqueue: Box::new(enqueue),
            dispatch: None,
            init: None,
            select_cpu: None,
            init_task: None,
        }
    }

    pub fn dispatch(
        mut self,
        f: impl Fn(&mut DispatchCtx<'_, '_>, usize, Option<&TaskRef>) + Send + Sync + 'static,
    ) -> Self {
        self.dispatch = Some(Box::new(f));
        self
    }

    pub fn init(
        mut self,
        f: impl Fn(&InitCtx<'_>) -> Result<(), i32> + Send + Sync + 'static,
    ) -> Self {
        self.init = Some(Box::new(f));
        self
    }

    pub fn select_cpu(
        mut self,
        f: impl Fn(&mut SelectCpuCtx<'_>, &TaskRef, usize) -> i32 + Send + Sync + 'static,
    ) -> Self {
        self.select_cpu = Some(Box::new(f));
        self
    }

    pub fn init_task(
        mut self,
        f: impl Fn(&InitCtx<'_>, &TaskRef) -> Result<(), i32> + Send + Sync + 'static,
    ) -> Self {
        self.init_task = Some(Box::new(f));
        self
    }

    pub fn max_batch(mut self, n: u32) -> Self {
        self.max_batch = n;
        self
    }

    pub fn with_tag(mut self, tag: Arc<AtomicU64>) -> Self {
        self.tag = tag;
        self
    }
}

impl Scheduler for FnSched {
    fn name(&self) -> &str {
        self.name
    }

    fn dispatch_max_batch(&self) -> u32 {
        self.max_batch
    }

    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        match &self.init {
            Some(f) => f(ctx),
            None => Ok(()),
        }
    }

    fn init_task(&self, ctx: &InitCtx<'_>, p: &TaskRef, _args: InitTaskArgs) -> Result<(), i32> {
        p.set_data(Tag(self.tag.load(Ordering::SeqCst)));
        match &self.init_task {
            Some(f) => f(ctx, p),
            None => Ok(()),
        }
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        _wake_flags: WakeFlags,
    ) -> i32 {
        match &self.select_cpu {
            Some(f) => f(ctx, p, prev_cpu),
            None => prev_cpu as i32,
        }
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        (self.enqueue)(ctx, p, f)
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        if let Some(f) = &self.dispatch {
            f(ctx, cpu, prev)
        }
    }
}

/// A policy-owned FIFO of tasks (the BPF-map analogue).
#[derive(Default)]
pub struct TaskQueue {
    q: Mutex<VecDeque<TaskRef>>,
}

impl TaskQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn push(&self, p: &TaskRef) {
        self.q.lock().push_back(p.clone());
    }

    pub fn push_front(&self, p: TaskRef) {
        self.q.lock().push_front(p);
    }

    /// Removes the first task that may run on `cpu`.
    pub fn pop_for(&self, cpu: usize) -> Option<TaskRef> {
        let mut q = self.q.lock();
        let i = q.iter().position(|p| p.allowed_on(cpu))?;
        q.remove(i)
    }

    /// Removes the first task, whatever CPUs it may use.
    pub fn pop_for_any(&self) -> Option<TaskRef> {
        self.q.lock().pop_front()
    }

    pub fn len(&self) -> usize {
        self.q.lock().len()
    }
}

/// From inside one task of a 1-CPU runtime, spawns `n` children tagged
/// 0..n (in order, none of them runs before the parent finishes) and
/// returns their handles. Child `i` pushes `i` to `log` when it runs.
pub fn spawn_tagged_children(
    rt: &Runtime,
    tag: &Arc<AtomicU64>,
    n: u64,
    log: &Arc<Mutex<Vec<u64>>>,
) -> Vec<scx_rt::JoinHandle<u64>> {
    let tag = tag.clone();
    let log = log.clone();
    rt.block_on(move || {
        let hs = (0..n)
            .map(|i| {
                tag.store(i, Ordering::SeqCst);
                let log = log.clone();
                scx_rt::spawn(move || {
                    log.lock().push(i);
                    i
                })
            })
            .collect();
        tag.store(NO_TAG, Ordering::SeqCst);
        hs
    })
}

/// Joins handles returned by [`spawn_tagged_children`], checking values.
pub fn join_tagged(hs: Vec<scx_rt::JoinHandle<u64>>) {
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().expect("child panicked"), i as u64);
    }
}

/// Runs `f` on its own thread and fails the test, instead of hanging it,
/// when `f` does not finish within `secs`. A panic in `f` is resumed here.
pub fn with_timeout<T: Send + 'static>(
    name: &str,
    secs: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(format!("test-{name}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn test thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            h.join().expect("test thread");
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: did not finish within {secs} s (hang)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("body neither sent nor panicked"),
        },
    }
}
