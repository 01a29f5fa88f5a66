//! Bad configuration gets a clear error, never a panic, a crash or a spin
//! (issue 11, section 3): a scheduler the kernel would refuse at load
//! (SPEC.md §1.2), a stack the OS refuses to map, and the runtime's entry
//! points given a CPU or a duration out of range. `Builder` values are in
//! rt_build.rs.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use scx_rt::consts::{DSP_MAX_BATCH, OPS_NAME_MAX, WATCHDOG_MAX_TIMEOUT_MS};
use scx_rt::{
    AttachError, BuildError, EnqFlags, EnqueueCtx, ExitTaskArgs, InitCtx, InitTaskArgs, InvalidOps,
    JoinError, KickError, KickFlags, OpsFlags, Runtime, Scheduler, SpawnError, TaskRef, DSQ_GLOBAL,
    SLICE_DFL,
};

/// A global-FIFO scheduler whose load-time fields are set by the test, and
/// which counts the callbacks that must not run for a refused scheduler
/// (`init`) and the task lifecycle (`init_task`, `exit_task`).
#[derive(Clone)]
struct Cfg {
    name: String,
    flags: OpsFlags,
    timeout_ms: u32,
    max_batch: u32,
    inits: Arc<AtomicUsize>,
    init_tasks: Arc<AtomicUsize>,
    exit_tasks: Arc<AtomicUsize>,
}

impl Cfg {
    fn new() -> Self {
        Self {
            name: "cfg".to_string(),
            flags: OpsFlags::empty(),
            timeout_ms: 0,
            max_batch: 0,
            inits: Arc::default(),
            init_tasks: Arc::default(),
            exit_tasks: Arc::default(),
        }
    }
    fn name(mut self, n: impl Into<String>) -> Self {
        self.name = n.into();
        self
    }
    fn flags(mut self, f: OpsFlags) -> Self {
        self.flags = f;
        self
    }
    fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }
    fn max_batch(mut self, n: u32) -> Self {
        self.max_batch = n;
        self
    }
}

