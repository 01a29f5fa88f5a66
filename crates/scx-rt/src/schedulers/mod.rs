//! Built-in schedulers, ports of `tools/sched_ext`.

pub mod central;
mod fifo;
mod simple;
mod work_stealing;

pub use central::Central;
pub use fifo::Fifo;
pub use simple::Simple;
pub use work_stealing::WorkStealing;
