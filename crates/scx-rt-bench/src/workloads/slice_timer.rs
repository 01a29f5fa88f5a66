//! `slice-timer`: the ways to drive slice expiry, measured side by side
//! (p50/p99/p99.9 in ns): scx-rt in each `SliceTimer` mode (no case
//! suffix: the default `Auto`, which polls slices up to 1 ms and signals
//! longer ones; `-signal`, a one-shot POSIX timer per worker re-armed
//! lazily, `scx_rt_sys::expiry`; `-thread`, the tickless timer thread;
//! `-rt-thread`, that thread at real-time priority; `-poll`, the deadline
//! compared with the clock at each preemption point), and the raw limits: one POSIX timer per thread re-armed at every publication
//! (`raw-signal`, `scx_rt_sys::sigtimer`) and the timer-thread protocol
//! without the runtime (`raw-futex`). `scx_rt::timer`'s module docs record
//! the choice made from these figures.
//!
//! Cases:
//! - `arm-cost`: what a switch pays to publish its new slice deadline when
//!   the timer is already armed for an earlier one (the usual switch: the
//!   task blocked or yielded before its slice ran out). `scx-rt`: the real
//!   publication of a runtime's step (`core::step::publish_deadline`),
//!   called from a task on its own CPU (`bench_support::SliceTimerProbe`),
//!   deadlines `SLICE_DFL` ahead (each later than the last: the expiry
//!   timer stays as armed; the default mode signals such slices);
//!   `raw-signal`: `timer_settime` re-arming the thread's timer.
//! - `arm-cost-wake`: the same after the previous slice expired, when
//!   nothing is armed: `-signal` arms the worker's expiry timer (one
//!   `timer_settime`), `-thread` rings the timer thread's futex, the
//!   default polls the slice (a store) (a 20 µs slice is published, runs
//!   out, the task goes through `preempt_point()`, and again);
//!   `raw-signal` arms a timer that fired.
//! - `expiry-lateness-{10us,100us,1ms}`: from a slice deadline to the
//!   moment a spinning task, checking its flag in a loop (what
//!   `preempt_point()` does), sees the flag set. `scx-rt`: two such tasks
//!   take turns on a real runtime on the first CPU, under a policy that
//!   gives every task the slice ([`SlicedLast`]); the deadline is the one
//!   the CPU published at the pick that switched the task in, the flag the
//!   CPU's `need_resched` that the runtime's slice timer sets (for a polled
//!   slice, the check `preempt_point()` makes: the clock against the
//!   deadline), and the task then passes `preempt_point()` and the other
//!   one runs. `raw-futex`: the same protocol stripped of the runtime (one
//!   unpinned thread, futex wait with a timeout until the earliest
//!   deadline, then a store; the spinner rings it when it publishes an
//!   earlier deadline) with a spinner pinned to the first CPU.
//!   `raw-signal`: a spinner pinned to the first CPU arms its `SigTimer`.
//! - `expiry-overhead-{5us,10us,30us,100us}`: what slice expiry costs the
//!   CPU it preempts. Two spinning tasks share the first CPU under
//!   [`SlicedLast`] with that slice for a fixed wall time; each reads the
//!   clock in a loop and passes `preempt_point()`, and counts the time
//!   between two reads that are less than [`ON_CPU_GAP`] apart as useful
//!   (longer gaps are the expiry, the scheduling step and the switch, or
//!   the OS taking the CPU away). The row is the useful share of the wall
//!   time, in per cent, for each mode: the per-worker timer's signal runs
//!   on the CPU it stops, the timer thread runs elsewhere, and the polled
//!   deadline (`-poll`) costs no expiry of its own (its clock read at each
//!   `preempt_point()` falls between the loop's reads: the next case).
//! - `preempt-point`: what one `preempt_point()` costs a task whose slice
//!   does not run out (a finite slice of a second), in ns per call, for
//!   each mode of the overhead case: the polled deadline reads the clock
//!   at every call, the timer modes only load a flag.
//! - `expiry-lateness-{…}-slack1ns`: `scx-rt` in `Thread` mode and
//!   `raw-futex` again with a timer slack of 1 ns on the thread that starts
//!   the timer thread. Linux delays a normal thread's sleep timeouts (the
//!   futex wait) by up to its timer slack, 50 µs by default; POSIX timers
//!   ignore slack, so `raw-signal` is not repeated. The runtime's timer
//!   thread sets its own slack to 1 ns whatever it inherits, so its row
//!   repeats `expiry-lateness-{…}-thread`; `raw-futex` inherits the slack
//!   and shows what the default costs.
//!
//! Both timer threads are unpinned, as the runtime's is: they run on
//! whichever CPU the OS finds. Samples are clock reads on the spinner's
//! and the deadline's clock, `CLOCK_MONOTONIC` (`scx_rt_sys::clock`); a
//! cost sample includes one clock read.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scx_rt::bench_support::SliceTimerProbe;
use scx_rt::{
    EnqFlags, EnqueueCtx, OpsFlags, Runtime, Scheduler, SelectCpuCtx, SliceTimer, TaskRef,
    WakeFlags, DSQ_LOCAL, SLICE_DFL, SLICE_INF,
};
use scx_rt_sys::clock::now_ns;
use scx_rt_sys::sigtimer::{set_timer_slack, SigTimer};

