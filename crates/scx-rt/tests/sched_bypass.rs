//! Bypass mode (SPEC.md §6.1) through `Runtime::bypass`: tasks the
//! scheduler holds are moved to the global FIFO and run; no placement
//! callback runs while bypassing; kicks from bypassing CPUs are dropped;
//! guards nest; leaving hands the queued tasks back through `enqueue`.
#![cfg(not(scx_rt_loom))]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::guard;
use parking_lot::Mutex;
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, KickFlags, Runtime, Scheduler, SelectCpuCtx, TaskRef,
    WakeFlags, DSQ_LOCAL, SLICE_DFL,
};

/// Keeps every task in a private queue and hands them out only once
/// `release` is set; counts its placement callbacks; kicks CPU 1 from
/// every `running` when `kick` is set.
#[derive(Default)]
struct Hoard {
    q: Mutex<VecDeque<TaskRef>>,
    release: AtomicBool,
    kick: AtomicBool,
    select_cpu: AtomicU64,
    enqueue: AtomicU64,
    dispatch: AtomicU64,
}

#[derive(Clone, Default)]
struct HoardRef(Arc<Hoard>);

impl Scheduler for HoardRef {
    fn select_cpu(
        &self,
        _c: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        self.0.select_cpu.fetch_add(1, Ordering::Relaxed);
        p.cpu() as i32
    }
    fn enqueue(&self, _ctx: &mut EnqueueCtx<'_>, p: &TaskRef, _f: EnqFlags) {
        self.0.enqueue.fetch_add(1, Ordering::Relaxed);
        self.0.q.lock().push_back(p.clone());
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        self.0.dispatch.fetch_add(1, Ordering::Relaxed);
        if !self.0.release.load(Ordering::Acquire) {
            return;
        }
        while ctx.dispatch_nr_slots() > 0 {
            let Some(p) = self.0.q.lock().pop_front() else {
                break;
            };
            // A stale entry (the task was taken back) is ignored by the
            // runtime; a task bound elsewhere lands in the global DSQ.
            ctx.dispatch(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
    }
    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        if self.0.kick.load(Ordering::Relaxed) {
            ctx.kick_cpu(1, KickFlags::empty());
        }
    }
}

fn rt(h: &HoardRef) -> Runtime {
    Runtime::builder()
        .nr_cpus(2)
        .pin(false)
        .scheduler(h.clone())
        .build()
        .unwrap()
}

fn counts(h: &Hoard) -> (u64, u64, u64) {
    (
        h.select_cpu.load(Ordering::SeqCst),
        h.enqueue.load(Ordering::SeqCst),
        h.dispatch.load(Ordering::SeqCst),
    )
}

#[test]
fn bypass_runs_what_the_scheduler_holds_without_asking_it() {
    guard("bypass: rescue", || {
        let h = HoardRef::default();
        let rt = rt(&h);
        let done = Arc::new(AtomicU64::new(0));
        let spawn = |n: u64| -> Vec<_> {
            (0..n)
                .map(|i| {
                    let done = done.clone();
                    rt.spawn(move || {
                        scx_rt::yield_now();
                        done.fetch_add(1, Ordering::SeqCst);
                        i
                    })
                })
                .collect()
        };
        let held = spawn(50);
        common::wait_until("50 tasks with the scheduler", || {
            h.0.enqueue.load(Ordering::SeqCst) >= 50
        });
        // Nothing dispatches them: only bypass can run them.
        assert_eq!(done.load(Ordering::SeqCst), 0);
        let g = rt.bypass();
        assert!(rt.is_bypassing());
        let at_bypass = counts(&h.0);
        let more = spawn(50);
        for hd in held.into_iter().chain(more) {
            hd.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 100);
        assert_eq!(
            counts(&h.0),
            at_bypass,
            "no select_cpu, enqueue or dispatch while bypassing"
        );
        drop(g);
        assert!(!rt.is_bypassing());
        // Back to the scheduler: new tasks reach enqueue again.
        let last = spawn(10);
        common::wait_until("enqueue after bypass", || {
            h.0.enqueue.load(Ordering::SeqCst) >= at_bypass.1 + 10
        });
        h.0.release.store(true, Ordering::Release);
        for hd in last {
            hd.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 110);
        assert_eq!(rt.stats().ejections, 0, "{:?}", rt.exit_info());
    });
}

#[test]
fn kicks_from_bypassing_cpus_are_dropped() {
    guard("bypass: kicks dropped", || {
        let h = HoardRef::default();
        h.0.release.store(true, Ordering::Release);
        let rt = rt(&h);
        let sent = |rt: &Runtime| rt.stats().cpus.iter().map(|c| c.kicks_sent).sum::<u64>();
        h.0.kick.store(true, Ordering::Relaxed);
        let g = rt.bypass();
        let before = sent(&rt);
        let hs: Vec<_> = (0..100).map(|_| rt.spawn(scx_rt::yield_now)).collect();
        for hd in hs {
            hd.join().unwrap();
        }
        assert_eq!(sent(&rt), before, "a bypassing CPU's kicks are dropped");
        drop(g);
        let hs: Vec<_> = (0..100).map(|_| rt.spawn(scx_rt::yield_now)).collect();
        for hd in hs {
            hd.join().unwrap();
        }
        assert!(sent(&rt) > before, "kicks go out again after bypass");
    });
}

#[test]
fn bypass_guards_nest() {
    let h = HoardRef::default();
    h.0.release.store(true, Ordering::Release);
    let rt = rt(&h);
    let a = rt.bypass();
    let b = rt.bypass();
    drop(a);
    assert!(rt.is_bypassing(), "one guard still alive");
    let e = h.0.enqueue.load(Ordering::SeqCst);
    assert_eq!(rt.spawn(|| 5).join().unwrap(), 5);
    assert_eq!(h.0.enqueue.load(Ordering::SeqCst), e);
    drop(b);
    assert!(!rt.is_bypassing());
    assert_eq!(rt.spawn(|| 6).join().unwrap(), 6);
    assert!(h.0.enqueue.load(Ordering::SeqCst) > e);
}
