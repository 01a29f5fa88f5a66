//! State dumps in the layout of SPEC.md §6.6 (first cut: CPU headers,
//! kick masks, runnable tasks; the full layout comes with the kick issue).

use std::fmt::Write;

use crate::loom::Ordering;
use crate::ops::DumpCtx;
use crate::sched::{call, now, Shared};
use crate::task::{opss, TaskRef};

fn task_line(out: &mut String, p: &TaskRef, curr: bool, now: u64) {
    let ra = p.runnable_at() as i64 - now as i64;
    let _ = writeln!(
        out,
        " {}R task[{}] {:+}ms\n      scx_state/flags={:?}/{:#x} ops_state/qseq={}/{} dsq_id={:#x} dsq_vtime={} slice={}",
        if curr { '*' } else { ' ' },
        p.id(),
        ra / 1_000_000,
        p.state(),
        p.scx.flags.load(Ordering::Relaxed) & !crate::task::tflags::STATE_MASK,
        p.ops_state() & opss::STATE_MASK,
        p.ops_state() >> opss::QSEQ_SHIFT,
        p.scx.dsq.load(Ordering::Relaxed),
        p.dsq_vtime(),
        p.slice(),
    );
}

/// Dumps every non-idle CPU. Takes each rq lock in turn (never two).
pub(crate) fn dump_state(sh: &Shared, reason: &str) -> String {
    let mut out = String::new();
    let now = now();
    let _ = writeln!(out, "scx-rt triggered exit:\n  {reason}\n");
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
        let idle = match c.shared.doorbell.state() {
            crate::doorbell::POLLING => " idle=polling",
            crate::doorbell::SLEEPING => " idle=sleeping",
            _ => "",
        };
        let core = match sh.os_cpus.get(c.id).copied().flatten() {
            Some(o) => format!(" core={o}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "CPU {:<4}: nr_run={} flags={:#x} cpu_rel=0 ops_qseq={} pnt_seq={}{core}{idle}",
            c.id,
            rq.nr_running,
            rq.flags,
            rq.ops_qseq,
            c.shared.pnt_seq.load(Ordering::Relaxed)
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
            ("cpus_to_kick   ", &c.shared.cpus_to_kick),
            ("idle_to_kick   ", &c.shared.cpus_to_kick_if_idle),
            ("cpus_to_preempt", &c.shared.cpus_to_preempt),
            ("cpus_to_wait   ", &c.shared.cpus_to_wait),
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
        let tasks = rq
            .curr
            .iter()
            .map(|p| (p, true))
            .chain(rq.runnable.iter().map(|p| (p, false)));
        for (p, curr) in tasks {
            task_line(&mut out, p, curr, now);
            let mut dctx = DumpCtx::new(sh, Some(c.id));
            call(sh, "dump_task", || slot.ops.dump_task(&mut dctx, p));
            for l in dctx.out.lines() {
                let _ = writeln!(out, "    {l}");
            }
        }
        if !rq.local.is_empty() {
            let ids: Vec<String> = rq.local.iter().map(|p| p.id().to_string()).collect();
            let _ = writeln!(out, "  local_dsq: [{}]", ids.join(", "));
        }
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
