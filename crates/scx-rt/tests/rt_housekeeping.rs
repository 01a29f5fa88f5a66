//! The timer thread runs on the CPUs the pinned workers leave (`timer`
//! docs, "Where the thread runs").
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use scx_rt::Runtime;

/// The CPUs the thread named `name` may run on (from `/proc`).
fn thread_cpus(name: &str) -> Option<String> {
    for e in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = e.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        return status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|s| s.trim().to_string());
    }
    None
}

#[test]
fn the_timer_thread_keeps_off_pinned_workers() {
    let usable = scx_rt_sys::affinity::usable_cpus().unwrap();
    if usable.len() < 2 {
        eprintln!("skipped: one usable CPU");
        return;
    }
    let worker = usable[0];
    let rt = Runtime::builder().cpus([worker]).build().unwrap();
    // The thread confines itself as it starts: wait for it.
    let mut seen = None;
    for _ in 0..1000 {
        seen = thread_cpus("scx-rt-timer");
        if seen
            .as_deref()
            .is_some_and(|l| !l.split([',', '-']).any(|c| c == worker.to_string()))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    rt.shutdown();
    let list = seen.expect("a thread named scx-rt-timer");
    // A list like "1-3" or "1,3": the worker's CPU is not in it (the
    // worker's CPU is the lowest usable, so a range cannot cover it).
    assert!(
        !list.split([',', '-']).any(|c| c == worker.to_string()),
        "timer thread on {list}, worker on {worker}"
    );
}
