//! Error and exit records (SPEC.md §6.3).
//!
//! An error is *recorded* where it is detected (a helper given an invalid CPU,
//! a bogus DSQ id, a panicking callback) and *acted on* later, at a safe point
//! outside every lock, by the disable path (`sched::disable`), as the
//! kernel's `scx_ops_error()` queues its disable work. The first exit wins.

use crate::loom::{AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering};

/// Exit kinds with the kernel's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitKind {
    /// No exit pending.
    None = 0,
    /// The exit was processed.
    Done = 1,
    /// The user detached the scheduler.
    Unreg = 64,
    /// The scheduler called `exit`.
    UnregBpf = 65,
    /// The runtime ended it (e.g. hotplug without callbacks).
    UnregKern = 66,
    /// A user-requested detach (the SysRq-S analogue).
    Sysrq = 67,
    /// The runtime detected a scheduler error.
    Error = 1024,
    /// The scheduler called `error`.
    ErrorBpf = 1025,
    /// The watchdog found a stalled task.
    ErrorStall = 1026,
}

impl ExitKind {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Done,
            64 => Self::Unreg,
            65 => Self::UnregBpf,
            66 => Self::UnregKern,
            67 => Self::Sysrq,
            1024 => Self::Error,
            1025 => Self::ErrorBpf,
            1026 => Self::ErrorStall,
            _ => Self::None,
        }
    }

    /// The reason string for this kind.
    pub fn reason(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Done => "done",
            Self::Unreg => "scheduler unregistered from user space",
            Self::UnregBpf => "scheduler unregistered itself",
            Self::UnregKern => "scheduler unregistered by the runtime",
            Self::Sysrq => "disabled by user request",
            Self::Error => "runtime error",
            Self::ErrorBpf => "scheduler error",
            Self::ErrorStall => "runnable task stall",
        }
    }

    /// Whether the kind is an error (kinds >= `Error`).
    pub fn is_error(self) -> bool {
        self as u32 >= 1024
    }
}

/// What ended a scheduler: passed to `Scheduler::exit` and kept for
/// `Runtime::exit_info`.
#[derive(Clone, Debug)]
pub struct ExitInfo {
    /// Why.
    pub kind: ExitKind,
    /// The exit code (`exit(code, ..)`); bits 63..48 actions, 47..32 reasons.
    pub exit_code: i64,
    /// The kind's reason text.
    pub reason: String,
    /// The message given by whoever ended it.
    pub msg: String,
    /// The name of the scheduler that ended.
    pub scheduler: String,
    /// State dump taken at the error (errors only).
    pub dump: String,
    /// Who recorded the exit: the thread's name and the process id, as the
    /// kernel prints `comm[pid]`.
    pub trigger: String,
    /// Where the error was recorded (errors only; empty unless backtraces
    /// are enabled, e.g. `RUST_BACKTRACE=1`).
    pub backtrace: String,
}

/// `exit_code` action: the user may restart the scheduler.
pub const ECODE_ACT_RESTART: i64 = 1 << 48;
/// `exit_code` reason: CPU hotplug.
pub const ECODE_RSN_HOTPLUG: i64 = 1 << 32;

/// The per-attach record of the first exit.
pub(crate) struct ExitRecord {
    kind: AtomicU32,
    /// Set when an exit was claimed and the disable path has not run yet; a
    /// cheap flag for the workers' safe points.
    pub pending: AtomicBool,
    info: Mutex<Option<ExitInfo>>,
    /// Generation of the scheduler the recorded exit ends.
    gen: AtomicU64,
}

impl ExitRecord {
    pub(crate) fn new() -> Self {
        Self {
            kind: AtomicU32::new(ExitKind::None as u32),
            pending: AtomicBool::new(false),
            info: Mutex::new(None),
            gen: AtomicU64::new(0),
        }
    }

    /// Records an exit unless one was recorded already. Returns whether this
    /// call won.
    pub(crate) fn claim(
        &self,
        kind: ExitKind,
        code: i64,
        msg: String,
        scheduler: &str,
        gen: u64,
    ) -> bool {
        if self
            .kind
            .compare_exchange(
                ExitKind::None as u32,
                kind as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        let backtrace = if kind.is_error() {
            let bt = std::backtrace::Backtrace::capture();
            match bt.status() {
                std::backtrace::BacktraceStatus::Captured => bt.to_string(),
                _ => String::new(),
            }
        } else {
            String::new()
        };
        self.gen.store(gen, Ordering::Release);
        let th = std::thread::current();
        *self.info.lock() = Some(ExitInfo {
            kind,
            exit_code: code,
            reason: kind.reason().to_string(),
            msg,
            scheduler: scheduler.to_string(),
            dump: String::new(),
            trigger: format!("{}[{}]", th.name().unwrap_or("?"), std::process::id()),
            backtrace,
        });
        self.pending.store(true, Ordering::Release);
        true
    }

    /// A new scheduler is being attached: forget the previous attach's
    /// exit (`Runtime::exit_info` keeps the last one separately).
    pub(crate) fn reset(&self) {
        *self.info.lock() = None;
        self.pending.store(false, Ordering::Release);
        self.kind.store(ExitKind::None as u32, Ordering::Release);
    }

    /// Generation of the scheduler the recorded exit ends.
    pub(crate) fn gen(&self) -> u64 {
        self.gen.load(Ordering::Acquire)
    }

    pub(crate) fn kind(&self) -> ExitKind {
        ExitKind::from_u32(self.kind.load(Ordering::Acquire))
    }

    pub(crate) fn info(&self) -> Option<ExitInfo> {
        self.info.lock().clone()
    }

    pub(crate) fn set_dump(&self, dump: String) {
        if let Some(i) = self.info.lock().as_mut() {
            i.dump = dump;
        }
    }
}