use crate::ctx::Ctx;
use crate::pin::spawn_pinned;
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, throughput_row, Key};
use crate::workloads::preempt::MODES;

pub const NAME: &str = "slice-timer";

/// The slices of the lateness cases, with their case-name suffixes.
pub const SLICES: [(&str, Duration); 3] = [
    ("10us", Duration::from_micros(10)),
    ("100us", Duration::from_micros(100)),
    ("1ms", Duration::from_millis(1)),
];

/// The slice `arm-cost-wake` publishes and lets run out.
const WAKE_SLICE: Duration = Duration::from_micros(20);

/// Samples not recorded at the start of each run.
const WARMUP: u64 = 20;

/// The slices of the overhead cases.
pub const OVERHEAD_SLICES: [(&str, Duration); 4] = [
    ("5us", Duration::from_micros(5)),
    ("10us", Duration::from_micros(10)),
    ("30us", Duration::from_micros(30)),
    ("100us", Duration::from_micros(100)),
];

/// Two clock reads of a spinning task closer than this had the CPU in
/// between (its loop is a clock read and a `preempt_point()`).
const ON_CPU_GAP: u64 = 1_000;

/// A flag that never comes within this is a hang, reported as an error
/// (a guard, not a timing assertion).
const HANG: Duration = Duration::from_secs(10);

pub struct Sizes {
    /// Publications timed in `arm-cost`.
    pub arm: u64,
    /// Publications (each followed by an expiry) in `arm-cost-wake`, and
    /// expiries per lateness run (fewer for long slices, see `budget`).
    pub expiries: u64,
    /// At most this much slice time per lateness run: a slice `s` gets at
    /// most `budget / s` expiries (and at least 50).
    pub budget: Duration,
    /// Wall time of one overhead run.
    pub overhead_for: Duration,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        arm: ctx.iters(200_000, 5_000),
        expiries: ctx.iters(5_000, 300),
        budget: if ctx.opts.quick {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        },
        overhead_for: if ctx.opts.quick {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(300)
        },
    }
}

/// Expiries measured for `slice`.
pub fn expiries(s: &Sizes, slice: Duration) -> u64 {
    let cap = (s.budget.as_nanos() / slice.as_nanos().max(1)) as u64;
    s.expiries.min(cap.max(50))
}

/// What a lateness run measures.
#[derive(Clone, Copy)]
struct Lateness {
    slice: Duration,
    n: u64,
    /// Timer slack (ns) of the timer thread; `None`: the thread's default.
    slack: Option<u64>,
}

/// The modes whose publication cost is measured: the default, the
/// per-worker signal and the timer thread (`Poll` publishes with a store;
/// the real-time thread is the thread).
const ARM_MODES: [(&str, SliceTimer); 3] = [MODES[0], MODES[1], MODES[2]];

