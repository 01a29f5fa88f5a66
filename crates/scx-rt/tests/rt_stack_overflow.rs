//! A green task that overflows its stack: the process says which task and
//! how big its stack was ("task N overflowed its S KiB stack"), then dies by
//! `SIGSEGV` as before. Each test re-executes this test binary with one
//! child test selected, and checks the child's stderr and signal.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use scx_rt::Runtime;

/// `SIGSEGV` on Linux (11 on every architecture scx-rt targets).
const SIGSEGV: i32 = 11;

/// Tells a child which scenario to run; unset in the parent.
const CHILD_ENV: &str = "SCX_RT_OVERFLOW_CHILD";

/// Recurses with a page-sized frame until the stack runs out.
#[inline(never)]
fn recurse(depth: usize) -> usize {
    let frame = std::hint::black_box([depth as u8; 4096]);
    if depth == usize::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[depth % 4096] as usize
}

/// The child half of every test: does nothing unless `CHILD_ENV` is set.
/// Scenarios: `"64"` (a 64 KiB stack, 2 CPUs, bystander tasks running),
/// `"default"` (the default stack size, 1 CPU), and `"late"` (the
/// overflowing task first yields many times, interleaved with other tasks
/// on its CPU, so the label must be right at every resume).
#[test]
fn overflow_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut b = Runtime::builder().pin(false);
    b = match mode.as_str() {
        "64" => b.nr_cpus(2).stack_size(64 * 1024),
        "late" => b.nr_cpus(1).stack_size(128 * 1024),
        _ => b.nr_cpus(1),
    };
    let rt = b.build().unwrap();
    // Bystanders: finished and still-running tasks with other ids.
    for i in 0..8u64 {
        assert_eq!(rt.spawn(move || i * 2).join().unwrap(), i * 2);
    }
    let busy: Vec<_> = (0..4)
        .map(|_| {
            rt.spawn(|| {
                for _ in 0..1000 {
                    scx_rt::yield_now();
                }
            })
        })
        .collect();
    let late = mode == "late";
    let h = rt.spawn(move || {
        if late {
            for _ in 0..100 {
                scx_rt::yield_now();
            }
        }
        eprintln!("overflowing task {}", scx_rt::task_id().unwrap());
        std::hint::black_box(recurse(0))
    });
    let _ = h.join();
    drop(busy);
    // Not reached when the guard and the report work.
    eprintln!("the overflow was not caught");
    std::process::exit(0);
}

/// Runs the child scenario `mode`; returns (signal, stderr, task id).
fn run_child(mode: &str) -> (Option<i32>, String, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "overflow_child",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let id = stderr
        .split("overflowing task ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "child printed no task id; status {:?}, stderr: {stderr}",
                out.status
            )
        });
    (out.status.signal(), stderr, id)
}

fn check(mode: &str, kib: usize) {
    let (sig, stderr, id) = run_child(mode);
    let expected = format!("scx-rt: task {id} overflowed its {kib} KiB stack\n");
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in the child's stderr: {stderr}"
    );
    assert_eq!(
        stderr.matches("overflowed its").count(),
        1,
        "one report: {stderr}"
    );
    assert!(!stderr.contains("was not caught"), "stderr: {stderr}");
    assert_eq!(
        sig,
        Some(SIGSEGV),
        "child must die by SIGSEGV; stderr: {stderr}"
    );
}

#[test]
fn overflow_names_the_task_and_its_64_kib_stack() {
    check("64", 64);
}

#[test]
fn overflow_on_the_default_stack_size() {
    check("default", scx_rt::consts::DEFAULT_STACK_SIZE / 1024);
}

#[test]
fn overflow_after_many_switches_names_the_right_task() {
    check("late", 128);
}