impl Scheduler for Cfg {
    fn name(&self) -> &str {
        &self.name
    }
    fn flags(&self) -> OpsFlags {
        self.flags
    }
    fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }
    fn dispatch_max_batch(&self) -> u32 {
        self.max_batch
    }
    fn init(&self, _ctx: &InitCtx<'_>) -> Result<(), i32> {
        self.inits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn init_task(&self, _ctx: &InitCtx<'_>, _p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        self.init_tasks.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn exit_task(&self, _ctx: &scx_rt::Ctx<'_>, _p: &TaskRef, _a: ExitTaskArgs) {
        self.exit_tasks.fetch_add(1, Ordering::SeqCst);
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
}

fn unpinned(n: usize) -> scx_rt::Builder {
    Runtime::builder().nr_cpus(n).pin(false)
}

/// `s` is refused by `build` with `expect`, and by `attach` on a running
/// runtime with the same error, without any of its callbacks running and
/// without disturbing the runtime. Returns the error's message.
fn refused_everywhere(s: Cfg, expect: InvalidOps) -> String {
    guard("refused scheduler", move || {
        let e = unpinned(1)
            .scheduler(s.clone())
            .build()
            .err()
            .expect("an invalid scheduler built");
        match &e {
            BuildError::Scheduler(inner) => assert_eq!(*inner, expect),
            other => panic!("expected BuildError::Scheduler, got {other:?}"),
        }
        let rt = unpinned(2).build().unwrap();
        let e2 = rt
            .attach(s.clone())
            .expect_err("an invalid scheduler attached");
        assert_eq!(e2, AttachError::Invalid(expect.clone()));
        assert_eq!(e2.to_string(), format!("scheduler refused: {expect}"));
        // Refused before anything happened: no init, no task joined it,
        // nothing ejected, the fallback still runs tasks.
        assert_eq!(s.inits.load(Ordering::SeqCst), 0);
        assert_eq!(s.init_tasks.load(Ordering::SeqCst), 0);
        assert_eq!(
            rt.scheduler_name(),
            "work-stealing",
            "the default still runs"
        );
        assert_eq!(rt.stats().ejections, 0);
        assert!(rt.exit_info().is_none());
        assert_eq!(rt.block_on(|| 5), 5);
        // Also refused while another scheduler is attached: the check
        // comes before "busy", as the kernel's comes at load.
        rt.attach(Cfg::new()).unwrap();
        assert_eq!(
            rt.attach(s.clone()),
            Err(AttachError::Invalid(expect.clone()))
        );
        assert_eq!(rt.scheduler_name(), "cfg");
        assert_eq!(rt.block_on(|| 6), 6);
        let msg = e.to_string();
        assert_eq!(msg, format!("scheduler refused: {expect}"));
        msg
    })
}

#[test]
fn unknown_ops_flag_bits_are_refused_and_named() {
    let bits = (1u64 << 20) | (1 << 63);
    let s = Cfg::new()
        .name("flaggy")
        .flags(OpsFlags::KEEP_BUILTIN_IDLE | OpsFlags(bits));
    let msg = refused_everywhere(
        s,
        InvalidOps::UnknownFlags {
            name: "flaggy".to_string(),
            bits,
            known: OpsFlags::ALL.bits(),
        },
    );
    assert!(msg.contains("0x8000000000100000"), "names the bits: {msg}");
    assert!(msg.contains("flaggy"), "names the scheduler: {msg}");
}

#[test]
fn every_known_ops_flag_is_accepted() {
    guard("known flags", || {
        let rt = unpinned(2)
            .scheduler(Cfg::new().flags(OpsFlags::ALL))
            .build()
            .expect("OpsFlags::ALL");
        assert_eq!(rt.block_on(|| 1), 1);
    });
}

#[test]
fn a_watchdog_timeout_above_the_maximum_is_refused() {
    for ms in [WATCHDOG_MAX_TIMEOUT_MS + 1, u32::MAX] {
        let msg = refused_everywhere(
            Cfg::new().timeout_ms(ms),
            InvalidOps::TimeoutTooLong {
                name: "cfg".to_string(),
                ms,
                max: WATCHDOG_MAX_TIMEOUT_MS,
            },
        );
        assert!(
            msg.contains(&ms.to_string()) && msg.contains("30000"),
            "{msg}"
        );
    }
    // 0 (the default) and the maximum itself are fine.
    guard("timeout bounds", || {
        for ms in [0, 1, WATCHDOG_MAX_TIMEOUT_MS] {
            let rt = unpinned(1)
                .scheduler(Cfg::new().timeout_ms(ms))
                .build()
                .unwrap_or_else(|e| panic!("timeout_ms {ms}: {e}"));
            assert_eq!(rt.block_on(|| 2), 2);
        }
    });
}

#[test]
fn a_dispatch_batch_above_i32_max_is_refused() {
    let msg = refused_everywhere(
        Cfg::new().max_batch(u32::MAX),
        InvalidOps::DispatchMaxBatch {
            name: "cfg".to_string(),
            requested: u32::MAX,
            max: DSP_MAX_BATCH,
        },
    );
    assert!(
        msg.contains("4294967295") && msg.contains("2147483647"),
        "{msg}"
    );
    // The maximum reserves nothing up front: it builds and runs.
    guard("largest batch", || {
        let rt = unpinned(2)
            .scheduler(Cfg::new().max_batch(DSP_MAX_BATCH))
            .build()
            .unwrap();
        mixed_workload(&rt, 20, 1, 2, 2);
    });
}

#[test]
fn bad_scheduler_names_are_refused() {
    refused_everywhere(Cfg::new().name(""), InvalidOps::EmptyName);
    let long = "x".repeat(OPS_NAME_MAX + 1);
    let msg = refused_everywhere(
        Cfg::new().name(long),
        InvalidOps::NameTooLong {
            len: OPS_NAME_MAX + 1,
            max: OPS_NAME_MAX,
        },
    );
    assert!(msg.contains("128") && msg.contains("127"), "{msg}");
    for (name, ch) in [("two words", ' '), ("line\nbreak", '\n'), ("ünï", 'ü')] {
        refused_everywhere(
            Cfg::new().name(name),
            InvalidOps::NameChar {
                name: name.to_string(),
                ch,
            },
        );
    }
    // The longest name, and every allowed character, are fine.
    guard("good names", || {
        for name in ["x".repeat(OPS_NAME_MAX), "scx_simple-2.0".to_string()] {
            let rt = unpinned(1)
                .scheduler(Cfg::new().name(name.clone()))
                .build()
                .unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(rt.scheduler_name(), name);
        }
    });
}

#[test]
fn kick_cpu_from_the_application_refuses_bad_arguments() {
    guard("kick_cpu", || {
        let rt = unpinned(2).build().unwrap();
        let s = Cfg::new();
        rt.attach(s.clone()).unwrap();
        for cpu in [2, 99, usize::MAX] {
            assert_eq!(
                rt.kick_cpu(cpu, KickFlags::PREEMPT),
                Err(KickError::NoSuchCpu { cpu, nr_cpus: 2 })
            );
        }
        let bad = KickFlags::IDLE | KickFlags::WAIT;
        let e = rt.kick_cpu(0, bad).unwrap_err();
        assert_eq!(e, KickError::IdleWith { flags: bad });
        assert!(e.to_string().contains("IDLE cannot be combined"), "{e}");
        assert!(rt
            .kick_cpu(1, KickFlags::IDLE | KickFlags::PREEMPT)
            .is_err());
        // The application's mistakes are not the scheduler's: it stays.
        assert_eq!(rt.kick_cpu(1, KickFlags::PREEMPT), Ok(()));
        assert_eq!(rt.block_on(|| 3), 3);
        assert_eq!(rt.scheduler_name(), "cfg");
        assert_eq!(rt.stats().ejections, 0);
        assert!(rt.exit_info().is_none(), "{:?}", rt.exit_info());
    });
}

#[test]
fn spawn_on_a_cpu_outside_the_runtime() {
    guard("spawn_on", || {
        let rt = unpinned(2).build().unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let d = SetOnDrop(dropped.clone());
        let e = rt
            .try_spawn_on(2, move || {
                let _d = d;
            })
            .err()
            .expect("spawned on cpu 2 of 2");
        assert_eq!(e, SpawnError::NoSuchCpu { cpu: 2, nr_cpus: 2 });
        assert_eq!(e.to_string(), "no cpu 2 in this runtime (2 cpus)");
        assert!(dropped.load(Ordering::SeqCst), "the closure was dropped");
        assert_eq!(rt.stats().live_tasks, 0);
        assert_eq!(rt.try_spawn_on(1, || 4).unwrap().join().unwrap(), 4);
        // `spawn_on` keeps its documented panic, with the same message.
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.spawn_on(usize::MAX, || ())
        }))
        .err()
        .expect("spawn_on(usize::MAX) spawned");
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("no cpu 18446744073709551615"), "{msg}");
        assert_eq!(rt.block_on(|| 5), 5);
    });
}

