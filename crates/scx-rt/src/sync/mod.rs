//! Green-aware synchronisation: blocking here blocks the green task and lets
//! its CPU run others; called from an OS thread, it parks the thread.

pub(crate) mod wait;

mod channel;
mod mutex;
mod waitgroup;

pub use channel::{channel, unbounded, Receiver, RecvError, SendError, Sender, TryRecvError};
pub use mutex::{Mutex, MutexGuard};
pub use waitgroup::WaitGroup;
