//! Scheduling traces through the public API (`Builder::trace`,
//! `Runtime::trace_snapshot`, `Runtime::write_trace`): tasks that yield,
//! block and wake, get kicked, preempted and expire their slices, and
//! move between CPUs leave the events they should, in per-CPU and
//! per-task tracks of a Chrome trace-event JSON file that a strict JSON
//! parser (below, written for these tests) accepts; off, nothing is
//! recorded or written; full rings count what they lose.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scx_rt::trace::{PreemptCause, StopReason};
use scx_rt::{
    BuildError, EnqFlags, EnqueueCtx, KickFlags, Runtime, Scheduler, TaskId, TaskRef, TraceConfig,
    TraceError, TraceEvent, TraceEventKind, TraceFull, DSQ_LOCAL, SLICE_DFL,
};

mod common;
use common::{guard, wait_until};

// ---------------------------------------------------------------------
// A strict JSON parser (RFC 8259): the trace must parse, not just look
// right.
// ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(n, _)| n == k).map(|(_, v)| v),
            _ => None,
        }
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k) {
            Some(Json::Str(s)) => Some(s),
            _ => None,
        }
    }
    fn num(&self, k: &str) -> Option<f64> {
        match self.get(k) {
            Some(Json::Num(n)) => Some(*n),
            _ => None,
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(s: &str) -> Result<Json, String> {
        let mut p = Parser {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected `{}`", c as char))
        }
    }
    fn lit(&mut self, s: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(s.as_bytes()) {
            self.i += s.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a value"),
        }
    }
    fn object(&mut self) -> Result<Json, String> {
        self.eat(b'{')?;
        let mut m = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Obj(m));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let k = self.string()?;
            if m.iter().any(|(n, _)| *n == k) {
                return self.err(&format!("duplicate key {k}"));
            }
            self.eat(b':')?;
            let v = self.value()?;
            m.push((k, v));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }
    fn array(&mut self) -> Result<Json, String> {
        self.eat(b'[')?;
        let mut a = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Arr(a));
        }
        loop {
            a.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // the opening quote
        let mut s = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(s),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("bad escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{8}'),
                        b'f' => s.push('\u{c}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let h = self
                                .b
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(h) = h else {
                                return self.err("bad \\u escape");
                            };
                            self.i += 4;
                            s.push(char::from_u32(h).unwrap_or('\u{fffd}'));
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                c if c < 0x20 => return self.err("control character in a string"),
                _ => {
                    // Copy one UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match c {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let Some(seq) = self.b.get(start..start + len) else {
                        return self.err("truncated UTF-8");
                    };
                    match std::str::from_utf8(seq) {
                        Ok(t) => s.push_str(t),
                        Err(_) => return self.err("bad UTF-8"),
                    }
                    self.i = start + len;
                }
            }
        }
    }
    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - s
        };
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.err("bad number"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err("bad fraction");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("bad exponent");
            }
        }
        let t = std::str::from_utf8(&self.b[start..self.i]).unwrap();
        t.parse().map(Json::Num).map_err(|e| format!("{e}: {t}"))
    }
}

#[test]
fn the_json_checker_rejects_what_it_should() {
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "[01]",
        "[1.]",
        "\"a\nb\"",
        "{\"a\":1,\"a\":2}",
        "[1] [2]",
        "tru",
        "[\"\\x\"]",
    ] {
        assert!(Parser::parse(bad).is_err(), "accepted {bad:?}");
    }
    let v = Parser::parse(r#" {"a": [1, -2.5e3, true, null, "x\"\u0041"], "b": {}} "#).unwrap();
    assert_eq!(
        v.get("a"),
        Some(&Json::Arr(vec![
            Json::Num(1.0),
            Json::Num(-2500.0),
            Json::Bool(true),
            Json::Null,
            Json::Str("x\"A".into())
        ]))
    );
}

// ---------------------------------------------------------------------
// The trace file's structure.
// ---------------------------------------------------------------------

/// A parsed Chrome trace: its events, and the thread names by (pid, tid).
struct Chrome {
    events: Vec<Json>,
    names: HashMap<(u64, u64), String>,
}

