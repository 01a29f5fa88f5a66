//! Built-in schedulers, ports of `tools/sched_ext`: `scx_simple`
//! ([`Simple`]), `scx_central` ([`Central`]), `scx_qmap` ([`Qmap`]), and the
//! runtime's own [`Fifo`] and [`WorkStealing`], and [`FreshFirst`] (fresh
//! tasks before those whose slice ran out, for short requests among long
//! ones).

pub mod central;
mod fifo;
pub mod fresh_first;
pub mod qmap;
mod simple;
mod work_stealing;

pub use central::Central;
pub use fifo::Fifo;
pub use fresh_first::FreshFirst;
pub use qmap::Qmap;
pub use simple::Simple;
pub use work_stealing::WorkStealing;
