//! Peers that run as a child process (may, whose worker count is
//! process-global; later the Go peer). The child prints one line per row
//! on stdout, fields separated by one TAB character, `null` for a missing
//! figure (shown here with spaces):
//!
//! ```text
//! row WORKLOAD CASE SUBJECT UNIT N MEAN P50 P99 P999
//! ```
//!
//! Other stdout lines are ignored; stderr is passed through (progress).
//!
//! A child may also be a *server* ([`start_server`], `echo`): once it
//! accepts connections it prints one line `listen ADDR` (TAB-separated)
//! and serves until its stdin reaches end of file, then exits with status
//! 0. The parent runs the clients. A server may also answer questions
//! ([`ServerChild::ask`]): the parent writes one word on a line, the child
//! prints one line `WORD VALUE` (TAB-separated).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cpus::format_cpu_list;
use crate::ctx::Ctx;
use crate::report::{PlotData, Row, Subject};

/// Formats a row as one protocol line (no trailing newline).
pub fn format_line(r: &Row) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let num = |v: Option<f64>| match v {
        Some(v) if v.is_finite() => format!("{v:?}"),
        _ => "null".into(),
    };
    format!(
        "row\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        clean(&r.workload),
        clean(&r.case),
        r.subject.as_str(),
        clean(&r.unit),
        r.n,
        num(Some(r.mean)),
        num(r.p50),
        num(r.p99),
        num(r.p999)
    )
}

/// Parses a protocol line; `None` for a line that is not a row.
pub fn parse_line(line: &str) -> Option<Result<Row, String>> {
    let rest = line.strip_prefix("row\t")?;
    let f: Vec<&str> = rest.split('\t').collect();
    Some(parse_fields(&f).ok_or_else(|| format!("bad row line `{line}`")))
}

fn parse_fields(f: &[&str]) -> Option<Row> {
    if f.len() != 9 {
        return None;
    }
    let opt = |s: &str| -> Option<Option<f64>> {
        if s == "null" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    Some(Row {
        workload: f[0].into(),
        case: f[1].into(),
        subject: Subject::parse(f[2])?,
        unit: f[3].into(),
        n: f[4].parse().ok()?,
        mean: opt(f[5])?.unwrap_or(f64::NAN),
        p50: opt(f[6])?,
        p99: opt(f[7])?,
        p999: opt(f[8])?,
        plot: PlotData::None,
    })
}

/// The options a child peer needs to size its runs exactly as the parent
/// does: `--cpus`, any sizes given, the idle poll, and `--quick`.
pub fn forwarded_args(ctx: &Ctx) -> Vec<String> {
    let mut v = vec!["--cpus".to_string(), format_cpu_list(&ctx.cpus)];
    for (flag, val) in [
        ("--iters", ctx.opts.iters),
        ("--tasks", ctx.opts.tasks),
        ("--reps", ctx.opts.reps),
        ("--idle-poll-us", ctx.opts.idle_poll_us),
    ] {
        if let Some(val) = val {
            v.push(flag.into());
            v.push(val.to_string());
        }
    }
    if ctx.opts.quick {
        v.push("--quick".into());
    }
    v
}

/// Runs `cmd` to completion and collects its rows.
pub fn run(mut cmd: Command) -> Result<Vec<Row>, String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!("{:?} failed: {}", cmd.get_program(), out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_line)
        .collect()
}

/// How long a server child has to exit once its stdin closed.
const SERVER_EXIT: Duration = Duration::from_secs(10);

/// How long a server child has to answer a question.
const ANSWER: Duration = Duration::from_secs(10);

/// A server child process (see the module docs).
pub struct ServerChild {
    child: Child,
    /// Closed to stop the server.
    stdin: Option<ChildStdin>,
    /// The child's stdout lines after `listen` (`None`: end of file).
    lines: mpsc::Receiver<Option<String>>,
    pub addr: SocketAddr,
}

/// Starts `cmd` as a server child and waits up to `timeout` for its
/// `listen ADDR` line. A child that exits first, prints a bad address or
/// is too slow is an error (a slow one is killed).
pub fn start_server(mut cmd: Command, timeout: Duration) -> Result<ServerChild, String> {
    let prog = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {prog}: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    // Passes on the address, then every later line, until the child
    // closes its stdout (so that it never blocks on a full pipe).
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let mut listening = false;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    let l = line.trim_end();
                    if listening {
                        let _ = tx.send(Some(l.to_string()));
                    } else if let Some(a) = l.strip_prefix("listen\t") {
                        listening = true;
                        let _ = tx.send(Some(a.to_string()));
                    }
                }
            }
        }
    });
    let fail = |mut child: Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    match rx.recv_timeout(timeout) {
        Ok(Some(a)) => match a.parse() {
            Ok(addr) => Ok(ServerChild {
                child,
                stdin,
                lines: rx,
                addr,
            }),
            Err(_) => fail(child, format!("{prog} printed a bad address `{a}`")),
        },
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            drop(stdin);
            let status = child.wait().map_err(|e| format!("wait for {prog}: {e}"))?;
            Err(format!("{prog} exited before listening: {status}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => fail(
            child,
            format!("{prog} did not listen within {} s", timeout.as_secs()),
        ),
    }
}

