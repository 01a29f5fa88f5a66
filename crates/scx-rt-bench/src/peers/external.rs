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

use std::process::{Command, Stdio};

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
/// does: `--cpus`, any sizes given, and `--quick`.
pub fn forwarded_args(ctx: &Ctx) -> Vec<String> {
    let mut v = vec!["--cpus".to_string(), format_cpu_list(&ctx.cpus)];
    for (flag, val) in [
        ("--iters", ctx.opts.iters),
        ("--tasks", ctx.opts.tasks),
        ("--reps", ctx.opts.reps),
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
}
