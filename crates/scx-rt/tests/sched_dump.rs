//! Dumps (SPEC.md §6.6 layout, first cut) include the scheduler's dump,
//! dump_cpu and dump_task output; set_cpumask reports each task's mask when
//! asked for; task ids are visible inside tasks.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use scx_rt::{
    Cpumask, Ctx, DumpCtx, EnqFlags, EnqueueCtx, Runtime, Scheduler, TaskRef, DSQ_GLOBAL, SLICE_DFL,
};

#[derive(Default)]
struct Dumper {
    masks: Mutex<Vec<(u64, String)>>,
    fail: AtomicBool,
    /// Bytes of filler the scheduler's dump callback emits.
    huge: std::sync::atomic::AtomicUsize,
}

impl Scheduler for Dumper {
    fn name(&self) -> &str {
        "dumper"
    }
    fn wants_cpumask(&self) -> bool {
        true
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if self.fail.load(Ordering::Relaxed) {
            ctx.error("asked to fail");
        }
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
    fn set_cpumask(&self, _ctx: &Ctx<'_>, p: &TaskRef, mask: &Cpumask) {
        self.masks.lock().push((p.id(), mask.to_string()));
    }
    fn dump(&self, ctx: &mut DumpCtx<'_>) {
        ctx.dump("dumper: global state");
        let n = self.huge.load(Ordering::Relaxed);
        if n > 0 {
            ctx.dump("\n");
            ctx.dump("x".repeat(n));
        }
    }
    fn dump_cpu(&self, ctx: &mut DumpCtx<'_>, cpu: usize, _idle: bool) {
        ctx.dump(format!("dumper: cpu {cpu}"));
    }
    fn dump_task(&self, ctx: &mut DumpCtx<'_>, p: &TaskRef) {
        ctx.dump(format!("dumper: task {}", p.id()));
    }
}

#[test]
fn dump_has_scheduler_cpu_and_task_sections() {
    let sched = Arc::new(Dumper::default());
    let rt = Runtime::builder()
        .nr_cpus(2)
        .pin(false)
        .scheduler(ArcSched(sched.clone()))
        .build()
        .unwrap();
    let (tx, rx) = scx_rt::sync::channel::<()>(0);
    // A task that spins until told, so its CPU is not idle during the dump.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = rt.spawn_on(1, move || {
        tx.send(()).unwrap();
        while !s2.load(Ordering::Relaxed) {
            scx_rt::yield_now();
        }
        scx_rt::task_id().unwrap()
    });
    rx.recv().unwrap();
    // The task may be between CPUs for a moment (woken while it was still
    // switching out); it spins on yields, so it shows up in a later dump.
    let mut d = rt.dump();
    for _ in 0..1000 {
        if d.contains("CPU 1   : nr_run=") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        d = rt.dump();
    }
    stop.store(true, Ordering::Relaxed);
    let id = h.id();
    assert_eq!(h.join().unwrap(), id, "task_id() inside the task");
    assert!(scx_rt::task_id().is_none());
    assert!(
        d.starts_with("Debug dump triggered by Runtime::dump\n"),
        "{d}"
    );
    assert!(d.contains("dumper: global state"), "{d}");
    assert!(d.contains("\nCPU states\n----------\n"), "{d}");
    assert!(d.contains("sticky/holding_cpu=-1/-1"), "{d}");
    assert!(
        d.contains("      cpus=1\n"),
        "the task's allowed CPUs as a bitmap list: {d}"
    );
    assert!(d.contains("CPU 1   : nr_run="), "{d}");
    assert!(d.contains("  dumper: cpu 1"), "{d}");
    assert!(d.contains(&format!("    dumper: task {id}")), "{d}");
    let masks = sched.masks.lock().clone();
    assert!(masks.contains(&(id, "1".to_string())), "{masks:?}");
}

#[test]
fn error_exit_dump_is_taken_with_the_scheduler_sections() {
    let sched = Arc::new(Dumper::default());
    let rt = Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .scheduler(ArcSched(sched.clone()))
        .build()
        .unwrap();
    sched.fail.store(true, Ordering::Relaxed);
    assert_eq!(rt.block_on(|| 5), 5);
    while rt.stats().ejections == 0 {
        std::thread::yield_now();
    }
    let info = rt.exit_info().unwrap();
    assert_eq!(info.msg, "asked to fail");
    assert_eq!(info.scheduler, "dumper");
    assert!(info.dump.contains("dumper: global state"), "{}", info.dump);
    assert!(
        info.dump
            .contains("triggered exit kind 1025:\n  scheduler error (asked to fail)\n"),
        "{}",
        info.dump
    );
    assert_eq!(info.kind as u32, 1025);
    assert_eq!(rt.scheduler_name(), "fifo");
}

/// Lets the test keep a handle on the scheduler it attached.
struct ArcSched(Arc<Dumper>);

impl Scheduler for ArcSched {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn wants_cpumask(&self) -> bool {
        true
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        self.0.enqueue(ctx, p, f)
    }
    fn set_cpumask(&self, ctx: &Ctx<'_>, p: &TaskRef, mask: &Cpumask) {
        self.0.set_cpumask(ctx, p, mask)
    }
    fn dump(&self, ctx: &mut DumpCtx<'_>) {
        self.0.dump(ctx)
    }
    fn dump_cpu(&self, ctx: &mut DumpCtx<'_>, cpu: usize, idle: bool) {
        self.0.dump_cpu(ctx, cpu, idle)
    }
    fn dump_task(&self, ctx: &mut DumpCtx<'_>, p: &TaskRef) {
        self.0.dump_task(ctx, p)
    }
}

#[test]
fn an_oversized_dump_is_truncated_with_a_marker() {
    let sched = Arc::new(Dumper::default());
    sched.huge.store(100_000, Ordering::Relaxed);
    let rt = Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .scheduler(ArcSched(sched.clone()))
        .build()
        .unwrap();
    let d = rt.dump();
    assert!(d.len() <= 32768, "dump of {} bytes", d.len());
    assert!(
        d.ends_with("~~~~ TRUNCATED ~~~~\n"),
        "{}",
        &d[d.len() - 40..]
    );
    assert!(d.starts_with("Debug dump triggered by Runtime::dump"));
}
