//! Hot swap (SPEC.md §1.4, §6.4, §6.5): `Runtime::attach` / `detach`
//! while tasks run. Every live task gets `init_task` + `enable` on attach
//! and `disable` + `exit_task` on detach, exactly once; attaching over an
//! attached scheduler is refused without disturbing it; a failing `init`
//! still gets `exit` and leaves the fallback; a hundred swaps under load
//! lose no task.
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{guard, Counts};
use scx_rt::{
    AttachError, Ctx, EnqFlags, EnqueueCtx, ExitInfo, ExitKind, ExitTaskArgs, InitCtx,
    InitTaskArgs, Runtime, Scheduler, TaskRef, DSQ_GLOBAL, SLICE_DFL,
};

#[derive(Default)]
struct Calls {
    init: AtomicU64,
    exit: AtomicU64,
    init_task: AtomicU64,
    init_task_fork: AtomicU64,
    exit_task: AtomicU64,
    enable: AtomicU64,
    disable: AtomicU64,
    /// Set when a callback saw a task in a state it should not be in.
    bad: AtomicBool,
}

/// A global-FIFO scheduler that counts its lifecycle callbacks and checks
/// their order per task (init_task before enable before disable before
/// exit_task) through a per-task marker.
struct Counting {
    name: &'static str,
    c: Arc<Calls>,
    fail_init: bool,
}

/// Per-task lifecycle marker: 1 = initialized, 2 = enabled.
struct Life(AtomicU64);

impl Scheduler for Counting {
    fn name(&self) -> &str {
        self.name
    }
    fn init(&self, _ctx: &InitCtx<'_>) -> Result<(), i32> {
        self.c.init.fetch_add(1, Ordering::SeqCst);
        if self.fail_init {
            Err(-19)
        } else {
            Ok(())
        }
    }
    fn exit(&self, _info: &ExitInfo) {
        self.c.exit.fetch_add(1, Ordering::SeqCst);
    }
    fn init_task(&self, _c: &InitCtx<'_>, p: &TaskRef, a: InitTaskArgs) -> Result<(), i32> {
        self.c.init_task.fetch_add(1, Ordering::SeqCst);
        if a.fork {
            self.c.init_task_fork.fetch_add(1, Ordering::SeqCst);
        }
        p.set_data(Life(AtomicU64::new(1)));
        Ok(())
    }
    fn enable(&self, _c: &Ctx<'_>, p: &TaskRef) {
        self.c.enable.fetch_add(1, Ordering::SeqCst);
        match p.data::<Life>() {
            Some(l) if l.0.swap(2, Ordering::SeqCst) == 1 => {}
            _ => self.c.bad.store(true, Ordering::SeqCst),
        }
    }
    fn disable(&self, _c: &Ctx<'_>, p: &TaskRef) {
        self.c.disable.fetch_add(1, Ordering::SeqCst);
        match p.data::<Life>() {
            Some(l) if l.0.swap(1, Ordering::SeqCst) == 2 => {}
            _ => self.c.bad.store(true, Ordering::SeqCst),
        }
    }
    fn exit_task(&self, _c: &Ctx<'_>, p: &TaskRef, _a: ExitTaskArgs) {
        self.c.exit_task.fetch_add(1, Ordering::SeqCst);
        match p.data::<Life>() {
            Some(l) if l.0.swap(0, Ordering::SeqCst) == 1 => {}
            _ => self.c.bad.store(true, Ordering::SeqCst),
        }
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
}

fn counting(name: &'static str) -> (Counting, Arc<Calls>) {
    let c = Arc::new(Calls::default());
    (
        Counting {
            name,
            c: c.clone(),
            fail_init: false,
        },
        c,
    )
}

fn fallback_rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

#[test]
fn attach_and_detach_reach_every_live_task_exactly_once() {
    guard("hot swap: lifecycle", || {
        let rt = fallback_rt(2);
        // Eight tasks blocked on a channel, alive across the swap.
        let (txs, blocked): (Vec<_>, Vec<_>) = (0..8)
            .map(|_| {
                let (tx, rx) = scx_rt::sync::channel::<u32>(0);
                (tx, rt.spawn(move || rx.recv().unwrap()))
            })
            .unzip();
        common::wait_until("the receivers to block", || rt.stats().live_tasks == 8);
        let (s, c) = counting("counting");
        rt.attach(s).unwrap();
        assert_eq!(rt.scheduler_name(), "counting");
        assert_eq!(c.init.load(Ordering::SeqCst), 1);
        assert_eq!(c.init_task.load(Ordering::SeqCst), 8, "every live task");
        assert_eq!(c.init_task_fork.load(Ordering::SeqCst), 0);
        assert_eq!(c.enable.load(Ordering::SeqCst), 8);
        // New tasks join through the fork path.
        let h = rt.spawn(|| 7);
        assert_eq!(h.join().unwrap(), 7);
        assert_eq!(c.init_task_fork.load(Ordering::SeqCst), 1);
        assert!(rt.detach());
        assert!(!rt.detach(), "nothing left to detach");
        assert_eq!(rt.scheduler_name(), "fifo");
        assert_eq!(c.exit.load(Ordering::SeqCst), 1);
        assert_eq!(
            c.disable.load(Ordering::SeqCst),
            c.enable.load(Ordering::SeqCst)
        );
        assert_eq!(
            c.exit_task.load(Ordering::SeqCst),
            c.init_task.load(Ordering::SeqCst)
        );
        assert!(!c.bad.load(Ordering::SeqCst), "lifecycle order violated");
        let info = rt.exit_info().unwrap();
        assert_eq!(info.kind, ExitKind::Unreg);
        // The blocked tasks still work under the fallback.
        for (i, tx) in txs.iter().enumerate() {
            tx.send(i as u32).unwrap();
        }
        let mut got: Vec<u32> = blocked.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    });
}

#[test]
fn attaching_over_an_attached_scheduler_is_refused_and_disturbs_nothing() {
    guard("hot swap: busy", || {
        let (s, c) = counting("first");
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(s)
            .build()
            .unwrap();
        let (s2, c2) = counting("second");
        assert_eq!(
            rt.attach(s2),
            Err(AttachError::Busy {
                attached: "first".to_string()
            })
        );
        assert_eq!(c2.init.load(Ordering::SeqCst), 0, "never initialized");
        assert_eq!(rt.scheduler_name(), "first");
        let hs: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
        assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 4950);
        assert_eq!(c.exit.load(Ordering::SeqCst), 0);
        assert_eq!(rt.stats().ejections, 0);
    });
}