impl Chrome {
    fn parse(text: &str) -> Chrome {
        let top = Parser::parse(text).unwrap_or_else(|e| panic!("invalid JSON: {e}"));
        assert_eq!(top.str("displayTimeUnit"), Some("ns"));
        let Some(Json::Arr(events)) = top.get("traceEvents") else {
            panic!("no traceEvents array");
        };
        let mut names = HashMap::new();
        for e in events {
            let ph = e.str("ph").expect("every event has a ph");
            assert!(
                ["M", "B", "E", "i", "s", "f"].contains(&ph),
                "unexpected ph {ph}"
            );
            assert!(e.str("name").is_some(), "event without a name: {e:?}");
            let pid = e.num("pid").expect("pid") as u64;
            if ph == "M" {
                if e.str("name") == Some("thread_name") {
                    let tid = e.num("tid").expect("tid") as u64;
                    let n = e.get("args").and_then(|a| a.str("name")).expect("a name");
                    assert!(
                        names.insert((pid, tid), n.to_string()).is_none(),
                        "two names for one thread"
                    );
                }
                continue;
            }
            assert!(e.num("ts").is_some_and(|t| t >= 0.0), "bad ts: {e:?}");
            assert!(e.num("tid").is_some(), "no tid: {e:?}");
        }
        Chrome {
            events: events.clone(),
            names,
        }
    }

    fn track(&self, e: &Json) -> (u64, u64) {
        (e.num("pid").unwrap() as u64, e.num("tid").unwrap() as u64)
    }

    /// The (pid, tid) of the thread named `name`.
    fn tid_of(&self, name: &str) -> Option<(u64, u64)> {
        self.names
            .iter()
            .find(|(_, n)| n.as_str() == name || n.starts_with(&format!("{name} (")))
            .map(|(k, _)| *k)
    }

    /// Events on thread `name` with phase `ph`.
    fn on(&self, name: &str, ph: &str) -> Vec<&Json> {
        let Some(t) = self.tid_of(name) else {
            return Vec::new();
        };
        self.events
            .iter()
            .filter(|e| e.str("ph") == Some(ph) && e.num("tid").is_some() && self.track(e) == t)
            .collect()
    }

    /// Names of the events on thread `name` with phase `ph`.
    fn names_on(&self, name: &str, ph: &str) -> HashSet<String> {
        self.on(name, ph)
            .into_iter()
            .filter_map(|e| e.str("name").map(str::to_string))
            .collect()
    }

    /// Every B has its E on the same thread, in order, and time never
    /// goes back on a thread; flows start and finish in pairs.
    fn check_nesting(&self) {
        let mut open: HashMap<(u64, u64), Vec<String>> = HashMap::new();
        let mut last: HashMap<(u64, u64), f64> = HashMap::new();
        let mut flows: HashMap<u64, (usize, usize)> = HashMap::new();
        for e in &self.events {
            let ph = e.str("ph").unwrap();
            if ph == "M" {
                continue;
            }
            let t = self.track(e);
            let ts = e.num("ts").unwrap();
            let l = last.entry(t).or_insert(0.0);
            assert!(ts >= *l, "time goes back on {t:?}: {ts} < {l}");
            *l = ts;
            match ph {
                "B" => open
                    .entry(t)
                    .or_default()
                    .push(e.str("name").unwrap().into()),
                "E" => {
                    let o = open.entry(t).or_default();
                    assert!(o.pop().is_some(), "E without B on {t:?} at {ts}");
                }
                "s" | "f" => {
                    let id = e.num("id").expect("a flow id") as u64;
                    let f = flows.entry(id).or_default();
                    if ph == "s" {
                        f.0 += 1;
                    } else {
                        assert_eq!(e.str("bp"), Some("e"));
                        f.1 += 1;
                    }
                }
                _ => {}
            }
        }
        for (t, o) in open {
            assert!(o.is_empty(), "unclosed slices {o:?} on {t:?}");
        }
        for (id, (s, f)) in flows {
            assert_eq!(s, 1, "flow {id} starts {s} times");
            assert!(f <= 1, "flow {id} ends {f} times");
        }
    }
}

// ---------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("scx-rt-trace-{}-{name}.json", std::process::id()))
}

