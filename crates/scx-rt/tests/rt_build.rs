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

// ---------------------------------------------------------------------
// Values the builder cannot serve: each is a `BuildError` that names the
// value and its limit, and nothing is started (issue 11, section 3).

/// `build` must refuse `b`; returns the error after checking that no
/// worker thread was started.
fn refused(what: &str, b: scx_rt::Builder) -> BuildError {
    let e = b.build().err().unwrap_or_else(|| panic!("{what}: built"));
    assert_worker_threads(0, what);
    e
}

#[test]
fn stack_sizes_beyond_the_maximum_are_refused() {
    let _s = serial();
    let max = scx_rt::consts::MAX_STACK_SIZE;
    assert_eq!(max, 1 << 30);
    // usize::MAX overflowed the page rounding (a panic in debug builds,
    // SIGSEGV in release); 1 << 44 built a runtime whose workers retried
    // the stack mapping forever.
    for size in [usize::MAX, usize::MAX - 4095, 1 << 44, max + 1] {
        let e = refused(
            "stack_size",
            Runtime::builder().nr_cpus(1).pin(false).stack_size(size),
        );
        match e {
            BuildError::StackSize { requested, max: m } => {
                assert_eq!(requested, size);
                assert_eq!(m, max);
            }
            other => panic!("stack_size({size}): expected StackSize, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&size.to_string()) && msg.contains(&max.to_string()),
            "message names the size and the limit: {msg}"
        );
    }
}

#[test]
fn the_largest_and_the_smallest_stack_sizes_build() {
    let _s = serial();
    with_timeout("stack-size-bounds", 60, || {
        // The maximum itself builds (its stacks are mapped lazily; see
        // rt_config.rs for a mapping the OS refuses).
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .stack_size(scx_rt::consts::MAX_STACK_SIZE)
            .build()
            .expect("MAX_STACK_SIZE");
        drop(rt);
        // Sizes below the minimum are rounded up to it, and run.
        for size in [0, 1, scx_rt::consts::MIN_STACK_SIZE - 1] {
            let rt = Runtime::builder()
                .nr_cpus(1)
                .pin(false)
                .stack_size(size)
                .build()
                .unwrap_or_else(|e| panic!("stack_size({size}): {e}"));
            assert_eq!(rt.block_on(|| 6 * 7), 42);
        }
    });
}

#[test]
fn a_zero_slice_is_refused() {
    let _s = serial();
    let e = refused(
        "slice(0)",
        Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .slice(Duration::ZERO),
    );
    assert!(matches!(e, BuildError::ZeroSlice), "{e:?}");
    assert!(e.to_string().contains("slice is zero"), "message: {e}");
}

#[test]
fn huge_and_tiny_slices_run() {
    let _s = serial();
    with_timeout("slice-bounds", 60, || {
        // Duration::MAX is SLICE_INF; 1 ns expires at every preemption
        // point. Both run a yielding, sleeping workload to the end.
        for d in [
            Duration::MAX,
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(1),
        ] {
            let rt = Runtime::builder()
                .nr_cpus(2)
                .pin(false)
                .slice(d)
                .build()
                .unwrap_or_else(|e| panic!("slice({d:?}): {e}"));
            let hs: Vec<_> = (0..4u64)
                .map(|i| {
                    rt.spawn(move || {
                        for _ in 0..200 {
                            scx_rt::yield_now();
                            scx_rt::preempt_point();
                        }
                        scx_rt::sleep(Duration::from_millis(1));
                        i
                    })
                })
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i as u64);
            }
            drop(rt);
        }
    });
}

#[test]
fn zero_blocking_threads_is_refused() {
    let _s = serial();
    let e = refused(
        "max_blocking_threads(0)",
        Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .max_blocking_threads(0),
    );
    assert!(matches!(e, BuildError::NoBlockingThreads), "{e:?}");
    assert!(e.to_string().contains("at least 1"), "message: {e}");
}

#[test]
fn blocking_keep_alive_extremes_run_and_shut_down() {
    let _s = serial();
    with_timeout("keep-alive-bounds", 60, || {
        for keep in [Duration::ZERO, Duration::MAX] {
            let rt = Runtime::builder()
                .nr_cpus(1)
                .pin(false)
                .max_blocking_threads(2)
                .blocking_keep_alive(keep)
                .build()
                .unwrap();
            for i in 0..50u32 {
                assert_eq!(rt.spawn_blocking(move || i).join().unwrap(), i);
            }
            let sum = rt.block_on(|| {
                (0..50u32)
                    .map(|i| scx_rt::spawn_blocking(move || i))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<u32>()
            });
            assert_eq!(sum, (0..50).sum());
            // Shutdown joins the pool even with threads that never time out.
            rt.shutdown();
            assert_eq!(rt.blocking_threads(), 0, "keep_alive {keep:?}");
        }
    });
}

#[test]
fn an_endless_idle_poll_runs_and_shuts_down() {
    let _s = serial();
    with_timeout("idle-poll-max", 60, || {
        // Workers never sleep (they spin while idle), yet sleeping tasks
        // wake and shutdown ends.
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .idle_poll(Duration::MAX)
            .build()
            .unwrap();
        let h = rt.spawn(|| {
            scx_rt::sleep(Duration::from_millis(5));
            7
        });
        assert_eq!(h.join().unwrap(), 7);
        drop(rt);
        assert_worker_threads(0, "after an endless idle poll");
    });
}

#[test]
fn unpinned_cpu_counts_beyond_the_limit_are_refused_before_allocating() {
    let _s = serial();
    let max = scx_rt::consts::MAX_CPUS;
    // usize::MAX panicked with a capacity overflow, 1 << 40 aborted the
    // process allocating the cpu list.
    for n in [usize::MAX, 1 << 40, max + 1] {
        let e = refused("nr_cpus", Runtime::builder().nr_cpus(n).pin(false));
        assert!(
            matches!(e, BuildError::CpuLimit { requested, max: m } if requested == n && m == max),
            "nr_cpus({n}): {e:?}"
        );
    }
}
