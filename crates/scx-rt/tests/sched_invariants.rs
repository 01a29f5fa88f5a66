//! SPEC.md §11 invariants checked from a callback log: a recording
//! scheduler logs every callback per task with a global sequence number
//! while tasks yield, block on channels, sleep and finish on 2 CPUs; the
//! log is then checked per task (invariants 4, 12, lifecycle), and the
//! policy checks invariant 10 inside `dispatch`. Invariant 2 (stale and
//! duplicate dispatches are dropped silently) uses a policy that dispatches
//! every task twice and replays old dispatches.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use scx_rt::sync::channel;
use scx_rt::{
    Ctx, DeqFlags, DispatchCtx, EnqFlags, EnqueueCtx, ExitTaskArgs, InitCtx, InitTaskArgs,
    KickFlags, PickIdleFlags, Scheduler, SelectCpuCtx, TaskId, TaskRef, WakeFlags, DSQ_GLOBAL,
    DSQ_LOCAL, SLICE_DFL,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    InitTask,
    Enable,
    SelectCpu { direct: bool },
    Runnable,
    Enqueue,
    Dequeue,
    Running,
    Stopping { runnable: bool, slice_left: bool },
    Quiescent,
    Disable,
    ExitTask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Enqueue alternates between a direct dispatch to the global DSQ and
    /// keeping the task for `dispatch`.
    Mixed,
    /// Keeps every task; `dispatch` buffers each task twice and replays the
    /// tasks dispatched by the previous call (stale or spurious entries).
    Duplicate,
}

struct Recorder {
    mode: Mode,
    /// The log: index = global sequence number.
    log: Arc<Mutex<Vec<(TaskId, Ev)>>>,
    queue: Arc<TaskQueue>,
    /// Per CPU: tasks it dispatched to its own local DSQ in its previous
    /// `dispatch` call (they are bound to it, so replaying them under its rq
    /// lock cannot race with their scheduling on another CPU).
    history: Mutex<HashMap<usize, Vec<TaskRef>>>,
    nr_enq: AtomicUsize,
    /// Invariant violations noticed inside callbacks.
    bad: Arc<Mutex<Vec<String>>>,
    dispatch_calls: Arc<AtomicUsize>,
}

impl Recorder {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            log: Arc::new(Mutex::new(Vec::new())),
            queue: TaskQueue::new(),
            history: Mutex::new(HashMap::new()),
            nr_enq: AtomicUsize::new(0),
            bad: Arc::new(Mutex::new(Vec::new())),
            dispatch_calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn rec(&self, p: &TaskRef, ev: Ev) {
        self.log.lock().push((p.id(), ev));
    }
}

impl Scheduler for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev_cpu, wake_flags);
        let direct = idle && self.mode == Mode::Mixed;
        // Logged before the verdict can take effect.
        self.rec(p, Ev::SelectCpu { direct });
        if direct {
            ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
        cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        self.rec(p, Ev::Enqueue);
        let n = self.nr_enq.fetch_add(1, Ordering::Relaxed);
        if self.mode == Mode::Mixed && n.is_multiple_of(2) {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        } else {
            self.queue.push(p);
        }
        if let Some(c) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
            ctx.kick_cpu(c, KickFlags::IDLE);
        }
    }

    fn dequeue(&self, _ctx: &Ctx<'_>, p: &TaskRef, _f: DeqFlags) {
        self.rec(p, Ev::Dequeue);
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        self.dispatch_calls.fetch_add(1, Ordering::Relaxed);
        // Invariant 10: dispatch only runs when the local DSQ had nothing,
        // and never when prev could simply have kept running.
        let local = ctx.dsq_nr_queued(DSQ_LOCAL);
        if local != 0 {
            self.bad
                .lock()
                .push(format!("dispatch on cpu {cpu} with {local} local tasks"));
        }
        if let Some(p) = prev {
            if p.slice() > 0 {
                self.bad.lock().push(format!(
                    "dispatch on cpu {cpu} while prev {} had slice {}",
                    p.id(),
                    p.slice()
                ));
            }
        }
        let Some(p) = self.queue.pop_for(cpu) else {
            return;
        };
        ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        if self.mode == Mode::Duplicate {
            ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
            let mut h = self.history.lock();
            let h = h.entry(cpu).or_default();
            // Each entry is spurious (NONE: queued locally, running or
            // finished) or stale-or-current for a task we hold again.
            for old in h.drain(..) {
                ctx.dsq_insert(&old, DSQ_GLOBAL, 0, EnqFlags::empty());
            }
            h.push(p);
        }
    }

    fn runnable(&self, _ctx: &Ctx<'_>, p: &TaskRef, _f: EnqFlags) {
        self.rec(p, Ev::Runnable);
    }

    fn running(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        self.rec(p, Ev::Running);
    }

    fn stopping(&self, _ctx: &Ctx<'_>, p: &TaskRef, runnable: bool) {
        self.rec(
            p,
            Ev::Stopping {
                runnable,
                slice_left: p.slice() > 0,
            },
        );
    }

    fn quiescent(&self, _ctx: &Ctx<'_>, p: &TaskRef, _f: DeqFlags) {
        self.rec(p, Ev::Quiescent);
    }

    fn init_task(&self, _ctx: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        self.rec(p, Ev::InitTask);
        Ok(())
    }

    fn enable(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        self.rec(p, Ev::Enable);
    }

    fn disable(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        self.rec(p, Ev::Disable);
    }

    fn exit_task(&self, _ctx: &Ctx<'_>, p: &TaskRef, _a: ExitTaskArgs) {
        self.rec(p, Ev::ExitTask);
    }
}

