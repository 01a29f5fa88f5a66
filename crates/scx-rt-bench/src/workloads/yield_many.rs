//! `yield-many`: tokio's `rt_multi_threaded` `yield_many` shape. From
//! inside the runtime, spawn `tasks` tasks (200) that each call
//! `yield_now` `iters` times (1,000), then join them all; ms per run, p50
//! over reps. scx-rt runs on every chosen CPU. Beside: tokio
//! (`tokio::task::yield_now().await`), go (`runtime.Gosched`; one
//! `sync.WaitGroup` instead of a join per goroutine).

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::{go, tokio};
use crate::report::{Row, Subject};
use crate::spec::yield_many::{ms, row, sizes, Sizes, NAME};

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let s = sizes(ctx);
    ctx.scx(NAME, rows, || {
        let samples = scx(ctx, &s)?;
        Ok(vec![row(Subject::ScxRt, &s, &samples)])
    })?;
    ctx.peer(NAME, Subject::Tokio, rows, || {
        let samples = tokio::yield_many(&ctx.cpus, s.tasks, s.yields, s.reps)?;
        Ok(vec![row(Subject::Tokio, &s, &samples)])
    });
    go::peer(ctx, NAME, rows);
    Ok(())
}

fn scx(ctx: &Ctx, s: &Sizes) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let (tasks, yields) = (s.tasks, s.yields);
    let mut samples = Vec::new();
    for _ in 0..s.reps {
        let elapsed = rt.block_on(move || {
            let t = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    scx_rt::spawn(move || {
                        for _ in 0..yields {
                            scx_rt::yield_now();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|e| format!("join: {e:?}"))?;
            }
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(ms(elapsed));
    }
    rt.shutdown();
    Ok(samples)
}
