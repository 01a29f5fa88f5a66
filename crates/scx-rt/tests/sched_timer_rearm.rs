//! A scheduler timer re-armed from its own callback (a periodic timer, as
//! scx_central's): it never fires before its deadline, and its re-arms do
//! not wake the timer thread (`ops_timer` docs: the thread expects them).
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Scheduler, TaskRef, DSQ_GLOBAL, SLICE_INF,
};

const PERIOD_NS: u64 = 100_000;
const RUNS: usize = 40;

#[derive(Default)]
struct Log {
    /// `now()` at each callback run.
    runs: Mutex<Vec<u64>>,
    /// The last run is done.
    done: AtomicBool,
}

struct Periodic(Arc<Log>);

impl Scheduler for Periodic {
    fn name(&self) -> &str {
        "periodic-timer"
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.timer_start(0, PERIOD_NS, 0);
        Ok(())
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        // No slice deadline: nothing but the scheduler timer involves the
        // timer thread.
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_INF, f);
    }
    fn dispatch(&self, _ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {}
    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        let mut runs = self.0.runs.lock();
        runs.push(ctx.now());
        if runs.len() < RUNS {
            ctx.timer_start(id, PERIOD_NS, 0);
        } else {
            self.0.done.store(true, Ordering::Release);
        }
    }
}

/// Whether the timer thread was rung fewer than `RUNS / 2` times while a
/// periodic timer ran `RUNS` times, with the worker `busy` (running a task
/// that reaches preemption points) or idle.
fn periodic_timer(busy: bool) {
    let log = Arc::new(Log::default());
    let l = log.clone();
    guard("periodic timer", move || {
        let rt = rt_with(1, Periodic(l.clone()));
        let rings0 = rt.stats().timer_rings;
        let spinner = busy.then(|| {
            let l = l.clone();
            rt.spawn(move || {
                while !l.done.load(Ordering::Acquire) {
                    scx_rt::preempt_point();
                }
            })
        });
        wait_until("the periodic timer's runs", || {
            l.done.load(Ordering::Acquire)
        });
        if let Some(h) = spinner {
            h.join().unwrap();
        }
        let rings = rt.stats().timer_rings - rings0;
        rt.shutdown();
        let runs = l.runs.lock().clone();
        assert_eq!(runs.len(), RUNS);
        for w in runs.windows(2) {
            assert!(
                w[1] - w[0] >= PERIOD_NS,
                "a run {} ns after the previous one, period {PERIOD_NS} ns",
                w[1] - w[0]
            );
        }
        // Before the thread expected re-arms, every run rang it once.
        assert!(
            (rings as usize) < RUNS / 2,
            "{rings} rings of the timer thread for {RUNS} runs (busy: {busy})"
        );
    });
}

#[test]
fn a_timer_rearmed_from_its_callback_rings_nobody_on_a_busy_cpu() {
    periodic_timer(true);
}

#[test]
fn a_timer_rearmed_from_its_callback_rings_nobody_on_an_idle_cpu() {
    periodic_timer(false);
}
