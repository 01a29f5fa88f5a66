//! Why `join` returned no value ([`JoinError`]).

use crate::task::TaskId;

/// Why `join` returned no value.
#[derive(thiserror::Error)]
pub enum JoinError {
    /// The task panicked; the payload is kept.
    #[error("task panicked")]
    Panicked(Box<dyn std::any::Any + Send + 'static>),
    /// The task never ran: the OS refused the memory for its stack when it
    /// was first scheduled (an address-space limit such as `RLIMIT_AS`, or
    /// a refused overcommit). Its closure was dropped unrun, and it counts
    /// as finished for the scheduler (`exit_task`) and for shutdown.
    #[error("task {id} never ran: no {} KiB stack could be mapped for it: {source}", stack_size / 1024)]
    NoStack {
        /// The task.
        id: TaskId,
        /// The stack size it needed, in bytes.
        stack_size: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl std::fmt::Debug for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(f, "Panicked({:?})", panic_msg(&**p)),
            JoinError::NoStack {
                id,
                stack_size,
                source,
            } => f
                .debug_struct("NoStack")
                .field("id", id)
                .field("stack_size", stack_size)
                .field("source", source)
                .finish(),
        }
    }
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The panic payload.
    ///
    /// # Panics
    /// If the task did not panic ([`JoinError::NoStack`]); see
    /// [`JoinError::try_into_panic`].
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(p) => p,
            Err(e) => panic!("JoinError::into_panic on an error that is no panic: {e}"),
        }
    }

    /// The panic payload, or the error itself when the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn std::any::Any + Send + 'static>, JoinError> {
        match self {
            JoinError::Panicked(p) => Ok(p),
            e => Err(e),
        }
    }

    /// The panic message when the payload is a string; for an error that
    /// is no panic, its description.
    pub fn panic_message(&self) -> String {
        match self {
            JoinError::Panicked(p) => panic_msg(&**p),
            e => e.to_string(),
        }
    }
}

/// The message of a panic payload, when it is a string.
pub(crate) fn panic_msg(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
