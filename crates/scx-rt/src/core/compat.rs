//! The helpers' names before Linux 6.13, kept as deprecated aliases.
//!
//! Linux 6.13 renamed the insertion and consumption kfuncs
//! (`scx_bpf_dispatch` -> `scx_bpf_dsq_insert`, `scx_bpf_dispatch_vtime`
//! -> `scx_bpf_dsq_insert_vtime`, `scx_bpf_consume` ->
//! `scx_bpf_dsq_move_to_local`); the kernel kept the old names working
//! for a few releases (its compat headers map them onto the new ones)
//! before dropping them. scx-rt does the same with `#[deprecated]`
//! aliases: a scheduler written against the old names still builds, with
//! a warning that names the new one. Each alias forwards, nothing else.
//! (The 6.12 names of the DSQ-iterator moves, `dispatch_from_dsq`, never
//! existed in scx-rt, so they have no alias.)

use crate::flags::EnqFlags;
use crate::ops::{DispatchCtx, EnqueueCtx, SelectCpuCtx};
use crate::task::TaskRef;

impl SelectCpuCtx<'_> {
    /// The name of [`dsq_insert`](Self::dsq_insert) before Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert` (scx_bpf_dsq_insert, Linux 6.13)")]
    #[inline]
    pub fn dispatch(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.dsq_insert(p, dsq, slice, enq_flags);
    }

    /// The name of [`dsq_insert_vtime`](Self::dsq_insert_vtime) before
    /// Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert_vtime` (scx_bpf_dsq_insert_vtime, Linux 6.13)")]
    #[inline]
    pub fn dispatch_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.dsq_insert_vtime(p, dsq, slice, vtime, enq_flags);
    }
}

impl EnqueueCtx<'_> {
    /// The name of [`dsq_insert`](Self::dsq_insert) before Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert` (scx_bpf_dsq_insert, Linux 6.13)")]
    #[inline]
    pub fn dispatch(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.dsq_insert(p, dsq, slice, enq_flags);
    }

    /// The name of [`dsq_insert_vtime`](Self::dsq_insert_vtime) before
    /// Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert_vtime` (scx_bpf_dsq_insert_vtime, Linux 6.13)")]
    #[inline]
    pub fn dispatch_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.dsq_insert_vtime(p, dsq, slice, vtime, enq_flags);
    }
}

impl DispatchCtx<'_, '_> {
    /// The name of [`dsq_insert`](Self::dsq_insert) before Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert` (scx_bpf_dsq_insert, Linux 6.13)")]
    #[inline]
    pub fn dispatch(&mut self, p: &TaskRef, dsq: u64, slice: u64, enq_flags: EnqFlags) {
        self.dsq_insert(p, dsq, slice, enq_flags);
    }

    /// The name of [`dsq_insert_vtime`](Self::dsq_insert_vtime) before
    /// Linux 6.13.
    #[deprecated(note = "renamed `dsq_insert_vtime` (scx_bpf_dsq_insert_vtime, Linux 6.13)")]
    #[inline]
    pub fn dispatch_vtime(
        &mut self,
        p: &TaskRef,
        dsq: u64,
        slice: u64,
        vtime: u64,
        enq_flags: EnqFlags,
    ) {
        self.dsq_insert_vtime(p, dsq, slice, vtime, enq_flags);
    }

    /// The name of [`dsq_move_to_local`](Self::dsq_move_to_local) before
    /// Linux 6.13.
    #[deprecated(note = "renamed `dsq_move_to_local` (scx_bpf_dsq_move_to_local, Linux 6.13)")]
    #[inline]
    pub fn consume(&mut self, dsq: u64) -> bool {
        self.dsq_move_to_local(dsq)
    }
}
