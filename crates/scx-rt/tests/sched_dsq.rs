//! User DSQ semantics through custom schedulers (SPEC.md §2): FIFO and vtime
//! order, ENQ_HEAD, `dsq_nr_queued`, `create_dsq`/`destroy_dsq` rules,
//! direct dispatch to another CPU's local DSQ, and the dispatch buffer's
//! `dispatch_nr_slots`/`dispatch_cancel`.
//!
//! Order tests run on ONE CPU: a parent task spawns tagged children without
//! reaching a switch point, so every child is queued before any runs and the
//! run order is exactly the queue order.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::{CreateDsqError, EnqFlags, ExitKind, KickFlags, DSQ_LOCAL, DSQ_LOCAL_ON, SLICE_DFL};

const DSQ: u64 = 7;

/// A scheduler that queues every task on user DSQ [`DSQ`], created at
/// init; the caller adds the `dispatch` under test.
fn dsq_sched(name: &'static str) -> FnSched {
    FnSched::new(name, |ctx, p, f| {
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
    })
    .init(|ctx| ctx.create_dsq(DSQ, -1).map_err(|_| -17))
}

/// Runs `n` tagged children on a 1-CPU runtime with `s`; returns the run
/// order and the runtime (for exit checks).
fn run_children(s: FnSched, n: u64) -> (Vec<u64>, Option<scx_rt::ExitInfo>) {
    guard("run tagged children on 1 CPU", move || {
        let tag = s.tag.clone();
        let rt = rt_with(1, s);
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs = spawn_tagged_children(&rt, &tag, n, &log);
        join_tagged(hs);
        rt.shutdown();
        let order = log.lock().clone();
        (order, rt.exit_info())
    })
}

fn user_dsq_fifo_sched(head_tag: Option<u64>) -> FnSched {
    FnSched::new("dsq-fifo", move |ctx, p, f| {
        let f = if Some(tag_of(p)) == head_tag {
            f | EnqFlags::HEAD
        } else {
            f
        };
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
    })
    .init(|ctx| ctx.create_dsq(DSQ, -1).map_err(|_| -17))
    .dispatch(|ctx, _, _| {
        ctx.dsq_move_to_local(DSQ);
    })
}

#[test]
fn user_dsq_is_fifo() {
    let (order, exit) = run_children(user_dsq_fifo_sched(None), 20);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

#[test]
fn enq_head_puts_the_task_first() {
    let (order, exit) = run_children(user_dsq_fifo_sched(Some(3)), 8);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    // 0,1,2 were queued; 3 went to the head; 4.. to the tail.
    assert_eq!(order, vec![3, 0, 1, 2, 4, 5, 6, 7]);
}

#[test]
fn vtime_dsq_runs_in_increasing_vtime_with_fifo_ties() {
    // Children 0..20 get vtimes 1000, 1000, 999, 999, ...: the DSQ must run
    // the lowest vtime first, and among equal vtimes the earlier insertion.
    let s = FnSched::new("dsq-vtime", |ctx, p, f| {
        let t = tag_of(p);
        let vtime = if t == NO_TAG { 0 } else { 1000 - t / 2 };
        ctx.dsq_insert_vtime(p, DSQ, SLICE_DFL, vtime, f);
    })
    .init(|ctx| ctx.create_dsq(DSQ, -1).map_err(|_| -17))
    .dispatch(|ctx, _, _| {
        ctx.dsq_move_to_local(DSQ);
    });
    let (order, exit) = run_children(s, 20);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    let expected: Vec<u64> = (0..10).rev().flat_map(|k| [2 * k, 2 * k + 1]).collect();
    assert_eq!(order, expected);
}

#[test]
fn dsq_nr_queued_counts_and_unknown_ids() {
    #[derive(Default)]
    struct Seen {
        counts: Vec<i32>,
        unknown: Vec<i32>,
        local: Vec<i32>,
        consumed: Vec<bool>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let s = dsq_sched("dsq-count").dispatch(move |ctx, _, _| {
        let n = ctx.dsq_nr_queued(DSQ);
        let unknown = ctx.dsq_nr_queued(0x1234_5678);
        let local = ctx.dsq_nr_queued(DSQ_LOCAL);
        let ok = ctx.dsq_move_to_local(DSQ);
        let mut s = s2.lock();
        s.counts.push(n);
        s.unknown.push(unknown);
        s.local.push(local);
        s.consumed.push(ok);
    });
    let (order, exit) = run_children(s, 10);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    let s = seen.lock();
    let nonzero: Vec<i32> = s.counts.iter().copied().filter(|&c| c != 0).collect();
    // The parent (1), then the 10 children draining one by one.
    let mut expected = vec![1];
    expected.extend((1..=10).rev());
    assert_eq!(nonzero, expected, "all counts: {:?}", s.counts);
    assert!(
        s.unknown.iter().all(|&u| u == -2),
        "unknown ids: {:?}",
        s.unknown
    );
    assert!(
        s.local.iter().all(|&l| l == 0),
        "local counts in dispatch: {:?}",
        s.local
    );
    for (c, ok) in s.counts.iter().zip(&s.consumed) {
        assert_eq!(
            *c > 0,
            *ok,
            "consume result vs count: {:?} {:?}",
            s.counts,
            s.consumed
        );
    }
}

#[test]
fn create_dsq_rules() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let r2 = results.clone();
    let s = FnSched::new("dsq-create", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
    })
    .init(move |ctx| {
        let mut r = r2.lock();
        r.push(ctx.create_dsq(DSQ, -1));
        r.push(ctx.create_dsq(DSQ, -1));
        r.push(ctx.create_dsq((1 << 63) | 5, -1));
        r.push(ctx.create_dsq(1 << 62, 0)); // bit 62 alone is a valid user id
        r.push(ctx.create_dsq(99, 3));
        Ok(())
    })
    .dispatch(|ctx, _, _| {
        ctx.dsq_move_to_local(DSQ);
    });
    let (order, exit) = run_children(s, 3);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(order, vec![0, 1, 2]);
    assert_eq!(
        *results.lock(),
        vec![
            Ok(()),
            Err(CreateDsqError::Exists { id: DSQ }),
            Err(CreateDsqError::Builtin { id: (1 << 63) | 5 }),
            Ok(()),
            Err(CreateDsqError::InvalidNode { node: 3 }),
        ]
    );
}

