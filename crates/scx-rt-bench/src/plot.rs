//! `--plot DIR`: SVG charts (plotters) drawn from the rows'
//! [`PlotData`], so any workload that fills it gets a chart:
//!
//! - `WORKLOAD-CASE-cdf.svg` for every (workload, case) with latency
//!   CDFs: one line per subject; x is the latency (log scale), y the
//!   percentile on a "nines" scale (`-log10(1 - q)`: 0, 90%, 99%, 99.9%
//!   equally spaced), so the tail is as visible as the median.
//! - `WORKLOAD-CHART-p99.svg` for every sweep chart (bimodal: one per mix
//!   and request class; echo: one per message size): p99 (log scale)
//!   against the sweep's x (offered load; connections, on a log scale),
//!   one line per series (policy, subject).
//!
//! Titles carry the machine line, as the table does. File names keep
//! ASCII letters, digits, `.`, `_` and `-`; anything else becomes `_`.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{Machine, PlotData, Row, Subject};

const SIZE: (u32, u32) = (900, 560);

/// Writes every chart the rows allow into `dir` (created if missing) and
/// returns the files written.
pub fn write_all(dir: &Path, machine: &Machine, rows: &[Row]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for group in cdf_groups(rows) {
        let path = dir.join(file_name(&[&group.workload, &group.case, "cdf"]));
        draw_cdf(&path, machine, &group).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    for chart in sweep_charts(rows) {
        let path = dir.join(file_name(&[&chart.workload, &chart.chart, "p99"]));
        draw_sweep(&path, machine, &chart).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

/// `a-b-c.svg` with unsafe characters replaced.
pub fn file_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let clean: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.svg")
}

/// The CDFs of one (workload, case).
pub struct CdfGroup {
    pub workload: String,
    pub case: String,
    pub unit: String,
    /// (subject, points) in row order.
    pub lines: Vec<(Subject, Vec<(f64, f64)>)>,
}

/// Rows with a CDF, grouped by (workload, case) in first-seen order.
pub fn cdf_groups(rows: &[Row]) -> Vec<CdfGroup> {
    let mut groups: Vec<CdfGroup> = Vec::new();
    for r in rows {
        let PlotData::Cdf(points) = &r.plot else {
            continue;
        };
        if points.is_empty() {
            continue;
        }
        let i = match groups
            .iter()
            .position(|g| g.workload == r.workload && g.case == r.case)
        {
            Some(i) => i,
            None => {
                groups.push(CdfGroup {
                    workload: r.workload.clone(),
                    case: r.case.clone(),
                    unit: r.unit.clone(),
                    lines: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[i].lines.push((r.subject, points.clone()));
    }
    groups
}

/// One sweep chart.
pub struct SweepChart {
    pub workload: String,
    pub chart: String,
    pub unit: String,
    pub x_label: String,
    /// A reference p99 (the first row's), drawn as a flat line.
    pub target: Option<f64>,
    /// A logarithmic x axis (the first row's choice).
    pub log_x: bool,
    /// (series, points (x, p99) ascending in x) in first-seen order.
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Rows with a sweep point and a p99, grouped by (workload, chart).
pub fn sweep_charts(rows: &[Row]) -> Vec<SweepChart> {
    let mut charts: Vec<SweepChart> = Vec::new();
    for r in rows {
        let PlotData::Sweep {
            chart,
            series,
            x,
            x_label,
            target,
            log_x,
        } = &r.plot
        else {
            continue;
        };
        let Some(p99) = r.p99.filter(|v| v.is_finite()) else {
            continue;
        };
        let i = match charts
            .iter()
            .position(|c| c.workload == r.workload && &c.chart == chart)
        {
            Some(i) => i,
            None => {
                charts.push(SweepChart {
                    workload: r.workload.clone(),
                    chart: chart.clone(),
                    unit: r.unit.clone(),
                    x_label: x_label.clone(),
                    target: *target,
                    log_x: *log_x,
                    lines: Vec::new(),
                });
                charts.len() - 1
            }
        };
        let lines = &mut charts[i].lines;
        let j = match lines.iter().position(|(s, _)| s == series) {
            Some(j) => j,
            None => {
                lines.push((series.clone(), Vec::new()));
                lines.len() - 1
            }
        };
        lines[j].1.push((*x, p99));
    }
    for c in &mut charts {
        for (_, pts) in &mut c.lines {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    charts
}

/// A quantile on the nines scale: 0.9 → 1, 0.99 → 2, 0.999 → 3.
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The percentile label of a point on the nines scale (1 → `90%`,
/// 3 → `99.9%`).
pub fn nines_label(y: f64) -> String {
    let pct = 100.0 * (1.0 - 10f64.powf(-y));
    let decimals = (y.ceil() - 2.0).max(0.0) as usize;
    format!("{pct:.decimals$}%")
}

/// Values in `unit` as drawn: ns are shown in µs.
fn display_unit(unit: &str) -> (f64, String) {
    if unit == "ns" {
        (1e-3, "µs".into())
    } else {
        (1.0, unit.into())
    }
}

fn subtitle(m: &Machine) -> String {
    format!(
        "{} | cpus {} | kernel {} | {}",
        m.cpu_model,
        crate::cpus::format_cpu_list(&m.cpus_used),
        m.kernel,
        m.date
    )
}

/// A log-axis range around positive values (a decade when they are all
/// equal; `None` when there is no positive value).
fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if hi <= 0.0 {
        return None;
    }
    Some((lo / 1.5, hi * 1.5))
}

/// Line colours (Tableau 10: distinct, readable on white).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// One colour per subject, the same in every chart.
fn subject_color(s: Subject) -> RGBColor {
    color(Subject::ALL.iter().position(|&x| x == s).unwrap_or(0))
}

/// An axis value without needless decimals.
fn axis_label(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_cdf(path: &Path, machine: &Machine, g: &CdfGroup) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (scale, unit) = display_unit(&g.unit);
    // The maximum (q = 1) has no place on the nines scale; it is the
    // line's last point anyway at the finest quantile the samples resolve.
    let lines: Vec<(Subject, Vec<(f64, f64)>)> = g
        .lines
        .iter()
        .map(|(s, pts)| {
            let pts = pts
                .iter()
                .filter(|(q, v)| *q < 1.0 && *v > 0.0)
                .map(|&(q, v)| (v * scale, nines(q)))
                .collect();
            (*s, pts)
        })
        .collect();
    let (x_lo, x_hi) = log_range(lines.iter().flat_map(|(_, p)| p.iter().map(|pt| pt.0)))
        .ok_or("no positive latency to draw")?;
    let y_hi = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|pt| pt.1))
        .fold(2.0f64, f64::max)
        .ceil();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} {}: latency CDF", g.workload, g.case),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi)
        .map_err(|e| err(&e))?;
    let y_fmt = |y: &f64| nines_label(*y);
    let x_fmt = |x: &f64| axis_label(*x);
    chart
        .configure_mesh()
        .x_label_formatter(&x_fmt)
        .x_desc(format!(
            "latency ({unit}), log scale — {}",
            subtitle(machine)
        ))
        .y_desc("percentile")
        .y_labels(y_hi as usize + 1)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(|e| err(&e))?;
    for (subject, pts) in lines {
        let color = subject_color(subject);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(subject.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

fn draw_sweep(path: &Path, machine: &Machine, c: &SweepChart) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (scale, unit) = display_unit(&c.unit);
    // A log x axis is drawn as a linear axis of log10(x), labelled with x.
    let fx = |x: f64| if c.log_x { x.log10() } else { x };
    let lines: Vec<(String, Vec<(f64, f64)>)> = c
        .lines
        .iter()
        .map(|(s, pts)| {
            let pts = pts
                .iter()
                .filter(|&&(x, _)| !c.log_x || x > 0.0)
                .map(|&(x, y)| (fx(x), y * scale))
                .collect();
            (s.clone(), pts)
        })
        .collect();
    let target = c.target.map(|t| t * scale).filter(|t| *t > 0.0);
    let (y_lo, y_hi) = log_range(
        lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|pt| pt.1))
            .chain(target),
    )
    .ok_or("no positive p99 to draw")?;
    let xs = || lines.iter().flat_map(|(_, p)| p.iter().map(|pt| pt.0));
    let (x_lo, x_hi) = if c.log_x {
        let lo = xs().fold(f64::INFINITY, f64::min);
        let hi = xs().fold(f64::NEG_INFINITY, f64::max).max(lo + 1.0);
        (lo - 0.1, hi + 0.1)
    } else {
        let lo = xs().fold(f64::INFINITY, f64::min).min(0.0);
        (lo, xs().fold(0.0f64, f64::max).max(lo + 1.0) * 1.05)
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} {}: p99 vs {}", c.workload, c.chart, c.x_label),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())
        .map_err(|e| err(&e))?;
    let y_fmt = |y: &f64| axis_label(*y);
    let x_fmt = |x: &f64| {
        if c.log_x {
            axis_label(10f64.powf(*x))
        } else {
            axis_label(*x)
        }
    };
    let x_desc = if c.log_x {
        format!("{}, log scale", c.x_label)
    } else {
        c.x_label.clone()
    };
    chart
        .configure_mesh()
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .x_desc(format!("{x_desc} — {}", subtitle(machine)))
        .y_desc(format!("p99 ({unit}), log scale"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (series, pts)) in lines.into_iter().enumerate() {
        let color = color(i);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)).point_size(3))
            .map_err(|e| err(&e))?
            .label(series)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if let Some(t) = target {
        chart
            .draw_series(LineSeries::new(
                [(x_lo, t), (x_hi, t)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(format!("target {} {unit}", axis_label(t)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: &str, case: &str, subject: Subject, plot: PlotData) -> Row {
        Row {
            workload: workload.into(),
            case: case.into(),
            subject,
            unit: "ns".into(),
            n: 100,
            mean: 1.0,
            p50: Some(1.0),
            p99: Some(2000.0),
            p999: Some(3000.0),
            plot,
        }
    }

    fn machine() -> Machine {
        Machine {
            cpu_model: "cpu \"x\" <&>".into(),
            cpus_used: vec![0, 1],
            kernel: "k".into(),
            date: "d".into(),
        }
    }

    fn sweep(chart: &str, series: &str, x: f64) -> PlotData {
        PlotData::Sweep {
            chart: chart.into(),
            series: series.into(),
            x,
            x_label: "offered load (%)".into(),
            target: Some(50_000.0),
            log_x: false,
        }
    }

    #[test]
    fn nines_scale() {
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(4.0), "99.99%");
    }

    #[test]
    fn file_names_are_clean() {
        assert_eq!(
            file_name(&["wakeup", "fit-1msg-1wkr", "cdf"]),
            "wakeup-fit-1msg-1wkr-cdf.svg"
        );
        assert_eq!(file_name(&["a/b", "c d", "é"]), "a_b-c_d-_.svg");
    }

    #[test]
    fn groups_rows() {
        let cdf = || PlotData::Cdf(vec![(0.5, 100.0), (0.99, 900.0), (1.0, 1000.0)]);
        let rows = vec![
            row("pingpong", "cross-cpu", Subject::ScxRt, cdf()),
            row("pingpong", "cross-cpu", Subject::Tokio, cdf()),
            row("pingpong", "one-way", Subject::RawFutex, cdf()),
            row("pingpong", "cross-cpu", Subject::May, PlotData::None),
            row(
                "bimodal",
                "a",
                Subject::ScxRt,
                sweep("m-short", "fifo", 90.0),
            ),
            row(
                "bimodal",
                "b",
                Subject::ScxRt,
                sweep("m-short", "fifo", 10.0),
            ),
            row(
                "bimodal",
                "c",
                Subject::Tokio,
                sweep("m-short", "tokio", 10.0),
            ),
            row(
                "bimodal",
                "d",
                Subject::ScxRt,
                sweep("m-long", "fifo", 10.0),
            ),
        ];
        let g = cdf_groups(&rows);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].case, "cross-cpu");
        let subjects: Vec<Subject> = g[0].lines.iter().map(|l| l.0).collect();
        assert_eq!(subjects, vec![Subject::ScxRt, Subject::Tokio]);
        let s = sweep_charts(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].chart, "m-short");
        assert_eq!(s[0].lines.len(), 2);
        // Sorted by x.
        assert_eq!(s[0].lines[0].1, vec![(10.0, 2000.0), (90.0, 2000.0)]);
    }

    /// A log x axis is labelled with the values, not their logarithms.
    #[test]
    fn log_x_sweeps_label_values() {
        let dir = std::env::temp_dir().join(format!("scx-rt-bench-logx-{}", std::process::id()));
        let point = |x: f64| PlotData::Sweep {
            chart: "64B".into(),
            series: "scx-rt".into(),
            x,
            x_label: "concurrent connections".into(),
            target: None,
            log_x: true,
        };
        let rows: Vec<Row> = [1.0, 64.0, 1000.0]
            .into_iter()
            .map(|x| row("echo", "c", Subject::ScxRt, point(x)))
            .collect();
        let files = write_all(&dir, &machine(), &rows).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        let label = |t: &str| svg.lines().any(|l| l.trim() == t);
        assert!(label("1000") && label("10"), "no tick labels 10 and 1000");
        assert!(!label("3.0"), "a tick labelled with its logarithm");
        assert!(svg.contains("log scale —"), "x axis not marked log");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_svg_files() {
        let dir = std::env::temp_dir().join(format!("scx-rt-bench-plot-{}", std::process::id()));
        let cdf = PlotData::Cdf(vec![
            (0.0, 80.0),
            (0.5, 100.0),
            (0.999, 900.0),
            (1.0, 1000.0),
        ]);
        let rows = vec![
            row("wakeup", "fit", Subject::ScxRt, cdf.clone()),
            row("wakeup", "fit", Subject::OsThreads, cdf),
            row(
                "bimodal",
                "a",
                Subject::ScxRt,
                sweep("m-short", "fifo", 10.0),
            ),
            row(
                "bimodal",
                "b",
                Subject::ScxRt,
                sweep("m-short", "fifo", 50.0),
            ),
        ];
        let files = write_all(&dir, &machine(), &rows).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["wakeup-fit-cdf.svg", "bimodal-m-short-p99.svg"]);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
            assert!(svg.contains("<polyline"), "no line in {}", f.display());
            assert!(svg.trim_end().ends_with("</svg>"));
        }
        let cdf_svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(cdf_svg.contains("os-threads") && cdf_svg.contains("99.9%"));
        let sweep_svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(sweep_svg.contains("target 50 µs"), "no target line");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
