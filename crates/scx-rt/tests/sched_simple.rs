//! The built-in `scx_simple` port (SPEC.md §8) in FIFO and vtime mode:
//! exactly-once completion of a large mixed workload on 1, 2 and 4 unpinned
//! CPUs, and vtime ordering on one CPU.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::schedulers::Simple;
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Scheduler, SelectCpuCtx, TaskId, TaskRef,
    WakeFlags,
};

/// Delegates to a shared `Simple` (so the test can read its counters) and
/// records vtimes: at each `dispatch` the lowest vtime queued on the shared
/// DSQ, and at each `running` the task's vtime.
struct Probe {
    inner: Arc<Simple>,
    st: Arc<ProbeState>,
    /// Record vtimes (O(queued) per dispatch: small workloads only).
    record: bool,
}

#[derive(Default)]
struct ProbeState {
    /// Tasks the probe saw enqueued (on the shared DSQ) and not yet running.
    queued: Mutex<HashMap<TaskId, u64>>,
    /// Lowest queued vtime when the last `dispatch` started.
    expect_min: Mutex<Option<u64>>,
    /// (task, vtime) at every `running`, in order.
    runs: Mutex<Vec<(TaskId, u64)>>,
    /// Number of `running` calls checked against the queued minimum.
    checked: std::sync::atomic::AtomicUsize,
    /// Descriptions of ordering violations.
    violations: Mutex<Vec<String>>,
}

impl Scheduler for Probe {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        self.inner.init(ctx)
    }
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev_cpu: usize,
        wake_flags: WakeFlags,
    ) -> i32 {
        self.inner.select_cpu(ctx, p, prev_cpu, wake_flags)
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        self.inner.enqueue(ctx, p, f);
        // Tasks limited to one CPU go to its local DSQ, not the shared one.
        if !self.record || p.nr_cpus_allowed(ctx.nr_cpu_ids()) < 2 {
            return;
        }
        // dispatch_vtime stored the key in p.dsq_vtime.
        self.st.queued.lock().insert(p.id(), p.dsq_vtime());
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, prev: Option<&TaskRef>) {
        if self.record {
            *self.st.expect_min.lock() = self.st.queued.lock().values().copied().min();
        }
        self.inner.dispatch(ctx, cpu, prev)
    }
    fn running(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        if !self.record {
            return self.inner.running(ctx, p);
        }
        let v = p.dsq_vtime();
        self.st.queued.lock().remove(&p.id());
        if let Some(m) = self.st.expect_min.lock().take() {
            self.st.checked.fetch_add(1, Ordering::Relaxed);
            if v != m {
                self.st.violations.lock().push(format!(
                    "task {} ran with vtime {v}, lowest queued {m}",
                    p.id()
                ));
            }
        }
        self.st.runs.lock().push((p.id(), v));
        self.inner.running(ctx, p)
    }
    fn stopping(&self, ctx: &Ctx<'_>, p: &TaskRef, runnable: bool) {
        self.inner.stopping(ctx, p, runnable)
    }
    fn enable(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        self.inner.enable(ctx, p)
    }
}

fn probe(s: Simple, record: bool) -> (Probe, Arc<Simple>, Arc<ProbeState>) {
    let inner = Arc::new(s);
    let st = Arc::new(ProbeState::default());
    (
        Probe {
            inner: inner.clone(),
            st: st.clone(),
            record,
        },
        inner,
        st,
    )
}

/// 50k tasks: 10k top-level tasks (every 5th yields twice), each spawning
/// and joining 4 children (half of which yield once).
fn fifty_k(nr_cpus: usize, fifo: bool) {
    let what = format!("simple fifo={fifo} on {nr_cpus} cpus");
    guard(&what.clone(), move || {
        let (p, simple, _) = probe(
            if fifo {
                Simple::fifo()
            } else {
                Simple::vtime()
            },
            false,
        );
        let rt = rt_with(nr_cpus, p);
        assert_eq!(
            rt.scheduler_name(),
            if fifo { "simple-fifo" } else { "simple" }
        );
        mixed_workload(&rt, 10_000, 4, 5, 2);
        rt.shutdown();
        assert!(rt.exit_info().is_none(), "{what}: {:?}", rt.exit_info());
        let queued = simple.nr_global.load(Ordering::Relaxed);
        let local = simple.nr_local.load(Ordering::Relaxed);
        // Every task became runnable at least once at spawn, plus yields and
        // join wake-ups: at least 50k placements went through the policy.
        assert!(
            queued + local >= 50_000,
            "{what}: {queued} + {local} placements"
        );
    });
}

#[test]
fn simple_fifo_50k_on_1_cpu() {
    fifty_k(1, true);
}

#[test]
fn simple_fifo_50k_on_2_cpus() {
    fifty_k(2, true);
}

#[test]
fn simple_fifo_50k_on_4_cpus() {
    fifty_k(4, true);
}

#[test]
fn simple_vtime_50k_on_1_cpu() {
    fifty_k(1, false);
}

#[test]
fn simple_vtime_50k_on_2_cpus() {
    fifty_k(2, false);
}

