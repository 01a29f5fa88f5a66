//! Built-in idle tracking and the wake-up path (SPEC.md §5, §3.3):
//! `select_cpu_dfl` prefers an idle prev CPU, else claims another idle CPU,
//! never a busy one; a claim is exclusive; a claimed CPU that got no work
//! reappears in the idle mask at its next idle pick (invariant 23); wake-ups
//! reach `enqueue` with `ENQ_WAKEUP`, spawns without it.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use scx_rt::{
    EnqFlags, EnqueueCtx, KickFlags, Runtime, Scheduler, SelectCpuCtx, TaskRef, WakeFlags,
    DSQ_GLOBAL, DSQ_LOCAL, SLICE_DFL,
};

mod common;
use common::wait_until;

#[derive(Default)]
struct Probe {
    /// (prev_cpu, chosen cpu, idle) of every select_cpu_dfl call.
    picks: Mutex<Vec<(usize, usize, bool)>>,
    /// Enqueue flags seen, in order.
    flags: Mutex<Vec<EnqFlags>>,
    /// When set, the next enqueue claims CPU 1 and records the result.
    claim_probe: AtomicBool,
    claims: Mutex<Vec<bool>>,
    kick_after_claim: AtomicBool,
}

struct P(Arc<Probe>);

impl Scheduler for P {
    fn select_cpu(
        &self,
        ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        prev: usize,
        wf: WakeFlags,
    ) -> i32 {
        let (cpu, idle) = ctx.select_cpu_dfl(p, prev, wf);
        self.0.picks.lock().push((prev, cpu, idle));
        if idle {
            ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
        }
        cpu as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        self.0.flags.lock().push(f);
        if self.0.claim_probe.swap(false, Ordering::SeqCst) {
            let first = ctx.test_and_clear_cpu_idle(1);
            let second = ctx.test_and_clear_cpu_idle(1);
            self.0.claims.lock().extend([first, second]);
            if self.0.kick_after_claim.load(Ordering::SeqCst) {
                ctx.kick_cpu(1, KickFlags::IDLE);
            }
        }
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    }
}

fn rt(p: &Arc<Probe>) -> Runtime {
    Runtime::builder()
        .nr_cpus(2)
        .pin(false)
        .scheduler(P(p.clone()))
        .build()
        .unwrap()
}

#[test]
fn select_cpu_dfl_never_picks_the_busy_cpu_as_idle() {
    let probe = Arc::new(Probe::default());
    let rt = rt(&probe);
    // CPU 1 is kept busy by a task that never blocks.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let running = Arc::new(AtomicBool::new(false));
    let r = running.clone();
    let spinner = rt.spawn_on(1, move || {
        r.store(true, Ordering::SeqCst);
        while !s.load(Ordering::Relaxed) {
            scx_rt::preempt_point();
        }
    });
    wait_until("the spinner", || running.load(Ordering::SeqCst));
    probe.picks.lock().clear();
    for _ in 0..200 {
        rt.spawn(|| ()).join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    let picks = probe.picks.lock().clone();
    assert!(picks.len() >= 200, "select_cpu ran for every spawn");
    for &(prev, cpu, idle) in &picks {
        if idle {
            assert_eq!(cpu, 0, "CPU 1 was busy, yet reported idle (prev {prev})");
        }
        if prev == 0 && idle {
            assert_eq!(cpu, 0, "an idle prev CPU is preferred");
        }
    }
    assert!(
        picks.iter().any(|&(_, _, idle)| idle),
        "CPU 0 idles between spawns"
    );
}

#[test]
fn a_claimed_cpu_that_got_no_work_reappears_in_the_idle_mask() {
    let probe = Arc::new(Probe::default());
    let rt = rt(&probe);
    std::thread::sleep(Duration::from_millis(50)); // both CPUs idle
                                                   // Claim CPU 1 without giving it work: exactly one claim wins.
    probe.claim_probe.store(true, Ordering::SeqCst);
    rt.spawn_on(0, || ()).join().unwrap();
    assert_eq!(*probe.claims.lock(), vec![true, false], "one claim wins");
    // Without a kick, CPU 1 stays asleep and unclaimable (it was claimed).
    probe.claim_probe.store(true, Ordering::SeqCst);
    rt.spawn_on(0, || ()).join().unwrap();
    assert!(
        !probe.claims.lock()[2],
        "still claimed: nobody refreshed it"
    );
    // An idle kick makes CPU 1 pick idle again, which re-asserts its bit.
    probe.claims.lock().clear();
    probe.kick_after_claim.store(true, Ordering::SeqCst);
    probe.claim_probe.store(true, Ordering::SeqCst);
    rt.spawn_on(0, || ()).join().unwrap();
    probe.kick_after_claim.store(false, Ordering::SeqCst);
    let refreshed = (0..1000).any(|_| {
        std::thread::sleep(Duration::from_millis(2));
        probe.claim_probe.store(true, Ordering::SeqCst);
        rt.spawn_on(0, || ()).join().unwrap();
        probe.claims.lock().last() == Some(&false)
            && probe.claims.lock().iter().rev().nth(1) == Some(&true)
    });
    assert!(refreshed, "claims {:?}", probe.claims.lock());
}

#[test]
fn wakeups_enqueue_with_wakeup_and_spawns_without() {
    let probe = Arc::new(Probe::default());
    let rt = Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .scheduler(P(probe.clone()))
        .build()
        .unwrap();
    let (tx, rx) = scx_rt::sync::channel::<()>(0);
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let h = rt.spawn(move || {
        // Blocks, is woken by the send below: a wake-up enqueue.
        rx.recv().unwrap();
        g.fetch_add(1, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(50));
    probe.flags.lock().clear();
    tx.send(()).unwrap();
    h.join().unwrap();
    assert_eq!(got.load(Ordering::SeqCst), 1);
    let flags = probe.flags.lock().clone();
    // On one CPU the woken task's CPU is idle, so select_cpu_dfl may have
    // dispatched it directly (no enqueue); when enqueue runs, it says WAKEUP.
    assert!(
        flags.iter().all(|f| f.contains(EnqFlags::WAKEUP)),
        "{flags:?}"
    );
    probe.flags.lock().clear();
    // Keep the only CPU busy so select_cpu finds no idle CPU and the spawn
    // goes through enqueue.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let spinner = rt.spawn(move || {
        while !s.load(Ordering::Relaxed) {
            scx_rt::preempt_point();
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let child = rt.spawn(|| 1);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(child.join().unwrap(), 1);
    spinner.join().unwrap();
    let flags = probe.flags.lock().clone();
    assert!(
        !flags.is_empty(),
        "the spawn on a busy CPU went through enqueue"
    );
    assert!(
        !flags[0].contains(EnqFlags::WAKEUP),
        "a spawn is not a wake-up: {flags:?}"
    );
}