/// The modes whose expiry overhead and preemption-point cost are
/// measured: the default, the per-worker signal, the timer thread and the
/// polled deadline (the real-time thread costs the worker what the thread
/// does).
const OVERHEAD_MODES: [(&str, SliceTimer); 4] = [MODES[0], MODES[1], MODES[2], MODES[4]];

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let s = sizes(ctx);
    let cpu = ctx.cpus[0];
    eprintln!(
        "{NAME}: one clock read costs {} ns here (p50; cost samples include one)",
        clock_floor()
    );
    for (base, wake) in [("arm-cost", false), ("arm-cost-wake", true)] {
        let n = if wake { s.expiries } else { s.arm };
        for (suffix, mode) in &ARM_MODES {
            let case = format!("{base}{suffix}");
            let key = |subject| Key {
                workload: NAME,
                case: &case,
                subject,
            };
            ctx.scx(&format!("{NAME} {case}"), rows, || {
                Ok(vec![latency_row(
                    key(Subject::ScxRt),
                    &scx_arm(cpu, n, wake, *mode)?,
                )])
            })?;
        }
        let key = |subject| Key {
            workload: NAME,
            case: base,
            subject,
        };
        ctx.peer(&format!("{NAME} {base}"), Subject::RawSignal, rows, || {
            let hist = signal_arm(cpu, n, wake)?;
            Ok(vec![latency_row(key(Subject::RawSignal), &hist)])
        });
    }
    for (name, slice) in OVERHEAD_SLICES {
        for (suffix, mode) in OVERHEAD_MODES {
            let case = format!("expiry-overhead-{name}{suffix}");
            figure_row(ctx, rows, &case, "% useful", 1, || {
                scx_overhead(cpu, slice, s.overhead_for, mode)
            })?;
        }
    }
    let calls = s.arm.saturating_mul(100);
    for (suffix, mode) in OVERHEAD_MODES {
        let case = format!("preempt-point{suffix}");
        figure_row(ctx, rows, &case, "ns/call", calls, || {
            scx_preempt_point(cpu, calls, mode)
        })?;
    }
    for slack in [None, Some(1)] {
        for (name, slice) in SLICES {
            let case = match slack {
                None => format!("expiry-lateness-{name}"),
                Some(_) => format!("expiry-lateness-{name}-slack1ns"),
            };
            let m = Lateness {
                slice,
                n: expiries(&s, slice),
                slack,
            };
            let key = |subject| Key {
                workload: NAME,
                case: &case,
                subject,
            };
            let label = format!("{NAME} {case}");
            // The slack rows are about the timer thread's sleeps: only the
            // thread mode has them.
            let modes = if slack.is_none() {
                &MODES[..]
            } else {
                &MODES[2..3]
            };
            for (suffix, mode) in modes {
                let case = if slack.is_none() {
                    format!("{case}{suffix}")
                } else {
                    case.clone()
                };
                let key = Key {
                    workload: NAME,
                    case: &case,
                    subject: Subject::ScxRt,
                };
                ctx.scx(&format!("{NAME} {case}"), rows, || {
                    Ok(vec![latency_row(key, &scx_lateness(cpu, m, *mode)?)])
                })?;
            }
            ctx.peer(&label, Subject::RawFutex, rows, || {
                Ok(vec![latency_row(
                    key(Subject::RawFutex),
                    &futex_lateness(cpu, m)?,
                )])
            });
            if slack.is_none() {
                ctx.peer(&label, Subject::RawSignal, rows, || {
                    let hist = signal_lateness(cpu, m)?;
                    Ok(vec![latency_row(key(Subject::RawSignal), &hist)])
                });
            }
        }
    }
    Ok(())
}

