//! `Builder::build` errors, and that no worker thread outlives a failed
//! build, a dropped runtime or `shutdown`; `shutdown` waits for running
//! tasks.
//!
//! Worker threads are counted by name ("scx-rt-cpu*") in
//! `/proc/self/task/*/comm`, which is process-wide: every test here takes
//! `SERIAL` so no other runtime of this binary exists while one counts.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::{BuildError, Runtime};

mod common;
use common::with_timeout;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live threads of this process named like a worker.
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim_end().starts_with("scx-rt-cpu"))
        .count()
}

/// A joined thread can stay listed in /proc for a moment after `join`
/// returned (the kernel reaps it just after clearing its tid): wait for the
/// count to settle, then compare.
fn assert_worker_threads(expect: usize, what: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = worker_threads();
        if n == expect {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: {n} scx-rt-cpu* threads alive, expected {expect}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The number of cores in this process's affinity mask, from
/// `Cpus_allowed_list` ("0-3,8,10-11") in /proc/self/status.
/// (`available_parallelism` would also apply cgroup quotas, which the
/// builder does not.)
fn usable_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim();
    list.split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[test]
fn empty_cpu_list_is_no_cpus() {
    let _s = serial();
    assert_worker_threads(0, "before");
    let e = Runtime::builder()
        .cpus(Vec::<usize>::new())
        .build()
        .err()
        .expect("an empty cpu list built");
    assert!(matches!(e, BuildError::NoCpus), "{e:?}");
    assert_worker_threads(0, "after NoCpus");
}

#[test]
fn nr_cpus_zero_is_no_cpus_pinned_or_not() {
    let _s = serial();
    for pin in [true, false] {
        let e = Runtime::builder()
            .nr_cpus(0)
            .pin(pin)
            .build()
            .err()
            .expect("nr_cpus(0) built");
        assert!(matches!(e, BuildError::NoCpus), "pin={pin}: {e:?}");
        assert_worker_threads(0, "after nr_cpus(0)");
    }
}

#[test]
fn duplicate_cpu_is_named() {
    let _s = serial();
    let e = Runtime::builder()
        .cpus([0, 0])
        .build()
        .err()
        .expect("a duplicate cpu built");
    assert!(matches!(e, BuildError::DuplicateCpu { cpu: 0 }), "{e:?}");
    // Also unpinned, and not the first entry.
    let e = Runtime::builder()
        .cpus([3, 1, 2, 1])
        .pin(false)
        .build()
        .err()
        .expect("a duplicate cpu built");
    assert!(matches!(e, BuildError::DuplicateCpu { cpu: 1 }), "{e:?}");
    assert!(e.to_string().contains("cpu 1"), "message: {e}");
    assert_worker_threads(0, "after DuplicateCpu");
}

#[test]
fn a_core_outside_the_affinity_mask_is_not_usable() {
    let _s = serial();
    for list in [vec![100_000], vec![0, 100_000]] {
        let e = Runtime::builder()
            .cpus(list.clone())
            .build()
            .err()
            .unwrap_or_else(|| panic!("{list:?} built"));
        match &e {
            BuildError::CpuNotUsable { cpu, usable } => {
                assert_eq!(*cpu, 100_000);
                assert!(!usable.is_empty(), "no usable list in {e:?}");
            }
            other => panic!("{list:?}: expected CpuNotUsable, got {other:?}"),
        }
        assert!(e.to_string().contains("100000"), "message: {e}");
        assert_worker_threads(0, "after CpuNotUsable");
    }
}

#[test]
fn too_many_pinned_cpus() {
    let _s = serial();
    let usable = usable_cpus();
    for n in [usable + 1, 1_000_000] {
        let e = Runtime::builder()
            .nr_cpus(n)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{n} pinned cpus built"));
        match e {
            BuildError::TooManyCpus {
                requested,
                available,
            } => {
                assert_eq!(requested, n);
                assert_eq!(available, usable);
            }
            other => panic!("nr_cpus({n}): expected TooManyCpus, got {other:?}"),
        }
        assert_worker_threads(0, "after TooManyCpus");
    }
}

#[test]
fn more_unpinned_cpus_than_the_limit() {
    let _s = serial();
    let max = scx_rt::consts::MAX_CPUS;
    let e = Runtime::builder()
        .nr_cpus(max + 1)
        .pin(false)
        .build()
        .err()
        .expect("MAX_CPUS + 1 built");
    assert!(
        matches!(e, BuildError::CpuLimit { requested, max: m } if requested == max + 1 && m == max),
        "{e:?}"
    );
    assert_worker_threads(0, "after CpuLimit");
}

#[test]
fn drop_and_shutdown_leave_no_worker_thread() {
    let _s = serial();
    with_timeout("drop-shutdown", 60, || {
        assert_worker_threads(0, "before");
        let rt = Runtime::builder().nr_cpus(3).pin(false).build().unwrap();
        assert_eq!(rt.nr_cpus(), 3);
        assert_worker_threads(3, "while running");
        assert_eq!(rt.block_on(|| 1), 1);
        drop(rt);
        assert_worker_threads(0, "after drop");

        let rt = Runtime::builder().nr_cpus(1).build().unwrap();
        assert_worker_threads(1, "while running (pinned)");
        let _ = rt.spawn(scx_rt::yield_now);
        rt.shutdown();
        assert_worker_threads(0, "after shutdown");
        rt.shutdown(); // a second shutdown is a no-op
        drop(rt); // and so is the drop after it
        assert_worker_threads(0, "after shutdown + drop");

        // The default builder: one pinned worker per usable core.
        let rt = Runtime::builder().build().unwrap();
        assert_eq!(rt.nr_cpus(), usable_cpus());
        assert_worker_threads(usable_cpus(), "default runtime");
        drop(rt);
        assert_worker_threads(0, "after dropping the default runtime");
    });
}

#[test]
fn shutdown_waits_for_running_tasks() {
    let _s = serial();
    with_timeout("shutdown-waits", 60, || {
        let rt = Runtime::builder().nr_cpus(2).pin(false).build().unwrap();
        let flags: Vec<Arc<AtomicBool>> =
            (0..4).map(|_| Arc::new(AtomicBool::new(false))).collect();
        for (i, f) in flags.iter().enumerate() {
            let f = f.clone();
            // Detached handles: shutdown alone must wait for them.
            let _ = rt.spawn(move || {
                scx_rt::sleep(Duration::from_millis(100));
                if i % 2 == 0 {
                    // A child spawned during shutdown is waited for too.
                    let _ = scx_rt::spawn(move || {
                        scx_rt::sleep(Duration::from_millis(20));
                        f.store(true, Ordering::SeqCst);
                    });
                } else {
                    f.store(true, Ordering::SeqCst);
                }
            });
        }
        rt.shutdown();
        for (i, f) in flags.iter().enumerate() {
            assert!(
                f.load(Ordering::SeqCst),
                "shutdown returned before task {i} finished"
            );
        }
        assert_eq!(rt.stats().live_tasks, 0);
        assert_worker_threads(0, "after shutdown");
    });
}

#[test]
fn drop_waits_for_running_tasks() {
    let _s = serial();
    with_timeout("drop-waits", 60, || {
        let rt = Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let _ = rt.spawn(move || {
            scx_rt::sleep(Duration::from_millis(100));
            f.store(true, Ordering::SeqCst);
        });
        drop(rt);
        assert!(
            flag.load(Ordering::SeqCst),
            "drop returned before the task finished"
        );
        assert_worker_threads(0, "after drop");
    });
}