#[test]
fn consume_after_destroying_an_empty_dsq_is_an_error() {
    const GONE: u64 = 9;
    let s = FnSched::new("dsq-destroy", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
    })
    .init(|ctx| {
        ctx.create_dsq(DSQ, -1).map_err(|_| -17)?;
        ctx.create_dsq(GONE, -1).map_err(|_| -17)
    })
    .dispatch(|ctx, _, _| {
        // Destroying an empty DSQ is fine (and repeating it is ignored)...
        ctx.destroy_dsq(GONE);
        ctx.destroy_dsq(GONE);
        ctx.dsq_move_to_local(DSQ);
        // ...but it is gone afterwards.
        ctx.dsq_move_to_local(GONE);
    });
    let info = children_until_ejected("destroy then consume", s);
    assert_eq!(info.kind, ExitKind::Error);
    assert!(info.msg.contains("non-existent DSQ"), "msg: {}", info.msg);
    assert_eq!(info.scheduler, "dsq-destroy");
}

/// Runs 5 tagged children on a 1-CPU runtime with `s`, which gets itself
/// ejected; checks that every child ran once, under the fallback
/// scheduler past the ejection. The ejection's exit info.
fn children_until_ejected(what: &str, s: FnSched) -> scx_rt::ExitInfo {
    let (order, info) = guard(what, move || {
        let tag = s.tag.clone();
        let rt = rt_with(1, s);
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs = spawn_tagged_children(&rt, &tag, 5, &log);
        join_tagged(hs);
        let info = wait_ejected(&rt);
        assert_eq!(rt.scheduler_name(), "fifo");
        let order = log.lock().clone();
        (order, info)
    });
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec![0, 1, 2, 3, 4],
        "every child ran once: {order:?}"
    );
    info
}

#[test]
fn destroying_a_non_empty_dsq_errors_and_leaves_it_intact() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let s = dsq_sched("dsq-destroy-busy").dispatch(move |ctx, _, _| {
        let before = ctx.dsq_nr_queued(DSQ);
        if before > 0 {
            ctx.destroy_dsq(DSQ);
            let after = ctx.dsq_nr_queued(DSQ);
            let consumed = ctx.dsq_move_to_local(DSQ);
            s2.lock().push((before, after, consumed));
        }
    });
    let info = guard("destroy a busy dsq", move || {
        let rt = rt_with(1, s);
        mixed_workload(&rt, 20, 1, 2, 1);
        wait_ejected(&rt)
    });
    assert_eq!(info.kind, ExitKind::Error);
    assert!(info.msg.contains("in-use dsq"), "msg: {}", info.msg);
    let seen = seen.lock();
    let &(before, after, consumed) = seen.first().expect("dispatch saw a queued task");
    assert_eq!(before, after, "the DSQ must survive a refused destroy");
    assert!(consumed, "the refused-destroy DSQ must still be consumable");
}