#[test]
fn simple_vtime_50k_on_4_cpus() {
    fifty_k(4, false);
}

#[test]
fn simple_vtime_orders_by_vtime_and_bounds_a_newcomers_credit() {
    // Two CPUs, but CPU 1 is monopolised by a spinning task (green tasks are
    // cooperative), so the workload runs on CPU 0 alone, in a deterministic
    // order. Migration is allowed so that started tasks stay eligible for
    // both CPUs and keep going through the shared vtime DSQ (Simple sends
    // single-CPU tasks to their local DSQ).
    //
    // Group A: two tasks yielding 60 times each. After 20 rounds, A0 spawns
    // B (one task yielding 40 times). The shared DSQ must always hand out
    // the lowest vtime; every task's vtime grows with its yields; and B,
    // starting at the current vtime rather than 0, interleaves with A
    // instead of running its 40 rounds back to back.
    let (p, simple, st) = probe(Simple::vtime(), true);
    let st2 = st.clone();
    let log = guard("simple vtime ordering", move || {
        // SAFETY: no task holds a thread-bound value across a switch point
        // (the log lock is released before every yield).
        let builder = unsafe { scx_rt::Runtime::builder().allow_migration() };
        let rt = builder.nr_cpus(2).pin(false).scheduler(p).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (stop2, started2) = (stop.clone(), started.clone());
        let spinner = rt.spawn_on(1, move || {
            started2.store(true, Ordering::SeqCst);
            while !stop2.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            scx_rt::current_cpu()
        });
        wait_until("the spinner to occupy CPU 1", || {
            started.load(Ordering::SeqCst)
        });
        type Log = Arc<Mutex<Vec<(char, u32, Option<usize>)>>>;
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let mk = |name: char, rounds: u32, spawn_b_at: Option<u32>| {
            let log = log.clone();
            move || {
                let mut b = None;
                for r in 0..rounds {
                    log.lock().push((name, r, scx_rt::current_cpu()));
                    if Some(r) == spawn_b_at {
                        let log = log.clone();
                        b = Some(scx_rt::spawn(move || {
                            for r in 0..40 {
                                log.lock().push(('B', r, scx_rt::current_cpu()));
                                scx_rt::yield_now();
                            }
                        }));
                    }
                    scx_rt::yield_now();
                }
                if let Some(b) = b {
                    b.join().unwrap();
                }
            }
        };
        // Both are spawned by one task, with no switch point in between,
        // so both are queued before either runs. Spawned one by one from
        // this thread, A1 could arrive late (this thread descheduled under
        // load): A0's yields with nothing else queued then keep it running
        // without an enqueue (no `ENQ_LAST`), and too few go through the
        // shared DSQ for the check below.
        let (a0, a1) = (mk('0', 60, Some(20)), mk('1', 60, None));
        rt.spawn(move || {
            let a0 = scx_rt::spawn(a0);
            let a1 = scx_rt::spawn(a1);
            a0.join().unwrap();
            a1.join().unwrap();
        })
        .join()
        .unwrap();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(spinner.join().unwrap(), Some(1));
        rt.shutdown();
        assert!(rt.exit_info().is_none(), "{:?}", rt.exit_info());
        let l = log.lock().clone();
        l
    });
    let st = st2;
    assert!(
        log.iter().all(|e| e.2 == Some(0)),
        "the workload left CPU 0: {log:?}"
    );
    assert!(
        simple.nr_global.load(Ordering::Relaxed) >= 100,
        "the yields did not go through the shared DSQ"
    );
    let checked = st.checked.load(Ordering::Relaxed);
    assert!(
        checked >= 100,
        "only {checked} picks were checked against the DSQ minimum"
    );
    let v = st.violations.lock();
    assert!(
        v.is_empty(),
        "vtime order violated: {:?}",
        &v[..v.len().min(5)]
    );
    // Per task, the vtime seen at running() never decreases, and it grew
    // across the run (each yield charges a full slice).
    let runs = st.runs.lock();
    let mut per: HashMap<TaskId, Vec<u64>> = HashMap::new();
    for &(id, vt) in runs.iter() {
        per.entry(id).or_default().push(vt);
    }
    let mut long = 0;
    for (id, vts) in &per {
        assert!(
            vts.windows(2).all(|w| w[0] <= w[1]),
            "task {id}: vtime went backwards: {vts:?}"
        );
        if vts.len() >= 20 {
            long += 1;
            assert!(vts.last() > vts.first(), "task {id}: vtime never grew");
        }
    }
    assert!(long >= 3, "expected three yielding tasks, got {long}");
    // B interleaves with A.
    let first_b = log.iter().position(|e| e.0 == 'B').expect("B ran");
    let last_b = log.iter().rposition(|e| e.0 == 'B').unwrap();
    let a_between = log[first_b..last_b].iter().filter(|e| e.0 != 'B').count();
    assert!(
        a_between >= 20,
        "group A ran only {a_between} times while B ran its 40 rounds: {:?}",
        &log[first_b..=last_b.min(first_b + 60)]
    );
    assert_eq!(log.len(), 160);
}
