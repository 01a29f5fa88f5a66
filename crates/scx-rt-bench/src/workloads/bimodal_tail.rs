//! Where `bimodal`'s short-request tail comes from: per request, what the
//! generator, the queue, the service and the OS each added; per load
//! point, how long the OS kept the worker threads and the generator off
//! a CPU while they were runnable.
//!
//! A short request's latency (completion minus scheduled arrival) splits
//! into
//!
//! - `late`: the generator handed it over after its scheduled arrival
//!   (the generator is an OS thread; the OS runs it late);
//! - `queue`: from the hand-over to the request's first instruction
//!   (waiting behind other requests, the spawn, a slice that has not
//!   ended yet, or a worker the OS took the CPU from);
//! - `run`: from its first instruction to its completion, of which `off`
//!   is time switched out (gaps between two clock reads of its spin
//!   longer than 1 µs: a short request is never preempted by a slice of
//!   30 µs or more, so for it this is the OS, or a slice-expiry signal,
//!   taking the worker's CPU).
//!
//! The request also notes how many long requests were in service (started,
//! not complete: running or preempted and queued again) when it was handed
//! over (`longs`): under a FIFO with slices a short request waits a slice
//! for each of them, so the count tells queueing behind round-robined long
//! requests from a late slice expiry or a withheld CPU. And whether no
//! request at all was in flight (`idle`): then the worker was idle and the
//! wait is its wake-up. The breakdown is taken over the short
//! requests at or above the short p99 (the tail the p99 row reports), and
//! printed with each load point; the worker and generator run-delay
//! (`/proc/self/task/*/schedstat`, second field: time runnable but not
//! running) of the same load point shows how much CPU the host withheld.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::report::{PlotData, Row, Subject};
use crate::stats::{latency_row, throughput_row, Key};
use crate::workloads::bimodal::NAME;
use crate::workloads::bimodal_gen::Req;

/// Per-request records, written by the generator and the request.
pub struct Tail {
    submit: Vec<AtomicU64>,
    start: Vec<AtomicU64>,
    off: Vec<AtomicU64>,
    /// Long requests in service when the request was handed over.
    longs: Vec<AtomicU32>,
    /// No request was in flight when it was handed over.
    idle: Vec<AtomicBool>,
    /// Long requests started and not complete.
    long_active: AtomicU32,
    /// Requests handed over and not complete.
    in_flight: AtomicU32,
}

