//! `trace`: what recording a scheduling trace (`Builder::trace`) costs.
//! The `switch` workload (two tasks yielding on one CPU, ns/switch) and
//! the `spawn` workload (spawn + run + join from a task, ns/task), each on
//! a runtime with tracing off (`-off` cases, the baseline) and one with
//! tracing on (`-on`: 65,536-event rings per CPU, overwriting, nothing
//! written), built and run alternately in the same process. Beside the
//! switch baseline: the bare corosensei resume/suspend loop.
//!
//! `--trace FILE` does not apply here: the runtimes' tracing is the
//! variable measured.

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::raw;
use crate::report::{Row, Subject};
use crate::stats::{ns, throughput_row, Key};

const NAME: &str = "trace";

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let cpu = ctx.cpus[0];
    let iters = ctx.iters(1_000_000, 10_000);
    let tasks = ctx.tasks(100_000, 2_000);
    let reps = ctx.reps(5, 2);
    let row = |case: &'static str, subject, unit, ops, s: &[f64]| {
        throughput_row(
            Key {
                workload: NAME,
                case,
                subject,
            },
            unit,
            ops,
            s,
        )
    };
    let mut switch = [Vec::new(), Vec::new()];
    let mut spawn = [Vec::new(), Vec::new()];
    ctx.scx(NAME, rows, || {
        // Alternate off and on, so that drift of the machine hits both.
        for _ in 0..reps {
            for (on, s) in switch.iter_mut().enumerate() {
                s.push(scx_switch(ctx, cpu, iters, on == 1)?);
            }
            for (on, s) in spawn.iter_mut().enumerate() {
                s.push(scx_spawn(ctx, tasks, on == 1)?);
            }
        }
        Ok(vec![
            row(
                "switch-off",
                Subject::ScxRt,
                "ns/switch",
                2 * iters,
                &switch[0],
            ),
            row(
                "switch-on",
                Subject::ScxRt,
                "ns/switch",
                2 * iters,
                &switch[1],
            ),
            row("spawn-off", Subject::ScxRt, "ns/task", tasks, &spawn[0]),
            row("spawn-on", Subject::ScxRt, "ns/task", tasks, &spawn[1]),
        ])
    })?;
    let med = |v: &[f64]| crate::stats::median(v);
    eprintln!(
        "trace: switch {:.1} ns off, {:.1} ns on (+{:.1} ns); spawn {:.1} ns off, {:.1} ns on (+{:.1} ns)",
        med(&switch[0]),
        med(&switch[1]),
        med(&switch[1]) - med(&switch[0]),
        med(&spawn[0]),
        med(&spawn[1]),
        med(&spawn[1]) - med(&spawn[0]),
    );
    ctx.peer(NAME, Subject::RawCorosensei, rows, || {
        let samples = raw::corosensei(cpu, iters, reps)?;
        Ok(vec![row(
            "switch-off",
            Subject::RawCorosensei,
            "ns/switch",
            2 * iters,
            &samples,
        )])
    });
    Ok(())
}

/// A runtime on `cpus` with the run's idle poll and slice timer, tracing
/// `on` or off (never `--trace`'s file).
fn builder(ctx: &Ctx, cpus: Vec<usize>, on: bool) -> scx_rt::Builder {
    let mut b = scx_rt::Runtime::builder().cpus(cpus);
    if let Some(t) = ctx.opts.slice_timer {
        b = b.slice_timer(t);
    }
    if let Some(us) = ctx.opts.idle_poll_us {
        b = b.idle_poll(std::time::Duration::from_micros(us));
    }
    if on {
        b = b.trace(scx_rt::TraceConfig::new());
    }
    b
}

/// ns per switch of two yielders on OS CPU `cpu` (one repetition).
fn scx_switch(ctx: &Ctx, cpu: usize, iters: u64, on: bool) -> Result<f64, String> {
    let rt = builder(ctx, vec![cpu], on)
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let elapsed = rt.block_on(move || {
        let yielder = move || {
            for _ in 0..iters {
                scx_rt::yield_now();
            }
        };
        let a = scx_rt::spawn(yielder);
        let b = scx_rt::spawn(yielder);
        let t = Instant::now();
        a.join().map_err(|e| format!("join: {e:?}"))?;
        b.join().map_err(|e| format!("join: {e:?}"))?;
        Ok::<_, String>(t.elapsed())
    })?;
    check_traced(&rt, on)?;
    rt.shutdown();
    Ok(ns(elapsed) / (2 * iters) as f64)
}

/// ns per spawned, run and joined task on the run's CPUs.
fn scx_spawn(ctx: &Ctx, tasks: u64, on: bool) -> Result<f64, String> {
    let rt = builder(ctx, ctx.cpus.clone(), on)
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let elapsed = rt.block_on(move || {
        let t = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|_| scx_rt::spawn(|| ())).collect();
        for h in handles {
            h.join().map_err(|e| format!("join: {e:?}"))?;
        }
        Ok::<_, String>(t.elapsed())
    })?;
    check_traced(&rt, on)?;
    rt.shutdown();
    Ok(ns(elapsed) / tasks as f64)
}

/// The traced runtime did record (the figure is of the traced path).
fn check_traced(rt: &scx_rt::Runtime, on: bool) -> Result<(), String> {
    match (on, rt.trace_snapshot()) {
        (false, None) => Ok(()),
        (true, Some(s)) if !s.events.is_empty() => Ok(()),
        _ => Err(format!("tracing {on} but the snapshot disagrees")),
    }
}
