//! The runtime's clock: monotonic time in ns (a leaf: imports nothing of
//! the crate).

/// Monotonic time in ns: the scheduling clock (`scx_rt_sys::clock::now_ns`,
/// the TSC anchored to `CLOCK_MONOTONIC` where the kernel trusts the TSC).
/// Under loom time does not move: the models are about orderings, not
/// durations.
#[inline]
pub(crate) fn now() -> u64 {
    #[cfg(not(scx_rt_loom))]
    return scx_rt_sys::clock::now_ns();
    #[cfg(scx_rt_loom)]
    return 1;
}
