//! Event counters (the kernel's `scx_bpf_events()` set, `core::events`)
//! through the public API: each test provokes one event with a scheduler
//! that makes it happen and checks that its counter went up (in
//! `Runtime::stats`, per CPU where the CPU is known, and from a callback
//! with `Ctx::events`), and where cheap that a counter nothing provoked
//! stayed 0.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    Ctx, DispatchCtx, DsqIterFlags, EnqFlags, EnqueueCtx, Events, InitCtx, KickFlags, OpsFlags,
    Runtime, Scheduler, SelectCpuCtx, TaskRef, WakeFlags, DSQ_GLOBAL, DSQ_LOCAL, DSQ_LOCAL_ON,
    SLICE_DFL,
};

/// Tasks per test.
const N: usize = 20;

fn events(rt: &Runtime) -> Events {
    rt.stats().events
}

/// Spawns `n` tasks that each yield `yields` times, and joins them.
fn run_tasks(rt: &Runtime, n: usize, yields: usize) {
    let hs: Vec<_> = (0..n)
        .map(|_| {
            rt.spawn(move || {
                for _ in 0..yields {
                    scx_rt::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// Every task through the global DSQ; `select_cpu` answers `target`
/// (`-1`: the task's own CPU) and dispatches nothing itself.
#[derive(Clone, Default)]
struct Aim(Arc<AtomicI32>);

impl Scheduler for Aim {
    fn name(&self) -> &str {
        "aim"
    }
    fn handles_hotplug(&self) -> bool {
        true
    }
    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        match self.0.load(Ordering::Relaxed) {
            -1 => p.cpu() as i32,
            c => c,
        }
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
}

#[test]
fn a_select_cpu_choice_of_an_offline_cpu_is_a_fallback() {
    guard("events: select_cpu fallback (offline)", || {
        let aim = Aim::default();
        aim.0.store(1, Ordering::Relaxed);
        let rt = rt_with(2, aim.clone());
        // CPU 1 online: the choice stands.
        run_tasks(&rt, N, 0);
        assert_eq!(events(&rt).select_cpu_fallback, 0);
        rt.cpu_offline(1).unwrap();
        // Every spawn's select_cpu names the offline CPU; the core puts
        // the task on CPU 0 and its enqueue there counts the fallback.
        run_tasks(&rt, N, 0);
        let st = rt.stats();
        assert!(st.events.select_cpu_fallback >= N as u64, "{:?}", st.events);
        assert_eq!(
            st.cpus[0].events.select_cpu_fallback,
            st.events.select_cpu_fallback
        );
        assert_eq!(st.events.bypass_activate, 0);
        assert_eq!(st.events.dispatch_local_dsq_offline, 0);
    });
}

#[test]
fn a_select_cpu_choice_outside_the_runtime_is_an_error_and_a_fallback() {
    guard("events: select_cpu fallback (invalid)", || {
        let aim = Aim::default();
        aim.0.store(99, Ordering::Relaxed);
        let rt = rt_with(2, aim);
        rt.spawn(|| ()).join().unwrap();
        let info = wait_ejected(&rt);
        assert!(info.msg.contains("invalid CPU 99"), "{}", info.msg);
        assert!(events(&rt).select_cpu_fallback >= 1);
    });
}

/// Keeps every task and, from `dispatch`, inserts it into CPU 1's local
/// DSQ, or moves it there from user DSQ `Q` (`mv`).
#[derive(Clone, Default)]
struct ToCpu1 {
    q: Arc<Mutex<VecDeque<TaskRef>>>,
    mv: bool,
}

const Q: u64 = 7;

impl Scheduler for ToCpu1 {
    fn name(&self) -> &str {
        "to-cpu1"
    }
    fn handles_hotplug(&self) -> bool {
        true
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(Q, -1).map_err(|_| -17)
    }
    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        _p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        0
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if self.mv {
            ctx.dsq_insert(p, Q, SLICE_DFL, f);
        } else {
            self.q.lock().push_back(p.clone());
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        if self.mv {
            let mut it = ctx.dsq_iter(Q, DsqIterFlags::empty()).unwrap();
            while let Some(p) = it.next() {
                ctx.dsq_move(&mut it, &p, DSQ_LOCAL_ON | 1, EnqFlags::empty());
            }
            return;
        }
        while ctx.dispatch_nr_slots() > 0 {
            let Some(p) = self.q.lock().pop_front() else {
                break;
            };
            ctx.dsq_insert(&p, DSQ_LOCAL_ON | 1, SLICE_DFL, EnqFlags::empty());
        }
    }
}

fn offline_dispatch(mv: bool) {
    let s = ToCpu1 {
        mv,
        ..Default::default()
    };
    let rt = rt_with(2, s);
    rt.cpu_offline(1).unwrap();
    // The tasks start on CPU 0 (CPU 1 is offline); every dispatch to CPU
    // 1's local DSQ goes to the global DSQ, and CPU 0 runs them from there.
    run_tasks(&rt, N, 0);
    let st = rt.stats();
    assert!(
        st.events.dispatch_local_dsq_offline >= N as u64,
        "{:?}",
        st.events
    );
    // Counted by the dispatching CPU (the moved task's CPU for a move).
    assert_eq!(
        st.cpus[0].events.dispatch_local_dsq_offline,
        st.events.dispatch_local_dsq_offline
    );
    assert_eq!(st.events.select_cpu_fallback, 0);
    // A dispatch to an online CPU 1 is no event.
    rt.cpu_online(1).unwrap();
    let before = events(&rt).dispatch_local_dsq_offline;
    run_tasks(&rt, N, 0);
    assert_eq!(events(&rt).dispatch_local_dsq_offline, before);
}

#[test]
fn a_dispatch_to_an_offline_cpus_local_dsq_is_counted() {
    guard("events: dispatch to offline local DSQ", || {
        offline_dispatch(false)
    });
}

#[test]
fn a_dsq_move_to_an_offline_cpus_local_dsq_is_counted() {
    guard("events: dsq_move to offline local DSQ", || {
        offline_dispatch(true)
    });
}

/// Global FIFO with the kernel's defaults; `ENQ_LAST` when asked, then
/// the last task goes to the local DSQ through `enqueue`, with a kick of
/// the CPU as the follow-up event `ENQ_LAST` asks for. Its `dispatch`
/// and `running` only read `ctx.events()`.
#[derive(Clone, Default)]
struct Last {
    enq_last: bool,
    /// What `ctx.events()` said in the last `dispatch` or `running`.
    seen: Arc<Mutex<Option<Events>>>,
}

impl Scheduler for Last {
    fn name(&self) -> &str {
        "last"
    }
    fn flags(&self) -> OpsFlags {
        if self.enq_last {
            OpsFlags::ENQ_LAST
        } else {
            OpsFlags::empty()
        }
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if !f.contains(EnqFlags::LAST) {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
            return;
        }
        ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f);
        if let Some(cpu) = ctx.cpu() {
            ctx.kick_cpu(cpu, KickFlags::empty());
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        // An rq-locked callback: the read takes no lock.
        *self.seen.lock() = Some(ctx.events());
    }
    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        *self.seen.lock() = Some(ctx.events());
    }
}

#[test]
fn a_lone_task_that_yields_is_kept_and_refilled() {
    guard("events: keep last", || {
        let last = Last::default();
        let rt = rt_with(1, last.clone());
        let yields = 200;
        run_tasks(&rt, 1, yields);
        let e = events(&rt);
        // Every yield: nothing else to run, the task keeps the CPU (keep
        // last) with its zero slice refilled.
        assert!(e.dispatch_keep_last >= yields as u64, "{e:?}");
        assert!(e.refill_slice_dfl >= yields as u64, "{e:?}");
        assert_eq!(e.select_cpu_fallback, 0);
        // The scheduler saw its counters from a callback (`dispatch` runs
        // before each keep).
        let seen = last.seen.lock().expect("running ran");
        assert!(seen.dispatch_keep_last >= yields as u64 - 1, "{seen:?}");
        // And the dump lists them under their kernel names.
        let dump = rt.dump();
        let line = dump
            .lines()
            .find(|l| l.trim_start().starts_with("SCX_EV_DISPATCH_KEEP_LAST:"))
            .unwrap_or_else(|| panic!("no keep-last line in\n{dump}"));
        let v: u64 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        assert!(v >= yields as u64, "{line}");
        assert!(dump.contains("Event counters"), "{dump}");
    });
}

#[test]
fn with_enq_last_the_lone_task_goes_through_enqueue_and_is_not_kept() {
    guard("events: ENQ_LAST", || {
        let rt = rt_with(
            1,
            Last {
                enq_last: true,
                ..Default::default()
            },
        );
        run_tasks(&rt, 1, 200);
        assert_eq!(events(&rt).dispatch_keep_last, 0);
        assert_eq!(rt.stats().ejections, 0);
    });
}

/// Inserts every task with the default slice, then zeroes the slice: the
/// core refills it when it picks the task.
#[derive(Clone, Default)]
struct ZeroSlice;

impl Scheduler for ZeroSlice {
    fn name(&self) -> &str {
        "zero-slice"
    }
    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        p.cpu() as i32
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        p.set_slice(0);
    }
}

#[test]
fn a_task_picked_with_a_zero_slice_is_refilled() {
    guard("events: refill at pick", || {
        let rt = rt_with(2, ZeroSlice);
        run_tasks(&rt, N, 0);
        let e = events(&rt);
        // Each task is picked once, with slice 0.
        assert!(e.refill_slice_dfl >= N as u64, "{e:?}");
        assert_eq!(e.dispatch_keep_last, 0);
    });
}

#[test]
fn the_default_select_cpu_refills_the_slice_of_a_task_it_places() {
    guard("events: refill by the default select_cpu", || {
        // `Aim` with its own select_cpu gives nothing to count ...
        let rt = rt_with(2, Aim(Arc::new(AtomicI32::new(-1))));
        for _ in 0..N {
            rt.spawn(|| ()).join().unwrap();
        }
        assert_eq!(events(&rt).refill_slice_dfl, 0);
        // ... the default one places a task on an idle CPU with the
        // default slice, as the kernel's core does without select_cpu.
        let rt = rt_with(2, scx_rt::schedulers::Fifo);
        for _ in 0..N {
            rt.spawn(|| ()).join().unwrap();
        }
        assert!(events(&rt).refill_slice_dfl >= 1, "{:?}", events(&rt));
    });
}

/// Holds every task until `release`; dispatches them then.
#[derive(Clone, Default)]
struct Hoard {
    q: Arc<Mutex<VecDeque<TaskRef>>>,
    release: Arc<AtomicBool>,
}

impl Scheduler for Hoard {
    fn name(&self) -> &str {
        "hoard"
    }
    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        p.cpu() as i32
    }
    fn enqueue(&self, _ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
        self.q.lock().push_back(p.clone());
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        if !self.release.load(Ordering::Acquire) {
            return;
        }
        while ctx.dispatch_nr_slots() > 0 {
            let Some(p) = self.q.lock().pop_front() else {
                break;
            };
            ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
    }
}

#[test]
fn bypass_counts_its_activation_duration_and_the_tasks_it_places() {
    guard("events: bypass", || {
        let h = Hoard::default();
        let rt = rt_with(2, h.clone());
        let hs: Vec<_> = (0..N).map(|_| rt.spawn(|| ())).collect();
        wait_until("the tasks with the scheduler", || h.q.lock().len() == N);
        assert_eq!(events(&rt), Events::default());
        let g = rt.bypass();
        let inner = rt.bypass(); // nested: no second activation
        for hd in hs {
            hd.join().unwrap();
        }
        let e = events(&rt);
        assert_eq!(e.bypass_activate, 1);
        // Entering bypass moved the held tasks to the global FIFO.
        assert!(e.bypass_dispatch >= N as u64, "{e:?}");
        assert!(e.refill_slice_dfl >= N as u64, "{e:?}");
        // The duration is added when bypass ends.
        assert_eq!(e.bypass_duration, 0);
        std::thread::sleep(Duration::from_millis(20));
        drop(inner);
        assert_eq!(events(&rt).bypass_duration, 0);
        drop(g);
        let e = events(&rt);
        assert!(e.bypass_duration >= 20_000_000, "{e:?}");
        // Counted on CPU 0 (the thread that entered bypass is no worker).
        let st = rt.stats();
        assert_eq!(st.cpus[0].events.bypass_activate, 1);
        assert_eq!(st.cpus[0].events.bypass_duration, e.bypass_duration);
        // Out of bypass, placements go through the scheduler again.
        h.release.store(true, Ordering::Release);
        let before = e.bypass_dispatch;
        run_tasks(&rt, N, 0);
        assert_eq!(events(&rt).bypass_dispatch, before);
        // A second period is a second activation.
        drop(rt.bypass());
        assert_eq!(events(&rt).bypass_activate, 2);
    });
}

#[test]
fn a_scheduler_sees_the_counts_since_it_was_attached() {
    guard("events: per scheduler", || {
        let rt = rt_with(1, Last::default());
        // A lone task yielding is kept each time.
        run_tasks(&rt, 1, 300);
        let before = events(&rt).dispatch_keep_last;
        assert!(before >= 300);
        assert!(rt.detach());
        let last = Last::default();
        rt.attach(last.clone()).unwrap();
        rt.spawn(|| ()).join().unwrap();
        let seen = last.seen.lock().expect("running ran");
        assert!(seen.dispatch_keep_last < 300, "{seen:?}");
        // The runtime's totals keep everything.
        assert!(events(&rt).dispatch_keep_last >= before);
    });
}

#[test]
fn an_offline_cpu_counts_what_it_keeps_and_refills_for_its_pinned_task() {
    guard("events: offline CPU", || {
        let rt = rt_with(2, Aim(Arc::new(AtomicI32::new(-1))));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (kept_tx, kept_rx) = std::sync::mpsc::channel::<()>();
        let (wake_tx, wake_rx) = scx_rt::sync::channel::<()>(1);
        // Pinned to CPU 1: it keeps running there once CPU 1 is offline.
        let h = rt.spawn_on(1, move || {
            while go_rx.try_recv().is_err() {
                scx_rt::yield_now();
            }
            for _ in 0..50 {
                scx_rt::yield_now();
            }
            kept_tx.send(()).unwrap();
            // Blocks; its wake-up is enqueued on the offline CPU, where the
            // core places it itself (default slice).
            wake_rx.recv().unwrap();
        });
        rt.cpu_offline(1).unwrap();
        let base = rt.stats().cpus[1].events;
        go_tx.send(()).unwrap();
        kept_rx.recv().unwrap();
        let kept = rt.stats().cpus[1].events.since(base);
        // Each yield: nothing else may run there; kept, slice refilled.
        assert!(kept.dispatch_keep_last >= 50, "{kept:?}");
        assert!(kept.refill_slice_dfl >= 50, "{kept:?}");
        // The dump leaves out a CPU that runs nothing and has nothing
        // runnable: the task blocked.
        wait_until("the task to block", || {
            !rt.dump().lines().any(|l| l.starts_with("CPU 1 "))
        });
        let before = rt.stats().cpus[1].events;
        wake_tx.send(()).unwrap();
        h.join().unwrap();
        let woken = rt.stats().cpus[1].events.since(before);
        assert_eq!(woken.refill_slice_dfl, 1, "{woken:?}");
        assert_eq!(woken.dispatch_keep_last, 0, "{woken:?}");
    });
}