#[test]
fn balance_trace_of_a_cpu_outside_the_runtime_is_empty() {
    guard("take_balance_trace", || {
        let rt = unpinned(2).record_balance(true).build().unwrap();
        assert_eq!(rt.block_on(|| 1), 1);
        assert!(rt.take_balance_trace(2).is_empty());
        assert!(rt.take_balance_trace(usize::MAX).is_empty());
    });
}

#[test]
fn sleeping_for_duration_max_sleeps_instead_of_panicking() {
    // One CPU and the FIFO: `sleeper` runs first and either blocks in its
    // sleep or finishes (a panic finishes it); only then does `after` run.
    let rt = unpinned(1).build().unwrap();
    let sleeper = rt.spawn(|| scx_rt::sleep(Duration::MAX));
    let after = rt.spawn(|| 1);
    assert_eq!(guard("after the sleeper", move || after.join().unwrap()), 1);
    // `after`'s join returns when its result is stored; the task leaves
    // the live count a moment later, at its CPU's next step.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut live = rt.stats().live_tasks;
    while live != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        live = rt.stats().live_tasks;
    }
    let finished = sleeper.is_finished();
    // The sleeper never wakes, so shutdown would wait for it forever (as
    // documented): leave the runtime running until the process exits,
    // before any assertion can fail (a failing test must not hang in the
    // runtime's drop).
    std::mem::forget(sleeper);
    std::mem::forget(rt);
    assert!(!finished, "sleep(Duration::MAX) returned or panicked");
    assert_eq!(live, 1);
}

