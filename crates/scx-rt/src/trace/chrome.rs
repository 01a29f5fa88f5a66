//! The Chrome trace-event JSON writer (the "JSON Array/Object Format" that
//! `ui.perfetto.dev` and `chrome://tracing` open), written by hand.
//!
//! # Layout
//!
//! ```text
//! {"displayTimeUnit": "ns", "otherData": {...}, "traceEvents": [
//!   metadata: process "CPUs" (pid 1), one thread per CPU ("cpu N");
//!             process "tasks" (pid 2), one thread per task ("task ID")
//!   CPU tracks:  B/E "task ID" while the CPU runs it;
//!                instants: enqueue, dispatch, wake, block, preempt,
//!                slice expired, migrate, kick sent, kick received
//!   task tracks: B/E "running" (on which CPU) and "runnable" (woken or
//!                switched out with slice work left, until it runs);
//!                instants: wake, block, preempt, slice expired, migrate
//!   flows:       "wake" arrows from a wake-up's runnable interval to the
//!                interval that runs the task on its CPU track
//! ]}
//! ```
//!
//! Timestamps are microseconds with three decimals (exact ns) counted from
//! the first event. Intervals are B/E pairs rather than `X` events: an
//! interval's end and the next one's start are then one string each,
//! which a reader converts to the same number (an `X`'s `ts + dur` may
//! round one ns past the next start and look like an overlap). Events come
//! out in time order, each interval closed before the next one on its
//! track opens; intervals still open at the snapshot end at its time.
//!
//! Track ids: the CPUs are threads `10 + cpu` of pid 1, the tasks threads
//! `10 + nr_cpus + k` of pid 2 (k: order of first appearance; the task id
//! is in the name and the args), so no thread id repeats across the two
//! processes or equals a process id (Perfetto keys threads by tid alone).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use crate::task::TaskId;

use super::event::{PreemptCause, StopReason, TraceEventKind};
use super::snapshot::TraceSnapshot;
use super::TraceFull;

const PID_CPUS: u64 = 1;
const PID_TASKS: u64 = 2;
const TID_BASE: u64 = 10;

/// An argument value.
enum V {
    N(u64),
    S(String),
}

/// What the writer knows of a task.
struct TaskTrack {
    tid: u64,
    /// Running on (cpu) since (ns).
    running: Option<(usize, u64)>,
    /// Runnable since (ns), and the flow that a wake-up started.
    runnable: Option<(u64, Option<u64>)>,
    /// A block was recorded; the next switch-out makes it sleep.
    blocked: bool,
}

struct Writer<'s> {
    snap: &'s TraceSnapshot,
    t0: u64,
    out: String,
    tasks: HashMap<TaskId, TaskTrack>,
    /// Task ids in order of first appearance.
    order: Vec<TaskId>,
    /// Per CPU: the task it runs, since when.
    cpus: Vec<Option<(TaskId, u64)>>,
    next_flow: u64,
}

/// Writes `snap` to `w`.
pub(super) fn write(snap: &TraceSnapshot, w: &mut impl Write) -> std::io::Result<()> {
    let t0 = snap.events.first().map_or(snap.end_ns, |e| e.ts_ns);
    let mut wr = Writer {
        snap,
        t0,
        out: String::new(),
        tasks: HashMap::new(),
        order: Vec::new(),
        cpus: vec![None; snap.nr_cpus()],
        next_flow: 1,
    };
    // The tracks first (their names go before the events), in order of
    // first appearance; then the events, streamed in chunks.
    for e in &snap.events {
        match e.kind {
            TraceEventKind::Switch { prev, next, .. } => {
                for id in prev.into_iter().chain(next) {
                    wr.task(id);
                }
            }
            ref k => {
                if let Some(id) = k.task() {
                    wr.task(id);
                }
            }
        }
    }
    let mut head = String::new();
    wr.header(&mut head);
    w.write_all(head.as_bytes())?;
    for e in &snap.events {
        wr.event(e.ts_ns, e.cpu, &e.kind);
        if wr.out.len() >= CHUNK {
            w.write_all(wr.out.as_bytes())?;
            wr.out.clear();
        }
    }
    wr.close_all(snap.end_ns.max(snap.events.last().map_or(0, |e| e.ts_ns)));
    w.write_all(wr.out.as_bytes())?;
    w.write_all(b"\n]}\n")
}

/// Bytes of events buffered before they go to the writer.
const CHUNK: usize = 1 << 16;

/// `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hex(v: u64) -> V {
    V::S(format!("{v:#x}"))
}

