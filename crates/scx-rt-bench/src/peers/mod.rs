//! Everything scx-rt is compared with: peer runtimes (tokio, may, go, OS
//! threads) and raw hardware/OS limits (cache-line bounce, futex wake,
//! bare corosensei switch). One file per peer; each workload picks the
//! functions it needs.
//!
//! Layering: peers sit below `workloads/` (which call them) and above
//! `spec/`, `ctx`, `pin`, `stats` and `report` (the shared vocabulary they
//! build rows with); a peer never names a workload runner.

pub mod external;
pub mod go;
pub mod may;
pub mod raw;
pub mod threads;
pub mod tokio;