#[test]
fn direct_dispatch_to_another_cpus_local_dsq() {
    // Every task goes to CPU 1's local DSQ, whichever rq enqueued it.
    let enq_on_0 = Arc::new(AtomicUsize::new(0));
    let e0 = enq_on_0.clone();
    let s = FnSched::new("local-on", move |ctx, p, f| {
        if ctx.cpu() == Some(0) {
            e0.fetch_add(1, Ordering::Relaxed);
        }
        ctx.dsq_insert(p, DSQ_LOCAL_ON | 1, SLICE_DFL, f);
    });
    let cpus = guard("LOCAL_ON direct dispatch", move || {
        let rt = rt_with(2, s);
        let hs: Vec<_> = (0..40)
            .map(|i| {
                rt.spawn(move || {
                    let first = scx_rt::current_cpu();
                    if i % 2 == 0 {
                        scx_rt::yield_now();
                    }
                    (first, scx_rt::current_cpu())
                })
            })
            .collect();
        let cpus: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            rt.exit_info().is_none(),
            "unexpected exit: {:?}",
            rt.exit_info()
        );
        cpus
    });
    all_ran_on(&cpus, 1, enq_on_0.load(Ordering::Relaxed), 1, "CPU 0");
}

/// Every task's (first, last) CPU is `cpu`, and at least `min` tasks were
/// enqueued on the other rq, `other` (`enqueued` of them were): the
/// cross-CPU path the test is about was taken.
fn all_ran_on(
    cpus: &[(Option<usize>, Option<usize>)],
    cpu: usize,
    enqueued: usize,
    min: usize,
    other: &str,
) {
    for (i, c) in cpus.iter().enumerate() {
        assert_eq!(*c, (Some(cpu), Some(cpu)), "task {i} ran on the wrong CPU");
    }
    assert!(
        enqueued >= min,
        "{enqueued} tasks were enqueued on {other}'s rq (at least {min} wanted): the cross-CPU path was not exercised"
    );
}