impl Tail {
    pub fn new(n: usize) -> Self {
        let z = || (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Self {
            submit: z(),
            start: z(),
            off: z(),
            longs: (0..n).map(|_| AtomicU32::new(0)).collect(),
            idle: (0..n).map(|_| AtomicBool::new(false)).collect(),
            long_active: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
        }
    }

    /// The generator hands request `i` over at `now_ns` (run clock).
    pub fn submitted(&self, i: usize, now_ns: u64) {
        self.submit[i].store(now_ns, Ordering::Relaxed);
        let longs = self.long_active.load(Ordering::Relaxed);
        self.longs[i].store(longs, Ordering::Relaxed);
        let idle = self.in_flight.fetch_add(1, Ordering::Relaxed) == 0;
        self.idle[i].store(idle, Ordering::Relaxed);
    }

    /// Request `i` runs its first instruction at `now_ns`.
    pub fn started(&self, i: usize, long: bool, now_ns: u64) {
        self.start[i].store(now_ns, Ordering::Relaxed);
        if long {
            self.long_active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Request `i` is served; `off_ns` of its run was time switched out.
    pub fn finished(&self, i: usize, long: bool, off_ns: u64) {
        self.off[i].store(off_ns, Ordering::Relaxed);
        if long {
            self.long_active.fetch_sub(1, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The breakdown of the short tail of one load point (ns, medians over
/// the tail unless named otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Breakdown {
    /// Short requests in the tail.
    pub n: usize,
    pub late: u64,
    pub queue: u64,
    pub run: u64,
    pub off: u64,
    /// Tail requests handed over while a long request was served.
    pub behind_long: usize,
    /// Long requests in service at the hand-over: median and most over
    /// the tail.
    pub longs: u32,
    pub longs_max: u32,
    /// Tail requests handed over to an idle worker (nothing in flight).
    pub idle: usize,
    /// Tail requests whose largest part was generator lateness, queueing,
    /// and time switched out while running.
    pub mostly_late: usize,
    pub mostly_queue: usize,
    pub mostly_off: usize,
}

impl Breakdown {
    /// The progress-line text: the host's share (`worker_delay`,
    /// `gen_delay`: run-delay over a load point of `span` ns) and the tail.
    pub fn describe(&self, worker_delay: u64, gen_delay: u64, span: u64) -> String {
        let us = |ns: u64| ns as f64 / 1e3;
        let pc = |ns: u64| 100.0 * ns as f64 / span.max(1) as f64;
        if self.n == 0 {
            // A subject in its own process (`go`) reports no tail.
            return format!(
                "run-delay (OS) workers {:.1}% of the run, generator {:.1}%; no tail breakdown",
                pc(worker_delay),
                pc(gen_delay)
            );
        }
        format!(
            "run-delay (OS) workers {:.1}% of the run, generator {:.1}%; short tail ({} at \
             or above p99, medians): late {:.1} us, queued {:.1} us, ran {:.1} us of which \
             switched out {:.1} us; {} handed over while a long request ran (long \
             requests in service: median {}, most {}), {} to an idle worker; mostly \
             late/queued/switched out: {}/{}/{}",
            pc(worker_delay),
            pc(gen_delay),
            self.n,
            us(self.late),
            us(self.queue),
            us(self.run),
            us(self.off),
            self.behind_long,
            self.longs,
            self.longs_max,
            self.idle,
            self.mostly_late,
            self.mostly_queue,
            self.mostly_off,
        )
    }
}

/// The rows of what the host took at one load point (case prefix `base`):
/// `…-generator-late` (the generator's lateness, ns) and
/// `…-worker-run-delay` (the workers' run-delay, % of the load point's
/// `span` ns), beside the latencies they inflate.
pub fn host_rows(
    base: &str,
    subject: Subject,
    late: &Histogram<u64>,
    worker_delay: u64,
    span: u64,
    requests: usize,
) -> Vec<Row> {
    let case = format!("{base}-generator-late");
    let key = |case| Key {
        workload: NAME,
        case,
        subject,
    };
    let mut row = latency_row(key(&case), late);
    row.plot = PlotData::None;
    let case2 = format!("{base}-worker-run-delay");
    let delay = 100.0 * worker_delay as f64 / span.max(1) as f64;
    let row2 = throughput_row(key(&case2), "% of run", requests as u64, &[delay]);
    vec![row, row2]
}

fn median(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// The breakdown over the short requests of `reqs` whose latency
/// (`lat[i]`) is at least `cutoff`.
pub fn breakdown(reqs: &[Req], lat: &[u64], t: &Tail, cutoff: u64) -> Breakdown {
    let (mut late, mut queue, mut run, mut off) = (vec![], vec![], vec![], vec![]);
    let mut longs = vec![];
    let mut b = Breakdown::default();
    for (i, r) in reqs.iter().enumerate() {
        if r.long || lat[i] < cutoff {
            continue;
        }
        let submit = t.submit[i].load(Ordering::Relaxed);
        let start = t.start[i].load(Ordering::Relaxed);
        let l = submit.saturating_sub(r.at_ns);
        let q = start.saturating_sub(submit);
        let u = (r.at_ns + lat[i]).saturating_sub(start);
        let o = t.off[i].load(Ordering::Relaxed);
        b.n += 1;
        let k = t.longs[i].load(Ordering::Relaxed);
        b.behind_long += usize::from(k > 0);
        b.longs_max = b.longs_max.max(k);
        longs.push(u64::from(k));
        b.idle += usize::from(t.idle[i].load(Ordering::Relaxed));
        if l >= q && l >= o {
            b.mostly_late += 1;
        } else if q >= o {
            b.mostly_queue += 1;
        } else {
            b.mostly_off += 1;
        }
        late.push(l);
        queue.push(q);
        run.push(u);
        off.push(o);
    }
    b.late = median(&mut late);
    b.queue = median(&mut queue);
    b.run = median(&mut run);
    b.off = median(&mut off);
    b.longs = median(&mut longs) as u32;
    b
}

/// Run-delay (ns runnable but not running) summed over this process's
/// threads whose name starts with `prefix`, and how many there were.
pub fn run_delay(prefix: &str) -> (u64, usize) {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let mut sum = (0, 0);
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        if let Some(d) = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            sum.0 += d;
            sum.1 += 1;
        }
    }
    sum
}

/// The calling thread's run-delay (ns).
pub fn own_run_delay() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_part_names_the_cause() {
        let reqs = [
            Req {
                at_ns: 0,
                long: false,
            },
            Req {
                at_ns: 0,
                long: false,
            },
            Req {
                at_ns: 0,
                long: true,
            },
            Req {
                at_ns: 0,
                long: false,
            },
        ];
        let t = Tail::new(4);
        // 0: 100 late, queued 10, ran 5 (tail).
        t.submitted(0, 100);
        t.started(0, false, 110);
        t.finished(0, false, 0);
        // 1: on time, queued 500 behind a long one (tail).
        t.submitted(2, 0);
        t.started(2, true, 0);
        t.submitted(1, 0);
        t.started(1, false, 500);
        t.finished(1, false, 0);
        t.finished(2, true, 0);
        // 3: fast (below the cutoff).
        t.submitted(3, 0);
        t.started(3, false, 1);
        t.finished(3, false, 0);
        let b = breakdown(&reqs, &[115, 505, 9_000, 5], &t, 100);
        assert_eq!(b.n, 2);
        assert_eq!((b.mostly_late, b.mostly_queue, b.mostly_off), (1, 1, 0));
        assert_eq!(b.behind_long, 1);
        assert_eq!((b.longs, b.longs_max), (1, 1));
        // 0 found nothing in flight; 1 was handed over while 2 was.
        assert_eq!(b.idle, 1);
    }

    #[test]
    fn this_thread_has_a_run_delay_figure() {
        let _ = own_run_delay();
        let (_, n) = run_delay("");
        assert!(n >= 1);
    }
}
