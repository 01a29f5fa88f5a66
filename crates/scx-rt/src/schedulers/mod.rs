//! Built-in schedulers, ports of `tools/sched_ext`.

mod fifo;
mod simple;

pub use fifo::Fifo;
pub use simple::Simple;
