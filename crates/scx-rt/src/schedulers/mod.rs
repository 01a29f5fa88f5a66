//! Built-in schedulers, ports of `tools/sched_ext`.

pub mod central;
mod fifo;
mod simple;

pub use central::Central;
pub use fifo::Fifo;
pub use simple::Simple;