fn has(events: &[TraceEvent], f: impl Fn(&TraceEvent) -> bool) -> bool {
    events.iter().any(f)
}

/// Spins at preemption points until `stop` is set; returns its task id.
fn spinner(stop: Arc<AtomicBool>, started: Arc<AtomicBool>) -> impl FnOnce() -> TaskId {
    move || {
        started.store(true, Ordering::SeqCst);
        while !stop.load(Ordering::SeqCst) {
            scx_rt::preempt_point();
            std::hint::spin_loop();
        }
        scx_rt::task_id().unwrap()
    }
}

// ---------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------

/// Yields, a block and its wake-up, a PREEMPT kick from outside and one
/// from a task, and a slice expiry on two CPUs: every kind is in the
/// snapshot with the right tasks, and the file written at shutdown has
/// the CPU and task tracks with the intervals and instants they imply.
#[test]
fn trace_on_records_every_kind_and_writes_tracks() {
    guard("trace on", || {
        let path = tmp("every-kind");
        let _ = std::fs::remove_file(&path);
        let rt = Arc::new(
            Runtime::builder()
                .nr_cpus(2)
                .pin(false)
                .slice(Duration::from_millis(2))
                .trace(TraceConfig::new().write_at_shutdown(&path))
                .build()
                .unwrap(),
        );

        // Two yielders on CPU 0.
        let yielder = || {
            for _ in 0..20 {
                scx_rt::yield_now();
            }
            scx_rt::task_id().unwrap()
        };
        let a = rt.spawn_on(0, yielder);
        let b = rt.spawn_on(0, yielder);
        let (ya, yb) = (a.join().unwrap(), b.join().unwrap());

        // A receiver on CPU 1 blocks; a sender on CPU 0 wakes it.
        let (tx, rx) = scx_rt::sync::channel::<u32>(1);
        let recv = rt.spawn_on(1, move || {
            assert_eq!(rx.recv().unwrap(), 7);
            scx_rt::task_id().unwrap()
        });
        wait_until("the receiver to block", || {
            has(&rt.trace_snapshot().unwrap().events, |e| {
                matches!(e.kind, TraceEventKind::Block { .. })
            })
        });
        rt.spawn_on(0, move || tx.send(7).unwrap()).join().unwrap();
        let receiver = recv.join().unwrap();

        // A spinner on CPU 1: kicked with PREEMPT from outside, then from a
        // task on CPU 0, and left to expire its 2 ms slice.
        let (stop, started) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let spin = rt.spawn_on(1, spinner(stop.clone(), started.clone()));
        wait_until("the spinner to start", || started.load(Ordering::SeqCst));
        rt.kick_cpu(1, KickFlags::PREEMPT).unwrap();
        let rt2 = rt.clone();
        rt.spawn_on(0, move || rt2.kick_cpu(1, KickFlags::PREEMPT).unwrap())
            .join()
            .unwrap();
        wait_until("both kicks and a slice expiry", || {
            let ev = rt.trace_snapshot().unwrap().events;
            let preempted = |from: Option<usize>| {
                has(&ev, |e| {
                    e.cpu == 1
                        && matches!(e.kind, TraceEventKind::Preempt { by: PreemptCause::Kick { from: f }, .. } if f == from)
                })
            };
            preempted(None)
                && preempted(Some(0))
                && has(&ev, |e| {
                    matches!(e.kind, TraceEventKind::SliceExpired { .. })
                })
        });
        stop.store(true, Ordering::SeqCst);
        let spun = spin.join().unwrap();
        // The exit's switch comes at the CPU's next step, after the join.
        let exited = |t: TaskId| {
            has(
                &rt.trace_snapshot().unwrap().events,
                |e| matches!(e.kind, TraceEventKind::Switch { prev: Some(p), reason: Some(StopReason::Exit), .. } if p == t),
            )
        };
        wait_until("the spinner's exit switch", || exited(spun));

        let snap = rt.trace_snapshot().unwrap();
        let ev = &snap.events;
        assert_eq!(snap.nr_cpus(), 2);
        assert_eq!(snap.lost, vec![0, 0], "nothing lost in 64 Ki events");
        assert!(
            ev.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
            "events by time"
        );
        assert_eq!(
            snap.recorded.iter().sum::<u64>(),
            ev.len() as u64,
            "every recorded event kept"
        );
        for y in [ya, yb] {
            let yields = ev
                .iter()
                .filter(|e| {
                    e.cpu == 0
                        && matches!(e.kind, TraceEventKind::Switch { prev: Some(p), reason: Some(StopReason::Yield), .. } if p == y)
                })
                .count();
            assert!(yields >= 20, "task {y}: {yields} yield switches");
            for k in ["wake", "enqueue", "dispatch", "switch"] {
                assert!(
                    has(ev, |e| e.kind.name() == k && e.kind.task() == Some(y)),
                    "no {k} of yielder {y}"
                );
            }
        }
        assert!(has(ev, |e| e.cpu == 1
            && e.kind == TraceEventKind::Block { task: receiver }));
        assert!(has(ev, |e| e.cpu == 1
            && matches!(e.kind, TraceEventKind::Wake { task, enq_flags } if task == receiver && enq_flags.contains(EnqFlags::WAKEUP))));
        assert!(has(ev, |e| e.cpu == 1
            && matches!(e.kind, TraceEventKind::Switch { prev: Some(p), reason: Some(StopReason::Block), .. } if p == receiver)));
        for from in [None, Some(0)] {
            assert!(has(ev, |e| e.cpu == 1
                && matches!(e.kind, TraceEventKind::Kick { from: f, flags, skipped: false } if f == from && flags.contains(KickFlags::PREEMPT))));
            assert!(has(ev, |e| e.cpu == 1
                && matches!(e.kind, TraceEventKind::Preempt { task, by: PreemptCause::Kick { from: f } } if task == spun && f == from)));
        }
        assert!(has(ev, |e| e.cpu == 1
            && e.kind == TraceEventKind::SliceExpired { task: spun }));

        let rt = Arc::try_unwrap(rt).unwrap_or_else(|_| panic!("a task kept the runtime"));
        assert!(!path.exists(), "written before shutdown");
        rt.shutdown();
        let text = std::fs::read_to_string(&path).expect("the trace file");
        std::fs::remove_file(&path).unwrap();
        let c = Chrome::parse(&text);
        c.check_nesting();

        // One track per CPU, one per task that ran.
        for cpu in ["cpu 0", "cpu 1"] {
            assert!(
                c.tid_of(cpu).is_some_and(|(pid, _)| pid == 1),
                "no track {cpu}"
            );
        }
        for t in [ya, yb, receiver, spun] {
            let name = format!("task {t}");
            assert!(
                c.tid_of(&name).is_some_and(|(pid, _)| pid == 2),
                "no track {name}"
            );
            assert!(
                c.names_on(&name, "B").contains("running"),
                "{name} never runs"
            );
        }
        // CPU tracks: who ran, and the instants.
        let ran_on = |cpu: &str, t: TaskId| {
            c.on(cpu, "B").iter().any(|e| {
                e.str("name") == Some(&format!("task {t}"))
                    && e.get("args").and_then(|a| a.num("task")) == Some(t as f64)
            })
        };
        assert!(ran_on("cpu 0", ya) && ran_on("cpu 0", yb));
        assert!(ran_on("cpu 1", receiver) && ran_on("cpu 1", spun));
        let i0 = c.names_on("cpu 0", "i");
        let i1 = c.names_on("cpu 1", "i");
        for k in ["enqueue", "dispatch", "spawn", "kick sent"] {
            assert!(i0.contains(k), "cpu 0 has no {k} instant: {i0:?}");
        }
        for k in ["block", "wake", "kick received", "preempt", "slice expired"] {
            assert!(i1.contains(k), "cpu 1 has no {k} instant: {i1:?}");
        }
        // Task tracks: the yielders wait runnable between runs; the receiver
        // blocks, wakes and waits, and a flow joins its wake to its run.
        let ta = format!("task {ya}");
        assert!(c.names_on(&ta, "B").contains("runnable"));
        let tr = format!("task {receiver}");
        let ri = c.names_on(&tr, "i");
        assert!(ri.contains("block") && ri.contains("wake"), "{ri:?}");
        let flow = c
            .on(&tr, "s")
            .first()
            .and_then(|s| s.num("id"))
            .expect("a wake flow");
        assert!(
            c.on("cpu 1", "f").iter().any(|f| f.num("id") == Some(flow)),
            "the receiver's wake flow does not end on cpu 1"
        );
        let ts_ = format!("task {spun}");
        let si = c.names_on(&ts_, "i");
        assert!(
            si.contains("preempt") && si.contains("slice expired"),
            "{si:?}"
        );
    });
}

