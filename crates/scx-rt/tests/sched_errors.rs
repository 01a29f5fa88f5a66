//! Scheduler faults (SPEC.md §2, §6.3, §11 invariants 5, 8, 27, 31, 34, 37):
//! each one ejects the scheduler with an exit record naming the fault, the
//! runtime falls back to the built-in FIFO, and every task still completes
//! exactly once.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    EnqFlags, ExitInfo, ExitKind, TaskRef, DSQ_GLOBAL, DSQ_LOCAL, DSQ_LOCAL_ON, SLICE_DFL,
};

/// Runs the mixed workload on `nr_cpus` under `s`, waits for the ejection
/// and checks the generic post-conditions. Returns the exit record.
fn eject_with(nr_cpus: usize, s: FnSched) -> ExitInfo {
    let name = s.name;
    let info = guard(name, move || {
        let rt = rt_with(nr_cpus, s);
        mixed_workload(&rt, 150, 2, 3, 3);
        let info = wait_ejected(&rt);
        assert_eq!(rt.scheduler_name(), "fifo", "the fallback is attached");
        assert_eq!(rt.stats().ejections, 1, "ejected exactly once");
        // The fallback keeps working.
        mixed_workload(&rt, 20, 1, 2, 1);
        rt.shutdown();
        assert_eq!(rt.stats().live_tasks, 0);
        info
    });
    assert_eq!(info.scheduler, name, "exit record names the scheduler");
    if info.kind.is_error() {
        assert!(!info.dump.is_empty(), "an error exit carries a dump");
    }
    info
}

fn assert_error(info: &ExitInfo, kind: ExitKind, needle: &str) {
    assert_eq!(info.kind, kind, "kind; msg: {}", info.msg);
    assert!(
        info.msg.contains(needle),
        "exit msg {:?} does not mention {needle:?}",
        info.msg
    );
}

/// A counter that says "now" from the `n`-th call on.
fn after(n: usize) -> impl Fn() -> bool + Send + Sync {
    let c = AtomicUsize::new(0);
    move || c.fetch_add(1, Ordering::Relaxed) >= n
}

/// Global FIFO until `fault()` says otherwise, then `bad(ctx, p, f)`.
fn enqueue_fault(
    name: &'static str,
    n: usize,
    bad: impl Fn(&mut scx_rt::EnqueueCtx<'_>, &TaskRef, EnqFlags) + Send + Sync + 'static,
) -> FnSched {
    let now = after(n);
    FnSched::new(name, move |ctx, p, f| {
        if now() {
            bad(ctx, p, f)
        } else {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
        }
    })
}

#[test]
fn dispatch_to_a_nonexistent_user_dsq() {
    let s = enqueue_fault("bad-dsq", 10, |ctx, p, f| {
        ctx.dsq_insert(p, 4242, SLICE_DFL, f)
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "non-existent DSQ");
}

#[test]
fn an_error_names_the_callback_the_task_and_the_cpu() {
    let s = enqueue_fault("bad-dsq-ctx", 10, |ctx, p, f| {
        ctx.dsq_insert(p, 4243, SLICE_DFL, f)
    });
    let info = eject_with(2, s);
    assert_error(&info, ExitKind::Error, "non-existent DSQ");
    assert!(
        info.msg.contains("(ops.enqueue, task ") && info.msg.contains(", cpu "),
        "msg: {}",
        info.msg
    );
}

#[test]
fn dispatch_to_local_on_an_invalid_cpu() {
    let s = enqueue_fault("bad-local-on", 10, |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_LOCAL_ON | 99, SLICE_DFL, f)
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "invalid CPU 99");
}

#[test]
fn dispatch_to_an_invalid_builtin_id() {
    let s = enqueue_fault("bad-builtin", 10, |ctx, p, f| {
        ctx.dsq_insert(p, (1 << 63) | 77, SLICE_DFL, f)
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "invalid DSQ ID");
}

#[test]
fn vtime_dispatch_to_the_global_dsq() {
    let s = enqueue_fault("vtime-global", 10, |ctx, p, f| {
        ctx.dsq_insert_vtime(p, DSQ_GLOBAL, SLICE_DFL, 5, f)
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "vtime ordering");
}

#[test]
fn internal_enq_flags_are_refused() {
    let s = enqueue_fault("internal-flags", 10, |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f | EnqFlags(1 << 57))
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "invalid enq_flags");
}

fn select_cpu_returns(bad: i32) -> FnSched {
    let now = after(10);
    FnSched::new("bad-select-cpu", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    })
    .select_cpu(move |_ctx, _p, prev| if now() { bad } else { prev as i32 })
}

#[test]
fn select_cpu_returning_cpu_1000() {
    let info = eject_with(2, select_cpu_returns(1000));
    assert_error(&info, ExitKind::Error, "invalid CPU 1000");
}

#[test]
fn select_cpu_returning_minus_one() {
    let info = eject_with(2, select_cpu_returns(-1));
    assert_error(&info, ExitKind::Error, "invalid CPU -1");
}

#[test]
fn dispatch_buffer_overflow() {
    // The buffer holds 4; the policy buffers its task 5 times.
    let q = TaskQueue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let s = FnSched::new("overflow", move |_ctx, p, _f| q1.push(p))
        .max_batch(4)
        .dispatch(move |ctx, cpu, _| {
            if let Some(p) = q2.pop_for(cpu) {
                for _ in 0..5 {
                    ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
                }
            }
        });
    assert_error(
        &eject_with(2, s),
        ExitKind::Error,
        "dispatch buffer overflow",
    );
}

#[test]
fn dispatch_cancel_underflow() {
    let q = TaskQueue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let now = after(20);
    let s =
        FnSched::new("underflow", move |_ctx, p, _f| q1.push(p)).dispatch(move |ctx, cpu, _| {
            if let Some(p) = q2.pop_for(cpu) {
                ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
                if now() {
                    ctx.dispatch_cancel();
                    ctx.dispatch_cancel();
                    // Keep the task: cancelled, it still belongs to us.
                    q2.push_front(p);
                }
            }
        });
    assert_error(&eject_with(2, s), ExitKind::Error, "underflow");
}

#[test]
fn consume_of_a_builtin_dsq() {
    // dispatch() runs only when a CPU finds nothing, so fault at the first.
    let now = after(0);
    let s = FnSched::new("consume-global", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    })
    .dispatch(move |ctx, _, _| {
        if now() {
            ctx.dsq_move_to_local(DSQ_GLOBAL);
        }
    });
    assert_error(&eject_with(2, s), ExitKind::Error, "invalid DSQ ID");
}

