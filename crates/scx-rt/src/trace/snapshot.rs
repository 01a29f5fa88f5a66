//! Reading the rings: [`Runtime::trace_snapshot`], [`Runtime::write_trace`]
//! and the write at shutdown (the readers of the `trace` protocol, rule 3).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ops::Shared;
use crate::runtime::Runtime;

use super::event::TraceEvent;
use super::TraceFull;

/// The events the CPUs' rings hold at one moment
/// ([`Runtime::trace_snapshot`]).
#[derive(Clone, Debug)]
pub struct TraceSnapshot {
    /// Every kept event of every CPU, by time (events of one CPU with the
    /// same time keep their recording order).
    pub events: Vec<TraceEvent>,
    /// Per CPU: events recorded since the runtime started, lost ones
    /// included.
    pub recorded: Vec<u64>,
    /// Per CPU: events lost to a full ring (overwritten or dropped, by
    /// [`TraceFull`]).
    pub lost: Vec<u64>,
    /// What the full rings did.
    pub when_full: TraceFull,
    /// The clock when the snapshot was taken (ns, as [`TraceEvent::ts_ns`]):
    /// the end of the intervals still open.
    pub end_ns: u64,
}

impl TraceSnapshot {
    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.recorded.len()
    }

    /// Writes the snapshot as Chrome trace-event JSON (what `ui.perfetto.dev`
    /// and `chrome://tracing` open): a track per CPU with the task it ran
    /// and the instant events, a track per task with its running and
    /// runnable intervals, and wake-up → run arrows. The layout is in
    /// the README's "Tracing" section.
    pub fn write_chrome_json(&self, w: &mut impl Write) -> std::io::Result<()> {
        super::chrome::write(self, w)
    }

    /// [`TraceSnapshot::write_chrome_json`] into a string.
    pub fn to_chrome_json(&self) -> String {
        let mut v = Vec::new();
        self.write_chrome_json(&mut v)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("the writer emits UTF-8")
    }
}

/// Why [`Runtime::write_trace`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The runtime was built without [`Builder::trace`](crate::Builder::trace).
    #[error("tracing is off (turn it on with Builder::trace)")]
    Off,
    /// Creating or writing the file failed.
    #[error("writing the trace to {path} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Copies every CPU's ring (each under its rq lock, one at a time).
fn snapshot(sh: &Shared) -> Option<TraceSnapshot> {
    let when_full = sh.trace.get()?.when_full;
    let mut events = Vec::new();
    let mut recorded = Vec::with_capacity(sh.nr_cpus);
    let mut lost = Vec::with_capacity(sh.nr_cpus);
    for (cpu, c) in sh.cpus.iter().enumerate() {
        let (records, seen, gone) = {
            let rq = c.rq.lock();
            match rq.trace.as_deref() {
                Some(r) => (r.records(), r.seen(), r.lost()),
                None => (Vec::new(), 0, 0),
            }
        };
        events.extend(records.iter().map(|r| TraceEvent::decode(cpu, r)));
        recorded.push(seen);
        lost.push(gone);
    }
    // Stable: one CPU's events keep their (lock) order at equal times.
    events.sort_by_key(|e| e.ts_ns);
    Some(TraceSnapshot {
        events,
        recorded,
        lost,
        when_full,
        end_ns: crate::core::clock::now(),
    })
}

fn write_file(snap: &TraceSnapshot, path: &Path) -> Result<(), TraceError> {
    let io = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(f);
    snap.write_chrome_json(&mut w).map_err(io)?;
    w.flush().map_err(io)
}

/// The write at shutdown (`TraceConfig::write_at_shutdown`), after the
/// workers stopped; a failure goes to stderr (shutdown has no caller to
/// return it to).
pub(crate) fn at_shutdown(sh: &Shared) {
    let Some(path) = sh.trace.get().and_then(|c| c.path.clone()) else {
        return;
    };
    if let Some(snap) = snapshot(sh) {
        if let Err(e) = write_file(&snap, &path) {
            eprintln!("scx-rt: {e}");
        }
    }
}

impl Runtime {
    /// A copy of the events the CPUs' trace rings hold now, by time, with
    /// what each ring recorded and lost (`None`: tracing is off). Each
    /// CPU's rq lock is taken in turn for the copy of its ring; the rings
    /// go on recording. Works after [`Runtime::shutdown`] too.
    pub fn trace_snapshot(&self) -> Option<TraceSnapshot> {
        snapshot(&self.sh)
    }

    /// Writes the trace recorded so far to `path` as Chrome trace-event
    /// JSON ([`TraceSnapshot::write_chrome_json`]); open it in
    /// `ui.perfetto.dev` ("Open trace file") or `chrome://tracing`.
    /// [`TraceError::Off`] when the runtime was built without
    /// [`Builder::trace`](crate::Builder::trace) (no file is created).
    pub fn write_trace(&self, path: impl AsRef<Path>) -> Result<(), TraceError> {
        let snap = self.trace_snapshot().ok_or(TraceError::Off)?;
        write_file(&snap, path.as_ref())
    }
}
