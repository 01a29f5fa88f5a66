//! Task weights (`Runtime::spawn_weighted`): the scheduler sees the weight
//! in `init_task`, `enable` and `set_weight` (SPEC.md §1: the weight is
//! set before `enable`, and `set_weight` follows it); a weight outside the
//! cgroup scale is refused with a clear error and spawns nothing.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::consts::{WEIGHT_DFL, WEIGHT_MAX, WEIGHT_MIN};
use scx_rt::{
    Ctx, EnqFlags, EnqueueCtx, InitCtx, InitTaskArgs, Scheduler, SpawnError, TaskRef, DSQ_GLOBAL,
    SLICE_DFL,
};

/// Records (callback, weight) for every task.
#[derive(Default)]
struct Weights(Arc<Mutex<Vec<(&'static str, u32)>>>);

impl Scheduler for Weights {
    fn name(&self) -> &str {
        "weights"
    }
    fn init_task(&self, _ctx: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        self.0.lock().push(("init_task", p.weight()));
        Ok(())
    }
    fn enable(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        self.0.lock().push(("enable", p.weight()));
    }
    fn set_weight(&self, _ctx: &Ctx<'_>, _p: &TaskRef, weight: u32) {
        self.0.lock().push(("set_weight", weight));
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
}

#[test]
fn the_scheduler_sees_the_spawned_weight_from_init_task_on() {
    let s = Weights::default();
    let log = s.0.clone();
    let rt = rt_with(1, s);
    for w in [WEIGHT_MIN, 8668, WEIGHT_MAX] {
        log.lock().clear();
        let h = rt.spawn_weighted(w, move || w).unwrap();
        assert_eq!(h.join().unwrap(), w);
        assert_eq!(
            *log.lock(),
            vec![("init_task", w), ("enable", w), ("set_weight", w)]
        );
    }
    log.lock().clear();
    rt.spawn(|| ()).join().unwrap();
    assert_eq!(log.lock()[2], ("set_weight", WEIGHT_DFL), "spawn: nice 0");
    rt.shutdown();
    assert!(rt.exit_info().is_none());
}

#[test]
fn a_weight_outside_the_cgroup_scale_is_refused() {
    let s = Weights::default();
    let log = s.0.clone();
    let rt = rt_with(1, s);
    for w in [0, WEIGHT_MAX + 1, u32::MAX] {
        let e = rt.spawn_weighted(w, || ()).err();
        assert_eq!(
            e,
            Some(SpawnError::InvalidWeight {
                weight: w,
                min: 1,
                max: 10_000
            })
        );
    }
    let e = rt.spawn_weighted(0, || ()).err().unwrap();
    assert_eq!(e.to_string(), "task weight 0 is outside 1..=10000");
    assert!(log.lock().is_empty(), "nothing was spawned");
    assert_eq!(rt.stats().live_tasks, 0);
    rt.shutdown();
}