/// `expiry-overhead`: the useful share (per cent) of CPU `cpu`'s wall
/// time over `wall` while two spinners take `slice`-long turns.
fn scx_overhead(
    cpu: usize,
    slice: Duration,
    wall: Duration,
    mode: SliceTimer,
) -> Result<f64, String> {
    on_fresh_thread(move || {
        let rt = crate::ctx::traced(Runtime::builder())
            .cpus([cpu])
            .slice_timer(mode)
            .scheduler(SlicedLast { slice: ns(slice) })
            .build()
            .map_err(|e| format!("build runtime: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = || {
            let stop = Arc::clone(&stop);
            move || {
                let mut useful = 0u64;
                let mut prev = now_ns();
                while !stop.load(Ordering::Relaxed) {
                    let t = now_ns();
                    if t - prev < ON_CPU_GAP {
                        useful += t - prev;
                    }
                    prev = t;
                    scx_rt::preempt_point();
                }
                useful
            }
        };
        let t0 = Instant::now();
        let a = rt.spawn(spinner());
        let b = rt.spawn(spinner());
        std::thread::sleep(wall);
        stop.store(true, Ordering::Relaxed);
        let ran = t0.elapsed();
        let ua = a.join().map_err(|e| format!("join spinner: {e:?}"))?;
        let ub = b.join().map_err(|e| format!("join spinner: {e:?}"))?;
        rt.shutdown();
        Ok(100.0 * (ua + ub) as f64 / ran.as_nanos() as f64)
    })
}

/// One scx-rt row of `case` holding the single figure `f` measures, in
/// `unit`, over `n` operations.
fn figure_row(
    ctx: &Ctx,
    rows: &mut Vec<Row>,
    case: &str,
    unit: &str,
    n: u64,
    f: impl FnOnce() -> Result<f64, String>,
) -> Result<(), String> {
    let key = Key {
        workload: NAME,
        case,
        subject: Subject::ScxRt,
    };
    ctx.scx(&format!("{NAME} {case}"), rows, || {
        Ok(vec![throughput_row(key, unit, n, &[f()?])])
    })
}

/// ns per `preempt_point()` of a task on OS CPU `cpu` whose slice (one
/// second, finite) does not run out during `calls` calls.
fn scx_preempt_point(cpu: usize, calls: u64, mode: SliceTimer) -> Result<f64, String> {
    on_fresh_thread(move || {
        let rt = crate::ctx::traced(Runtime::builder())
            .cpus([cpu])
            .slice_timer(mode)
            .scheduler(SlicedLast {
                slice: 1_000_000_000,
            })
            .build()
            .map_err(|e| format!("build runtime: {e}"))?;
        // The task starts with the policy's slice and is alone: it never
        // yields (under `ENQ_LAST` a lone task that gives up its CPU waits
        // for a follow-up event the policy does not make).
        let r = rt.spawn(move || {
            let t = Instant::now();
            for _ in 0..calls {
                scx_rt::preempt_point();
            }
            t.elapsed().as_nanos() as f64 / calls.max(1) as f64
        });
        let ns = r.join().map_err(|e| format!("join: {e:?}"));
        rt.shutdown();
        ns
    })
}

/// p50 of the time between two back-to-back clock reads, ns.
fn clock_floor() -> u64 {
    let mut h = new_hist();
    for _ in 0..10_000 {
        let t0 = now_ns();
        let t1 = now_ns();
        h.saturating_record(t1 - t0);
    }
    h.value_at_quantile(0.5)
}

/// Spins until `cond` holds; an error after [`HANG`].
fn spin_until(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    let mut k = 0u32;
    while !cond() {
        k = k.wrapping_add(1);
        if k & 4095 == 0 && start.elapsed() > HANG {
            return Err(format!("{what}: nothing after {HANG:?}"));
        }
        std::hint::spin_loop();
    }
    Ok(())
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// A flag for a [`SigTimer`], which needs a `'static` one: one byte leaked
/// per measurement run.
fn leak_flag() -> &'static AtomicBool {
    Box::leak(Box::new(AtomicBool::new(false)))
}

/// Runs `f` on a new unpinned thread (so a timer slack it sets, and threads
/// it starts inherit, stay off the caller) and waits for it.
fn on_fresh_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| "measurement thread panicked".to_string())?
}

/// A policy that runs every task from its CPU's local DSQ with one fixed
/// slice, like `preempt::Sliced`, and with `ENQ_LAST`: the measuring task
/// is alone on its CPU, and without the flag sched_ext keeps the last
/// runnable task running with the default slice instead of enqueueing it.
struct SlicedLast {
    slice: u64,
}

impl Scheduler for SlicedLast {
    fn name(&self) -> &str {
        "sliced-fifo-enq-last"
    }

    fn flags(&self) -> OpsFlags {
        OpsFlags::ENQ_LAST
    }

    fn select_cpu(
        &self,
        _ctx: &mut SelectCpuCtx<'_>,
        p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        p.cpu() as i32
    }

    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, DSQ_LOCAL, self.slice, f);
    }
}

