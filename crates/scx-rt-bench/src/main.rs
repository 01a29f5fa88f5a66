//! `scx-rt-bench`: scx-rt side by side with its peers (tokio, may, go, OS
//! threads) and the raw limits of the machine, in one run, with ratios.
//! See `scx-rt-bench --help` and DESIGN.md ("Targets", "Benchmark output
//! schema").
//!
//! Layers, each using only those below it: `cpus`, `pin`; `args`, `report`;
//! `stats`, `plot`, `ctx`; `spec/` (what a workload is: names, sizes, rows);
//! `peers/`; `workloads/` (the registry and the scx-rt runners); `main`.
#![forbid(unsafe_code)]

mod args;
mod cpus;
mod ctx;
mod peers;
mod pin;
mod plot;
mod report;
mod spec;
mod stats;
mod workloads;

use std::process::ExitCode;

use args::{Command, Options};
use ctx::Ctx;
use report::Machine;

fn usage() -> String {
    let mut s = args::USAGE.to_string();
    let width = workloads::ALL
        .iter()
        .map(|w| w.name.len())
        .max()
        .unwrap_or(0);
    for w in workloads::ALL {
        s.push_str(&format!("  {:<width$} {}\n", w.name, w.about));
    }
    s.push_str(&format!("  {:<width$} every workload above\n", "all"));
    s
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("scx-rt-bench: {msg}\n");
    eprint!("{}", usage());
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args::parse(&argv, &workloads::names()) {
        Err(e) => usage_error(&e.0),
        Ok(Command::Help) => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Run(opts)) => match context(opts) {
            Ok(ctx) => run(&ctx),
            Err(e) => usage_error(&e),
        },
        Ok(Command::PeerChild { peer, options }) => match context(options) {
            Ok(ctx) => peer_child(&peer, &ctx),
            Err(e) => usage_error(&e),
        },
    }
}

/// Resolves and validates the CPUs and workload options.
fn context(opts: Options) -> Result<Ctx, String> {
    let usable = cpus::usable_cpus();
    let cpus = match &opts.cpus {
        Some(c) => {
            cpus::check_usable(c, &usable)?;
            c.clone()
        }
        None => usable,
    };
    if cpus.is_empty() {
        return Err("no usable CPU".into());
    }
    if let Some(p) = &opts.trace {
        ctx::set_trace(p.clone(), opts.trace_capacity);
    }
    let ctx = Ctx { cpus, opts };
    let with_cases = [
        spec::pingpong::NAME,
        spec::echo::NAME,
        workloads::bimodal::NAME,
    ];
    if ctx.opts.cases.is_some()
        && !ctx
            .opts
            .workloads
            .iter()
            .any(|w| with_cases.contains(&w.as_str()))
    {
        return Err("--case: only pingpong, echo and bimodal have cases to choose from".into());
    }
    for name in &ctx.opts.workloads {
        if let Some(check) = workloads::find(name).and_then(|w| w.check) {
            check(&ctx)?;
        }
    }
    Ok(ctx)
}

fn run(ctx: &Ctx) -> ExitCode {
    let machine = Machine::detect(ctx.cpus.clone());
    let mut rows = Vec::new();
    let mut failed = false;
    for name in &ctx.opts.workloads {
        let Some(w) = workloads::find(name) else {
            continue;
        };
        if let Err(e) = (w.run)(ctx, &mut rows) {
            eprintln!("scx-rt-bench: {e}");
            failed = true;
        }
    }
    print!("{}", report::table(&machine, &rows));
    if let Some(path) = &ctx.opts.json {
        if let Err(e) = std::fs::write(path, report::to_json(&machine, &rows)) {
            eprintln!("scx-rt-bench: write {}: {e}", path.display());
            failed = true;
        }
    }
    if let Some(dir) = &ctx.opts.plot {
        match plot::write_all(dir, &machine, &rows) {
            Ok(files) => eprintln!("plot: {} chart(s) in {}", files.len(), dir.display()),
            Err(e) => {
                eprintln!("scx-rt-bench: plot: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The hidden `__peer NAME` mode: rows on stdout in the line protocol.
fn peer_child(peer: &str, ctx: &Ctx) -> ExitCode {
    for name in &ctx.opts.workloads {
        let rows = match peer {
            "may" => peers::may::run_child(ctx, name),
            // Measurements that need a fresh process (`echo`'s idle
            // connections).
            "scx-rt" => workloads::echo_idle::run_child(report::Subject::ScxRt, ctx, name),
            "tokio" => workloads::echo_idle::run_child(report::Subject::Tokio, ctx, name),
            other => Err(format!("no in-process peer `{other}`")),
        };
        match rows {
            Ok(rows) => {
                for r in &rows {
                    println!("{}", peers::external::format_line(r));
                }
            }
            Err(e) => {
                eprintln!("scx-rt-bench __peer {peer} {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
