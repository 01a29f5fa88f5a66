//! Errors the core detects (`scx_ops_error`) and how callbacks are called:
//! a panic in a callback is an ops error naming the callback.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::core::has_op::Op;
use crate::core::slot::SchedSlot;
use crate::exit::ExitKind;
use crate::join::panic_msg;
use crate::loom::Ordering;
use crate::ops::Shared;
use crate::task::TaskRef;

use crate::core::errctx::err_ctx;

impl Shared {
    pub(crate) fn check_cpu(&self, cpu: usize, what: &str) -> bool {
        if cpu < self.nr_cpus {
            return true;
        }
        self.ops_error(format!("invalid CPU {cpu} in {what}"));
        false
    }

    /// Records an ops error (`scx_ops_error`): the scheduler is ejected at the
    /// next safe point.
    pub(crate) fn ops_error(&self, msg: String) {
        self.record_exit(ExitKind::Error, 0, msg);
    }

    pub(crate) fn record_exit(&self, kind: ExitKind, code: i64, msg: String) {
        let current = self.sched_gen.load(Ordering::Acquire);
        let (rt, gen) = crate::core::slot::working_for();
        if rt == self.rt_id && gen != current {
            return; // a late error of a scheduler that already left
        }
        let name = self.cur_slot().name.clone();
        let mut msg = msg;
        // Errors the runtime detects name where (a scheduler's own
        // `ctx.error` message is passed through as written).
        if kind == ExitKind::Error {
            let c = crate::core::errctx::get();
            let mut parts = Vec::new();
            if let Some(op) = c.op {
                parts.push(format!("ops.{op}"));
            }
            if let Some(t) = c.task {
                parts.push(format!("task {t}"));
            }
            if let Some(cpu) = c.cpu.or_else(crate::core::current::cpu) {
                parts.push(format!("cpu {cpu}"));
            }
            if !parts.is_empty() {
                msg = format!("{msg} ({})", parts.join(", "));
            }
        }
        if self.exit.claim(kind, code, msg, &name, current) {
            // Make some worker reach a safe point soon.
            for c in self.cpus.iter() {
                c.resched();
            }
        }
    }
}

/// Calls scheduler callback `op` about task `p`; see [`call`].
pub(crate) fn call_task<R>(
    sh: &Shared,
    op: &'static str,
    p: &TaskRef,
    f: impl FnOnce() -> R,
) -> Option<R> {
    let _g = err_ctx(op, Some(p), None);
    call_inner(sh, op, f)
}

/// Calls scheduler callback `op`, catching a panic (an ops error naming
/// the callback).
pub(crate) fn call<R>(sh: &Shared, op: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    let _g = err_ctx(op, None, None);
    call_inner(sh, op, f)
}

pub(crate) fn call_inner<R>(sh: &Shared, op: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) => {
            sh.ops_error(format!(
                "scheduler panicked in ops.{op}: {}",
                panic_msg(&*e)
            ));
            None
        }
    }
}

/// Calls callback `op` of `slot` (about task `p`, if any), catching a
/// panic; the first call of each callback also learns whether the
/// scheduler implements it (`core::has_op`). Callers skip the call when
/// `slot.has.has(op)` is false and do what the default would, and build
/// the callback's context with `Ctx::for_op`, which attributes the errors
/// its helpers detect (no thread-local is touched on this path).
#[inline]
pub(crate) fn call_op<R>(
    sh: &Shared,
    slot: &SchedSlot,
    op: Op,
    p: Option<&TaskRef>,
    f: impl FnOnce() -> R,
) -> Option<R> {
    let run = || match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) => {
            panicked(sh, op.name(), p, &*e);
            None
        }
    };
    if slot.has.unknown(op) {
        return slot.has.learn(op, run);
    }
    run()
}

/// Calls a callback that every scheduler implements (`enqueue`), catching
/// a panic as `call_op` does.
#[inline]
pub(crate) fn call_cb<R>(
    sh: &Shared,
    op: &'static str,
    p: Option<&TaskRef>,
    f: impl FnOnce() -> R,
) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) => {
            panicked(sh, op, p, &*e);
            None
        }
    }
}

/// A callback panicked: an ops error naming it.
#[cold]
fn panicked(sh: &Shared, op: &'static str, p: Option<&TaskRef>, e: &(dyn std::any::Any + Send)) {
    let _g = crate::core::errctx::enter(crate::core::errctx::ErrCtx {
        op: Some(op),
        task: p.map(|p| p.id()),
        cpu: None,
    });
    sh.ops_error(format!("scheduler panicked in ops.{op}: {}", panic_msg(e)));
}
