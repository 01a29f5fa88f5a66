//! CPU hotplug (SPEC.md §3.12): `Runtime::cpu_offline` / `cpu_online` call
//! the scheduler's callbacks, move the offline CPU's queued tasks back
//! through `enqueue` (none lost), drop kicks to it except its own, keep it
//! out of `dispatch` and the idle masks, and end a scheduler without the
//! callbacks with the hotplug exit code.
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{guard, wait_until, Counts};
use parking_lot::Mutex;
use scx_rt::exit::{ECODE_ACT_RESTART, ECODE_RSN_HOTPLUG};
use scx_rt::schedulers::Simple;
use scx_rt::{
    Ctx, DispatchCtx, EnqFlags, EnqueueCtx, ExitKind, HotplugError, InitCtx, InitTaskArgs,
    KickFlags, Runtime, Scheduler, SelectCpuCtx, TaskRef, WakeFlags, DSQ_GLOBAL, DSQ_LOCAL_ON,
    SLICE_DFL, SLICE_INF,
};

#[derive(Default)]
struct State {
    /// (cpu, online) for every hotplug callback.
    events: Mutex<Vec<(usize, bool)>>,
    /// `dispatch` calls per CPU.
    dispatches: [AtomicU64; 4],
    /// The next task to join runs with an infinite slice.
    next_inf: AtomicBool,
    inf: Mutex<Vec<u64>>,
    /// The next `n` tasks to join are dispatched to CPU 1's local DSQ.
    next_to1: AtomicUsize,
    to1: Mutex<Vec<u64>>,
    /// Enqueues seen per task id (to check the moved tasks went through
    /// enqueue again).
    enqueues: Mutex<std::collections::HashMap<u64, u32>>,
    /// `runnable_at` seen at each enqueue, per task id.
    runnable_at: Mutex<std::collections::HashMap<u64, Vec<u64>>>,
}

struct H(Arc<State>);

impl Scheduler for H {
    fn name(&self) -> &str {
        "h"
    }
    fn handles_hotplug(&self) -> bool {
        true
    }
    fn cpu_online(&self, _c: &InitCtx<'_>, cpu: usize) {
        self.0.events.lock().push((cpu, true));
    }
    fn cpu_offline(&self, _c: &InitCtx<'_>, cpu: usize) {
        self.0.events.lock().push((cpu, false));
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
    fn init_task(&self, _c: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        if self.0.next_inf.swap(false, Ordering::SeqCst) {
            self.0.inf.lock().push(p.id());
        }
        if self
            .0
            .next_to1
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.0.to1.lock().push(p.id());
        }
        Ok(())
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        *self.0.enqueues.lock().entry(p.id()).or_default() += 1;
        self.0
            .runnable_at
            .lock()
            .entry(p.id())
            .or_default()
            .push(p.runnable_at());
        if self.0.to1.lock().contains(&p.id()) {
            ctx.dsq_insert(p, DSQ_LOCAL_ON | 1, SLICE_DFL, f);
        } else {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        }
    }
    fn dispatch(&self, _ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        self.0.dispatches[cpu].fetch_add(1, Ordering::Relaxed);
    }
    fn running(&self, _ctx: &Ctx<'_>, p: &TaskRef) {
        if self.0.inf.lock().contains(&p.id()) {
            p.set_slice(SLICE_INF);
        }
    }
}

fn rt(st: &Arc<State>, n: usize) -> Runtime {
    Runtime::builder()
        .nr_cpus(n)
        .pin(false)
        .scheduler(H(st.clone()))
        .build()
        .unwrap()
}

