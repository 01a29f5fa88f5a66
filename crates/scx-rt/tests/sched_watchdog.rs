//! The watchdog (SPEC.md §6.2): a runnable task the scheduler never runs
//! ends it with `ErrorStall` within (timeout, 1.5 × timeout], naming the
//! task and its CPU, with the dump; a CPU stuck in a task that ignores a
//! pending reschedule is reported too; every task still completes under
//! the fallback.
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{guard, wait_ejected};
use scx_rt::{
    DispatchCtx, EnqFlags, EnqueueCtx, ExitKind, KickFlags, Runtime, Scheduler, SelectCpuCtx,
    TaskRef, WakeFlags, DSQ_GLOBAL, SLICE_DFL,
};

const TIMEOUT_MS: u32 = 400;

/// Sends every task to the global DSQ except the ones it "forgets": those
/// go to a user DSQ it never consumes. A stalling policy.
struct Forgetful {
    forget: Arc<AtomicBool>,
}

impl Scheduler for Forgetful {
    fn timeout_ms(&self) -> u32 {
        TIMEOUT_MS
    }
    fn init(&self, ctx: &scx_rt::InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(7, -1).map_err(|_| -1)
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
        let dsq = if self.forget.load(Ordering::Relaxed) {
            7
        } else {
            DSQ_GLOBAL
        };
        ctx.dsq_insert(p, dsq, SLICE_DFL, f);
    }
    fn dispatch(&self, _ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {}
}

#[test]
fn a_task_the_scheduler_never_runs_is_a_stall_within_the_window() {
    guard("watchdog: runnable stall", || {
        let forget = Arc::new(AtomicBool::new(false));
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(Forgetful {
                forget: forget.clone(),
            })
            .build()
            .unwrap();
        assert_eq!(rt.spawn(|| 1).join().unwrap(), 1);
        forget.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        let h = rt.spawn(|| 2);
        let id = h.id();
        // The forgotten task still completes, under the fallback.
        assert_eq!(h.join().unwrap(), 2);
        let waited = t0.elapsed();
        let info = wait_ejected(&rt);
        assert_eq!(info.kind, ExitKind::ErrorStall);
        assert!(
            info.msg.contains(&format!("task {id} on cpu "))
                && info.msg.contains("failed to run for"),
            "{}",
            info.msg
        );
        // Not before the timeout. (The upper bound, 1.5 × timeout, is the
        // watchdog's period; it is not asserted: a loaded machine may delay
        // the timer thread itself.)
        assert!(waited >= Duration::from_millis(u64::from(TIMEOUT_MS)));
        assert!(info.dump.contains(&format!("{id}")), "dump names the task");
        assert_eq!(rt.scheduler_name(), "fifo");
    });
}

/// The global FIFO with a short timeout, kicking CPU 1 with PREEMPT from
/// every enqueue of a task spawned while `kick` is set.
struct Kicker {
    kick: Arc<AtomicBool>,
}

impl Scheduler for Kicker {
    fn timeout_ms(&self) -> u32 {
        TIMEOUT_MS
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        if self.kick.load(Ordering::Relaxed) {
            ctx.kick_cpu(1, KickFlags::PREEMPT);
        }
    }
}

#[test]
fn a_cpu_stuck_in_a_task_without_preemption_points_is_reported() {
    guard("watchdog: stuck cpu", || {
        let kick = Arc::new(AtomicBool::new(false));
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(Kicker { kick: kick.clone() })
            .build()
            .unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (release.clone(), started.clone());
        // Blocks its worker without ever reaching a preemption point, as
        // a blocking system call would.
        let stuck = rt.spawn_on(1, move || {
            s2.store(true, Ordering::Release);
            while !r2.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            scx_rt::task_id().unwrap()
        });
        common::wait_until("the blocking task", || started.load(Ordering::Acquire));
        kick.store(true, Ordering::Relaxed);
        // Other CPUs go on; the kick asks CPU 1 to reschedule.
        assert_eq!(rt.spawn_on(0, || 5).join().unwrap(), 5);
        let info = wait_ejected(&rt);
        release.store(true, Ordering::Release);
        let id = stuck.join().unwrap();
        assert_eq!(info.kind, ExitKind::ErrorStall);
        assert!(
            info.msg.contains(&format!("cpu 1 stuck in task {id}")),
            "{}",
            info.msg
        );
        assert!(info.msg.contains("spawn_blocking"), "{}", info.msg);
    });
}

#[test]
fn a_healthy_scheduler_with_a_short_timeout_is_left_alone() {
    guard("watchdog: no false alarm", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(Kicker {
                kick: Arc::new(AtomicBool::new(false)),
            })
            .build()
            .unwrap();
        // Long-lived tasks that keep yielding and sleeping for several
        // timeouts: never a stall.
        let deadline = Instant::now() + Duration::from_millis(3 * u64::from(TIMEOUT_MS));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                rt.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        scx_rt::yield_now();
                        if n.is_multiple_of(64) {
                            scx_rt::sleep(Duration::from_micros(200));
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for h in hs {
            assert!(h.join().unwrap() > 0);
        }
        assert_eq!(rt.stats().ejections, 0, "{:?}", rt.exit_info());
    });
}
