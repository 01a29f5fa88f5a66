//! `switch`: two green tasks on one CPU, each calling `yield_now` `iters`
//! times; ns per switch (one yield hands the CPU from one task to the
//! other). Beside: a bare corosensei resume/suspend loop (per switch, a
//! pair being two), may (one worker), go (`runtime.Gosched`,
//! `GOMAXPROCS=1`), OS threads calling `sched_yield`.

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::{go, may, raw, threads};
use crate::report::{Row, Subject};
use crate::spec::switch::{row, sizes, Sizes, NAME};
use crate::stats::ns;

/// OS threads switch through the kernel (~µs each); keep their run short.
const OS_ITERS_MAX: u64 = 100_000;

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let cpu = ctx.cpus[0];
    let Sizes { iters, reps } = sizes(ctx);
    ctx.scx(NAME, rows, || {
        Ok(vec![row(
            Subject::ScxRt,
            iters,
            &scx(ctx, cpu, iters, reps)?,
        )])
    })?;
    ctx.peer(NAME, Subject::RawCorosensei, rows, || {
        let samples = raw::corosensei(cpu, iters, reps)?;
        Ok(vec![row(Subject::RawCorosensei, iters, &samples)])
    });
    ctx.peer(NAME, Subject::May, rows, || may::rows(ctx, NAME));
    go::peer(ctx, NAME, rows);
    ctx.peer(NAME, Subject::OsThreads, rows, || {
        let os_iters = iters.min(OS_ITERS_MAX);
        let samples = threads::switch(cpu, os_iters, reps)?;
        Ok(vec![row(Subject::OsThreads, os_iters, &samples)])
    });
    Ok(())
}

/// scx-rt: a runtime on OS CPU `cpu` only; inside `block_on`, spawn the two
/// yielders and time until both are joined.
fn scx(ctx: &Ctx, cpu: usize, iters: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder([cpu])
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let mut samples = Vec::new();
    for _ in 0..reps {
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
        samples.push(ns(elapsed) / (2 * iters) as f64);
    }
    rt.shutdown();
    Ok(samples)
}
