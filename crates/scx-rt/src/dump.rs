//! State dumps in the layout of SPEC.md §6.6: the trigger header, the
//! backtrace of the error site (when Rust captured one), the scheduler's
//! `dump`, then per non-idle CPU a header line, `curr=`, the kick masks that
//! are non-empty (kernel bitmap lists), the scheduler's `dump_cpu`, and one
//! entry per task (current first, then the runnable ones) with the
//! scheduler's `dump_task`; last the attached scheduler's event counters
//! (`core::events`, one line per `SCX_EV_*` name, as later kernels add
//! them); truncated with a marker. Userspace stand-ins:
//! `comm[pid]` is `task[id]` for tasks and `thread-name[pid]` for the
//! trigger; the class of a running task is always `ext`.

use std::fmt::Write;

use crate::core::clock::now;
use crate::core::error::{call, call_task};
use crate::loom::Ordering;
use crate::ops::DumpCtx;
use crate::ops::Shared;
use crate::task::{opss, TaskRef};

fn task_line(out: &mut String, p: &TaskRef, curr: bool, now: u64, nr_cpus: usize) {
    let ra = (p.runnable_at() as i64).wrapping_sub(now as i64) / 1_000_000;
    let dsq = p.scx.dsq.load(Ordering::Relaxed);
    let dsq = if dsq == crate::flags::DSQ_INVALID {
        "(n/a)".to_string()
    } else {
        format!("{dsq:#x}")
    };
    let cpus =
        crate::cpumask::Cpumask::from_cpus(nr_cpus, (0..nr_cpus).filter(|&c| p.allowed_on(c)));
    let _ = writeln!(
        out,
        " {}R task[{}] {:+}ms\n      scx_state/flags={}/{:#x} dsq_flags=0x0 ops_state/qseq={}/{}\n      sticky/holding_cpu={}/{} dsq_id={} dsq_vtime={}\n      cpus={}",
        if curr { '*' } else { ' ' },
        p.id(),
        ra,
        p.state() as u32,
        p.scx.flags.load(Ordering::Relaxed),
        p.ops_state() & opss::STATE_MASK,
        p.ops_state() >> opss::QSEQ_SHIFT,
        p.scx.sticky_cpu.load(Ordering::Relaxed),
        p.scx.holding_cpu.load(Ordering::Relaxed),
        dsq,
        p.dsq_vtime(),
        cpus,
    );
}

/// What a dump is for.
pub(crate) enum Trigger<'a> {
    /// A recorded exit.
    Exit(&'a crate::exit::ExitInfo),
    /// `Runtime::dump` (the SysRq-D analogue).
    User,
}