/// On one CPU, alternate FIFO and vtime insertions into one user DSQ; the
/// children are all queued before any runs, so the second insertion mixes.
fn mixed_ordering(vtime_first: bool) -> ExitInfo {
    const D: u64 = 3;
    let s = FnSched::new("mixed-order", move |ctx, p, f| {
        let t = tag_of(p);
        let vt = t.is_multiple_of(2) == vtime_first;
        if t == NO_TAG {
            ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
        } else if vt {
            ctx.dsq_insert_vtime(p, D, SLICE_DFL, 100 - t, f)
        } else {
            ctx.dsq_insert(p, D, SLICE_DFL, f)
        }
    })
    .init(|ctx| ctx.create_dsq(D, -1).map_err(|_| -17))
    .dispatch(|ctx, _, _| {
        ctx.dsq_move_to_local(D);
    });
    let info = guard("mixed ordering", move || {
        let tag = s.tag.clone();
        let rt = rt_with(1, s);
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs = spawn_tagged_children(&rt, &tag, 10, &log);
        join_tagged(hs);
        let info = wait_ejected(&rt);
        assert_eq!(rt.scheduler_name(), "fifo");
        let mut seen = log.lock().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>(), "every child ran once");
        info
    });
    assert!(!info.dump.is_empty(), "an error exit carries a dump");
    info
}

#[test]
fn fifo_insert_into_a_vtime_dsq() {
    assert_error(&mixed_ordering(true), ExitKind::Error, "PRIQ-enqueued");
}

#[test]
fn vtime_insert_into_a_fifo_dsq() {
    assert_error(&mixed_ordering(false), ExitKind::Error, "FIFO-enqueued");
}

#[test]
fn direct_dispatching_twice_from_enqueue() {
    let s = enqueue_fault("twice", 10, |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    });
    assert_error(
        &eject_with(2, s),
        ExitKind::Error,
        "already direct-dispatched",
    );
}

#[test]
fn direct_dispatching_another_task_from_enqueue() {
    let last: Arc<Mutex<Option<TaskRef>>> = Arc::new(Mutex::new(None));
    let s = enqueue_fault("other-task", 10, move |ctx, p, f| {
        let other = last.lock().replace(p.clone());
        match other {
            Some(o) if o.id() != p.id() => ctx.dsq_insert(&o, DSQ_GLOBAL, SLICE_DFL, f),
            _ => {}
        }
        // Our own task: queued normally.
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f);
    });
    assert_error(
        &eject_with(2, s),
        ExitKind::Error,
        "from the enqueue of task",
    );
}

