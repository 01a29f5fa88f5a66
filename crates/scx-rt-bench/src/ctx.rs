//! The run context: the validated CPUs and options every workload and peer
//! gets, with the sizing defaults and the progress/error conventions of a
//! measurement. Below `spec/`, `peers/` and `workloads/`; above `args` and
//! `report` only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::args::Options;
use crate::report::{Row, Subject};

/// What a workload run gets: the CPUs (OS numbers, validated) and the
/// options.
pub struct Ctx {
    pub cpus: Vec<usize>,
    pub opts: Options,
}

impl Ctx {
    fn pick(&self, given: Option<u64>, normal: u64, quick: u64) -> u64 {
        given.unwrap_or(if self.opts.quick { quick } else { normal })
    }

    /// `--iters`, else the default for a normal or `--quick` run.
    pub fn iters(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.iters, normal, quick)
    }

    /// `--tasks`, else the default.
    pub fn tasks(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.tasks, normal, quick)
    }

    /// `--reps`, else the default.
    pub fn reps(&self, normal: u64, quick: u64) -> u64 {
        self.pick(self.opts.reps, normal, quick)
    }

    /// A scx-rt runtime builder on the OS CPUs `cpus` with the bench-wide
    /// runtime options (`--idle-poll-us`).
    pub fn scx_builder(&self, cpus: impl IntoIterator<Item = usize>) -> scx_rt::Builder {
        let mut b = traced(scx_rt::Runtime::builder().cpus(cpus));
        if let Some(t) = self.opts.slice_timer {
            b = b.slice_timer(t);
        }
        match self.opts.idle_poll_us {
            Some(us) => b.idle_poll(Duration::from_micros(us)),
            None => b,
        }
    }

    /// Whether peers and raw limits run.
    pub fn peers(&self) -> bool {
        !self.opts.no_peers
    }

    /// Runs one peer (or raw limit) measurement with a progress line; a
    /// failure is reported on stderr and yields no row.
    pub fn peer<F>(&self, workload: &str, subject: Subject, rows: &mut Vec<Row>, f: F)
    where
        F: FnOnce() -> Result<Vec<Row>, String>,
    {
        if !self.peers() {
            return;
        }
        let t = Instant::now();
        eprintln!("{workload}: {} ...", subject.as_str());
        match f() {
            Ok(mut r) => {
                rows.append(&mut r);
                progress_done(workload, subject, t);
            }
            Err(e) => eprintln!("{workload}: {} skipped: {e}", subject.as_str()),
        }
    }

    /// Runs the scx-rt measurement with a progress line; errors propagate.
    pub fn scx<F>(&self, workload: &str, rows: &mut Vec<Row>, f: F) -> Result<(), String>
    where
        F: FnOnce() -> Result<Vec<Row>, String>,
    {
        let t = Instant::now();
        eprintln!("{workload}: scx-rt ...");
        let mut r = f().map_err(|e| format!("{workload}: scx-rt: {e}"))?;
        rows.append(&mut r);
        progress_done(workload, Subject::ScxRt, t);
        Ok(())
    }

    /// The common shape of a throughput workload: the scx-rt samples (one
    /// figure per repetition), then tokio's, each made into a row by `row`.
    pub fn scx_then_tokio(
        &self,
        workload: &str,
        rows: &mut Vec<Row>,
        row: impl Fn(Subject, &[f64]) -> Row,
        scx: impl FnOnce() -> Result<Vec<f64>, String>,
        tokio: impl FnOnce() -> Result<Vec<f64>, String>,
    ) -> Result<(), String> {
        self.scx(workload, rows, || Ok(vec![row(Subject::ScxRt, &scx()?)]))?;
        self.peer(workload, Subject::Tokio, rows, || {
            Ok(vec![row(Subject::Tokio, &tokio()?)])
        });
        Ok(())
    }
}

/// `--trace FILE` and `--trace-capacity`, for every runtime the run builds
/// (set once by `main`; workloads that build their own runtimes without
/// [`Ctx::scx_builder`] pass their builder through [`traced`]).
static TRACE: OnceLock<(PathBuf, usize)> = OnceLock::new();
/// Runtimes traced so far (numbers the files).
static TRACED: AtomicUsize = AtomicUsize::new(0);

/// Turns tracing on for the run (`--trace`).
pub fn set_trace(path: PathBuf, capacity: Option<u64>) {
    let cap = capacity.map_or(scx_rt::consts::DEFAULT_TRACE_CAPACITY, |c| c as usize);
    let _ = TRACE.set((path, cap));
}

/// `b` with tracing on when the run asked for it: the `n`th runtime built
/// writes its trace at shutdown to [`trace_file`]`(FILE, n)`.
pub fn traced(b: scx_rt::Builder) -> scx_rt::Builder {
    let Some((path, cap)) = TRACE.get() else {
        return b;
    };
    let n = TRACED.fetch_add(1, Ordering::Relaxed) + 1;
    let file = trace_file(path, n);
    eprintln!(
        "trace: scx-rt runtime {n} writes its trace to {} at shutdown",
        file.display()
    );
    b.trace(
        scx_rt::TraceConfig::new()
            .capacity_per_cpu(*cap)
            .write_at_shutdown(file),
    )
}

/// The file of the `n`th traced runtime: `path` itself for the first,
/// else `-n` inserted before the extension (`t.json` -> `t-2.json`).
pub fn trace_file(path: &Path, n: usize) -> PathBuf {
    if n <= 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(e) => format!("{stem}-{n}.{}", e.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

fn progress_done(workload: &str, subject: Subject, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    if s >= 1.0 {
        eprintln!("{workload}: {} done in {s:.1} s", subject.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_files_are_numbered_before_the_extension() {
        let p = Path::new("/tmp/run.json");
        assert_eq!(trace_file(p, 1), PathBuf::from("/tmp/run.json"));
        assert_eq!(trace_file(p, 3), PathBuf::from("/tmp/run-3.json"));
        assert_eq!(trace_file(Path::new("t"), 2), PathBuf::from("t-2"));
    }
}