#[test]
fn a_failing_init_still_gets_exit_and_leaves_the_fallback() {
    guard("hot swap: init fails", || {
        let rt = fallback_rt(2);
        let (mut s, c) = counting("broken");
        s.fail_init = true;
        match rt.attach(s) {
            Err(AttachError::InitFailed { name, code }) => {
                assert_eq!(name, "broken");
                assert_eq!(code, -19);
            }
            other => panic!("expected InitFailed, got {other:?}"),
        }
        assert_eq!(c.exit.load(Ordering::SeqCst), 1, "ops.exit still runs");
        assert_eq!(c.init_task.load(Ordering::SeqCst), 0);
        assert_eq!(rt.scheduler_name(), "fifo");
        let info = rt.exit_info().unwrap();
        assert!(info.msg.contains("ops.init failed (-19)"), "{}", info.msg);
        assert_eq!(rt.spawn(|| 3).join().unwrap(), 3);
        // And a good one attaches afterwards.
        let (s, _c) = counting("good");
        rt.attach(s).unwrap();
        assert_eq!(rt.scheduler_name(), "good");
        assert_eq!(rt.spawn(|| 4).join().unwrap(), 4);
    });
}

#[test]
fn a_hundred_swaps_under_load_lose_no_task() {
    guard("hot swap: 100 under load", || {
        let rt = Arc::new(fallback_rt(4));
        const N: usize = 3000;
        let counts = Counts::new(N);
        let lock = Arc::new(scx_rt::sync::Mutex::new(0u64));
        let (tx, rx) = scx_rt::sync::unbounded::<usize>();
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (counts, lock, tx) = (counts.clone(), lock.clone(), tx.clone());
                rt.spawn(move || {
                    counts.hit(i);
                    for k in 0..4 {
                        scx_rt::yield_now();
                        *lock.lock() += 1;
                        if (i + k) % 11 == 0 {
                            scx_rt::sleep(Duration::from_micros(50));
                        }
                    }
                    tx.send(i).unwrap();
                })
            })
            .collect();
        drop(tx);
        let swapper = {
            let rt = rt.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                for k in 0..100 {
                    let (s, c) = counting(if k % 2 == 0 { "even" } else { "odd" });
                    rt.attach(s).unwrap();
                    assert!(rt.detach());
                    all.push(c);
                }
                all
            })
        };
        let sum = rt.block_on(move || {
            let mut sum = 0;
            while let Ok(i) = rx.recv() {
                sum += i;
            }
            sum
        });
        let all = swapper.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sum, N * (N - 1) / 2);
        counts.assert_exactly_once("hot swap under load");
        assert_eq!(*lock.lock(), 4 * N as u64);
        for c in &all {
            assert_eq!(c.init.load(Ordering::SeqCst), 1);
            assert_eq!(c.exit.load(Ordering::SeqCst), 1);
            assert_eq!(
                c.exit_task.load(Ordering::SeqCst),
                c.init_task.load(Ordering::SeqCst),
                "every task that joined left"
            );
            assert_eq!(
                c.disable.load(Ordering::SeqCst),
                c.enable.load(Ordering::SeqCst)
            );
            assert!(!c.bad.load(Ordering::SeqCst), "lifecycle order violated");
        }
        assert_eq!(rt.scheduler_name(), "fifo");
    });
}
