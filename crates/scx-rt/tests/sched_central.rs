//! `schedulers::Central` (scx_central) and the scheduler timers it runs on:
//! every task completes under it, a burst deeper than the CPUs' local DSQs
//! runs every task exactly once through the batched passes, its timer
//! preempts a CPU-bound task on a worker CPU, the dispatch-buffer retry
//! keeps things moving with a batch of one, and a scheduler timer firing on
//! a busy CPU is an interrupt (the task resumes without a
//! `stopping`/`running` pair).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{guard, wait_until};
use scx_rt::schedulers::Central;
use scx_rt::{Ctx, DispatchCtx, EnqFlags, EnqueueCtx, InitCtx, Runtime, Scheduler, TaskRef};

fn central_rt(n: usize, c: Central) -> Runtime {
    Runtime::builder()
        .nr_cpus(n)
        .pin(false)
        .scheduler(c)
        .build()
        .expect("runtime build")
}

#[test]
fn every_task_completes_under_central() {
    guard("central: 2000 tasks", || {
        let c = Central::new();
        let stats = c.stats();
        let rt = central_rt(4, c);
        let sum = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..2000u64)
            .map(|i| {
                let sum = sum.clone();
                rt.spawn(move || {
                    for _ in 0..3 {
                        scx_rt::yield_now();
                    }
                    sum.fetch_add(i, Ordering::Relaxed);
                    i
                })
            })
            .collect();
        let got: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(got, 1999 * 2000 / 2);
        assert_eq!(sum.load(Ordering::Relaxed), got);
        assert_eq!(rt.scheduler_name(), "central", "{:?}", rt.exit_info());
        assert!(stats.enqueued.load(Ordering::Relaxed) >= 2000);
        assert!(stats.dispatched.load(Ordering::Relaxed) > 0);
    });
}

/// A burst far larger than the CPUs can take at once (their local DSQs
/// hold `local_depth` each, the dispatch buffer 5 tasks a pass) from
/// outside the runtime and from a task, while tasks yield, spin
/// through slice preemptions and land bound on their CPUs: every task runs
/// exactly once, and every task that went through the central FIFO left it
/// exactly once, for a CPU's local DSQ or the fallback DSQ. A pass that
/// dropped a popped task hangs the joins; one that dispatched a task and
/// kept it queued (or popped it twice) breaks the FIFO's balance.
#[test]
fn a_burst_deeper_than_the_cpus_runs_every_task_exactly_once() {
    guard("central: burst, exactly once", || {
        burst(3000, true, scx_rt::schedulers::central::CENTRAL_QUEUE_CAP)
    });
}

/// The same with more tasks than the central FIFO holds: the overflow goes
/// through the fallback DSQ, and still every task runs exactly once. The
/// FIFO holds 256 here (`Central::queue_cap`): with the default 4096 the
/// burst overflowed it only when the spawns outran the CPUs' draining,
/// which a faster drain made chance (one CI run saw no overflow).
#[test]
fn a_burst_past_the_fifo_cap_runs_every_task_exactly_once() {
    guard("central: overflowing burst, exactly once", || {
        burst(6000, false, 256)
    });
}

/// A central CPU alone on its runtime batches its own feed, from the FIFO
/// and from the fallback DSQ once the FIFO overflowed: a backlog of 6000
/// tasks (4096 in the FIFO, the rest in the fallback DSQ) runs in about a
/// pass per `local_depth` tasks, not a pass per task, each exactly once.
#[test]
fn alone_the_central_cpu_drains_a_backlog_in_batches() {
    guard("central: one CPU, batched backlog", || {
        const N: usize = 6000;
        let c = Central::new().slice(Duration::from_secs(10)).local_depth(4);
        let stats = c.stats();
        let rt = central_rt(1, c);
        // Hold the one CPU while the backlog builds (no pass runs: the
        // CPU is busy and its task has not run a slice).
        let release = Arc::new(AtomicBool::new(false));
        let holding = Arc::new(AtomicBool::new(false));
        let blocker = {
            let (release, holding) = (release.clone(), holding.clone());
            rt.spawn(move || {
                holding.store(true, Ordering::Release);
                while !release.load(Ordering::Acquire) {
                    scx_rt::preempt_point();
                }
            })
        };
        wait_until("the blocker runs", || holding.load(Ordering::Acquire));
        let counts = common::Counts::new(N);
        let passes0 = stats.passes.load(Ordering::Relaxed);
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let counts = counts.clone();
                rt.spawn(move || counts.hit(i))
            })
            .collect();
        release.store(true, Ordering::Release);
        blocker.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        counts.assert_exactly_once("one-CPU backlog");
        let passes = stats.passes.load(Ordering::Relaxed) - passes0;
        let overflows = stats.overflows.load(Ordering::Relaxed);
        assert!(overflows > 0, "the FIFO never overflowed");
        // About N / 4 with both batchings (1,501 in a run); a pass per
        // task from the fallback DSQ makes it 2,929.
        assert!(
            (passes as usize) < N * 3 / 10,
            "{passes} passes for {N} tasks ({overflows} through the fallback DSQ)"
        );
        rt.shutdown();
    });
}