/// Dumps every non-idle CPU in the layout of SPEC.md §6.6, truncated with a
/// marker at `EXIT_DUMP_DFL_LEN` bytes. Takes each rq lock in turn (never
/// two).
pub(crate) fn dump_state(sh: &Shared, trigger: Trigger<'_>) -> String {
    let mut out = String::new();
    let now = now();
    match trigger {
        Trigger::Exit(info) => {
            let _ = writeln!(
                out,
                "{} triggered exit kind {}:\n  {} ({})\n",
                info.trigger, info.kind as u32, info.reason, info.msg
            );
            if !info.backtrace.is_empty() {
                let _ = writeln!(out, "Backtrace:");
                for l in info.backtrace.lines() {
                    let _ = writeln!(out, "  {l}");
                }
                out.push('\n');
            }
        }
        Trigger::User => {
            let _ = writeln!(out, "Debug dump triggered by Runtime::dump\n");
        }
    }
    let slot = sh.cur_slot();
    let mut dctx = DumpCtx::new(sh, None);
    call(sh, "dump", || slot.ops.dump(&mut dctx));
    if !dctx.out.is_empty() {
        let _ = writeln!(out, "{}\n", dctx.out);
    }
    let _ = writeln!(out, "CPU states\n----------\n");
    for c in sh.cpus.iter() {
        let rq = c.rq.lock();
        if rq.runnable.len() == 0 && rq.curr.is_none() {
            continue;
        }
        let idle = match c.shared.remote.doorbell.state() {
            crate::doorbell::POLLING => " idle=polling",
            crate::doorbell::SLEEPING => " idle=sleeping",
            crate::doorbell::SLEEPING_IO => " idle=sleeping-in-epoll",
            _ => "",
        };
        let core = match sh.os_cpus.get(c.id).copied().flatten() {
            Some(o) => format!(" core={o}"),
            None => String::new(),
        };
        // I/O: tasks the CPU's reactor woke (of them, found while polling
        // idle and by an epoll sleep), and sources registered with it.
        #[cfg(not(scx_rt_loom))]
        let io = match sh.io.get(c.id) {
            Some(r) => {
                let st = &c.shared.owner.stats;
                let ld = |a: &crate::loom::AtomicU64| a.load(crate::loom::Ordering::Relaxed);
                format!(
                    " io_wakeups={} (polling={} slept={} sibling={}) io_busy_looks={} io_sources={}",
                    ld(&st.io_wakeups),
                    ld(&st.io_wakeups_polling),
                    ld(&st.io_wakeups_slept),
                    ld(&st.io_wakeups_sibling),
                    ld(&st.io_busy_looks),
                    r.nr_sources()
                )
            }
            None => String::new(),
        };
        #[cfg(scx_rt_loom)]
        let io = "";
        let _ = writeln!(
            out,
            "CPU {:<4}: nr_run={} flags={:#x} cpu_rel=0 ops_qseq={} pnt_seq={}{core}{idle}{io}",
            c.id,
            rq.nr_running,
            rq.flags,
            rq.ops_qseq,
            c.shared.kick.pick_seq()
        );
        match &rq.curr {
            Some(p) => {
                let _ = writeln!(out, "          curr=task[{}] class=ext", p.id());
            }
            None => {
                let _ = writeln!(out, "          curr=idle class=idle");
            }
        }
        for (name, m) in [
            ("cpus_to_kick   ", &c.shared.kick.to_kick),
            ("idle_to_kick   ", &c.shared.kick.to_kick_if_idle),
            ("cpus_to_preempt", &c.shared.kick.to_preempt),
            ("cpus_to_wait   ", &c.shared.kick.to_wait),
        ] {
            if !m.is_empty() {
                let _ = writeln!(out, "  {name}: {}", m.to_cpumask());
            }
        }
        let mut dctx = DumpCtx::new(sh, Some(c.id));
        call(sh, "dump_cpu", || {
            slot.ops.dump_cpu(&mut dctx, c.id, rq.curr.is_none())
        });
        for l in dctx.out.lines() {
            let _ = writeln!(out, "  {l}");
        }
        out.push('\n');
        let runnable = rq.runnable_tasks(&sh.tasks);
        let tasks = rq.curr.iter().map(|p| (&**p, true)).chain(
            // The running task is on the runnable list too (`pick`).
            runnable
                .iter()
                .filter(|p| rq.curr.as_ref().is_none_or(|c| c.id() != p.id()))
                .map(|p| (p, false)),
        );
        for (p, curr) in tasks {
            task_line(&mut out, p, curr, now, sh.nr_cpus);
            let mut dctx = DumpCtx::new(sh, Some(c.id));
            call_task(sh, "dump_task", p, || slot.ops.dump_task(&mut dctx, p));
            for l in dctx.out.lines() {
                let _ = writeln!(out, "    {l}");
            }
        }
        if !rq.local.is_empty() {
            let ids: Vec<String> = rq.local.iter().map(|p| p.id().to_string()).collect();
            let _ = writeln!(out, "  local_dsq: [{}]", ids.join(", "));
        }
    }
    let _ = writeln!(out, "Event counters\n--------------\n");
    for (name, v) in sh.events_of_scheduler().kernel_names() {
        let _ = writeln!(out, "{name:>40}: {v:>16}");
    }
    let limit = crate::consts::EXIT_DUMP_DFL_LEN;
    if out.len() > limit {
        let mut cut = limit - 24;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n~~~~ TRUNCATED ~~~~\n");
    }
    out
}
