//! sched_ext's flag words and DSQ ids, with the kernel's names and bit
//! values (SPEC.md §1.3, §2.1, §2.3, §4).

macro_rules! flag_type {
    ($(#[$m:meta])* $name:ident: $t:ty { $($(#[$fm:meta])* $f:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$fm])* pub const $f: $name = $name($v);)*
            /// No flag set.
            pub const fn empty() -> Self { Self(0) }
            /// The raw bits.
            pub const fn bits(self) -> $t { self.0 }
            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool { self.0 & other.0 == other.0 }
            /// Whether any bit of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool { self.0 & other.0 != 0 }
            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool { self.0 == 0 }
            /// `self` without the bits of `other`.
            pub const fn without(self, other: Self) -> Self { Self(self.0 & !other.0) }
        }
        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, o: Self) -> Self { Self(self.0 | o.0) }
        }
        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: Self) { self.0 |= o.0 }
        }
        impl std::ops::BitAnd for $name {
            type Output = Self;
            fn bitand(self, o: Self) -> Self { Self(self.0 & o.0) }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

flag_type! {
    /// Enqueue flags (`enum scx_enq_flags`), 6.12 values.
    EnqFlags: u64 {
        /// The task is being enqueued because it woke up.
        WAKEUP = 0x01;
        /// Insert at the head of a FIFO DSQ.
        HEAD = 0x10;
        /// Local-DSQ target only: implies HEAD; zero the target CPU's current
        /// task's slice and reschedule it.
        PREEMPT = 1 << 32;
        /// Taken off a local DSQ by `reenqueue_local`.
        REENQ = 1 << 40;
        /// The task is the last runnable one on its CPU (`OpsFlags::ENQ_LAST`).
        LAST = 1 << 41;
        /// Internal: set the task's ops state to NONE once it is linked.
        CLEAR_OPSS = 1 << 56;
        /// Internal: vtime-ordered insertion.
        DSQ_PRIQ = 1 << 57;
    }
}

impl EnqFlags {
    /// Bits a scheduler may not pass (`__SCX_ENQ_INTERNAL_MASK`).
    pub const INTERNAL_MASK: EnqFlags = EnqFlags(0xff << 56);
}

flag_type! {
    /// Dequeue flags.
    DeqFlags: u64 {
        /// The task is going to sleep.
        SLEEP = 0x01;
        /// An attribute change takes the task off and puts it back.
        SAVE = 0x02;
        /// Core scheduling runs a task the scheduler still owns.
        CORE_SCHED_EXEC = 1 << 32;
    }
}

flag_type! {
    /// Wake flags passed to `select_cpu`.
    WakeFlags: u64 {
        /// The task is new (spawn).
        FORK = 0x04;
        /// An ordinary wake-up.
        TTWU = 0x08;
        /// The waker is about to sleep (a hint).
        SYNC = 0x10;
    }
}

flag_type! {
    /// `scx_bpf_kick_cpu` flags.
    KickFlags: u64 {
        /// Kick only if the target is idle (or inside balance).
        IDLE = 1 << 0;
        /// Zero the target's current task's slice, then reschedule it.
        PREEMPT = 1 << 1;
        /// Return only after the target has rescheduled.
        WAIT = 1 << 2;
    }
}

flag_type! {
    /// `ops.flags` (`enum scx_ops_flags`).
    OpsFlags: u64 {
        /// Keep built-in idle tracking even though `update_idle` is
        /// implemented.
        KEEP_BUILTIN_IDLE = 1 << 0;
        /// Hand the last runnable task of a CPU to `enqueue` with
        /// `EnqFlags::LAST` instead of keeping it running.
        ENQ_LAST = 1 << 1;
        /// Pass exiting tasks to `enqueue`.
        ENQ_EXITING = 1 << 2;
        /// Only tasks that opt in join the scheduler.
        SWITCH_PARTIAL = 1 << 3;
        /// The scheduler implements cgroup weights.
        HAS_CGROUP_WEIGHT = 1 << 16;
    }
}

impl OpsFlags {
    /// Every flag scx-rt knows; a scheduler whose `flags` has any other bit
    /// is refused at build and attach (`InvalidOps::UnknownFlags`).
    pub const ALL: OpsFlags = OpsFlags((1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 16));
}

flag_type! {
    /// DSQ iterator flags (`SCX_DSQ_ITER_*`).
    DsqIterFlags: u64 {
        /// Walk from the tail to the head (`SCX_DSQ_ITER_REV`).
        REV = 1 << 16;
    }
}

flag_type! {
    /// `scx_bpf_pick_idle_cpu` flags.
    PickIdleFlags: u64 {
        /// Only return a CPU whose whole core is idle.
        CORE = 1 << 0;
    }
}

/// DSQ ids (SPEC.md §2.1). Bit 63 marks built-in DSQs; user DSQ ids are any
/// value below `1 << 63`.
pub mod dsq_id {
    /// Built-in flag.
    pub const FLAG_BUILTIN: u64 = 1 << 63;
    /// `LOCAL_ON | cpu` targets a given CPU's local DSQ.
    pub const FLAG_LOCAL_ON: u64 = 1 << 62;
    /// No DSQ.
    pub const INVALID: u64 = FLAG_BUILTIN;
    /// The global FIFO DSQ.
    pub const GLOBAL: u64 = FLAG_BUILTIN | 1;
    /// The local DSQ of the CPU doing the operation.
    pub const LOCAL: u64 = FLAG_BUILTIN | 2;
    /// Base of `LOCAL_ON | cpu`.
    pub const LOCAL_ON: u64 = FLAG_BUILTIN | FLAG_LOCAL_ON;
    /// CPU bits of a `LOCAL_ON` id.
    pub const LOCAL_CPU_MASK: u64 = 0xffff_ffff;
}

pub use dsq_id::INVALID as DSQ_INVALID;
pub use dsq_id::{GLOBAL as DSQ_GLOBAL, LOCAL as DSQ_LOCAL, LOCAL_ON as DSQ_LOCAL_ON};
