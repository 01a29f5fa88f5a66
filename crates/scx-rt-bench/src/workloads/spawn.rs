//! `spawn`: from inside a task, spawn `tasks` empty tasks, then join them
//! all; ns per task. Beside: tokio (same worker count, spawned from inside
//! `block_on`, each handle awaited), may (each handle joined; capped by
//! `vm.max_map_count`, with a note on stderr), go (goroutines have no
//! handle: one `sync.WaitGroup` counts them down), OS threads
//! (`std::thread::spawn` + join, at most 2,000). Each row's `n`
//! says how many tasks it measured.

use std::time::Instant;

use crate::ctx::Ctx;
use crate::peers::{go, may, threads, tokio};
use crate::report::{Row, Subject};
use crate::spec::spawn::{row, sizes, Sizes, NAME};
use crate::stats::ns;

/// Thread creation costs ~10 µs; keep the OS-thread run short.
const OS_TASKS_MAX: u64 = 2_000;

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let Sizes { tasks, reps } = sizes(ctx);
    ctx.scx_then_tokio(
        NAME,
        rows,
        |s, samples| row(s, tasks, samples),
        || scx(ctx, tasks, reps),
        || tokio::spawn(&ctx.cpus, tasks, reps),
    )?;
    ctx.peer(NAME, Subject::May, rows, || may::rows(ctx, NAME));
    go::peer(ctx, NAME, rows);
    ctx.peer(NAME, Subject::OsThreads, rows, || {
        let os_tasks = tasks.min(OS_TASKS_MAX);
        let samples = threads::spawn(&ctx.cpus, os_tasks, reps)?;
        Ok(vec![row(Subject::OsThreads, os_tasks, &samples)])
    });
    Ok(())
}

fn scx(ctx: &Ctx, tasks: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = ctx
        .scx_builder(ctx.cpus.clone())
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(move || {
            let t = Instant::now();
            let handles: Vec<_> = (0..tasks).map(|_| scx_rt::spawn(|| ())).collect();
            for h in handles {
                h.join().map_err(|e| format!("join: {e:?}"))?;
            }
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(ns(elapsed) / tasks as f64);
    }
    rt.shutdown();
    Ok(samples)
}
