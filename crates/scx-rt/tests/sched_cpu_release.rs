//! Higher-class work and the CPU release protocol through the public API
//! (SPEC.md §3.11): `Runtime::run_on_cpu` preempts the running task,
//! `cpu_release` (with its reason) runs once before the work and
//! `cpu_acquire` at the next balance; a CPU that was idle is not released;
//! `reenqueue_local` in `cpu_release` hands the released CPU's waiting
//! tasks back to `enqueue` with `ENQ_REENQ`, and they run elsewhere.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    CpuAcquireArgs, CpuPreemptReason, CpuReleaseArgs, CpuReleaseCtx, Ctx, EnqFlags, EnqueueCtx,
    InitCtx, InitTaskArgs, RunOnCpuError, Scheduler, SelectCpuCtx, TaskRef, WakeFlags, DSQ_LOCAL,
    DSQ_LOCAL_ON, SLICE_DFL, SLICE_INF,
};

/// Every task runs on CPU 0 (tag 0 with an infinite slice, so that it
/// keeps the CPU); a task re-enqueued with `ENQ_REENQ` goes to CPU 1.
/// `cpu_release` re-enqueues the local DSQ when `reenq` is set. Events go
/// to `log`.
struct Rel {
    tag: Arc<AtomicU64>,
    reenq: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Rel {
    fn new(reenq: bool) -> Self {
        Self {
            tag: Arc::new(AtomicU64::new(NO_TAG)),
            reenq,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Scheduler for Rel {
    fn name(&self) -> &str {
        "release"
    }
    fn init_task(&self, _ctx: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        p.set_data(Tag(self.tag.load(Ordering::SeqCst)));
        Ok(())
    }
    fn select_cpu(
        &self,
        _c: &mut SelectCpuCtx<'_>,
        _p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        0
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if f.contains(EnqFlags::REENQ) {
            self.log.lock().push(format!("reenq {}", tag_of(p)));
            ctx.dsq_insert(p, DSQ_LOCAL_ON | 1, SLICE_DFL, f);
            return;
        }
        let slice = if tag_of(p) == 0 { SLICE_INF } else { SLICE_DFL };
        ctx.dsq_insert(p, DSQ_LOCAL, slice, f);
    }
    fn cpu_release(&self, ctx: &mut CpuReleaseCtx<'_>, cpu: usize, args: CpuReleaseArgs) {
        let n = if self.reenq { ctx.reenqueue_local() } else { 0 };
        self.log
            .lock()
            .push(format!("release {cpu} {:?} {n}", args.reason));
    }
    fn cpu_acquire(&self, _ctx: &Ctx<'_>, cpu: usize, _args: CpuAcquireArgs) {
        self.log.lock().push(format!("acquire {cpu}"));
    }
}

/// Spawns tag 0: a task that runs on CPU 0 until `stop`, reaching
/// preemption points; returns once it runs.
fn spawn_spinner(
    rt: &scx_rt::Runtime,
    tag: &AtomicU64,
    stop: &Arc<AtomicBool>,
) -> scx_rt::JoinHandle<()> {
    let started = Arc::new(AtomicBool::new(false));
    tag.store(0, Ordering::SeqCst);
    let (s, st) = (stop.clone(), started.clone());
    let h = rt.spawn(move || {
        st.store(true, Ordering::SeqCst);
        while !s.load(Ordering::SeqCst) {
            scx_rt::preempt_point();
        }
    });
    wait_until("the spinner to run", || started.load(Ordering::SeqCst));
    h
}

#[test]
fn higher_class_work_releases_a_busy_cpu_and_the_next_balance_acquires_it() {
    let s = Rel::new(false);
    let (tag, log, events) = (s.tag.clone(), s.log.clone(), s.log.clone());
    let exit = guard("release and acquire", move || {
        let rt = rt_with(2, s);
        let stop = Arc::new(AtomicBool::new(false));
        let h = spawn_spinner(&rt, &tag, &stop);
        let l = log.clone();
        let on = rt
            .run_on_cpu(0, CpuPreemptReason::Rt, move || {
                l.lock().push("work".to_string());
                scx_rt::current_cpu()
            })
            .unwrap();
        assert_eq!(on, Some(0), "the work ran on CPU 0's worker");
        wait_until("CPU 0 to come back", || {
            log.lock().iter().any(|e| e == "acquire 0")
        });
        // CPU 1 never ran a task: its higher-class work releases nothing.
        let l = log.clone();
        rt.run_on_cpu(1, CpuPreemptReason::Stop, move || {
            l.lock().push("idle work".to_string())
        })
        .unwrap();
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
        rt.shutdown();
        rt.exit_info()
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    let log = events.lock().clone();
    assert_eq!(
        log,
        vec!["release 0 Rt 0", "work", "acquire 0", "idle work"],
        "release once before the work, acquire after it; none for an idle CPU"
    );
}

#[test]
fn reenqueue_local_hands_the_released_cpus_tasks_back_with_enq_reenq() {
    let s = Rel::new(true);
    let (tag, log) = (s.tag.clone(), s.log.clone());
    let (cpus, exit) = guard("reenqueue_local", move || {
        let rt = rt_with(2, s);
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = spawn_spinner(&rt, &tag, &stop);
        // Three tasks queue on CPU 0's local DSQ behind the spinner, which
        // never gives the CPU up (infinite slice, no block).
        let hs: Vec<_> = (1..=3)
            .map(|i| {
                tag.store(i, Ordering::SeqCst);
                rt.spawn(|| scx_rt::current_cpu().unwrap())
            })
            .collect();
        rt.run_on_cpu(0, CpuPreemptReason::Dl, || ()).unwrap();
        // Only the re-enqueue (to CPU 1) lets them run while the spinner
        // holds CPU 0.
        let cpus: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::SeqCst);
        spinner.join().unwrap();
        rt.shutdown();
        (cpus, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(cpus, vec![1, 1, 1], "the waiting tasks ran on CPU 1");
    let log = log.lock().clone();
    // The preempted spinner went back to the head of the local DSQ first,
    // so it is re-enqueued too (it is bound to CPU 0: its verdict for CPU
    // 1 sends it to the global DSQ, where CPU 0 takes it back).
    let reenq: Vec<_> = log.iter().filter(|e| e.starts_with("reenq")).collect();
    assert_eq!(reenq, vec!["reenq 0", "reenq 1", "reenq 2", "reenq 3"]);
    assert!(
        log.iter().any(|e| e == "release 0 Dl 4"),
        "cpu_release re-enqueued 4 tasks: {log:?}"
    );
}

#[test]
fn run_on_cpu_errors_panics_and_calls_from_a_task() {
    let s = Rel::new(false);
    let rt = Arc::new(rt_with(1, s));
    assert_eq!(
        rt.run_on_cpu(3, CpuPreemptReason::Rt, || ()),
        Err(RunOnCpuError::NoSuchCpu { cpu: 3, nr_cpus: 1 })
    );
    // A panic in the work comes back to the caller; the worker lives on.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.run_on_cpu(0, CpuPreemptReason::Stop, || panic!("boom"))
    }));
    let msg = r.expect_err("the panic resumes in the caller");
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"boom"));
    // From a task on the very CPU: the task blocks green-ly, so its CPU is
    // free to run the work.
    let r2 = rt.clone();
    let v = guard("run_on_cpu from a task", move || {
        let r3 = r2.clone();
        r2.block_on(move || r3.run_on_cpu(0, CpuPreemptReason::Rt, || 6 * 7))
    });
    assert_eq!(v, Ok(42));
    rt.shutdown();
    assert_eq!(
        rt.run_on_cpu(0, CpuPreemptReason::Rt, || ()),
        Err(RunOnCpuError::ShutDown),
        "a shut-down runtime runs nothing, and the caller does not wait"
    );
}