/// A scheduler that inserts every woken task at its CPU's local DSQ with
/// `ENQ_PREEMPT`.
struct PreemptOnWake;

impl Scheduler for PreemptOnWake {
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        let pre = if f.contains(EnqFlags::WAKEUP) {
            EnqFlags::PREEMPT
        } else {
            EnqFlags::empty()
        };
        ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f | pre);
    }
}

/// A wake-up inserted with `ENQ_PREEMPT` preempts the spinner on its CPU:
/// the preempt event names both tasks.
#[test]
fn enq_preempt_is_traced_with_both_tasks() {
    guard("enq preempt", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .scheduler(PreemptOnWake)
            .trace(TraceConfig::new())
            .build()
            .unwrap();
        let (tx, rx) = scx_rt::sync::channel::<()>(1);
        let (stop, started) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let stop2 = stop.clone();
        let recv = rt.spawn_on(0, move || {
            rx.recv().unwrap();
            stop2.store(true, Ordering::SeqCst);
            scx_rt::task_id().unwrap()
        });
        wait_until("the receiver to block", || {
            has(&rt.trace_snapshot().unwrap().events, |e| {
                matches!(e.kind, TraceEventKind::Block { .. })
            })
        });
        let spin = rt.spawn_on(0, spinner(stop, started.clone()));
        wait_until("the spinner to start", || started.load(Ordering::SeqCst));
        rt.spawn_on(1, move || tx.send(()).unwrap()).join().unwrap();
        let (receiver, spun) = (recv.join().unwrap(), spin.join().unwrap());
        let ev = rt.trace_snapshot().unwrap().events;
        assert!(
            has(&ev, |e| e.cpu == 0
                && e.kind
                    == TraceEventKind::Preempt {
                        task: spun,
                        by: PreemptCause::EnqPreempt { task: receiver }
                    }),
            "no ENQ_PREEMPT preemption of {spun} by {receiver}"
        );
        assert!(has(
            &ev,
            |e| matches!(e.kind, TraceEventKind::Dispatch { task, dsq_id, enq_flags }
            if task == receiver && dsq_id == DSQ_LOCAL && enq_flags.contains(EnqFlags::PREEMPT))
        ));
        let text = rt.trace_snapshot().unwrap().to_chrome_json();
        let c = Chrome::parse(&text);
        c.check_nesting();
        assert!(c.names_on("cpu 0", "i").contains("preempt"));
    });
}

