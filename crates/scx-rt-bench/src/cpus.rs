//! CPU lists: parsing `--cpus` (`0,1`, `0-3`, `0-3,8,10-11`) and checking
//! them against the CPUs this process may run on.

use std::collections::BTreeSet;

/// Largest CPU number accepted on the command line (a typo guard, far above
/// any real machine).
const MAX_CPU: usize = 1 << 16;

/// Parses a Linux-style CPU list (`0,1`, `0-3`, `0-3,8`) into ascending,
/// de-duplicated CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut set = BTreeSet::new();
    if s.trim().is_empty() {
        return Err("empty CPU list".into());
    }
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a)?, parse_cpu(b)?),
            None => {
                let c = parse_cpu(part)?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(format!("bad CPU range `{part}` (start > end)"));
        }
        set.extend(lo..=hi);
    }
    Ok(set.into_iter().collect())
}

fn parse_cpu(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let c: usize = s
        .parse()
        .map_err(|_| format!("bad CPU number `{s}` in CPU list"))?;
    if c > MAX_CPU {
        return Err(format!("CPU number {c} out of range"));
    }
    Ok(c)
}

/// CPUs the process may use: its affinity mask (`sched_getaffinity`, so a
/// cgroup cpuset or `taskset` is honoured), falling back to
/// `Cpus_allowed_list` in `/proc/self/status`, then to
/// `0..available_parallelism()`.
pub fn usable_cpus() -> Vec<usize> {
    if let Ok(cpus) = scx_rt_sys::affinity::usable_cpus() {
        if !cpus.is_empty() {
            return cpus;
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(list) = line.strip_prefix("Cpus_allowed_list:") {
                if let Ok(cpus) = parse_cpu_list(list) {
                    return cpus;
                }
            }
        }
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Checks that every CPU of `wanted` is in `usable`.
pub fn check_usable(wanted: &[usize], usable: &[usize]) -> Result<(), String> {
    let bad: Vec<String> = wanted
        .iter()
        .filter(|c| !usable.contains(c))
        .map(|c| c.to_string())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "CPU {} not usable by this process (usable: {})",
            bad.join(","),
            format_cpu_list(usable)
        ))
    }
}

/// Formats ascending CPUs compactly (`0-3,8`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse_cpu_list("0,1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("3,0-1,1").unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_cpu_list(" 5 ").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("0-1,8-9\n").unwrap(), vec![0, 1, 8, 9]);
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in ["", ",", "a", "1-", "-1", "3-1", "1,,2", "0x1", "99999999"] {
            assert!(parse_cpu_list(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn checks_usable() {
        assert!(check_usable(&[0, 1], &[0, 1, 2]).is_ok());
        let e = check_usable(&[0, 7], &[0, 1, 2]).unwrap_err();
        assert!(e.contains("CPU 7"), "{e}");
        assert!(e.contains("0-2"), "{e}");
    }

    #[test]
    fn formats_lists() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[4]), "4");
    }
}