/// `arm-cost` / `arm-cost-wake` on a runtime on OS CPU `cpu`: `n` timed
/// calls of the real `set_deadline` from a task with `SLICE_INF` (so only
/// the published deadlines count).
fn scx_arm(cpu: usize, n: u64, wake: bool, mode: SliceTimer) -> Result<Histogram<u64>, String> {
    let rt = crate::ctx::traced(Runtime::builder())
        .cpus([cpu])
        .slice_timer(mode)
        .scheduler(SlicedLast { slice: SLICE_INF })
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let ahead = if wake { ns(WAKE_SLICE) } else { SLICE_DFL };
    let h = rt.spawn_on(0, move || -> Result<Histogram<u64>, String> {
        let st = SliceTimerProbe::current().ok_or("not inside a task")?;
        let mut hist = new_hist();
        for i in 0..WARMUP + n {
            let t0 = now_ns();
            st.publish(t0 + ahead, ahead);
            let t1 = now_ns();
            if i >= WARMUP {
                hist.saturating_record(t1 - t0);
            }
            if wake {
                // Let the slice run out, then switch: the pick publishes
                // SLICE_INF (no deadline) and clears the tick, as after an
                // expiry; the timer thread is left with nothing armed.
                spin_until("slice expiry", || st.need_resched())?;
                scx_rt::preempt_point();
            }
        }
        st.publish(u64::MAX, SLICE_INF);
        Ok(hist)
    });
    let r = h.join().map_err(|e| format!("join: {e:?}"));
    rt.shutdown();
    r?
}

/// `arm-cost` / `arm-cost-wake` with a [`SigTimer`] on a thread pinned to
/// `cpu`.
fn signal_arm(cpu: usize, n: u64, wake: bool) -> Result<Histogram<u64>, String> {
    let ahead = if wake {
        WAKE_SLICE
    } else {
        Duration::from_nanos(SLICE_DFL)
    };
    spawn_pinned(cpu, move || {
        let flag = leak_flag();
        let timer = SigTimer::new(flag).map_err(|e| format!("timer_create: {e}"))?;
        let mut hist = new_hist();
        for i in 0..WARMUP + n {
            let t0 = now_ns();
            timer
                .arm(ahead)
                .map_err(|e| format!("timer_settime: {e}"))?;
            let t1 = now_ns();
            if i >= WARMUP {
                hist.saturating_record(t1 - t0);
            }
            if wake {
                spin_until("timer signal", || flag.load(Ordering::Acquire))?;
                flag.store(false, Ordering::Relaxed);
            }
        }
        timer.disarm().map_err(|e| format!("timer_settime: {e}"))?;
        Ok(hist)
    })?
    .join()
}

/// Expiry lateness on a real runtime: two spinning tasks on OS CPU `cpu`
/// with slice `m.slice` (an expiry matters when another task waits; each
/// turn of either is one sample), on a runtime built on a thread with
/// timer slack `m.slack`, which the runtime's timer thread inherits.
fn scx_lateness(cpu: usize, m: Lateness, mode: SliceTimer) -> Result<Histogram<u64>, String> {
    on_fresh_thread(move || {
        if let Some(s) = m.slack {
            set_timer_slack(s).map_err(|e| format!("timer slack: {e}"))?;
        }
        let rt = crate::ctx::traced(Runtime::builder())
            .cpus([cpu])
            .slice_timer(mode)
            .scheduler(SlicedLast { slice: ns(m.slice) })
            .build()
            .map_err(|e| format!("build runtime: {e}"))?;
        let turns = Arc::new(AtomicU64::new(0));
        let spinner = || {
            let turns = Arc::clone(&turns);
            move || -> Result<Histogram<u64>, String> {
                let st = SliceTimerProbe::current().ok_or("not inside a task")?;
                let mut hist = new_hist();
                loop {
                    // Published by the pick that switched this task in.
                    let d = st.deadline();
                    if d == u64::MAX {
                        return Err("the task runs without a slice deadline".into());
                    }
                    spin_until("slice expiry", || st.need_resched())?;
                    let t = now_ns();
                    let k = turns.fetch_add(1, Ordering::Relaxed);
                    if (WARMUP..WARMUP + m.n).contains(&k) {
                        // The timer thread marks a CPU only once `now >= d`;
                        // a flag seen earlier was set by something else.
                        if t < d {
                            return Err(format!(
                                "need_resched set {} ns before the deadline",
                                d - t
                            ));
                        }
                        hist.saturating_record(t - d);
                    }
                    if k + 1 >= WARMUP + m.n {
                        return Ok(hist);
                    }
                    scx_rt::preempt_point();
                }
            }
        };
        let a = rt.spawn_on(0, spinner());
        let b = rt.spawn_on(0, spinner());
        let ra = a.join().map_err(|e| format!("join: {e:?}"));
        let rb = b.join().map_err(|e| format!("join: {e:?}"));
        rt.shutdown();
        let mut hist = ra??;
        hist.add(rb??)
            .map_err(|e| format!("merge histograms: {e}"))?;
        Ok(hist)
    })
}