/// `n` tasks spawned from outside the runtime and 1000 from a task
/// (the test above); `batched`: also check that passes topped CPUs up
/// and ran out of dispatch slots.
fn burst(n: usize, batched: bool, queue_cap: usize) {
    const INSIDE: usize = 1000;
    let c = Central::new()
        .slice(Duration::from_micros(50))
        .timer_interval(Duration::from_micros(50))
        .local_depth(3)
        .dispatch_max_batch(5)
        .queue_cap(queue_cap);
    let stats = c.stats();
    let rt = central_rt(3, c);
    let counts = common::Counts::new(n + INSIDE);
    let body = |counts: Arc<common::Counts>, i: usize| {
        move || {
            counts.hit(i);
            match i % 4 {
                0 => scx_rt::yield_now(),
                1 => {
                    // Long enough to meet the timer now and then.
                    let t = std::time::Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        scx_rt::preempt_point();
                    }
                }
                _ => {}
            }
            i
        }
    };
    let inner = {
        let counts = counts.clone();
        rt.spawn_on(1, move || {
            let hs: Vec<_> = (n..n + INSIDE)
                .map(|i| scx_rt::spawn(body(counts.clone(), i)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        })
    };
    let hs: Vec<_> = (0..n).map(|i| rt.spawn(body(counts.clone(), i))).collect();
    let outside: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let inside = inner.join().unwrap();
    assert_eq!(outside, (0..n).sum::<usize>());
    assert_eq!(inside, (n..n + INSIDE).sum::<usize>());
    counts.assert_exactly_once("central burst");
    assert_eq!(rt.scheduler_name(), "central", "{:?}", rt.exit_info());
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (enq, disp, bounced) = (
        ld(&stats.enqueued),
        ld(&stats.dispatched),
        ld(&stats.bounced),
    );
    assert_eq!(
        enq,
        disp + bounced,
        "tasks into the FIFO vs out of it (dispatched {disp}, bounced {bounced})"
    );
    // Every first run came through an enqueue: into the FIFO, or into
    // the fallback DSQ when the FIFO was full.
    assert!(enq + ld(&stats.overflows) >= (n + INSIDE) as u64);
    if batched {
        // The burst was deeper than a pass: CPUs were topped up and
        // passes ran out of dispatch slots.
        assert!(ld(&stats.topped_up) > 0);
        assert!(ld(&stats.retries) > 0);
    } else {
        assert!(ld(&stats.overflows) > 0);
    }
}

#[test]
fn central_timer_preempts_a_cpu_bound_task_on_a_worker_cpu() {
    guard("central: timer preemption", || {
        let c = Central::new()
            .slice(Duration::from_millis(2))
            .timer_interval(Duration::from_micros(500));
        let stats = c.stats();
        let rt = central_rt(2, c);
        let started = Arc::new(AtomicBool::new(false));
        let other_ran = Arc::new(AtomicBool::new(false));
        // A spinner on worker CPU 1 with an infinite slice: nothing but the
        // central timer's PREEMPT kick can make it give up the CPU.
        let (s2, o2) = (started.clone(), other_ran.clone());
        let spinner = rt.spawn_on(1, move || {
            s2.store(true, Ordering::Release);
            let mut spins = 0u64;
            while !o2.load(Ordering::Acquire) {
                scx_rt::preempt_point();
                spins += 1;
            }
            spins
        });
        wait_until("the spinner to start", || started.load(Ordering::Acquire));
        let before = rt.stats().cpus[1].preemptions;
        let o3 = other_ran.clone();
        let other = rt.spawn_on(1, move || {
            o3.store(true, Ordering::Release);
            scx_rt::current_cpu()
        });
        assert_eq!(other.join().unwrap(), Some(1));
        assert!(spinner.join().unwrap() > 0);
        assert!(rt.stats().cpus[1].preemptions > before);
        assert!(stats.timer_kicks.load(Ordering::Relaxed) >= 1);
    });
}

/// A task on the central CPU spawns a burst without switching: the central
/// CPU cannot start a dispatch pass in between (it runs only at a switch),
/// so the first child's enqueue kicks it and every other one finds the kick
/// outstanding.
#[test]
fn a_burst_of_enqueues_kicks_the_central_cpu_once_per_pass() {
    guard("central: kick batching", || {
        const N: u64 = 64;
        let c = Central::new();
        let stats = c.stats();
        let rt = central_rt(2, c);
        let before = stats.kicks_coalesced.load(Ordering::Relaxed);
        let sum = rt
            .spawn_on(0, || {
                let hs: Vec<_> = (0..N).map(|i| scx_rt::spawn(move || i)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            })
            .join()
            .unwrap();
        assert_eq!(sum, N * (N - 1) / 2);
        assert_eq!(rt.scheduler_name(), "central", "{:?}", rt.exit_info());
        let coalesced = stats.kicks_coalesced.load(Ordering::Relaxed) - before;
        assert!(
            coalesced >= N - 1,
            "{coalesced} of {N} enqueues found a kick outstanding"
        );
    });
}

#[test]
fn central_with_a_batch_of_one_retries_and_completes() {
    guard("central: batch of one", || {
        let c = Central::new().dispatch_max_batch(1);
        let stats = c.stats();
        let rt = central_rt(4, c);
        let done = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..500)
            .map(|_| {
                let done = done.clone();
                rt.spawn(move || {
                    scx_rt::yield_now();
                    scx_rt::sleep(Duration::from_micros(50));
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 500);
        assert_eq!(rt.scheduler_name(), "central", "{:?}", rt.exit_info());
        assert!(stats.retries.load(Ordering::Relaxed) > 0);
    });
}

#[test]
fn a_central_cpu_outside_the_runtime_fails_init_and_falls_back() {
    guard("central: bad central cpu", || {
        let rt = central_rt(2, Central::new().central_cpu(5));
        let hs: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
        let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 99 * 100 / 2);
        let info = common::wait_ejected(&rt);
        assert!(info.msg.contains("ops.init failed"), "{}", info.msg);
        assert_eq!(rt.scheduler_name(), "fifo");
    });
}

/// A global-FIFO scheduler with a periodic timer on CPU 1 that counts its
/// runs and the `running`/`stopping` calls on CPU 1 (where one task runs).
#[derive(Default)]
struct Ticker {
    fired: AtomicU64,
    fired_on: AtomicUsize,
    running: AtomicU64,
    stopping: AtomicU64,
}

#[derive(Clone, Default)]
struct TickerRef(Arc<Ticker>);

impl Scheduler for TickerRef {
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.timer_start(3, 200_000, 1);
        Ok(())
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, scx_rt::DSQ_GLOBAL, scx_rt::SLICE_INF, f);
    }
    fn dispatch(&self, _ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {}
    fn running(&self, ctx: &Ctx<'_>, _p: &TaskRef) {
        if ctx.cpu() == Some(1) {
            self.0.running.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn stopping(&self, ctx: &Ctx<'_>, _p: &TaskRef, _runnable: bool) {
        if ctx.cpu() == Some(1) {
            self.0.stopping.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        assert_eq!(id, 3);
        self.0.fired.fetch_add(1, Ordering::Relaxed);
        self.0
            .fired_on
            .store(ctx.cpu().unwrap_or(usize::MAX), Ordering::Relaxed);
        ctx.timer_start(3, 200_000, 1);
    }
}

#[test]
fn a_scheduler_timer_interrupts_a_busy_cpu_without_a_switch() {
    guard("scheduler timer on a busy CPU", || {
        let t = TickerRef::default();
        let st = t.0.clone();
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(t)
            .build()
            .unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (g2, s2, st2) = (go.clone(), stop.clone(), st.clone());
        let h = rt.spawn_on(1, move || {
            g2.store(true, Ordering::Release);
            let at_start = st2.fired.load(Ordering::Relaxed);
            while !s2.load(Ordering::Acquire) {
                scx_rt::preempt_point();
            }
            st2.fired.load(Ordering::Relaxed) - at_start
        });
        wait_until("the spinner to start", || go.load(Ordering::Acquire));
        let base = st.fired.load(Ordering::Relaxed);
        wait_until("five timer runs while the task spins", || {
            st.fired.load(Ordering::Relaxed) >= base + 5
        });
        stop.store(true, Ordering::Release);
        let seen_by_task = h.join().unwrap();
        assert!(
            seen_by_task >= 5,
            "timer ran {seen_by_task} times during the spin"
        );
        assert_eq!(st.fired_on.load(Ordering::Relaxed), 1);
        // One running at the start and one stopping at the end: the timer
        // runs were interrupts, not switches. (Only this task ran on CPU 1.)
        // The stopping of the exit comes after join returns.
        wait_until("the task's stopping", || {
            st.stopping.load(Ordering::Relaxed) >= 1
        });
        assert_eq!(st.running.load(Ordering::Relaxed), 1);
        assert_eq!(st.stopping.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn an_invalid_timer_id_is_a_scheduler_error() {
    struct Bad;
    impl Scheduler for Bad {
        fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
            ctx.timer_start(scx_rt::ops_timer::MAX_OPS_TIMERS, 1000, 0);
            Ok(())
        }
        fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
            ctx.dsq_insert(p, scx_rt::DSQ_GLOBAL, scx_rt::SLICE_DFL, f);
        }
    }
    guard("invalid timer id", || {
        let rt = common::rt_with(2, Bad);
        assert_eq!(rt.spawn(|| 7).join().unwrap(), 7);
        let info = common::wait_ejected(&rt);
        assert!(info.msg.contains("invalid timer id"), "{}", info.msg);
    });
}
