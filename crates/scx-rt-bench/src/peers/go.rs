//! The Go peer (goroutines): not written yet. When it is, it is a small Go
//! program kept at `crates/scx-rt-bench/go/peer.go`, run as
//! `go run go/peer.go WORKLOAD --cpus LIST --iters N --tasks N --reps R`
//! (with `GOMAXPROCS` = the CPU count, under `taskset`-like affinity
//! inherited from a thread restricted by [`crate::peers::on_cpus`]), printing
//! rows in the [`crate::peers::external`] line protocol with subject `go`.
//! Until then, and whenever `go` is not on `PATH`, Go rows are left out
//! with a one-line note on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use crate::peers::external;
use crate::report::Row;
use crate::workloads::Ctx;

/// Where the Go program will live.
fn program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join("peer.go")
}

/// The `go` executable on `PATH`, if any.
fn go_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
}

static NOTE: Once = Once::new();

/// Whether the Go peer can run (peers enabled, `go` on `PATH`, program
/// present); otherwise prints a one-time note on stderr.
pub fn ready(ctx: &Ctx) -> bool {
    if !ctx.peers() {
        return false;
    }
    if go_binary().is_none() {
        NOTE.call_once(|| eprintln!("go: not on PATH, skipped"));
        return false;
    }
    let prog = program();
    if !prog.is_file() {
        NOTE.call_once(|| {
            eprintln!(
                "go: peer program {} not written yet, skipped",
                prog.display()
            )
        });
        return false;
    }
    true
}

/// Go rows for `workload` (call only when [`ready`]).
pub fn rows(ctx: &Ctx, workload: &str) -> Result<Vec<Row>, String> {
    let go = go_binary().ok_or("go: not on PATH")?;
    let mut cmd = Command::new(go);
    cmd.arg("run").arg(program()).arg(workload);
    cmd.args(external::forwarded_args(ctx));
    cmd.env("GOMAXPROCS", ctx.cpus.len().to_string());
    // The child inherits the CPU mask of the thread that starts it.
    crate::peers::on_cpus(&ctx.cpus, move || external::run(cmd))
}