/// The protocol of `scx_rt::timer` for one CPU, without the runtime.
struct FutexTimer {
    word: AtomicU32,
    /// The deadline the timer thread sleeps until (`MAX`: none, or
    /// scanning).
    next: AtomicU64,
    /// The spinner's published deadline.
    deadline: AtomicU64,
    /// The expiry was marked (`tick_pending`).
    pending: AtomicBool,
    /// What the spinner polls (`need_resched`).
    flag: AtomicBool,
    stop: AtomicBool,
}

impl FutexTimer {
    fn ring(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        scx_rt_sys::futex::wake_one(&self.word);
    }

    /// The spinner's side: `set_deadline`.
    fn publish(&self, d: u64) {
        self.deadline.store(d, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if d < self.next.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    /// The timer thread: `timer_main` with one CPU.
    fn timer_loop(&self) {
        loop {
            let w = self.word.load(Ordering::SeqCst);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            self.next.store(u64::MAX, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let now = now_ns();
            let mut next = u64::MAX;
            let d = self.deadline.load(Ordering::SeqCst);
            if d != u64::MAX {
                if d <= now {
                    if !self.pending.swap(true, Ordering::AcqRel) {
                        self.flag.store(true, Ordering::SeqCst);
                    }
                } else {
                    next = d;
                }
            }
            self.next.store(next, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let timeout = (next != u64::MAX).then(|| Duration::from_nanos(next - now));
            scx_rt_sys::futex::wait(&self.word, w, timeout);
        }
    }
}

/// Expiry lateness with [`FutexTimer`]: an unpinned timer thread with
/// timer slack `m.slack`, a spinner pinned to `cpu`.
fn futex_lateness(cpu: usize, m: Lateness) -> Result<Histogram<u64>, String> {
    let ft = Arc::new(FutexTimer {
        word: AtomicU32::new(0),
        next: AtomicU64::new(u64::MAX),
        deadline: AtomicU64::new(u64::MAX),
        pending: AtomicBool::new(false),
        flag: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let ft2 = Arc::clone(&ft);
    let timer = std::thread::Builder::new()
        .name("bench-futex-timer".into())
        .spawn(move || {
            if let Some(s) = m.slack {
                set_timer_slack(s).map_err(|e| format!("timer slack: {e}"))?;
            }
            ft2.timer_loop();
            Ok::<(), String>(())
        })
        .map_err(|e| format!("spawn timer thread: {e}"))?;
    let ft3 = Arc::clone(&ft);
    let slice = ns(m.slice);
    let r = spawn_pinned(cpu, move || {
        let mut hist = new_hist();
        for i in 0..WARMUP + m.n {
            // The switch: clear the flags, publish the next deadline.
            ft3.flag.store(false, Ordering::Relaxed);
            ft3.pending.store(false, Ordering::Relaxed);
            let d = now_ns() + slice;
            ft3.publish(d);
            spin_until("futex timer", || ft3.flag.load(Ordering::Relaxed))?;
            let t = now_ns();
            if i >= WARMUP {
                hist.saturating_record(t.saturating_sub(d));
            }
        }
        ft3.publish(u64::MAX);
        Ok(hist)
    })
    .and_then(|p| p.join());
    ft.stop.store(true, Ordering::SeqCst);
    ft.ring();
    timer
        .join()
        .map_err(|_| "timer thread panicked".to_string())??;
    r
}

/// Expiry lateness with a [`SigTimer`] on a spinner pinned to `cpu`.
fn signal_lateness(cpu: usize, m: Lateness) -> Result<Histogram<u64>, String> {
    spawn_pinned(cpu, move || {
        let flag = leak_flag();
        let timer = SigTimer::new(flag).map_err(|e| format!("timer_create: {e}"))?;
        let slice = ns(m.slice);
        let mut hist = new_hist();
        for i in 0..WARMUP + m.n {
            flag.store(false, Ordering::Relaxed);
            let d = now_ns() + slice;
            timer
                .arm(m.slice)
                .map_err(|e| format!("timer_settime: {e}"))?;
            spin_until("timer signal", || flag.load(Ordering::Relaxed))?;
            let t = now_ns();
            if i >= WARMUP {
                hist.saturating_record(t.saturating_sub(d));
            }
        }
        Ok(hist)
    })?
    .join()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(iters: u64, no_peers: bool) -> Ctx {
        Ctx {
            cpus: crate::cpus::usable_cpus()[..1].to_vec(),
            opts: crate::args::Options {
                iters: Some(iters),
                quick: true,
                no_peers,
                ..Default::default()
            },
        }
    }

    #[test]
    fn long_slices_are_capped_by_time() {
        let s = Sizes {
            arm: 10,
            expiries: 1_000,
            budget: Duration::from_millis(100),
            overhead_for: Duration::from_millis(20),
        };
        assert_eq!(expiries(&s, Duration::from_micros(10)), 1_000);
        assert_eq!(expiries(&s, Duration::from_millis(1)), 100);
        assert_eq!(expiries(&s, Duration::from_secs(1)), 50);
    }

    #[test]
    fn every_case_and_subject_gets_its_samples() {
        let mut rows = Vec::new();
        run(&ctx(60, false), &mut rows).unwrap();
        let got: Vec<(String, &str)> = rows
            .iter()
            .map(|r| (r.case.clone(), r.subject.as_str()))
            .collect();
        let mut want = Vec::new();
        for base in ["arm-cost", "arm-cost-wake"] {
            for (m, _) in ARM_MODES {
                want.push((format!("{base}{m}"), "scx-rt"));
            }
            want.push((base.to_string(), "raw-signal"));
        }
        for (s, _) in OVERHEAD_SLICES {
            for (m, _) in OVERHEAD_MODES {
                want.push((format!("expiry-overhead-{s}{m}"), "scx-rt"));
            }
        }
        for (m, _) in OVERHEAD_MODES {
            want.push((format!("preempt-point{m}"), "scx-rt"));
        }
        for suffix in ["", "-slack1ns"] {
            for (s, _) in SLICES {
                let case = format!("expiry-lateness-{s}{suffix}");
                if suffix.is_empty() {
                    for (m, _) in MODES {
                        want.push((format!("{case}{m}"), "scx-rt"));
                    }
                } else {
                    want.push((case.clone(), "scx-rt"));
                }
                want.push((case.clone(), "raw-futex"));
                if suffix.is_empty() {
                    want.push((case, "raw-signal"));
                }
            }
        }
        assert_eq!(got, want);
        for r in rows.iter().filter(|r| {
            !r.case.starts_with("expiry-overhead") && !r.case.starts_with("preempt-point")
        }) {
            assert_eq!(r.n, 60, "{r:?}");
            assert!(r.p999 >= r.p50, "{r:?}");
        }
        // A share of the CPU: some of it useful, never more than all.
        for r in rows
            .iter()
            .filter(|r| r.case.starts_with("expiry-overhead"))
        {
            assert!(r.mean > 0.0 && r.mean <= 100.0, "{r:?}");
        }
        // A timer never fires before its deadline: every lateness sample
        // is at least the scan-and-notice path, so above 0.
        for r in rows
            .iter()
            .filter(|r| r.case.starts_with("expiry-lateness"))
        {
            assert!(r.p50.unwrap() > 0.0, "{r:?}");
        }
    }

    #[test]
    fn no_peers_leaves_only_scx_rt() {
        let mut rows = Vec::new();
        run(&ctx(20, true), &mut rows).unwrap();
        // arm-cost and arm-cost-wake in two modes; lateness in every mode
        // and once more with slack.
        assert_eq!(
            rows.len(),
            2 * ARM_MODES.len()
                + OVERHEAD_MODES.len() * (OVERHEAD_SLICES.len() + 1)
                + (MODES.len() + 1) * SLICES.len()
        );
        assert!(rows.iter().all(|r| r.subject == Subject::ScxRt));
    }
}
