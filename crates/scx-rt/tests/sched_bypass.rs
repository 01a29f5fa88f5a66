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
            ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
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
        // A scheduler that starts handing out what it holds owes the CPUs a
        // dispatch event (SPEC.md §5: kick, or they may sleep on): the
        // releasing side kicks, as a policy would.
        for c in 0..rt.nr_cpus() {
            rt.kick_cpu(c, KickFlags::empty()).unwrap();
        }
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

/// A FIFO-like policy with the given ops flags and, when `builtin_idle` is
/// off, its own idle tracking (`update_idle` without `KEEP_BUILTIN_IDLE`
/// turns the built-in masks off, as in the kernel).
struct Flagged {
    flags: scx_rt::OpsFlags,
    builtin_idle: bool,
    idle_updates: Arc<AtomicU64>,
}

impl Scheduler for Flagged {
    fn name(&self) -> &str {
        "flagged"
    }
    fn flags(&self) -> scx_rt::OpsFlags {
        self.flags
    }
    fn builtin_idle(&self) -> bool {
        self.builtin_idle
    }
    fn update_idle(&self, _ctx: &Ctx<'_>, _cpu: usize, _idle: bool) {
        self.idle_updates.fetch_add(1, Ordering::Relaxed);
    }
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev: usize,
        w: WakeFlags,
    ) -> i32 {
        if self.builtin_idle || self.flags.contains(scx_rt::OpsFlags::KEEP_BUILTIN_IDLE) {
            ctx.select_cpu_dfl(p, prev, w).0 as i32
        } else {
            prev as i32
        }
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if f.contains(EnqFlags::LAST) {
            // ENQ_LAST: the scheduler owes the CPU a follow-up event.
            ctx.dsq_insert(p, DSQ_LOCAL, ctx.slice_dfl(), EnqFlags::empty());
            ctx.kick_cpu(p.cpu(), KickFlags::empty());
            return;
        }
        ctx.dsq_insert(p, scx_rt::DSQ_GLOBAL, ctx.slice_dfl(), EnqFlags::empty());
    }
}

/// Wakes tasks (sleep, channel hand-offs) so that placement runs while the
/// runtime is in bypass.
fn wakeup_burst(rt: &Runtime, n: usize) {
    let hs: Vec<_> = (0..n)
        .map(|i| {
            rt.spawn(move || {
                scx_rt::sleep(std::time::Duration::from_micros(50 + (i as u64 % 7) * 10));
                let (tx, rx) = scx_rt::sync::channel::<usize>(1);
                let c = scx_rt::spawn(move || rx.recv().unwrap());
                tx.send(i).unwrap();
                assert_eq!(c.join().unwrap(), i);
                scx_rt::yield_now();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// Bypass placement is the runtime's own: for every combination of the
/// known ops flags, with built-in idle tracking on and off, attach (which
/// bypasses), an explicit bypass with wake-ups inside it, and detach
/// (which bypasses again) end the scheduler only with the detach.
#[test]
fn bypass_never_calls_a_helper_the_scheduler_forbade() {
    guard("bypass: every ops-flags combination", || {
        let rt = Runtime::builder().nr_cpus(2).pin(false).build().unwrap();
        let all = scx_rt::OpsFlags::ALL.bits();
        let bits: Vec<u64> = (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| all & b != 0)
            .collect();
        for combo in 0u64..(1 << bits.len()) {
            let flags = scx_rt::OpsFlags(
                bits.iter()
                    .enumerate()
                    .filter(|(i, _)| combo & (1 << i) != 0)
                    .fold(0, |a, (_, b)| a | b),
            );
            for builtin_idle in [true, false] {
                let idle_updates = Arc::new(AtomicU64::new(0));
                rt.attach(Flagged {
                    flags,
                    builtin_idle,
                    idle_updates: idle_updates.clone(),
                })
                .unwrap();
                let bg = {
                    let hs: Vec<_> = (0..8)
                        .map(|i| {
                            rt.spawn(move || {
                                for _ in 0..20 {
                                    scx_rt::sleep(std::time::Duration::from_micros(30 + i));
                                }
                            })
                        })
                        .collect();
                    hs
                };
                wakeup_burst(&rt, 8);
                {
                    let _b = rt.bypass();
                    wakeup_burst(&rt, 16);
                }
                wakeup_burst(&rt, 8);
                for h in bg {
                    h.join().unwrap();
                }
                assert!(
                    rt.detach(),
                    "{flags:?} builtin_idle={builtin_idle}: ended early: {:?}",
                    rt.exit_info()
                );
                let info = rt.exit_info().expect("a detach leaves exit info");
                assert_eq!(
                    info.kind,
                    scx_rt::ExitKind::Unreg,
                    "{flags:?} builtin_idle={builtin_idle}: {info:?}"
                );
                if !builtin_idle && !flags.contains(scx_rt::OpsFlags::KEEP_BUILTIN_IDLE) {
                    assert!(idle_updates.load(Ordering::Relaxed) > 0);
                }
            }
        }
    });
}