/// Yielders, channel ping-pong pairs, sleepers and plain finishers.
fn workload(rt: &scx_rt::Runtime) -> usize {
    let counts = Counts::new(200);
    let mut hs = Vec::new();
    // 0..40: yielders.
    for i in 0..40 {
        let c = counts.clone();
        hs.push(rt.spawn(move || {
            for _ in 0..5 {
                scx_rt::yield_now();
            }
            c.hit(i);
        }));
    }
    // 40..120: 40 ping-pong pairs over bounded channels.
    for k in 0..40 {
        let (tx, rx) = channel::<u32>(1);
        let (btx, brx) = channel::<u32>(1);
        let c = counts.clone();
        hs.push(rt.spawn(move || {
            for v in 0..10 {
                tx.send(v).unwrap();
                assert_eq!(brx.recv().unwrap(), v + 1);
            }
            c.hit(40 + 2 * k);
        }));
        let c = counts.clone();
        hs.push(rt.spawn(move || {
            for _ in 0..10 {
                let v = rx.recv().unwrap();
                btx.send(v + 1).unwrap();
            }
            c.hit(41 + 2 * k);
        }));
    }
    // 120..160: sleepers.
    for i in 120..160 {
        let c = counts.clone();
        hs.push(rt.spawn(move || {
            scx_rt::sleep(Duration::from_micros(200 + (i as u64 % 7) * 100));
            scx_rt::yield_now();
            scx_rt::sleep(Duration::from_micros(100));
            c.hit(i);
        }));
    }
    // 160..200: finish at once.
    for i in 160..200 {
        let c = counts.clone();
        hs.push(rt.spawn(move || c.hit(i)));
    }
    let n = hs.len();
    for h in hs {
        h.join().unwrap();
    }
    counts.assert_exactly_once("invariants workload");
    n
}

/// Checks the per-task callback protocol; returns the number of tasks.
fn check_log(log: &[(TaskId, Ev)]) -> usize {
    let mut per: HashMap<TaskId, Vec<(usize, Ev)>> = HashMap::new();
    for (seq, &(id, ev)) in log.iter().enumerate() {
        per.entry(id).or_default().push((seq, ev));
    }
    for (id, evs) in &per {
        let ctx = |i: usize| {
            let lo = i.saturating_sub(6);
            let hi = (i + 3).min(evs.len());
            format!("task {id}, event #{i}, around: {:?}", &evs[lo..hi])
        };
        // Lifecycle: init_task first and once; enable once before the first
        // runnable; exit_task last and once, right after disable.
        assert_eq!(evs[0].1, Ev::InitTask, "{}", ctx(0));
        let count = |e: Ev| evs.iter().filter(|x| x.1 == e).count();
        assert_eq!(count(Ev::InitTask), 1, "task {id}: init_task count");
        assert_eq!(count(Ev::Enable), 1, "task {id}: enable count");
        assert_eq!(count(Ev::ExitTask), 1, "task {id}: exit_task count");
        assert_eq!(count(Ev::Disable), 1, "task {id}: disable count");
        assert_eq!(
            evs.last().unwrap().1,
            Ev::ExitTask,
            "{}",
            ctx(evs.len() - 1)
        );
        assert_eq!(evs[evs.len() - 2].1, Ev::Disable, "{}", ctx(evs.len() - 2));
        let en = evs.iter().position(|x| x.1 == Ev::Enable).unwrap();
        let first_runnable = evs.iter().position(|x| x.1 == Ev::Runnable).expect("ran");
        assert!(en < first_runnable, "{}", ctx(en));

        let mut runnable = false;
        let mut running = false;
        // A "licence" to start running: an enqueue, a select_cpu verdict, or
        // being put back with slice left (head of the local DSQ, no
        // enqueue). Each running() uses one.
        let mut licence = false;
        let mut ran = false;
        for (i, &(_, ev)) in evs.iter().enumerate() {
            match ev {
                Ev::Runnable => {
                    assert!(!runnable, "runnable twice: {}", ctx(i));
                    runnable = true;
                }
                Ev::Quiescent => {
                    assert!(runnable, "quiescent while not runnable: {}", ctx(i));
                    assert!(!running, "quiescent while running: {}", ctx(i));
                    runnable = false;
                }
                Ev::Running => {
                    assert!(runnable, "running outside runnable..quiescent: {}", ctx(i));
                    assert!(!running, "running twice without stopping: {}", ctx(i));
                    assert!(
                        licence,
                        "running without enqueue/dispatch since last run: {}",
                        ctx(i)
                    );
                    running = true;
                    licence = false;
                    ran = true;
                }
                Ev::Stopping {
                    runnable: r,
                    slice_left,
                } => {
                    assert!(running, "stopping without running: {}", ctx(i));
                    assert!(runnable, "stopping outside runnable..quiescent: {}", ctx(i));
                    running = false;
                    if r && slice_left {
                        licence = true;
                    }
                }
                Ev::Enqueue => {
                    assert!(runnable, "enqueue of a non-runnable task: {}", ctx(i));
                    assert!(!running, "enqueue of a running task: {}", ctx(i));
                    // Invariant 4: between two enqueues there is a running().
                    assert!(
                        !licence,
                        "enqueue twice without running between: {}",
                        ctx(i)
                    );
                    licence = true;
                }
                Ev::SelectCpu { direct } => {
                    assert!(!runnable, "select_cpu for a runnable task: {}", ctx(i));
                    if direct {
                        licence = true;
                    }
                }
                Ev::Dequeue => {
                    assert!(runnable && !running, "dequeue out of place: {}", ctx(i));
                }
                Ev::InitTask | Ev::Enable | Ev::Disable | Ev::ExitTask => {
                    assert!(!runnable && !running, "{ev:?} while runnable: {}", ctx(i));
                }
            }
        }
        assert!(ran, "task {id} never ran");
    }
    per.len()
}

