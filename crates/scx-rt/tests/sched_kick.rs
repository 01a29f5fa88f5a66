//! Kick semantics (SPEC.md §4, §11 invariants 13, 14, 16-22): IDLE kicks
//! skip busy CPUs and wake idle ones, PREEMPT zeroes the victim's slice and
//! it switches at its next preemption point, ENQ_PREEMPT puts a task at the
//! head and preempts, SLICE_INF is never expired by slice accounting,
//! mutual KICK_WAITs complete.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use scx_rt::{
    Ctx, EnqFlags, EnqueueCtx, InitCtx, InitTaskArgs, KickFlags, Runtime, Scheduler, SelectCpuCtx,
    TaskRef, WakeFlags, DSQ_GLOBAL, DSQ_LOCAL, SLICE_DFL, SLICE_INF,
};

mod common;
use common::wait_until;

#[derive(Default)]
struct State {
    /// A kick to issue from the next enqueue that runs on a worker.
    cmd: Mutex<Option<(usize, KickFlags)>>,
    /// Tasks that run with an infinite slice (by id).
    inf: Mutex<Vec<u64>>,
    /// The next task to join gets an infinite slice.
    next_inf: AtomicBool,
    /// Tasks inserted with ENQ_PREEMPT at their CPU's local DSQ (by id).
    preempt_insert: Mutex<Vec<u64>>,
    /// Stops (runnable = true) of each task: (id, slice at the stop).
    stops: Mutex<Vec<(u64, u64)>>,
    /// Tasks that kick the other CPU with PREEMPT|WAIT when they start.
    waiters: Mutex<Vec<u64>>,
}

struct K(Arc<State>);

impl Scheduler for K {
    // Every wake-up goes through enqueue (no direct dispatch), on its prev
    // CPU: the kicks below are issued from known CPUs.
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
        if scx_rt::current_cpu() == Some(0) {
            if let Some((cpu, flags)) = self.0.cmd.lock().take() {
                ctx.kick_cpu(cpu, flags);
            }
        }
        if self.0.preempt_insert.lock().contains(&p.id()) {
            ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f | EnqFlags::PREEMPT);
        } else {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        }
    }
    fn init_task(&self, _c: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        if self.0.next_inf.swap(false, Ordering::SeqCst) {
            self.0.inf.lock().push(p.id());
        }
        Ok(())
    }

    fn running(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        if self.0.inf.lock().contains(&p.id()) {
            p.set_slice(SLICE_INF);
        }
        if self.0.waiters.lock().contains(&p.id()) {
            // The next CPU round the ring (the other one, with two CPUs).
            let next = (ctx.cpu().unwrap() + 1) % ctx.nr_cpu_ids();
            ctx.kick_cpu(next, KickFlags::PREEMPT | KickFlags::WAIT);
        }
    }
    fn stopping(&self, _ctx: &Ctx<'_>, p: &TaskRef, runnable: bool) {
        if runnable {
            self.0.stops.lock().push((p.id(), p.slice()));
        }
    }
}

fn rt(st: &Arc<State>) -> Runtime {
    Runtime::builder()
        .nr_cpus(2)
        .pin(false)
        .scheduler(K(st.clone()))
        .build()
        .unwrap()
}

/// Issues `flags` to `cpu` from a callback running on CPU 0's worker.
fn kick_from_cpu0(rt: &Runtime, st: &State, cpu: usize, flags: KickFlags) {
    *st.cmd.lock() = Some((cpu, flags));
    rt.spawn_on(0, || scx_rt::spawn(|| ()).join().unwrap())
        .join()
        .unwrap();
    assert!(st.cmd.lock().is_none(), "the kick was issued");
}

/// Sets the flag when dropped, so a failing test still stops its spinner
/// (and the runtime's shutdown, which waits for every task, returns).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A task on CPU 1 that spins on `preempt_point` with an infinite slice
/// until `stop`; returns (id, stop flag, handle).
fn spinner(rt: &Runtime, st: &Arc<State>) -> (u64, Arc<AtomicBool>, scx_rt::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let (s, go) = (stop.clone(), started.clone());
    // Marked before it joins: its first `running` gives it SLICE_INF.
    st.next_inf.store(true, Ordering::SeqCst);
    let h = rt.spawn_on(1, move || {
        let me = scx_rt::task_id().unwrap();
        go.store(me, Ordering::SeqCst);
        let mut n = 0;
        while !s.load(Ordering::Relaxed) {
            scx_rt::preempt_point();
            n += 1;
        }
        n
    });
    wait_until("the spinner", || started.load(Ordering::SeqCst) != 0);
    (started.load(Ordering::SeqCst), stop, h)
}

#[test]
fn idle_kick_skips_a_busy_cpu_and_wakes_an_idle_one() {
    let st = Arc::new(State::default());
    let rt = rt(&st);
    let (_, stop, h) = spinner(&rt, &st);
    let _guard = StopOnDrop(stop.clone());
    let before = rt.stats().cpus[1].clone();
    kick_from_cpu0(&rt, &st, 1, KickFlags::IDLE);
    let after = rt.stats().cpus[1].clone();
    assert!(
        after.idle_kicks_skipped > before.idle_kicks_skipped,
        "{after:?}"
    );
    assert_eq!(
        after.kicks_received, before.kicks_received,
        "a busy CPU is not kicked"
    );
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    // CPU 1 goes idle, past its poll phase, asleep on its doorbell.
    std::thread::sleep(Duration::from_millis(150));
    let before = rt.stats().cpus[1].clone();
    kick_from_cpu0(&rt, &st, 1, KickFlags::IDLE);
    wait_until("the idle CPU to be kicked and pick again", || {
        let now = &rt.stats().cpus[1];
        now.kicks_received > before.kicks_received && now.pick_seq > before.pick_seq
    });
    let after = rt.stats().cpus[1].clone();
    // Idle: asleep on its doorbell (a syscall) or, if the OS was slow to
    // run its worker, still polling (no syscall) — never busy.
    assert!(
        after.doorbell_syscalls + after.wakes_while_polling
            > before.doorbell_syscalls + before.wakes_while_polling,
        "the kick found CPU 1 idle: {after:?}"
    );
}

