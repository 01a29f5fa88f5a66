//! The SysRq analogues (SPEC.md §6, "sysrq"): a user-requested state dump
//! (SysRq-D, [`crate::Runtime::dump`]) and a user-requested detach
//! (SysRq-S, [`crate::Runtime::sysrq_detach`]), also reachable by signals
//! the application opts into (`Builder::sysrq_dump_signal`,
//! `Builder::sysrq_detach_signal`). The signal handler (scx-rt-sys
//! `sysrq`) only counts; this watcher thread does the work: it prints the
//! dump to stderr (the kernel prints it to the console) and detaches with
//! `ExitKind::Sysrq`.

use std::sync::Arc;
use std::time::Duration;

use crate::exit::ExitKind;
use crate::loom::Ordering;
use crate::ops::Shared;

/// Which signals a runtime listens to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SysrqSignals {
    pub dump: Option<i32>,
    pub detach: Option<i32>,
}

impl SysrqSignals {
    pub(crate) fn any(&self) -> bool {
        self.dump.is_some() || self.detach.is_some()
    }
}

/// Installs the handlers (before the watcher starts, so no delivery is
/// missed).
pub(crate) fn install(sigs: SysrqSignals) -> std::io::Result<()> {
    for s in [sigs.dump, sigs.detach].into_iter().flatten() {
        scx_rt_sys::sysrq::install(s)?;
    }
    Ok(())
}

/// Deliveries so far of (dump, detach): taken by `Builder::build` before
/// it returns, so that a signal raised after `build` is always new to the
/// watcher however late its thread starts.
pub(crate) fn counts(sigs: SysrqSignals) -> (u32, u32) {
    let count = |s: Option<i32>| s.map_or(0, scx_rt_sys::sysrq::count);
    (count(sigs.dump), count(sigs.detach))
}

/// The watcher thread's loop; returns at shutdown.
pub(crate) fn watch(sh: Arc<Shared>, sigs: SysrqSignals, seen: (u32, u32)) {
    let count = |s: Option<i32>| s.map_or(0, scx_rt_sys::sysrq::count);
    let (mut dumps, mut detaches) = seen;
    loop {
        let seq = scx_rt_sys::sysrq::seq();
        if sh.shutdown.load(Ordering::Acquire) {
            return;
        }
        let d = count(sigs.dump);
        if d != dumps {
            dumps = d;
            let text = crate::dump::dump_state(&sh, crate::dump::Trigger::User);
            eprintln!("{text}");
            sh.sysrq_dumps.fetch_add(1, Ordering::Relaxed);
        }
        let x = count(sigs.detach);
        if x != detaches {
            detaches = x;
            crate::attach::detach(&sh, ExitKind::Sysrq, "SysRq-S: detached by signal");
        }
        // The timeout only bounds how long a missed shutdown wake could
        // keep this thread; deliveries wake it at once.
        scx_rt_sys::sysrq::wait(seq, Some(Duration::from_secs(1)));
    }
}