/// Sets the flag when dropped, so a failing test still stops its spinner.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn bad_hotplug_requests_are_refused() {
    let st = Arc::new(State::default());
    let rt = rt(&st, 2);
    assert_eq!(
        rt.cpu_offline(7),
        Err(HotplugError::NoSuchCpu { cpu: 7, nr_cpus: 2 })
    );
    assert_eq!(
        rt.cpu_online(1),
        Err(HotplugError::AlreadyInState {
            cpu: 1,
            online: true
        })
    );
    rt.cpu_offline(1).unwrap();
    assert_eq!(
        rt.cpu_offline(1),
        Err(HotplugError::AlreadyInState {
            cpu: 1,
            online: false
        })
    );
    assert_eq!(rt.cpu_offline(0), Err(HotplugError::LastCpu(0)));
    assert!(!rt.cpu_is_online(1) && rt.cpu_is_online(0) && !rt.cpu_is_online(9));
    rt.cpu_online(1).unwrap();
    assert_eq!(*st.events.lock(), vec![(1, false), (1, true)]);
    assert_eq!(rt.scheduler_name(), "h");
}

#[test]
fn offline_moves_queued_tasks_through_enqueue_and_keeps_the_pinned_one() {
    guard("hotplug: queued tasks move", || {
        let st = Arc::new(State::default());
        let rt = rt(&st, 3);
        // A spinner started on CPU 1 (so bound there) with an infinite
        // slice: nothing from the scheduler preempts it.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_guard = StopOnDrop(stop.clone());
        let started = Arc::new(AtomicBool::new(false));
        st.next_inf.store(true, Ordering::SeqCst);
        let (s, g) = (stop.clone(), started.clone());
        let spinner = rt.spawn_on(1, move || {
            g.store(true, Ordering::SeqCst);
            let mut cpus = Vec::new();
            while !s.load(Ordering::Relaxed) {
                scx_rt::preempt_point();
                let c = scx_rt::current_cpu().unwrap();
                if cpus.last() != Some(&c) {
                    cpus.push(c);
                }
            }
            cpus
        });
        wait_until("the spinner", || started.load(Ordering::SeqCst));
        // Ten fresh tasks queued in CPU 1's local DSQ behind the spinner.
        st.next_to1.store(10, Ordering::SeqCst);
        let hs: Vec<_> = (0..10)
            .map(|_| rt.spawn(|| (scx_rt::task_id().unwrap(), scx_rt::current_cpu().unwrap())))
            .collect();
        // Queued means enqueued (a wake-up may be carried out a moment
        // after `spawn` returns, on the target CPU).
        wait_until("ten tasks in CPU 1's queue", || {
            let ids = st.to1.lock().clone();
            let enq = st.enqueues.lock();
            ids.len() == 10 && ids.iter().all(|id| enq.contains_key(id))
        });
        rt.cpu_offline(1).unwrap();
        // They run elsewhere while the spinner still holds CPU 1.
        for h in hs {
            let (id, cpu) = h.join().unwrap();
            assert_ne!(cpu, 1, "task {id} ran on the offline CPU");
            assert!(
                st.enqueues.lock()[&id] >= 2,
                "task {id} did not go back through enqueue"
            );
            // SPEC.md §11 invariant 30: the move (a dequeue and an enqueue
            // without running) keeps the time it became runnable.
            let ra = st.runnable_at.lock()[&id].clone();
            assert_eq!(ra[0], ra[1], "task {id}: runnable_at reset by a move");
        }
        assert!(!stop.load(Ordering::Relaxed));
        // No dispatch on the offline CPU, and it is never idle for others.
        let d1 = st.dispatches[1].load(Ordering::Relaxed);
        let hs: Vec<_> = (0..200).map(|_| rt.spawn(scx_rt::current_cpu)).collect();
        for h in hs {
            assert_ne!(h.join().unwrap(), Some(1));
        }
        assert_eq!(st.dispatches[1].load(Ordering::Relaxed), d1);
        stop.store(true, Ordering::Relaxed);
        assert_eq!(spinner.join().unwrap(), vec![1], "the pinned task stays");
        assert_eq!(*st.events.lock(), vec![(1, false)]);
    });
}

