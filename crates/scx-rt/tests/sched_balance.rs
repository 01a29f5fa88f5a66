//! The balance step follows sched_ext's decision order (SPEC.md §3.6,
//! §11 invariants 10 and 11): keep prev with slice left -> local DSQ ->
//! global DSQ -> dispatch loop (at most 32 rounds, then a self-kick) ->
//! keep prev without slice unless ENQ_LAST -> idle. Recorded with
//! `Builder::record_balance` on one CPU, where the order is deterministic.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use scx_rt::BalanceStep::{self, *};
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, InitTaskArgs, KickFlags, OpsFlags, Runtime,
    Scheduler, SelectCpuCtx, TaskRef, WakeFlags, DSQ_GLOBAL, DSQ_LOCAL, SLICE_DFL,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Local,
    Global,
    Own,
}

/// Routes the n-th task by `routes[n]`; keeps `Own` tasks until dispatch.
struct Probe {
    routes: Vec<Route>,
    next: AtomicUsize,
    own: Mutex<VecDeque<TaskRef>>,
    keep_slice_on_yield: bool,
    enq_last: bool,
    /// Dispatch a task the scheduler does not own every round (a dispatch
    /// the core drops, so the loop never finds work). Not prev: dispatching
    /// prev refills its slice, which keeps it (SPEC.md §3.6 step 7c).
    spin_dispatch: Option<TaskRef>,
}

impl Probe {
    fn new(routes: Vec<Route>) -> Self {
        Self {
            routes,
            next: AtomicUsize::new(0),
            own: Mutex::new(VecDeque::new()),
            keep_slice_on_yield: false,
            enq_last: false,
            spin_dispatch: None,
        }
    }
}

impl Scheduler for Probe {
    fn flags(&self) -> OpsFlags {
        if self.enq_last {
            OpsFlags::ENQ_LAST
        } else {
            OpsFlags::empty()
        }
    }

    fn init_task(&self, _c: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        p.set_data(*self.routes.get(n).unwrap_or(&Route::Local));
        Ok(())
    }

    fn select_cpu(
        &self,
        _c: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        p.cpu() as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        if f.contains(EnqFlags::LAST) {
            // With ENQ_LAST the scheduler owes the CPU a follow-up event
            // (SPEC.md §3.6): kick our own CPU.
            ctx.kick_cpu(ctx.cpu().unwrap(), KickFlags::empty());
        }
        match *p.data::<Route>().unwrap() {
            Route::Local => ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f),
            Route::Global => ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f),
            Route::Own => self.own.lock().push_back(p.clone()),
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, prev: Option<&TaskRef>) {
        if let Some(stale) = &self.spin_dispatch {
            ctx.dsq_insert(stale, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
            return;
        }
        let _ = prev;
        if let Some(p) = self.own.lock().pop_front() {
            ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
    }

    fn yield_(&self, _c: &Ctx<'_>, from: &TaskRef, _to: Option<&TaskRef>) -> bool {
        if !self.keep_slice_on_yield {
            from.set_slice(0);
        }
        false
    }
}

fn rt(p: Probe) -> Runtime {
    Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .record_balance(true)
        .scheduler(p)
        .build()
        .unwrap()
}

/// The trace without the idle passes ([Dispatch, Idle]) of a CPU with
/// nothing to do, which come and go with timing.
fn busy_passes(t: &[BalanceStep]) -> Vec<BalanceStep> {
    let mut out = Vec::new();
    let mut pass = Vec::new();
    for &s in t {
        pass.push(s);
        if !matches!(s, Dispatch | LoopCap) {
            if pass != [Dispatch, Idle] {
                out.extend(pass.iter().copied());
            }
            pass.clear();
        }
    }
    out
}

#[test]
fn local_then_global_then_dispatch_then_idle() {
    // T0 (local) spawns L (local), G (global), O (kept by the scheduler).
    let rt = rt(Probe::new(vec![
        Route::Local,
        Route::Local,
        Route::Global,
        Route::Own,
    ]));
    let _ = rt.take_balance_trace(0);
    rt.spawn(|| {
        let _l = scx_rt::spawn(|| ());
        let _g = scx_rt::spawn(|| ());
        let _o = scx_rt::spawn(|| ());
    })
    .join()
    .unwrap();
    rt.shutdown();
    let t = busy_passes(&rt.take_balance_trace(0));
    assert_eq!(
        t,
        vec![Local, Local, Global, Dispatch, Local],
        "T0 from local, L from local, G from global, O through dispatch"
    );
}

#[test]
fn yield_with_slice_left_keeps_prev() {
    let mut p = Probe::new(vec![Route::Local]);
    p.keep_slice_on_yield = true;
    let rt = rt(p);
    rt.spawn(scx_rt::yield_now).join().unwrap();
    rt.shutdown();
    let t = busy_passes(&rt.take_balance_trace(0));
    assert_eq!(
        t,
        vec![Local, KeepPrev],
        "step 1 keeps a task with slice left"
    );
}

#[test]
fn yield_without_slice_goes_through_dispatch_then_keeps_prev_last() {
    let rt = rt(Probe::new(vec![Route::Local]));
    rt.spawn(scx_rt::yield_now).join().unwrap();
    rt.shutdown();
    let t = busy_passes(&rt.take_balance_trace(0));
    assert_eq!(
        t,
        vec![Local, Dispatch, KeepPrevLast],
        "slice 0: local, global and dispatch are tried before prev is kept"
    );
}

#[test]
fn enq_last_hands_prev_back_to_enqueue() {
    let mut p = Probe::new(vec![Route::Local]);
    p.enq_last = true;
    let rt = rt(p);
    rt.spawn(scx_rt::yield_now).join().unwrap();
    rt.shutdown();
    let t = rt.take_balance_trace(0);
    // Balance finds nothing and does not keep prev; prev goes to enqueue
    // with LAST, which puts it on the local DSQ for the next pass.
    assert!(
        t.windows(4).any(|w| w == [Local, Dispatch, Idle, Local]),
        "trace {t:?}"
    );
    assert!(!t.contains(&KeepPrevLast), "ENQ_LAST never keeps prev");
}

#[test]
fn dispatch_loop_is_capped_at_32_rounds() {
    let mut p = Probe::new(vec![Route::Local]);
    p.spin_dispatch = Some(scx_rt::Task::new_token(u64::MAX));
    let rt = rt(p);
    rt.spawn(scx_rt::yield_now).join().unwrap();
    rt.shutdown();
    let t = rt.take_balance_trace(0);
    let caps: Vec<usize> = (0..t.len()).filter(|&i| t[i] == LoopCap).collect();
    assert!(
        !caps.is_empty(),
        "a dispatch that never lands must hit the cap"
    );
    for &i in &caps {
        assert!(
            i >= 32 && t[i - 32..i].iter().all(|s| *s == Dispatch),
            "32 rounds before a cap"
        );
        assert!(
            i < 32 || t[i - 32] == Dispatch && (i == 32 || t[i - 33] != Dispatch),
            "exactly 32"
        );
        assert!(
            matches!(t.get(i + 1), Some(KeepPrevLast | Idle) | None),
            "the pass ends after the cap"
        );
    }
    assert!(
        caps.iter().any(|&i| t.get(i + 1) == Some(&KeepPrevLast)),
        "the yielding task is kept after its capped pass"
    );
}
