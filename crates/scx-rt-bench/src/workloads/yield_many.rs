//! `yield-many`: tokio's `rt_multi_threaded` `yield_many` shape. From
//! inside the runtime, spawn `tasks` tasks (200) that each call
//! `yield_now` `iters` times (1,000), then join them all; ms per run, p50
//! over reps. scx-rt runs on every chosen CPU. Beside: tokio
//! (`tokio::task::yield_now().await`), go (`runtime.Gosched`; one
//! `sync.WaitGroup` instead of a join per goroutine).

use std::time::{Duration, Instant};

use crate::peers::{go, tokio};
use crate::report::{Row, Subject};
use crate::stats::{throughput_row, Key};
use crate::workloads::Ctx;

pub const NAME: &str = "yield-many";

pub struct Sizes {
    pub tasks: u64,
    pub yields: u64,
    pub reps: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        tasks: ctx.tasks(200, 50),
        yields: ctx.iters(1_000, 100),
        reps: ctx.reps(5, 2),
    }
}

/// A row of this workload from one ms figure per rep.
pub fn row(subject: Subject, s: &Sizes, samples: &[f64]) -> Row {
    let case = format!("{}-tasks-{}-yields", s.tasks, s.yields);
    let key = Key {
        workload: NAME,
        case: &case,
        subject,
    };
    throughput_row(key, "ms", 1, samples)
}

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

/// Milliseconds as `f64`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
