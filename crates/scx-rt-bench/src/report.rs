//! Result rows, the stdout table, the `--json` file and the machine line.
//!
//! JSON shape (see DESIGN.md, "Benchmark output schema"):
//!
//! ```json
//! {"machine": {"cpu_model": "…", "cpus_used": [0, 1], "kernel": "…", "date": "…"},
//!  "results": [{"workload": "switch", "case": "1cpu-2tasks", "subject": "scx-rt",
//!               "unit": "ns/switch", "n": 2000000, "mean": 41.5, "p50": 41.2,
//!               "p99": null, "p999": null}]}
//! ```
//!
//! A figure that does not apply to a row is written as `null`: throughput
//! rows fill `mean` (and `p50`, the median over `--reps` repetitions, when
//! there are at least two), latency rows fill all four. Rows a peer cannot
//! run are left out, never zeroed.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who produced a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    ScxRt,
    Tokio,
    May,
    Go,
    OsThreads,
    RawCacheline,
    RawFutex,
    RawCorosensei,
    /// A per-thread POSIX timer signal (`slice-timer`).
    RawSignal,
}

impl Subject {
    /// Every subject, in table order.
    pub const ALL: [Subject; 9] = [
        Subject::ScxRt,
        Subject::Tokio,
        Subject::May,
        Subject::Go,
        Subject::OsThreads,
        Subject::RawCacheline,
        Subject::RawFutex,
        Subject::RawCorosensei,
        Subject::RawSignal,
    ];

    /// The schema name.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::ScxRt => "scx-rt",
            Subject::Tokio => "tokio",
            Subject::May => "may",
            Subject::Go => "go",
            Subject::OsThreads => "os-threads",
            Subject::RawCacheline => "raw-cacheline",
            Subject::RawFutex => "raw-futex",
            Subject::RawCorosensei => "raw-corosensei",
            Subject::RawSignal => "raw-signal",
        }
    }

    /// Inverse of [`Subject::as_str`].
    pub fn parse(s: &str) -> Option<Subject> {
        Subject::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One flat result row per (workload, case, subject).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub workload: String,
    pub case: String,
    pub subject: Subject,
    /// What one figure is per, e.g. `ns/switch`, `ns/task`, `ns`, `ms`.
    pub unit: String,
    /// How many of the things `unit` is per were timed (operations ×
    /// repetitions for throughput rows, samples for latency rows).
    pub n: u64,
    pub mean: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    /// What `--plot` may draw from this row; never written to the JSON
    /// file or the table.
    pub plot: PlotData,
}

/// Chart data carried beside a row's figures (drawn by `--plot`). Any
/// workload that fills it gets a chart; nothing else depends on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PlotData {
    /// Nothing to draw.
    #[default]
    None,
    /// A latency distribution: `(quantile, value in the row's unit)`
    /// points with ascending quantiles in `0..=1`. Rows of one
    /// (workload, case) with a CDF share one chart, a line per subject.
    Cdf(Vec<(f64, f64)>),
    /// One point of a sweep: the row's p99 at `x` on line `series` of
    /// chart `chart` (one chart per workload and `chart`), whose x axis is
    /// `x_label` (logarithmic when `log_x`; `x` must then be positive);
    /// `target`, a p99 (in the row's unit) drawn as a reference line.
    Sweep {
        chart: String,
        series: String,
        x: f64,
        x_label: String,
        target: Option<f64>,
        log_x: bool,
    },
}

impl Row {
    /// The figure ratios are taken on: p50 when present, else mean.
    fn headline(&self) -> f64 {
        self.p50.unwrap_or(self.mean)
    }
}

/// The machine line.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus_used: Vec<usize>,
    pub kernel: String,
    pub date: String,
}

impl Machine {
    /// Reads CPU model, kernel release and the current UTC time.
    pub fn detect(cpus_used: Vec<usize>) -> Machine {
        Machine {
            cpu_model: cpu_model(),
            cpus_used,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            date: utc_now(),
        }
    }
}

fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown".into();
    };
    // x86: "model name"; some arm64 kernels: "Model" or only "CPU part".
    for key in ["model name", "Model", "Hardware", "CPU part"] {
        for line in info.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return v.trim().to_string();
                }
            }
        }
    }
    "unknown".into()
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`
/// (proleptic Gregorian calendar, Howard Hinnant's `civil_from_days`).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The ratio column: `peer / scx-rt` on the headline figure (p50 when
/// present, else mean), for rows whose workload, case and unit match an
/// `scx-rt` row. For time units a ratio above 1 means scx-rt is faster.
pub fn ratio(row: &Row, all: &[Row]) -> Option<f64> {
    if row.subject == Subject::ScxRt {
        return None;
    }
    let base = all.iter().find(|r| {
        r.subject == Subject::ScxRt
            && r.workload == row.workload
            && r.case == row.case
            && r.unit == row.unit
    })?;
    let b = base.headline();
    (b > 0.0).then(|| row.headline() / b)
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "-".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Renders the human table (machine line, header, one line per row).
pub fn table(machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "machine: {} | cpus {} | kernel {} | {}",
        machine.cpu_model,
        crate::cpus::format_cpu_list(&machine.cpus_used),
        machine.kernel,
        machine.date
    );
    let header = [
        "workload", "case", "subject", "unit", "n", "mean", "p50", "p99", "p999", "ratio",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.workload.clone(),
            r.case.clone(),
            r.subject.as_str().into(),
            r.unit.clone(),
            r.n.to_string(),
            fmt_num(Some(r.mean)),
            fmt_num(r.p50),
            fmt_num(r.p99),
            fmt_num(r.p999),
            ratio(r, rows).map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
        ]);
    }
    let mut widths = vec![0; header.len()];
    for line in &cells {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    for line in &cells {
        let mut s = String::new();
        for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 4 {
                let _ = write!(s, "{c:<w$}  ");
            } else {
                let _ = write!(s, "{c:>w$}  ");
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    }
    out
}

/// Escapes a string as a JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number, or `null` for a missing or non-finite figure.
fn json_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:?}"),
        _ => "null".into(),
    }
}

/// Serialises the report to the schema above (one row per line).
pub fn to_json(machine: &Machine, rows: &[Row]) -> String {
    let cpus: Vec<String> = machine.cpus_used.iter().map(|c| c.to_string()).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"machine\": {{\"cpu_model\": {}, \"cpus_used\": [{}], \"kernel\": {}, \"date\": {}}},\n \"results\": [",
        json_string(&machine.cpu_model),
        cpus.join(", "),
        json_string(&machine.kernel),
        json_string(&machine.date)
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n  {{\"workload\": {}, \"case\": {}, \"subject\": {}, \"unit\": {}, \"n\": {}, \"mean\": {}, \"p50\": {}, \"p99\": {}, \"p999\": {}}}",
            if i == 0 { "" } else { "," },
            json_string(&r.workload),
            json_string(&r.case),
            json_string(r.subject.as_str()),
            json_string(&r.unit),
            r.n,
            json_num(Some(r.mean)),
            json_num(r.p50),
            json_num(r.p99),
            json_num(r.p999),
        );
    }
    out.push_str(if rows.is_empty() { "]}\n" } else { "\n ]}\n" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: Subject, p50: Option<f64>) -> Row {
        Row {
            workload: "kick".into(),
            case: "idle-polling".into(),
            subject,
            unit: "ns".into(),
            n: 20000,
            mean: 2.5,
            p50,
            p99: None,
            p999: Some(1e20),
            plot: PlotData::Cdf(vec![(0.5, 2.0)]),
        }
    }

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(json_string("l1\nl2\t\r"), "\"l1\\nl2\\t\\r\"");
        assert_eq!(json_string("\u{1}\u{1f}"), "\"\\u0001\\u001f\"");
        assert_eq!(json_string("µs → ok"), "\"µs → ok\"");
    }

    #[test]
    fn json_has_schema_shape() {
        let m = Machine {
            cpu_model: "Intel \"X\" @ 3GHz".into(),
            cpus_used: vec![0, 1],
            kernel: "6.8.0".into(),
            date: "2024-01-02T03:04:05Z".into(),
        };
        let rows = [row(Subject::ScxRt, Some(2.0)), row(Subject::Tokio, None)];
        let expected = concat!(
            "{\"machine\": {\"cpu_model\": \"Intel \\\"X\\\" @ 3GHz\", \"cpus_used\": [0, 1], ",
            "\"kernel\": \"6.8.0\", \"date\": \"2024-01-02T03:04:05Z\"},\n \"results\": [\n",
            "  {\"workload\": \"kick\", \"case\": \"idle-polling\", \"subject\": \"scx-rt\", ",
            "\"unit\": \"ns\", \"n\": 20000, \"mean\": 2.5, \"p50\": 2.0, \"p99\": null, \"p999\": 1e20},\n",
            "  {\"workload\": \"kick\", \"case\": \"idle-polling\", \"subject\": \"tokio\", ",
            "\"unit\": \"ns\", \"n\": 20000, \"mean\": 2.5, \"p50\": null, \"p99\": null, \"p999\": 1e20}\n",
            " ]}\n"
        );
        assert_eq!(to_json(&m, &rows), expected);
        let empty = to_json(&m, &[]);
        assert!(empty.ends_with("\"results\": []}\n"), "{empty}");
        // Brackets and braces balance outside strings.
        for s in [to_json(&m, &rows), empty] {
            let (mut depth, mut in_str, mut esc) = (0i32, false, false);
            for c in s.chars() {
                match (in_str, esc, c) {
                    (true, true, _) => esc = false,
                    (true, false, '\\') => esc = true,
                    (true, false, '"') => in_str = false,
                    (false, _, '"') => in_str = true,
                    (false, _, '{' | '[') => depth += 1,
                    (false, _, '}' | ']') => depth -= 1,
                    _ => {}
                }
                assert!(depth >= 0);
            }
            assert_eq!(depth, 0);
            assert!(!in_str);
        }
    }

    #[test]
    fn non_finite_is_null() {
        assert_eq!(json_num(Some(f64::NAN)), "null");
        assert_eq!(json_num(Some(f64::INFINITY)), "null");
        assert_eq!(json_num(Some(3.0)), "3.0");
    }

    #[test]
    fn ratio_vs_scx_rt() {
        let rows = [
            row(Subject::ScxRt, Some(2.0)),
            row(Subject::Tokio, Some(5.0)),
        ];
        assert_eq!(ratio(&rows[1], &rows), Some(2.5));
        assert_eq!(ratio(&rows[0], &rows), None);
        let mut other = row(Subject::May, Some(1.0));
        other.case = "other".into();
        assert_eq!(ratio(&other, &rows), None);
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn subjects_round_trip() {
        for s in Subject::ALL {
            assert_eq!(Subject::parse(s.as_str()), Some(s));
        }
        assert_eq!(Subject::parse("nope"), None);
    }

    #[test]
    fn table_has_ratio() {
        let m = Machine {
            cpu_model: "cpu".into(),
            cpus_used: vec![0, 1],
            kernel: "k".into(),
            date: "d".into(),
        };
        let rows = [
            row(Subject::ScxRt, Some(2.0)),
            row(Subject::Tokio, Some(5.0)),
        ];
        let t = table(&m, &rows);
        assert!(
            t.starts_with("machine: cpu | cpus 0-1 | kernel k | d\n"),
            "{t}"
        );
        assert!(t.contains("2.50x"), "{t}");
    }
}
