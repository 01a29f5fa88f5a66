//! Which callbacks a scheduler implements (the kernel's `SCX_HAS_OP`), so
//! that an absent one costs nothing on the hot path.
//!
//! The kernel knows which ops a BPF scheduler filled in. Rust cannot see
//! whether a trait's provided method was overridden, so scx-rt learns it:
//! the provided (default) bodies of the hot callbacks call [`mark`] with
//! the callback and the `TypeId` of `Self`. The first time the core calls
//! such a callback of a scheduler, it clears the mark, calls, and looks:
//! a mark naming that callback and the scheduler's own type (the type the
//! slot was built from) proves the default body ran for the scheduler
//! itself, so the callback is absent and is skipped from then on, the core
//! doing what the default would have done. Otherwise it is present. A
//! wrapper that forwards to an inner scheduler's default leaves a mark
//! with the inner type, which proves nothing: the wrapper's callback stays
//! present. Rust offers no way to call a default body from an override,
//! so a scheduler's own type reaching its own default means exactly that
//! the callback was not overridden. A leaf.

use std::any::TypeId;
use std::cell::Cell;

/// The callbacks whose absence is learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Op {
    SelectCpu = 0,
    Dequeue,
    Dispatch,
    Tick,
    Runnable,
    Running,
    Stopping,
    Quiescent,
    Yield,
    SetWeight,
    UpdateIdle,
    InitTask,
    ExitTask,
    Enable,
    Disable,
    CpuAcquire,
    CpuRelease,
}

impl Op {
    const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The callback's name, as errors name it (`ops.NAME`).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Op::SelectCpu => "select_cpu",
            Op::Dequeue => "dequeue",
            Op::Dispatch => "dispatch",
            Op::Tick => "tick",
            Op::Runnable => "runnable",
            Op::Running => "running",
            Op::Stopping => "stopping",
            Op::Quiescent => "quiescent",
            Op::Yield => "yield",
            Op::SetWeight => "set_weight",
            Op::UpdateIdle => "update_idle",
            Op::InitTask => "init_task",
            Op::ExitTask => "exit_task",
            Op::Enable => "enable",
            Op::Disable => "disable",
            Op::CpuAcquire => "cpu_acquire",
            Op::CpuRelease => "cpu_release",
        }
    }
}

std::thread_local! {
    /// The last default body that ran on this thread: (callback, type).
    static MARK: Cell<Option<(Op, TypeId)>> = const { Cell::new(None) };
}

/// Called by the default body of callback `op` of scheduler type `ty`.
#[inline]
pub(crate) fn mark(op: Op, ty: TypeId) {
    MARK.with(|m| m.set(Some((op, ty))));
}

/// What the core knows about one scheduler's callbacks: learned bits,
/// shared by every cached copy of its slot.
pub(crate) struct OpsPresence {
    ty: TypeId,
    known: crate::loom::AtomicU32,
    absent: crate::loom::AtomicU32,
}

impl OpsPresence {
    /// Nothing known yet about a scheduler of type `ty`.
    pub(crate) fn new(ty: TypeId) -> Self {
        Self {
            ty,
            known: crate::loom::AtomicU32::new(0),
            absent: crate::loom::AtomicU32::new(0),
        }
    }

    /// Whether `op` may be implemented: `false` only once it is known to
    /// be the default.
    #[inline]
    pub(crate) fn has(&self, op: Op) -> bool {
        self.absent.load(crate::loom::Ordering::Relaxed) & op.bit() == 0
    }

    /// Whether the first call of `op` is still to be watched.
    #[inline]
    pub(crate) fn unknown(&self, op: Op) -> bool {
        self.known.load(crate::loom::Ordering::Relaxed) & op.bit() == 0
    }

    /// Calls `f`, the first call of `op`, and learns from it.
    pub(crate) fn learn<R>(&self, op: Op, f: impl FnOnce() -> R) -> R {
        MARK.with(|m| m.set(None));
        let r = f();
        if MARK.with(|m| m.take()) == Some((op, self.ty)) {
            self.absent
                .fetch_or(op.bit(), crate::loom::Ordering::Relaxed);
        }
        self.known
            .fetch_or(op.bit(), crate::loom::Ordering::Relaxed);
        r
    }
}
