//! The SysRq analogues: a user-requested dump and detach, through the
//! runtime handle and through signals the application opted into. (One
//! test binary of its own: signal handlers are process-wide.)
#![cfg(not(scx_rt_loom))]

mod common;

use common::{guard, wait_until};
use scx_rt::schedulers::Simple;
use scx_rt::{ExitKind, Runtime};

#[test]
fn sysrq_dump_and_detach_by_signal_and_by_call() {
    guard("sysrq", || {
        let dump_sig = libc::SIGRTMIN() + 5;
        let detach_sig = libc::SIGRTMIN() + 6;
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(Simple::vtime())
            .sysrq_dump_signal(dump_sig)
            .sysrq_detach_signal(detach_sig)
            .build()
            .unwrap();
        assert_eq!(rt.spawn(|| 1).join().unwrap(), 1);
        // SysRq-D by signal: the watcher writes one dump per delivery.
        scx_rt_sys::sysrq::raise(dump_sig).unwrap();
        wait_until("the signalled dump", || rt.stats().sysrq_dumps == 1);
        assert_ne!(rt.scheduler_name(), "fifo", "a dump detaches nothing");
        // SysRq-S by signal.
        scx_rt_sys::sysrq::raise(detach_sig).unwrap();
        wait_until("the signalled detach", || rt.scheduler_name() == "fifo");
        let info = rt.exit_info().unwrap();
        assert_eq!(info.kind, ExitKind::Sysrq);
        assert!(info.msg.contains("SysRq-S"), "{}", info.msg);
        assert_eq!(rt.spawn(|| 2).join().unwrap(), 2);
        // By call: attach again, then detach as SysRq-S does.
        rt.attach(Simple::fifo()).unwrap();
        assert!(rt.sysrq_detach());
        assert_eq!(rt.exit_info().unwrap().kind, ExitKind::Sysrq);
        assert!(rt.dump().contains("Debug dump"));
        // An invalid signal is a build error, not a panic.
        assert!(Runtime::builder()
            .nr_cpus(1)
            .sysrq_dump_signal(libc::SIGKILL)
            .build()
            .is_err());
    });
}