impl ServerChild {
    /// Asks the server `word` and returns the value of its answer (module
    /// docs); no answer within [`ANSWER`] is an error.
    pub fn ask(&mut self, word: &str) -> Result<String, String> {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().ok_or("the server child was stopped")?;
        writeln!(stdin, "{word}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("ask the server child `{word}`: {e}"))?;
        loop {
            match self.lines.recv_timeout(ANSWER) {
                Ok(Some(line)) => {
                    if let Some(v) = line.strip_prefix(word).and_then(|r| r.strip_prefix('\t')) {
                        return Ok(v.to_string());
                    }
                }
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the server child exited before answering `{word}`"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no answer to `{word}` within {} s",
                        ANSWER.as_secs()
                    ));
                }
            }
        }
    }

    /// Stops the server: closes its stdin and waits for it to exit (killed
    /// after [`SERVER_EXIT`]); a failing exit status is an error.
    pub fn stop(mut self) -> Result<(), String> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.stdin.take().is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + SERVER_EXIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("server child failed: {status}")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "server child still running {} s after its stdin closed; killed",
                        SERVER_EXIT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("wait for the server child: {e}")),
            }
        }
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let r = Row {
            workload: "spawn".into(),
            case: "a\tb".into(),
            subject: Subject::May,
            unit: "ns/task".into(),
            n: 7,
            mean: 1.5,
            p50: None,
            p99: Some(3.0),
            p999: Some(4.25),
            plot: PlotData::None,
        };
        let line = format_line(&r);
        let back = parse_line(&line).unwrap().unwrap();
        assert_eq!(back.case, "a b");
        assert_eq!(
            Row {
                case: "a\tb".into(),
                ..back
            },
            r
        );
        assert!(parse_line("progress").is_none());
        assert!(parse_line("row\tx").unwrap().is_err());
        assert!(parse_line("row\tw\tc\tnobody\tns\t1\t1\tnull\tnull\tnull")
            .unwrap()
            .is_err());
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn server_children_listen_and_stop() {
        // Serves (here: waits) until stdin closes, then exits 0.
        let s = start_server(
            sh("echo starting; printf 'listen\\t127.0.0.1:4321\\n'; cat >/dev/null"),
            LONG,
        )
        .unwrap();
        assert_eq!(s.addr, "127.0.0.1:4321".parse().unwrap());
        s.stop().unwrap();
        // Questions and answers; other lines are skipped.
        let mut s = start_server(
            sh("printf 'listen\\t127.0.0.1:2\\n'; while read w; do \
                echo noise; printf '%s\\t%s\\n' \"$w\" \"${#w}\"; done"),
            LONG,
        )
        .unwrap();
        assert_eq!(s.ask("rss").unwrap(), "3");
        assert_eq!(s.ask("longer").unwrap(), "6");
        s.stop().unwrap();
        let mut mute =
            start_server(sh("printf 'listen\\t127.0.0.1:3\\n'; read w; exit 0"), LONG).unwrap();
        assert!(mute.ask("rss").unwrap_err().contains("exited"));
        // A failing exit after stdin closed is reported.
        let s = start_server(
            sh("printf 'listen\\t127.0.0.1:1\\n'; cat >/dev/null; exit 3"),
            LONG,
        )
        .unwrap();
        assert!(s.stop().unwrap_err().contains("failed"));
    }

    #[test]
    fn server_children_that_do_not_listen_are_errors() {
        let e = start_server(sh("echo no address; exit 0"), LONG)
            .err()
            .unwrap();
        assert!(e.contains("exited before listening"), "{e}");
        let e = start_server(sh("printf 'listen\\tnowhere\\n'; sleep 5"), LONG)
            .err()
            .unwrap();
        assert!(e.contains("bad address"), "{e}");
        let t = Instant::now();
        let e = start_server(sh("sleep 5"), Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(e.contains("did not listen"), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "the slow child was not killed"
        );
    }
}