fn run_recorded(mode: Mode) {
    let rec = Recorder::new(mode);
    let (log, bad, calls) = (rec.log.clone(), rec.bad.clone(), rec.dispatch_calls.clone());
    let n = guard("recorded workload", move || {
        let rt = rt_with(2, rec);
        let n = workload(&rt);
        rt.shutdown();
        // Invariant 2: stale/duplicate dispatches raise no error.
        assert!(rt.exit_info().is_none(), "{mode:?}: {:?}", rt.exit_info());
        n
    });
    let bad = bad.lock();
    assert!(bad.is_empty(), "{mode:?}: {:?}", &bad[..bad.len().min(5)]);
    assert!(calls.load(Ordering::Relaxed) > 0);
    let log = log.lock();
    let tasks = check_log(&log);
    assert_eq!(tasks, n, "every task appears in the log");
}

#[test]
fn callback_protocol_mixed_policy() {
    run_recorded(Mode::Mixed);
}

#[test]
fn duplicate_and_stale_dispatches_are_dropped_silently() {
    run_recorded(Mode::Duplicate);
}

#[test]
fn dispatch_is_not_called_while_the_local_dsq_has_tasks() {
    // One CPU; every enqueue goes straight to the local DSQ. While two or
    // more children are alive the local DSQ is never empty at a scheduling
    // point, so dispatch() must not run.
    let alive = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::<(usize, i32)>::new()));
    let (a2, s2) = (alive.clone(), seen.clone());
    let s = FnSched::new("local-only", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f)
    })
    .dispatch(move |ctx, _, _| {
        s2.lock()
            .push((a2.load(Ordering::SeqCst), ctx.dsq_nr_queued(DSQ_LOCAL)));
    });
    let a3 = alive.clone();
    guard("local-only dispatch counting", move || {
        let rt = rt_with(1, s);
        let hs = rt.block_on(move || {
            a3.store(10, Ordering::SeqCst);
            (0..10)
                .map(|i| {
                    let a = a3.clone();
                    scx_rt::spawn(move || {
                        // Child i yields 2i+1 times: the last one ends up
                        // yielding alone.
                        for _ in 0..2 * i + 1 {
                            scx_rt::yield_now();
                        }
                        a.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect::<Vec<_>>()
        });
        for h in hs {
            h.join().unwrap();
        }
        rt.shutdown();
        assert!(rt.exit_info().is_none(), "{:?}", rt.exit_info());
    });
    let seen = seen.lock();
    assert!(
        seen.iter().all(|&(alive, local)| alive <= 1 && local == 0),
        "dispatch ran while the local DSQ had work: {seen:?}"
    );
    // The last child alone, yielding with an empty local DSQ: dispatch is
    // consulted (then the child is kept).
    assert!(
        seen.iter().any(|&(alive, _)| alive == 1),
        "dispatch never ran for the last child: {seen:?}"
    );
}