#[test]
fn sleeping_for_zero_returns() {
    guard("sleep(0)", || {
        let rt = unpinned(1).build().unwrap();
        assert_eq!(
            rt.block_on(|| {
                scx_rt::sleep(Duration::ZERO);
                8
            }),
            8
        );
        scx_rt::sleep(Duration::ZERO);
    });
}

#[test]
fn waitgroup_count_overflow_is_a_clear_panic() {
    let wg = scx_rt::sync::WaitGroup::new();
    wg.add(usize::MAX);
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.add(1)))
        .expect_err("the count wrapped");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("WaitGroup::add(1) overflows the count"),
        "{msg}"
    );
    assert_eq!(wg.count(), usize::MAX, "the count is unchanged");
}

// ---------------------------------------------------------------------
// A stack the OS refuses to map: the task fails, nothing spins.

/// Tells the child which scenario to run; unset in the parent.
const NO_STACK_ENV: &str = "SCX_RT_NO_STACK_CHILD";

/// The child's address-space limit (`ulimit -v`, in KiB): 16 GiB, far
/// more than the test process uses, far less than one slab of the largest
/// stacks (64 x 1 GiB).
const CHILD_AS_LIMIT_KIB: u64 = 16 << 20;

/// The child half: runs only with `NO_STACK_ENV` set, under
/// `CHILD_AS_LIMIT_KIB`. Every task needs a 1 GiB stack whose slab the OS
/// refuses: each `join` says why, each task is retired once (live count,
/// `exit_task`, stats), and the runtime still shuts down.
#[test]
fn no_stack_child() {
    if std::env::var(NO_STACK_ENV).is_err() {
        return;
    }
    const N: usize = 4;
    let s = Cfg::new();
    let rt = unpinned(2)
        .stack_size(scx_rt::consts::MAX_STACK_SIZE)
        .scheduler(s.clone())
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let ran = ran.clone();
            rt.spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in hs {
        let id = h.id();
        match h.join() {
            Err(e @ JoinError::NoStack { .. }) => {
                let msg = e.to_string();
                eprintln!("join: {msg}");
                assert!(
                    msg.starts_with(&format!(
                        "task {id} never ran: no 1048576 KiB stack could be mapped for it: "
                    )),
                    "{msg}"
                );
                let JoinError::NoStack {
                    id: eid,
                    stack_size,
                    source,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(eid, id);
                assert_eq!(stack_size, scx_rt::consts::MAX_STACK_SIZE);
                assert_eq!(source.kind(), std::io::ErrorKind::OutOfMemory, "{source}");
            }
            other => panic!("task {id}: expected NoStack, got {other:?}"),
        }
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a task ran without a stack");
    // `join` returns once the packet is complete; the worker retires the
    // task right after (a task retired twice would wrap the count).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rt.stats().live_tasks != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "live tasks never reached 0"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let st = rt.stats();
    assert_eq!(st.tasks_without_stack, N as u64);
    assert_eq!(st.stacks_allocated, 0);
    assert_eq!(s.init_tasks.load(Ordering::SeqCst), N);
    assert_eq!(
        s.exit_tasks.load(Ordering::SeqCst),
        N,
        "exit_task once each"
    );
    assert_eq!(rt.scheduler_name(), "cfg", "no ejection");
    assert!(rt.exit_info().is_none());
    // A detached task fails the same way; block_on says why.
    drop(rt.spawn(|| ()));
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(|| 1)))
        .expect_err("block_on ran a task without a stack");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("never ran"), "{msg}");
    drop(rt);
    assert_eq!(s.exit_tasks.load(Ordering::SeqCst), N + 2);
    eprintln!("no-stack child done");
}

#[test]
fn a_stack_the_os_refuses_fails_the_task_instead_of_spinning() {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {CHILD_AS_LIMIT_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(exe)
        .args([
            "--exact",
            "no_stack_child",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(NO_STACK_ENV, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr on a helper so a chatty child cannot block on a full pipe.
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + HANG_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "HANG: the child did not finish within {HANG_TIMEOUT:?}; stderr: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    assert!(status.success(), "child {status:?}; stderr: {stderr}");
    assert!(stderr.contains("no-stack child done"), "stderr: {stderr}");
    assert_eq!(stderr.matches("join: task ").count(), 4, "stderr: {stderr}");
}