#[test]
fn dispatch_nr_slots_and_cancel() {
    // The policy keeps tasks; each dispatch call buffers two of them and,
    // when the second is the victim (tag 3), cancels it and keeps it aside
    // until everything else ran. Batch size 4.
    const VICTIM: u64 = 3;
    let q = TaskQueue::new();
    let aside = TaskQueue::new();
    let slots = Arc::new(Mutex::new(Vec::<Vec<usize>>::new()));
    let (q1, q2, a2, sl) = (q.clone(), q.clone(), aside.clone(), slots.clone());
    let s = FnSched::new("slots", move |_ctx, p, _f| q1.push(p))
        .max_batch(4)
        .dispatch(move |ctx, cpu, _| {
            let mut rec = vec![ctx.dispatch_nr_slots()];
            let Some(x) = q2.pop_for(cpu) else {
                if let Some(v) = a2.pop_for(cpu) {
                    ctx.dsq_insert(&v, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
                }
                return;
            };
            ctx.dsq_insert(&x, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
            rec.push(ctx.dispatch_nr_slots());
            if let Some(y) = q2.pop_for(cpu) {
                ctx.dsq_insert(&y, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
                rec.push(ctx.dispatch_nr_slots());
                if tag_of(&y) == VICTIM {
                    ctx.dispatch_cancel();
                    rec.push(ctx.dispatch_nr_slots());
                    a2.push(&y);
                }
            }
            sl.lock().push(rec);
        });
    let (order, exit) = run_children(s, 8);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    // Parent alone, then pairs (0,1), (2,3 cancelled), (4,5), (6,7), then 3.
    assert_eq!(order, vec![0, 1, 2, 4, 5, 6, 7, 3]);
    let slots = slots.lock();
    assert!(
        slots.contains(&vec![4, 3, 2, 3]),
        "expected a call with slots 4 -> 3 -> 2 -> cancel -> 3: {slots:?}"
    );
    assert!(
        slots.iter().all(|r| r[0] == 4),
        "buffer not empty at entry: {slots:?}"
    );
    assert!(aside.len() == 0 && q.len() == 0);
}

#[test]
fn local_dispatch_of_a_task_bound_elsewhere_is_not_an_error() {
    // The crate docs: a started task is bound to its CPU "as for a kernel
    // task that called migrate_disable()", and a verdict that tries to move
    // it is an error only "for an explicit LOCAL_ON, otherwise the task
    // stays eligible only on its CPU". sched_ext's dispatch_to_local_dsq()
    // does not raise an error for a migration-disabled task either
    // (task_can_run_on_remote_rq returns false quietly; the task goes to the
    // global DSQ). Here the policy pops the head of one shared queue
    // whatever CPU asks and dispatches it to DSQ_LOCAL.
    let q = TaskQueue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let s = FnSched::new("local-anyone", move |_ctx, p, _f| q1.push(p)).dispatch(
        move |ctx, _cpu, _| {
            if let Some(p) = q2.pop_for_any() {
                ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
            }
        },
    );
    let exit = guard("LOCAL dispatch of bound tasks", move || {
        let rt = rt_with(2, s);
        mixed_workload(&rt, 200, 2, 1, 5);
        rt.shutdown();
        rt.exit_info().map(|i| (i.kind, i.msg))
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
}

#[test]
fn batched_move_to_local_keeps_the_dsq_order() {
    // Each dispatch moves up to 3 tasks at once: the run order is still
    // the DSQ's, and each call says how many it moved.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let s = dsq_sched("dsq-batch").dispatch(move |ctx, _, _| {
        let queued = ctx.dsq_nr_queued(DSQ);
        let moved = ctx.dsq_move_to_local_batch(DSQ, 3);
        let local = ctx.dsq_nr_queued(DSQ_LOCAL);
        s2.lock().push((queued, moved, local));
    });
    let (order, exit) = run_children(s, 20);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    let seen = seen.lock();
    for &(queued, moved, local) in seen.iter() {
        assert_eq!(moved, (queued.max(0) as usize).min(3), "{seen:?}");
        assert!(local as usize >= moved, "{seen:?}");
    }
    assert!(
        seen.iter().any(|&(_, moved, _)| moved == 3),
        "no full batch: {seen:?}"
    );
}

#[test]
fn batched_move_of_another_cpus_tasks_runs_each_once_on_the_mover() {
    // New tasks start on CPU 1's rq (select_cpu) and wait on the DSQ; only
    // CPU 0 moves tasks from it, in batches of up to 8: the tasks of CPU
    // 1's rq come over with one hold of its lock per batch, and those of
    // CPU 0's own rq (a task that yielded) in the same batches.
    const N: usize = 40;
    let enq_on_1 = Arc::new(AtomicUsize::new(0));
    let best = Arc::new(AtomicUsize::new(0));
    let (e1, b2) = (enq_on_1.clone(), best.clone());
    let s = FnSched::new("dsq-batch-remote", move |ctx, p, f| {
        if ctx.cpu() == Some(1) {
            e1.fetch_add(1, Ordering::Relaxed);
        }
        ctx.dsq_insert(p, DSQ, SLICE_DFL, f);
        // Only CPU 0 takes tasks from the DSQ: it must not sleep through
        // one queued by CPU 1.
        ctx.kick_cpu(0, KickFlags::IDLE);
    })
    .init(|ctx| ctx.create_dsq(DSQ, -1).map_err(|_| -17))
    .select_cpu(|_, _, _| 1)
    .dispatch(move |ctx, cpu, _| {
        if cpu == 0 {
            let moved = ctx.dsq_move_to_local_batch(DSQ, 8);
            b2.fetch_max(moved, Ordering::Relaxed);
        }
    });
    let counts = Counts::new(N);
    let c2 = counts.clone();
    let cpus = guard("batched move across CPUs", move || {
        let rt = rt_with(2, s);
        // Queued while CPU 0 cannot take them yet: a task on CPU 0 spins
        // until all are spawned, so the batches find many waiting.
        let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let g2 = gate.clone();
        let hold = rt.spawn_on(0, move || {
            while !g2.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        });
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let c = c2.clone();
                rt.spawn(move || {
                    let first = scx_rt::current_cpu();
                    scx_rt::yield_now();
                    c.hit(i);
                    (first, scx_rt::current_cpu())
                })
            })
            .collect();
        gate.store(true, Ordering::Release);
        hold.join().unwrap();
        let cpus: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            rt.exit_info().is_none(),
            "unexpected exit: {:?}",
            rt.exit_info()
        );
        cpus
    });
    counts.assert_exactly_once("batched move");
    all_ran_on(&cpus, 0, enq_on_1.load(Ordering::Relaxed), N, "CPU 1");
    assert!(
        best.load(Ordering::Relaxed) > 1,
        "no batch moved more than one task"
    );
}

#[test]
fn batched_move_from_a_non_existent_dsq_is_an_error() {
    const GONE: u64 = 9;
    let s = dsq_sched("dsq-batch-gone").dispatch(|ctx, _, _| {
        ctx.dsq_move_to_local_batch(DSQ, 4);
        assert_eq!(ctx.dsq_move_to_local_batch(GONE, 4), 0);
    });
    let info = children_until_ejected("batched move from a missing DSQ", s);
    assert_eq!(info.kind, ExitKind::Error);
    assert!(info.msg.contains("non-existent DSQ"), "msg: {}", info.msg);
    assert_eq!(info.scheduler, "dsq-batch-gone");
}