/// New tasks spawned on a busy CPU 0 are stolen by CPU 1 (the default
/// scheduler's stealing): the steal is a migrate event from 0 to 1, on
/// CPU 1, and the task then runs there.
#[test]
fn a_stolen_task_is_a_migration() {
    guard("migrate", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .trace(TraceConfig::new())
            .build()
            .unwrap();
        let mut found = None;
        for _ in 0..200 {
            rt.spawn_on(0, || {
                let hs: Vec<_> = (0..16)
                    .map(|_| {
                        scx_rt::spawn(|| {
                            let t = std::time::Instant::now();
                            while t.elapsed() < Duration::from_micros(200) {
                                std::hint::spin_loop();
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
            })
            .join()
            .unwrap();
            let ev = rt.trace_snapshot().unwrap().events;
            found = ev.iter().find_map(|e| match e.kind {
                TraceEventKind::Migrate {
                    task,
                    from: 0,
                    to: 1,
                } if e.cpu == 1 => Some(task),
                _ => None,
            });
            if found.is_some() {
                break;
            }
        }
        let task = found.expect("no steal from cpu 0 by cpu 1 in 200 bursts");
        let ev = rt.trace_snapshot().unwrap().events;
        assert!(
            has(&ev, |e| e.cpu == 1
                && matches!(e.kind, TraceEventKind::Switch { next: Some(n), .. } if n == task)),
            "migrated task {task} never ran on cpu 1"
        );
        let c = Chrome::parse(&rt.trace_snapshot().unwrap().to_chrome_json());
        c.check_nesting();
        assert!(c.names_on("cpu 1", "i").contains("migrate"));
    });
}

/// Off (the default): no snapshot, `write_trace` refuses and creates no
/// file, shutdown writes nothing; a zero or huge capacity is refused.
#[test]
fn trace_off_records_and_writes_nothing() {
    let rt = Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
    rt.block_on(|| {
        for _ in 0..10 {
            scx_rt::yield_now();
        }
    });
    assert!(rt.trace_snapshot().is_none());
    let path = tmp("off");
    let _ = std::fs::remove_file(&path);
    assert!(matches!(rt.write_trace(&path), Err(TraceError::Off)));
    rt.shutdown();
    assert!(!path.exists(), "a file was written with tracing off");

    for bad in [0, scx_rt::consts::MAX_TRACE_CAPACITY + 1] {
        let r = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .trace(TraceConfig::new().capacity_per_cpu(bad))
            .build();
        assert!(
            matches!(r, Err(BuildError::TraceCapacity { requested, .. }) if requested == bad),
            "capacity {bad} accepted"
        );
    }
}

/// `write_trace` writes a valid file while the runtime runs; an
/// unwritable path is an I/O error naming it.
#[test]
fn write_trace_on_demand_and_its_errors() {
    let rt = Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .trace(TraceConfig::new())
        .build()
        .unwrap();
    let id = rt.block_on(|| {
        scx_rt::yield_now();
        scx_rt::task_id().unwrap()
    });
    let path = tmp("on-demand");
    rt.write_trace(&path).unwrap();
    let c = Chrome::parse(&std::fs::read_to_string(&path).unwrap());
    std::fs::remove_file(&path).unwrap();
    c.check_nesting();
    assert!(c.names_on(&format!("task {id}"), "B").contains("running"));
    let bad = PathBuf::from("/nonexistent-dir-of-scx-rt/trace.json");
    match rt.write_trace(&bad) {
        Err(TraceError::Io { path, .. }) => assert_eq!(path, bad),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// A ring of 8 events overflows: the loss is counted, 8 events are kept,
/// the newest (overwrite) or the oldest (drop), and the file stays valid
/// and says so in the CPU's name.
#[test]
fn ring_overflow_is_counted() {
    for full in [TraceFull::OverwriteOldest, TraceFull::DropNewest] {
        let rt = Runtime::builder()
            .nr_cpus(1)
            .pin(false)
            .trace(TraceConfig::new().capacity_per_cpu(8).when_full(full))
            .build()
            .unwrap();
        let id = rt.block_on(|| {
            for _ in 0..100 {
                scx_rt::yield_now();
            }
            scx_rt::task_id().unwrap()
        });
        // The task leaves the live count in its exit step, under the rq
        // lock that the snapshot takes after it: the exit switch is in.
        wait_until("the task's exit step", || rt.stats().live_tasks == 0);
        let s = rt.trace_snapshot().unwrap();
        assert_eq!(s.when_full, full);
        assert_eq!(s.events.len(), 8, "{full:?}");
        assert!(s.recorded[0] > 100, "{full:?}: {} recorded", s.recorded[0]);
        assert_eq!(s.lost[0], s.recorded[0] - 8, "{full:?}");
        let first_is_spawn =
            matches!(s.events[0].kind, TraceEventKind::Wake { task, .. } if task == id);
        let ends_with_exit = s.events.iter().any(|e| {
            matches!(e.kind,
            TraceEventKind::Switch { prev: Some(p), reason: Some(StopReason::Exit), .. } if p == id)
        });
        match full {
            TraceFull::OverwriteOldest => assert!(ends_with_exit && !first_is_spawn),
            TraceFull::DropNewest => assert!(first_is_spawn && !ends_with_exit),
        }
        let c = Chrome::parse(&s.to_chrome_json());
        c.check_nesting();
        let name = c.names.get(&c.tid_of("cpu 0").unwrap()).unwrap();
        assert_eq!(name, &format!("cpu 0 ({} events lost)", s.lost[0]));
    }
}