#[test]
fn kicks_to_an_offline_cpu_are_dropped_but_a_self_kick_works() {
    guard("hotplug: kicks", || {
        let st = Arc::new(State::default());
        let rt = Arc::new(rt(&st, 2));
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_guard = StopOnDrop(stop.clone());
        let phase = Arc::new(AtomicU64::new(0));
        st.next_inf.store(true, Ordering::SeqCst);
        let (s, ph, rt2) = (stop.clone(), phase.clone(), rt.clone());
        let h = rt.spawn_on(1, move || {
            ph.store(1, Ordering::SeqCst);
            // Wait for the test to take CPU 1 offline and kick it from
            // outside; then kick ourselves with PREEMPT.
            while ph.load(Ordering::SeqCst) != 2 {
                scx_rt::preempt_point();
            }
            rt2.kick_cpu(1, KickFlags::PREEMPT).unwrap();
            while !s.load(Ordering::Relaxed) {
                scx_rt::preempt_point();
            }
            scx_rt::current_cpu()
        });
        wait_until("the spinner", || phase.load(Ordering::SeqCst) == 1);
        rt.cpu_offline(1).unwrap();
        let before = rt.stats().cpus[1].clone();
        // From outside the runtime: not the CPU itself, so dropped.
        for _ in 0..10 {
            rt.kick_cpu(1, KickFlags::PREEMPT).unwrap();
        }
        let mid = rt.stats().cpus[1].clone();
        assert_eq!(mid.kicks_received, before.kicks_received);
        assert_eq!(mid.preemptions, before.preemptions);
        phase.store(2, Ordering::SeqCst);
        wait_until("the self-kick to preempt CPU 1", || {
            rt.stats().cpus[1].preemptions > before.preemptions
        });
        stop.store(true, Ordering::Relaxed);
        assert_eq!(h.join().unwrap(), Some(1));
    });
}

#[test]
fn a_scheduler_without_hotplug_callbacks_exits_with_the_hotplug_code() {
    guard("hotplug: no callbacks", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(Simple::fifo())
            .build()
            .unwrap();
        rt.cpu_offline(1).unwrap();
        let info = common::wait_ejected(&rt);
        assert_eq!(info.kind, ExitKind::UnregKern);
        assert_eq!(info.exit_code, ECODE_ACT_RESTART | ECODE_RSN_HOTPLUG);
        assert!(info.msg.contains("cpu 1 going offline"), "{}", info.msg);
        // The fallback follows hotplug without an exit.
        assert_eq!(rt.scheduler_name(), "fifo");
        let hs: Vec<_> = (0..100).map(|i| rt.spawn(move || i)).collect();
        assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 4950);
        rt.cpu_online(1).unwrap();
        assert_eq!(rt.stats().ejections, 1);
        let h = rt.spawn_on(1, scx_rt::current_cpu);
        assert_eq!(h.join().unwrap(), Some(1));
    });
}

#[test]
fn hotplug_churn_under_load_loses_no_task() {
    guard("hotplug: churn", || {
        let rt = Arc::new(Runtime::builder().nr_cpus(4).pin(false).build().unwrap());
        const N: usize = 4000;
        let counts = Counts::new(N);
        let (tx, rx) = scx_rt::sync::unbounded::<usize>();
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let counts = counts.clone();
                let tx = tx.clone();
                rt.spawn(move || {
                    counts.hit(i);
                    for _ in 0..3 {
                        scx_rt::yield_now();
                    }
                    if i % 7 == 0 {
                        scx_rt::sleep(std::time::Duration::from_micros(100));
                    }
                    tx.send(i).unwrap();
                })
            })
            .collect();
        drop(tx);
        let churn = {
            let rt = rt.clone();
            std::thread::spawn(move || {
                for k in 0..60 {
                    let cpu = 1 + k % 3;
                    rt.cpu_offline(cpu).unwrap();
                    std::thread::yield_now();
                    rt.cpu_online(cpu).unwrap();
                }
            })
        };
        let sum = rt.block_on(move || {
            let mut sum = 0;
            while let Ok(i) = rx.recv() {
                sum += i;
            }
            sum
        });
        churn.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sum, N * (N - 1) / 2);
        counts.assert_exactly_once("hotplug churn");
        assert_eq!(rt.stats().ejections, 0, "{:?}", rt.exit_info());
    });
}
