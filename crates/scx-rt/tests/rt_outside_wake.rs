//! A thread outside the runtime never waits for a busy CPU's rq lock to
//! wake a task there: it queues the wake-up for that CPU instead
//! (`core::enqueue::wake_up` docs).
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use scx_rt::{DispatchCtx, EnqFlags, EnqueueCtx, Scheduler, TaskRef, DSQ_GLOBAL, SLICE_DFL};

#[derive(Default)]
struct Flags {
    /// The next `dispatch` holds its CPU's rq lock until the outside spawn
    /// returned (or a second passed).
    armed: AtomicBool,
    /// That `dispatch` runs: the outside thread may spawn.
    go: AtomicBool,
    /// The outside spawn returned.
    spawned: AtomicBool,
    /// It returned while `dispatch` still held the lock.
    in_time: AtomicBool,
}

struct Holder(Arc<Flags>);

impl Scheduler for Holder {
    fn name(&self) -> &str {
        "rq-lock-holder"
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
    fn dispatch(&self, _ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {
        // `dispatch` runs under the CPU's rq lock (as `ops.dispatch`).
        if !self.0.armed.swap(false, Ordering::AcqRel) {
            return;
        }
        self.0.go.store(true, Ordering::Release);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            if self.0.spawned.load(Ordering::Acquire) {
                self.0.in_time.store(true, Ordering::Release);
                return;
            }
            std::hint::spin_loop();
        }
    }
}

#[test]
fn an_outside_spawn_does_not_wait_for_a_busy_rq_lock() {
    let f = Arc::new(Flags::default());
    let f2 = f.clone();
    guard("outside spawn vs a held rq lock", move || {
        let rt = rt_with(1, Holder(f2.clone()));
        let a = {
            let f = f2.clone();
            rt.spawn(move || {
                // The step after this yield (the CPU busy, not idle) calls
                // `dispatch`.
                f.armed.store(true, Ordering::Release);
                scx_rt::yield_now();
            })
        };
        wait_until("dispatch under the rq lock", || {
            f2.go.load(Ordering::Acquire)
        });
        let b = rt.spawn(|| 7);
        f2.spawned.store(true, Ordering::Release);
        a.join().unwrap();
        assert_eq!(b.join().unwrap(), 7);
        rt.shutdown();
    });
    assert!(
        f.in_time.load(Ordering::Acquire),
        "the outside spawn waited for the rq lock `dispatch` held"
    );
}