/// A DSQ id as sched_ext writes it: `SCX_DSQ_LOCAL`,
/// `SCX_DSQ_LOCAL_ON|N`, `SCX_DSQ_GLOBAL`, or the user DSQ's number.
fn dsq_name(id: u64) -> String {
    use crate::flags::dsq_id;
    if id == dsq_id::LOCAL {
        "SCX_DSQ_LOCAL".into()
    } else if id & dsq_id::LOCAL_ON == dsq_id::LOCAL_ON {
        format!("SCX_DSQ_LOCAL_ON|{}", id & dsq_id::LOCAL_CPU_MASK)
    } else if id == dsq_id::GLOBAL {
        "SCX_DSQ_GLOBAL".into()
    } else {
        format!("{id:#x}")
    }
}

fn reason_name(r: Option<StopReason>) -> &'static str {
    match r {
        Some(StopReason::Yield) => "yield",
        Some(StopReason::Preempt) => "preempt",
        Some(StopReason::Block) => "block",
        Some(StopReason::Exit) => "exit",
        None => "unknown",
    }
}

impl Writer<'_> {
    fn cpu_tid(&self, cpu: usize) -> u64 {
        TID_BASE + cpu as u64
    }

    /// The task's track, made at its first appearance.
    fn task(&mut self, id: TaskId) -> &mut TaskTrack {
        let base = TID_BASE + self.cpus.len() as u64;
        let n = self.order.len() as u64;
        let order = &mut self.order;
        self.tasks.entry(id).or_insert_with(|| {
            order.push(id);
            TaskTrack {
                tid: base + n,
                running: None,
                runnable: None,
                blocked: false,
            }
        })
    }

    /// One trace event: `ph` with `extra` fields (`"s":"t"`, a flow id)
    /// and `args`.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        ph: &str,
        name: &str,
        ts: u64,
        pid: u64,
        tid: u64,
        extra: &str,
        args: &[(&str, V)],
    ) {
        let t = ts.saturating_sub(self.t0);
        let o = &mut self.out;
        o.push_str(",\n{\"name\":");
        json_str(o, name);
        let _ = write!(
            o,
            ",\"cat\":\"sched\",\"ph\":\"{ph}\",\"ts\":{}.{:03},\"pid\":{pid},\"tid\":{tid}{extra}",
            t / 1000,
            t % 1000
        );
        if !args.is_empty() {
            o.push_str(",\"args\":{");
            for (i, (k, v)) in args.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                json_str(o, k);
                o.push(':');
                match v {
                    V::N(n) => {
                        let _ = write!(o, "{n}");
                    }
                    V::S(s) => json_str(o, s),
                }
            }
            o.push('}');
        }
        o.push('}');
    }

    fn cpu_instant(&mut self, ts: u64, cpu: usize, name: &str, args: &[(&str, V)]) {
        let tid = self.cpu_tid(cpu);
        self.emit("i", name, ts, PID_CPUS, tid, ",\"s\":\"t\"", args);
    }

    fn task_instant(&mut self, ts: u64, task: TaskId, name: &str, args: &[(&str, V)]) {
        let tid = self.task(task).tid;
        self.emit("i", name, ts, PID_TASKS, tid, ",\"s\":\"t\"", args);
    }

    /// `task` becomes runnable at `ts` (a wake-up starts a flow).
    fn runnable(&mut self, ts: u64, task: TaskId, wake: bool) {
        let t = self.task(task);
        if t.running.is_some() || t.runnable.is_some() {
            return;
        }
        let tid = t.tid;
        let flow = wake.then(|| {
            self.next_flow += 1;
            self.next_flow - 1
        });
        self.task(task).runnable = Some((ts, flow));
        self.emit(
            "B",
            "runnable",
            ts,
            PID_TASKS,
            tid,
            "",
            &[("task", V::N(task))],
        );
        if let Some(id) = flow {
            let extra = format!(",\"id\":{id}");
            self.emit("s", "wake", ts, PID_TASKS, tid, &extra, &[]);
        }
    }

    /// `task`'s run on `cpu` (since `since`) ends at `ts`.
    fn end_run(&mut self, ts: u64, cpu: usize, task: TaskId, why: Option<StopReason>) {
        let ctid = self.cpu_tid(cpu);
        self.emit(
            "E",
            &format!("task {task}"),
            ts,
            PID_CPUS,
            ctid,
            "",
            &[("stop", V::S(reason_name(why).into()))],
        );
        let t = self.task(task);
        if t.running.take().is_some() {
            let tid = t.tid;
            self.emit("E", "running", ts, PID_TASKS, tid, "", &[]);
        }
    }

    fn event(&mut self, ts: u64, cpu: usize, k: &TraceEventKind) {
        match *k {
            TraceEventKind::Switch { prev, reason, next } => {
                self.switch(ts, cpu, prev, reason, next)
            }
            TraceEventKind::Enqueue { task, enq_flags } => {
                let t = self.task(task);
                if t.running.is_none() && !t.blocked {
                    self.runnable(ts, task, false);
                }
                self.cpu_instant(
                    ts,
                    cpu,
                    "enqueue",
                    &[("task", V::N(task)), ("enq_flags", hex(enq_flags.0))],
                );
            }
            TraceEventKind::Dispatch {
                task,
                dsq_id,
                enq_flags,
            } => self.cpu_instant(
                ts,
                cpu,
                "dispatch",
                &[
                    ("task", V::N(task)),
                    ("dsq", V::S(dsq_name(dsq_id))),
                    ("enq_flags", hex(enq_flags.0)),
                ],
            ),
            TraceEventKind::Wake { task, enq_flags } => {
                let t = self.task(task);
                t.blocked = false;
                let spawn = !enq_flags.contains(crate::flags::EnqFlags::WAKEUP);
                let name = if spawn { "spawn" } else { "wake" };
                self.cpu_instant(
                    ts,
                    cpu,
                    name,
                    &[("task", V::N(task)), ("enq_flags", hex(enq_flags.0))],
                );
                self.task_instant(ts, task, name, &[("cpu", V::N(cpu as u64))]);
                self.runnable(ts, task, true);
            }
            TraceEventKind::Block { task } => {
                self.task(task).blocked = true;
                self.cpu_instant(ts, cpu, "block", &[("task", V::N(task))]);
                self.task_instant(ts, task, "block", &[("cpu", V::N(cpu as u64))]);
            }
            TraceEventKind::SliceExpired { task } => {
                self.cpu_instant(ts, cpu, "slice expired", &[("task", V::N(task))]);
                self.task_instant(ts, task, "slice expired", &[("cpu", V::N(cpu as u64))]);
            }
            TraceEventKind::Preempt { task, by } => {
                let by = match by {
                    PreemptCause::Kick { from: Some(c) } => format!("kick from cpu {c}"),
                    PreemptCause::Kick { from: None } => "kick from outside".to_string(),
                    PreemptCause::EnqPreempt { task } => format!("ENQ_PREEMPT of task {task}"),
                };
                self.cpu_instant(
                    ts,
                    cpu,
                    "preempt",
                    &[("task", V::N(task)), ("by", V::S(by.clone()))],
                );
                self.task_instant(ts, task, "preempt", &[("by", V::S(by))]);
            }
            TraceEventKind::Migrate { task, from, to } => {
                let args = [
                    ("task", V::N(task)),
                    ("from", V::N(from as u64)),
                    ("to", V::N(to as u64)),
                ];
                self.cpu_instant(ts, cpu, "migrate", &args);
                self.task_instant(ts, task, "migrate", &args);
            }
            TraceEventKind::Kick {
                from,
                flags,
                skipped,
            } => {
                let name = if skipped {
                    "idle kick skipped"
                } else {
                    "kick received"
                };
                let from_arg = match from {
                    Some(c) => V::N(c as u64),
                    None => V::S("outside".into()),
                };
                self.cpu_instant(
                    ts,
                    cpu,
                    name,
                    &[("from", from_arg), ("flags", hex(flags.0))],
                );
                if let Some(f) = from.filter(|&f| f < self.cpus.len()) {
                    self.cpu_instant(
                        ts,
                        f,
                        "kick sent",
                        &[("to", V::N(cpu as u64)), ("flags", hex(flags.0))],
                    );
                }
            }
        }
    }

    fn switch(
        &mut self,
        ts: u64,
        cpu: usize,
        prev: Option<TaskId>,
        reason: Option<StopReason>,
        next: Option<TaskId>,
    ) {
        let Some(slot) = self.cpus.get(cpu).copied() else {
            return;
        };
        if let (Some((cur, _)), Some(n)) = (slot, next) {
            if cur == n {
                return; // prev kept running
            }
        }
        if let Some((cur, _)) = slot {
            self.cpus[cpu] = None;
            let why = if prev == Some(cur) { reason } else { None };
            self.end_run(ts, cpu, cur, why);
        }
        if let Some(p) = prev {
            let t = self.task(p);
            t.running = None;
            let blocked = std::mem::take(&mut t.blocked);
            if reason != Some(StopReason::Exit) && !blocked {
                self.runnable(ts, p, false);
            }
        }
        let Some(n) = next else {
            return;
        };
        let ctid = self.cpu_tid(cpu);
        let t = self.task(n);
        let tid = t.tid;
        let stale = t.running.take();
        let was = t.runnable.take();
        t.blocked = false;
        if stale.is_some() {
            // A run whose end fell outside the kept window.
            self.emit("E", "running", ts, PID_TASKS, tid, "", &[]);
        }
        if was.is_some() {
            self.emit("E", "runnable", ts, PID_TASKS, tid, "", &[]);
        }
        self.emit(
            "B",
            "running",
            ts,
            PID_TASKS,
            tid,
            "",
            &[("task", V::N(n)), ("cpu", V::N(cpu as u64))],
        );
        self.task(n).running = Some((cpu, ts));
        self.emit(
            "B",
            &format!("task {n}"),
            ts,
            PID_CPUS,
            ctid,
            "",
            &[("task", V::N(n))],
        );
        self.cpus[cpu] = Some((n, ts));
        if let Some((_, Some(id))) = was {
            let extra = format!(",\"id\":{id},\"bp\":\"e\"");
            self.emit("f", "wake", ts, PID_CPUS, ctid, &extra, &[]);
        }
    }

    /// Ends every interval still open at `ts` (the snapshot's time).
    fn close_all(&mut self, ts: u64) {
        for cpu in 0..self.cpus.len() {
            if let Some((task, _)) = self.cpus[cpu].take() {
                self.end_run(ts, cpu, task, None);
            }
        }
        for i in 0..self.order.len() {
            let id = self.order[i];
            let t = self.task(id);
            let tid = t.tid;
            if t.runnable.take().is_some() {
                self.emit("E", "runnable", ts, PID_TASKS, tid, "", &[]);
            }
        }
    }

    /// The object's head and the metadata events (names and order of the
    /// tracks), written before the events.
    fn header(&self, h: &mut String) {
        let s = self.snap;
        let _ = write!(
            h,
            "{{\"displayTimeUnit\":\"ns\",\"otherData\":{{\"source\":\"scx-rt\",\"nr_cpus\":\"{}\",\"when_full\":\"{}\",\"recorded\":\"{}\",\"lost\":\"{}\"}},\n\"traceEvents\":[",
            s.nr_cpus(),
            match s.when_full {
                TraceFull::OverwriteOldest => "overwrite-oldest",
                TraceFull::DropNewest => "drop-newest",
            },
            s.recorded.iter().sum::<u64>(),
            s.lost.iter().sum::<u64>(),
        );
        let mut first = true;
        let mut meta = |h: &mut String, name: &str, pid: u64, tid: Option<u64>, arg: &str| {
            if !first {
                h.push(',');
            }
            first = false;
            let _ = write!(h, "\n{{\"name\":\"{name}\",\"ph\":\"M\",\"pid\":{pid}");
            if let Some(t) = tid {
                let _ = write!(h, ",\"tid\":{t}");
            }
            let _ = write!(h, ",\"args\":{{{arg}}}}}");
        };
        for (pid, name, idx) in [(PID_CPUS, "CPUs", 0), (PID_TASKS, "tasks", 1)] {
            meta(
                h,
                "process_name",
                pid,
                None,
                &format!("\"name\":\"{name}\""),
            );
            meta(
                h,
                "process_sort_index",
                pid,
                None,
                &format!("\"sort_index\":{idx}"),
            );
        }
        for cpu in 0..self.cpus.len() {
            let lost = s.lost[cpu];
            let name = if lost > 0 {
                format!("cpu {cpu} ({lost} events lost)")
            } else {
                format!("cpu {cpu}")
            };
            let mut arg = String::from("\"name\":");
            json_str(&mut arg, &name);
            let tid = self.cpu_tid(cpu);
            meta(h, "thread_name", PID_CPUS, Some(tid), &arg);
            meta(
                h,
                "thread_sort_index",
                PID_CPUS,
                Some(tid),
                &format!("\"sort_index\":{cpu}"),
            );
        }
        for (k, id) in self.order.iter().enumerate() {
            let tid = self.tasks[id].tid;
            meta(
                h,
                "thread_name",
                PID_TASKS,
                Some(tid),
                &format!("\"name\":\"task {id}\""),
            );
            meta(
                h,
                "thread_sort_index",
                PID_TASKS,
                Some(tid),
                &format!("\"sort_index\":{k}"),
            );
        }
    }
}