#[test]
fn infinite_slice_is_never_expired_and_preempt_kick_switches_the_victim() {
    let st = Arc::new(State::default());
    let rt = rt(&st);
    let (id, stop, h) = spinner(&rt, &st);
    let _guard = StopOnDrop(stop.clone());
    // Far past the 20 ms default slice: SLICE_INF is never charged out.
    std::thread::sleep(Duration::from_millis(60));
    assert!(
        !st.stops.lock().iter().any(|&(t, _)| t == id),
        "a task with SLICE_INF was switched out by slice accounting"
    );
    // A task waits for CPU 1 (it may run nowhere else); only a switch of
    // the spinner lets it run.
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let waiting = rt.spawn_on(1, move || r.store(true, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(20));
    assert!(!ran.load(Ordering::SeqCst), "the spinner holds CPU 1");
    let before = rt.stats().cpus[1].preemptions;
    kick_from_cpu0(&rt, &st, 1, KickFlags::PREEMPT);
    waiting.join().unwrap();
    assert!(ran.load(Ordering::SeqCst));
    let (_, slice) = *st
        .stops
        .lock()
        .iter()
        .find(|&&(t, _)| t == id)
        .expect("the victim was switched out");
    assert_eq!(slice, 0, "the kick zeroed the victim's slice");
    assert!(rt.stats().cpus[1].preemptions > before);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn enq_preempt_runs_the_task_before_the_victim_continues() {
    let st = Arc::new(State::default());
    let rt = rt(&st);
    let (_, stop, h) = spinner(&rt, &st);
    let _guard = StopOnDrop(stop.clone());
    // The marker is inserted at the head of CPU 1's local DSQ with
    // ENQ_PREEMPT. The spinner never yields by itself (SLICE_INF), so the
    // marker can only run because the insertion preempted it.
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let st2 = st.clone();
    let marker = rt.spawn_on(0, move || {
        // Register the next task id before spawning: ids come in per-thread
        // blocks, so the child's id is this task's thread's next one.
        let probe = scx_rt::spawn(|| ());
        let next = probe.id() + 1;
        probe.join().unwrap();
        st2.preempt_insert.lock().push(next);
        let h = scx_rt::spawn(move || r.store(true, Ordering::SeqCst));
        assert_eq!(h.id(), next);
        h.join().unwrap();
    });
    let _ = marker; // the marker task itself joins its child
    wait_until("the ENQ_PREEMPT task to run", || ran.load(Ordering::SeqCst));
    assert!(rt.stats().cpus.iter().map(|c| c.preemptions).sum::<u64>() >= 1);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn mutual_kick_waits_complete() {
    kick_waits_complete(2);
}

#[test]
fn a_ring_of_three_kick_waits_completes() {
    kick_waits_complete(3);
}

/// `n` CPUs, each running a waiter that KICK_WAITs the next CPU round the
/// ring whenever it starts, all at once: every wait must complete.
fn kick_waits_complete(n: usize) {
    let st = Arc::new(State::default());
    let rt = Runtime::builder()
        .nr_cpus(n)
        .pin(false)
        .scheduler(K(st.clone()))
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    // Per CPU a waiter and a companion, both yielding, so the waiter starts
    // running (and kicks the other CPU with PREEMPT|WAIT) over and over.
    let ready = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..2 * n)
        .map(|i| {
            let (st, done, ready) = (st.clone(), done.clone(), ready.clone());
            rt.spawn_on(i % n, move || {
                if i < n {
                    st.waiters.lock().push(scx_rt::task_id().unwrap());
                }
                // Start together, so both CPUs are busy while they kick.
                ready.fetch_add(1, Ordering::SeqCst);
                while ready.load(Ordering::SeqCst) < 2 * n {
                    scx_rt::yield_now();
                }
                for _ in 0..2000 {
                    scx_rt::yield_now();
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for h in hs {
            h.join().unwrap();
        }
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("CPUs KICK_WAIT-ing each other round a ring must all complete");
    assert_eq!(done.load(Ordering::SeqCst), 2 * n);
    let waits: u64 = rt.stats().cpus.iter().map(|c| c.kick_waits).sum();
    assert!(
        waits > 0,
        "some kicks found the other CPU running and waited"
    );
}

#[test]
fn a_kick_from_outside_the_runtime_preempts() {
    let st = Arc::new(State::default());
    let rt = rt(&st);
    let (id, stop, h) = spinner(&rt, &st);
    let _guard = StopOnDrop(stop.clone());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let waiting = rt.spawn_on(1, move || r.store(true, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !ran.load(Ordering::SeqCst),
        "the SLICE_INF spinner holds CPU 1"
    );
    // From the test thread, through the runtime handle. WAIT returns only
    // once CPU 1 entered its pick path (its pick sequence moved).
    let seq = rt.stats().cpus[1].pick_seq;
    rt.kick_cpu(1, KickFlags::PREEMPT | KickFlags::WAIT)
        .unwrap();
    assert!(
        rt.stats().cpus[1].pick_seq > seq,
        "WAIT returned before CPU 1 rescheduled"
    );
    wait_until("the victim to switch out", || {
        st.stops.lock().iter().any(|&(t, _)| t == id)
    });
    waiting.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert!(rt.exit_info().is_none());
}
