//! The helper names of Linux 6.13 and later, the deprecated names before
//! them, and `now()` (`scx_bpf_now`): the rq clock inside a scheduling
//! step, a read clock elsewhere, never going backwards on one CPU.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Scheduler, TaskRef, DSQ_LOCAL, SLICE_DFL,
};

const DSQ: u64 = 3;

/// A scheduler written against the names before Linux 6.13: direct
/// `dispatch_vtime` into a user DSQ and `dispatch` to the local DSQ from
/// `enqueue`, `dispatch` from a private FIFO in `dispatch`, and `consume`.
/// (`SelectCpuCtx::dispatch` is the same alias; on one CPU `select_cpu` is
/// not consulted, as for a kernel task allowed on one CPU.)
#[allow(deprecated)]
mod old_names {
    use super::*;

    pub struct Old {
        pub tag: Arc<std::sync::atomic::AtomicU64>,
        pub q: Arc<TaskQueue>,
    }

    impl Scheduler for Old {
        fn name(&self) -> &str {
            "old-names"
        }
        fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
            ctx.create_dsq(DSQ, -1).map_err(|_| -17)
        }
        fn init_task(
            &self,
            _ctx: &InitCtx<'_>,
            p: &TaskRef,
            _args: scx_rt::InitTaskArgs,
        ) -> Result<(), i32> {
            p.set_data(Tag(self.tag.load(std::sync::atomic::Ordering::SeqCst)));
            Ok(())
        }
        fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
            match tag_of(p) {
                // Through the private FIFO, then `dispatch` in `dispatch`.
                t if t % 2 == 1 => self.q.push(p),
                // vtime = 100 - tag: the even tags run in reverse order.
                t if t != NO_TAG => ctx.dispatch_vtime(p, DSQ, SLICE_DFL, 100 - t, f),
                _ => ctx.dispatch(p, DSQ_LOCAL, SLICE_DFL, f),
            }
        }
        fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {
            if let Some(p) = self.q.pop_for_any() {
                ctx.dispatch(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
                return;
            }
            ctx.consume(DSQ);
        }
    }
}

#[test]
fn the_names_before_6_13_still_work() {
    let (order, exit) = guard("old names", || {
        let tag = Arc::new(std::sync::atomic::AtomicU64::new(NO_TAG));
        let rt = rt_with(
            1,
            old_names::Old {
                tag: tag.clone(),
                q: TaskQueue::new(),
            },
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs = spawn_tagged_children(&rt, &tag, 8, &log);
        join_tagged(hs);
        rt.shutdown();
        let order = log.lock().clone();
        (order, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    // The odd tags go through the private FIFO (dispatched one per
    // `dispatch` call, before the DSQ is consumed), then the even tags come
    // out of the vtime DSQ, lowest vtime (highest tag) first.
    assert_eq!(order, vec![1, 3, 5, 7, 6, 4, 2, 0]);
}

/// Every value `now()` returned on CPU 0's worker, in call order, from
/// which callback (calls on other threads, such as a spawn's `enqueue` on
/// the main thread, are on no CPU and are left out).
#[derive(Default)]
struct Clock {
    log: Mutex<Vec<(&'static str, u64)>>,
    /// `dispatch`'s two reads, 50 µs of busy time apart.
    pairs: Mutex<Vec<(u64, u64)>>,
}

/// A global FIFO (one user DSQ) that reads `now()` in its callbacks.
struct NowSched(Arc<Clock>);

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

impl Scheduler for NowSched {
    fn name(&self) -> &str {
        "now"
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.timer_start(0, 200_000, 0);
        ctx.create_dsq(DSQ, -1).map_err(|_| -17)
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        let t = ctx.now();
        if scx_rt::current_cpu() == Some(0) {
            self.0.log.lock().push(("enqueue", t));
        }
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _p: Option<&TaskRef>) {
        let a = ctx.now();
        spin(Duration::from_micros(50));
        let b = ctx.now();
        self.0.pairs.lock().push((a, b));
        self.0.log.lock().push(("dispatch", b));
        ctx.dsq_move_to_local(DSQ);
    }
    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        self.0.log.lock().push(("running", ctx.now()));
    }
    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        // No rq lock: a read clock, moving between two reads.
        let a = ctx.now();
        spin(Duration::from_micros(50));
        let b = ctx.now();
        assert!(b > a, "now() did not move in a timer: {a} then {b}");
        self.0.log.lock().push(("timer", b));
        if self.0.log.lock().iter().filter(|e| e.0 == "timer").count() < 5 {
            ctx.timer_start(id, 200_000, 0);
        }
    }
}

#[test]
fn now_is_the_rq_clock_in_a_step_and_monotonic_on_a_cpu() {
    let clock = Arc::new(Clock::default());
    let c = clock.clone();
    let exit = guard("now", move || {
        let rt = rt_with(1, NowSched(c.clone()));
        for _ in 0..5 {
            let hs: Vec<_> = (0..10).map(|i| rt.spawn(move || i)).collect();
            for h in hs {
                h.join().unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        wait_until("five timer runs", || {
            c.log.lock().iter().filter(|e| e.0 == "timer").count() >= 5
        });
        rt.shutdown();
        rt.exit_info()
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    let pairs = clock.pairs.lock().clone();
    assert!(pairs.len() >= 10, "dispatch ran {} times", pairs.len());
    for (a, b) in &pairs {
        // Inside the step the rq clock answers: 50 µs of work later, the
        // same value.
        assert_eq!(a, b, "now() in one dispatch call moved");
    }
    let log = clock.log.lock().clone();
    // One CPU: every call is on it, in this order.
    for w in log.windows(2) {
        assert!(
            w[1].1 >= w[0].1,
            "now() went backwards on one CPU: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let first = log.first().unwrap().1;
    let last = log.last().unwrap().1;
    assert!(
        last - first >= 5_000_000,
        "the clock covered {} ns of a run that slept 5 ms",
        last - first
    );
}