#[test]
fn panic_in_enqueue() {
    let s = enqueue_fault("panic-enqueue", 10, |_ctx, _p, _f| {
        panic!("enqueue exploded")
    });
    let info = eject_with(2, s);
    assert_error(&info, ExitKind::Error, "ops.enqueue");
    assert!(info.msg.contains("enqueue exploded"), "msg: {}", info.msg);
}

#[test]
fn panic_in_dispatch() {
    let q = TaskQueue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let now = after(15);
    let s = FnSched::new("panic-dispatch", move |_ctx, p, _f| q1.push(p)).dispatch(
        move |ctx, cpu, _| {
            if now() {
                panic!("dispatch exploded");
            }
            if let Some(p) = q2.pop_for(cpu) {
                ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_DFL, EnqFlags::empty());
            }
        },
    );
    let info = eject_with(2, s);
    assert_error(&info, ExitKind::Error, "ops.dispatch");
    assert!(info.msg.contains("dispatch exploded"), "msg: {}", info.msg);
}

#[test]
fn scheduler_calls_error() {
    let s = enqueue_fault("calls-error", 10, |ctx, p, f| {
        ctx.error("x");
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    });
    let info = eject_with(2, s);
    assert_eq!(info.kind, ExitKind::ErrorBpf);
    assert_eq!(info.msg, "x");
}

#[test]
fn scheduler_calls_exit() {
    let s = enqueue_fault("calls-exit", 10, |ctx, p, f| {
        ctx.exit(7, "bye");
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    });
    let info = eject_with(2, s);
    assert_eq!(info.kind, ExitKind::UnregBpf);
    assert_eq!(info.exit_code, 7);
    assert_eq!(info.msg, "bye");
}

#[test]
fn only_the_first_exit_is_recorded() {
    let s = enqueue_fault("two-exits", 10, |ctx, p, f| {
        ctx.error("first");
        ctx.exit(3, "second");
        ctx.error("third");
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    });
    let info = eject_with(2, s);
    assert_eq!(info.kind, ExitKind::ErrorBpf);
    assert_eq!(info.msg, "first");
    assert_eq!(info.exit_code, 0);
}

#[test]
fn a_policy_that_never_dispatches_then_errors() {
    // Holds every task it is given; after 60 enqueues it gives up with an
    // error. Every held task must run under the fallback.
    let held = TaskQueue::new();
    let h2 = held.clone();
    let now = after(60);
    let s = FnSched::new("hoarder", move |ctx, p, _f| {
        h2.push(p);
        if now() {
            ctx.error("held too long");
        }
    });
    let info = eject_with(2, s);
    assert_eq!(info.kind, ExitKind::ErrorBpf);
    assert_eq!(info.msg, "held too long");
    assert!(held.len() >= 60, "the policy held {} tasks", held.len());
}

#[test]
fn init_failure_ejects_before_any_task() {
    let s = FnSched::new("init-fails", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    })
    .init(|_| Err(-22));
    let info = eject_with(2, s);
    assert_error(&info, ExitKind::Error, "-22");
}

#[test]
fn init_task_failure() {
    let now = after(5);
    let s = FnSched::new("init-task-fails", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_GLOBAL, SLICE_DFL, f)
    })
    .init_task(move |_, _| if now() { Err(-12) } else { Ok(()) });
    let info = eject_with(2, s);
    assert_error(&info, ExitKind::Error, "init_task");
}

#[test]
fn local_on_a_cpu_the_task_may_not_use() {
    // Tasks spawned with spawn_on(1) must never be placed on CPU 0.
    let s = FnSched::new("disallowed", |ctx, p, f| {
        ctx.dsq_insert(p, DSQ_LOCAL_ON, SLICE_DFL, f) // LOCAL_ON | 0
    });
    let (cpus, info) = guard("LOCAL_ON to a disallowed CPU", move || {
        let rt = rt_with(2, s);
        let hs: Vec<_> = (0..20)
            .map(|_| rt.spawn_on(1, scx_rt::current_cpu))
            .collect();
        let cpus: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (cpus, wait_ejected(&rt))
    });
    assert!(
        cpus.iter().all(|&c| c == Some(1)),
        "a task left its mask: {cpus:?}"
    );
    assert_error(&info, ExitKind::Error, "not allowed");
}
