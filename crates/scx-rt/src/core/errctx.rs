//! Where an error is detected: the callback (or the callback whose verdict
//! is being carried out), its task and CPU. The core sets it before it
//! enters a callback or carries out a verdict; an error recorded meanwhile
//! names all three (SPEC.md §6.3). A leaf: a thread-local and its
//! accessors.

/// The error context of the calling thread.
#[derive(Clone, Copy, Default)]
pub(crate) struct ErrCtx {
    pub op: Option<&'static str>,
    pub task: Option<u64>,
    pub cpu: Option<usize>,
}

std::thread_local! {
    static ERR_CTX: std::cell::Cell<ErrCtx> = const {
        std::cell::Cell::new(ErrCtx { op: None, task: None, cpu: None })
    };
}

/// Restores the previous error context when dropped.
pub(crate) struct ErrCtxGuard(ErrCtx);

impl Drop for ErrCtxGuard {
    fn drop(&mut self) {
        ERR_CTX.with(|c| c.set(self.0));
    }
}

/// Sets the error context until the guard is dropped. A `None` CPU is
/// resolved to the calling worker's when an error is recorded.
pub(crate) fn err_ctx(
    op: &'static str,
    task: Option<&crate::task::TaskRef>,
    cpu: Option<usize>,
) -> ErrCtxGuard {
    let ctx = ErrCtx {
        op: Some(op),
        task: task.map(|p| p.id()),
        cpu,
    };
    ErrCtxGuard(ERR_CTX.with(|c| c.replace(ctx)))
}

/// Sets the error context `ctx` until the guard is dropped.
pub(crate) fn enter(ctx: ErrCtx) -> ErrCtxGuard {
    ErrCtxGuard(ERR_CTX.with(|c| c.replace(ctx)))
}

/// The calling thread's error context.
pub(crate) fn get() -> ErrCtx {
    ERR_CTX.with(|c| c.get())
}
