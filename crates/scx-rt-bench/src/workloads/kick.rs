//! `kick`: kick-to-running latency, p50/p99/p99.9 in ns.
//!
//! A runtime on two CPUs: the kicker, a task on CPU 0, and the target,
//! CPU 1. A small policy ([`Gate`]) keeps one task `W` bound to the target
//! parked in the scheduler (it owns the task, as a BPF scheduler does after
//! `enqueue` without a dispatch) until a gate opens; the target's
//! `dispatch` then moves `W` to its local DSQ. One sample:
//!
//! 1. the kicker waits until `W` is parked (and, idle cases, the target is
//!    idle), then lets the target settle into its state;
//! 2. it reads the clock, opens the gate and calls `Runtime::kick_cpu` from
//!    inside its task (so the kick takes the real per-CPU path: the mask
//!    bits, then this CPU's kick step);
//! 3. the target wakes (or reaches its next preemption point), balances,
//!    calls `dispatch`, picks `W` and switches to it; `W` reads the clock
//!    first thing and publishes it, then yields back into the gate.
//!
//! The sample is `W`'s clock read minus the kicker's. Both clocks are the
//! monotonic clock read on two cores, as in `raw-futex`.
//!
//! Cases:
//! - `idle-polling`: the target is idle and polling (`idle_poll` 10 s), the
//!   kick is `IDLE`; beside it `raw-cacheline`, the one-way latency of a
//!   bare cache-line hand-off between two spinning threads on the same two
//!   cores, timed the same way;
//! - `idle-sleeping`: the target is idle and asleep on its doorbell futex
//!   (`idle_poll` 0, 30 µs settle), the kick is `IDLE`; beside it
//!   `raw-futex`, a bare futex wake-to-run one way with the same settle;
//! - `busy-preempt`: the target runs a spinner task that reaches
//!   `preempt_point()` about every 1 µs, the kick is `PREEMPT`;
//! - `idle-sleeping-epoll`: `idle-sleeping` with I/O registered on the
//!   target (a task there waits on a pipe), so the target sleeps in its
//!   reactor's `epoll_wait` and the kick wakes it through its eventfd
//!   (`scx_rt::io`, `SLEEPING_IO`);
//! - `io-wake-sleeping`: no kick: the target is asleep in `epoll_wait`
//!   and a task on it waits to read a pipe; the sample runs from the
//!   kicker's one-byte write to the moment the reader has the byte (the
//!   reactor's event, the wake-up through `select_cpu`/`enqueue`, the
//!   switch). Compare with `idle-sleeping` (a kick to a futex sleeper):
//!   an I/O wake-up should cost no more.
//!
//! Every task runs with `SLICE_INF`, so the slice timer never runs and the
//! figure is the kick path alone. (With a finite slice, a pick whose new
//! deadline is earlier than the one the timer thread sleeps until also
//! rings that thread's futex before the task runs; it shows in the p99.) After each case the target's counters say
//! whether the kicks found it in the intended state (asleep: a doorbell
//! syscall; polling: a wake while polling; busy: a preemption); a case where
//! fewer than 90% did is flagged on stderr.
//!
//! Needs at least two CPUs; with one, the workload prints a note and is
//! skipped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scx_rt::{
    DispatchCtx, EnqFlags, EnqueueCtx, KickFlags, OpsFlags, Runtime, Scheduler, SelectCpuCtx,
    TaskRef, WakeFlags, DSQ_LOCAL, SLICE_INF,
};

use crate::ctx::Ctx;
use crate::peers::raw;
use crate::report::{Row, Subject};
use crate::stats::{latency_row, new_hist, Key};

pub const NAME: &str = "kick";

/// Runtime CPU of the kicker and of the target.
const KICKER: usize = 0;
const TARGET: usize = 1;

/// How long the target settles before each kick: a polling target needs
/// only to be back in its poll loop; a sleeping one to be inside
/// `futex_wait` (the same settle as `raw-futex`).
const SETTLE_POLLING: Duration = Duration::from_micros(5);
const SETTLE_SLEEPING: Duration = Duration::from_micros(30);
/// The busy target's spinner reaches a preemption point this often.
const SPIN_INTERVAL: Duration = Duration::from_micros(1);
/// A polling target polls at least this long before it would sleep.
const LONG_POLL: Duration = Duration::from_secs(10);
/// Hang guard for one sample (never an assertion of speed).
const SAMPLE_LIMIT: Duration = Duration::from_secs(10);

pub struct Sizes {
    /// Kicks per case.
    pub iters: u64,
}

pub fn sizes(ctx: &Ctx) -> Sizes {
    Sizes {
        iters: ctx.iters(20_000, 1_000),
    }
}

/// The three cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    IdlePolling,
    IdleSleeping,
    BusyPreempt,
    IdleSleepingEpoll,
    IoWake,
}

impl Case {
    const ALL: [Case; 5] = [
        Case::IdlePolling,
        Case::IdleSleeping,
        Case::BusyPreempt,
        Case::IdleSleepingEpoll,
        Case::IoWake,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::IdlePolling => "idle-polling",
            Case::IdleSleeping => "idle-sleeping",
            Case::BusyPreempt => "busy-preempt",
            Case::IdleSleepingEpoll => "idle-sleeping-epoll",
            Case::IoWake => "io-wake-sleeping",
        }
    }

    fn flags(self) -> KickFlags {
        match self {
            Case::IdlePolling | Case::IdleSleeping | Case::IdleSleepingEpoll | Case::IoWake => {
                KickFlags::IDLE
            }
            Case::BusyPreempt => KickFlags::PREEMPT,
        }
    }

    fn settle(self) -> Duration {
        match self {
            Case::IdleSleeping | Case::IdleSleepingEpoll | Case::IoWake => SETTLE_SLEEPING,
            Case::IdlePolling | Case::BusyPreempt => SETTLE_POLLING,
        }
    }

    fn idle_poll(self) -> Duration {
        match self {
            Case::IdlePolling => LONG_POLL,
            Case::IdleSleeping | Case::IdleSleepingEpoll | Case::IoWake => Duration::ZERO,
            // The target never idles while its spinner runs.
            Case::BusyPreempt => scx_rt::consts::DEFAULT_IDLE_POLL,
        }
    }
}

pub fn run(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    if ctx.cpus.len() < 2 {
        eprintln!("{NAME}: needs at least two CPUs (a kicker and a target); skipped");
        return Ok(());
    }
    let Sizes { iters } = sizes(ctx);
    let (cpu_a, cpu_b) = (ctx.cpus[0], ctx.cpus[1]);
    for case in Case::ALL {
        let key = |subject| Key {
            workload: NAME,
            case: case.name(),
            subject,
        };
        ctx.scx(&format!("{NAME} {}", case.name()), rows, || {
            let hist = if case == Case::IoWake {
                scx_io_wake(cpu_a, cpu_b, iters)?
            } else {
                scx(cpu_a, cpu_b, case, iters)?
            };
            Ok(vec![latency_row(key(Subject::ScxRt), &hist)])
        })?;
        match case {
            Case::IdlePolling => ctx.peer(NAME, Subject::RawCacheline, rows, || {
                let hist = raw::cacheline_latency(cpu_a, cpu_b, iters, SETTLE_POLLING)?;
                Ok(vec![latency_row(key(Subject::RawCacheline), &hist)])
            }),
            Case::IdleSleeping => ctx.peer(NAME, Subject::RawFutex, rows, || {
                let hist = raw::futex(cpu_a, cpu_b, iters)?;
                Ok(vec![latency_row(key(Subject::RawFutex), &hist)])
            }),
            Case::BusyPreempt | Case::IdleSleepingEpoll | Case::IoWake => {}
        }
    }
    Ok(())
}

/// Keeps its contents on cache lines of their own (two 64-byte lines, as
/// adjacent-line prefetch pairs them), so that the kicker spinning on the
/// stamp does not steal the line the target's `dispatch` reads.
#[repr(align(128))]
#[derive(Default)]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The gate: what the policy reads and writes.
#[derive(Default)]
struct GateState {
    /// Id of the gated task `W` (0 until it registers).
    gated: AtomicU64,
    /// `W`, while the policy holds it.
    parked: Mutex<Option<TaskRef>>,
    /// Whether `W` is parked (read by the kicker's wait loop).
    is_parked: AtomicBool,
    /// The next target `dispatch` may release `W`.
    open: AtomicBool,
    /// The target is idle (from `update_idle`).
    target_idle: AtomicBool,
}

/// `W`'s output: its clock read (ns since `base`) and its sample number.
#[derive(Default)]
struct Stamp {
    stamp: AtomicU64,
    seq: AtomicU64,
}

/// What the policy, the kicker and the gated task share.
#[derive(Default)]
struct Shared {
    gate: Line<GateState>,
    out: Line<Stamp>,
    /// Ends `W` and the spinner.
    stop: Line<AtomicBool>,
    /// The busy case's spinner runs on the target.
    spinning: AtomicBool,
}

/// The policy: every task to its CPU's local DSQ with an infinite slice,
/// except the gated task, which the policy keeps until the gate opens and
/// the target's `dispatch` runs. `ENQ_LAST`, so that a yielding `W` that is
/// its CPU's last runnable task is handed to `enqueue` instead of kept
/// running.
struct Gate(Arc<Shared>);

impl Scheduler for Gate {
    fn name(&self) -> &str {
        "kick-gate"
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
        let s = &self.0;
        if p.id() == s.gate.gated.load(Ordering::Acquire) {
            *s.gate.parked.lock().expect("gate lock") = Some(p.clone());
            s.gate.is_parked.store(true, Ordering::Release);
        } else {
            ctx.dsq_insert(p, DSQ_LOCAL, SLICE_INF, f);
        }
    }

    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        let s = &self.0;
        if cpu != TARGET || !s.gate.open.load(Ordering::Acquire) {
            return;
        }
        let p = s.gate.parked.lock().expect("gate lock").take();
        if let Some(p) = p {
            s.gate.open.store(false, Ordering::Relaxed);
            s.gate.is_parked.store(false, Ordering::Relaxed);
            ctx.dsq_insert(&p, DSQ_LOCAL, SLICE_INF, EnqFlags::empty());
        }
    }

    fn update_idle(&self, _ctx: &scx_rt::Ctx<'_>, cpu: usize, idle: bool) {
        if cpu == TARGET {
            self.0.gate.target_idle.store(idle, Ordering::Release);
        }
    }
}

/// Spins until `cond` holds; `Err` after [`SAMPLE_LIMIT`].
fn spin_until(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > SAMPLE_LIMIT {
            return Err(format!("{what}: nothing after {SAMPLE_LIMIT:?}"));
        }
        std::hint::spin_loop();
    }
    Ok(())
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One case on a fresh runtime on OS CPUs `cpu_a` (kicker) and `cpu_b`
/// (target); histogram of `iters` kick-to-running latencies in ns.
fn scx(cpu_a: usize, cpu_b: usize, case: Case, iters: u64) -> Result<Histogram<u64>, String> {
    let sh = Arc::new(Shared::default());
    let rt = Arc::new(
        crate::ctx::traced(Runtime::builder())
            .cpus([cpu_a, cpu_b])
            .idle_poll(case.idle_poll())
            .scheduler(Gate(Arc::clone(&sh)))
            .build()
            .map_err(|e| format!("build runtime: {e}"))?,
    );
    let base = Instant::now();
    let clock = move || base.elapsed().as_nanos() as u64;

    // W: registers, then parks in the gate after every stamp.
    let s = Arc::clone(&sh);
    let w = rt.spawn_on(TARGET, move || {
        s.gate
            .gated
            .store(scx_rt::task_id().expect("in a task"), Ordering::Release);
        loop {
            scx_rt::yield_now();
            let t = clock();
            s.out.stamp.store(t, Ordering::Relaxed);
            s.out.seq.fetch_add(1, Ordering::Release);
            if s.stop.load(Ordering::Acquire) {
                return;
            }
        }
    });
    let wait_parked = spin_until("the gated task never parked", || {
        sh.gate.is_parked.load(Ordering::Acquire)
    });
    if let Err(e) = wait_parked {
        sh.stop.store(true, Ordering::Release);
        return Err(e);
    }

    // The busy case: a spinner on the target, started once W is parked
    // (it never yields, so W must be in the gate first).
    let spinner = (case == Case::BusyPreempt).then(|| {
        let s = Arc::clone(&sh);
        rt.spawn_on(TARGET, move || {
            s.spinning.store(true, Ordering::Release);
            while !s.stop.load(Ordering::Relaxed) {
                spin_for(SPIN_INTERVAL);
                scx_rt::preempt_point();
            }
        })
    });

    // The epoll case: a task on the target waits to read a pipe, so the
    // target has I/O registered and sleeps in its reactor.
    let (io_waiter, io_release) = if case == Case::IdleSleepingEpoll {
        let (r, w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let h = rt.spawn_on(TARGET, move || {
            let r = scx_rt::io::GreenFd::new(r).expect("green pipe");
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut &r, &mut b);
        });
        // Time to run, find the pipe empty and register (the samples
        // below also check that the target slept in epoll).
        std::thread::sleep(Duration::from_millis(20));
        (Some(h), Some(w))
    } else {
        (None, None)
    };

    let before = rt.stats().cpus[TARGET].clone();
    let s = Arc::clone(&sh);
    let r = Arc::clone(&rt);
    let kicker = rt.spawn_on(KICKER, move || {
        let mut hist = new_hist();
        let result = (|| {
            for i in 1..=iters {
                // The busy case kicks a target that runs its spinner: a
                // spinner still on its way there (spawned, not yet running)
                // would be picked off the local DSQ after the kick without
                // a `dispatch`, and run on with the gate open and `W` kept.
                spin_until("the gated task never parked", || {
                    s.gate.is_parked.load(Ordering::Acquire)
                        && match case {
                            Case::BusyPreempt => s.spinning.load(Ordering::Acquire),
                            _ => s.gate.target_idle.load(Ordering::Acquire),
                        }
                })?;
                spin_for(case.settle());
                let t0 = clock();
                s.gate.open.store(true, Ordering::Release);
                r.kick_cpu(TARGET, case.flags())
                    .map_err(|e| e.to_string())?;
                spin_until("the kicked task never ran (a lost kick?)", || {
                    s.out.seq.load(Ordering::Acquire) >= i
                })?;
                let t1 = s.out.stamp.load(Ordering::Relaxed);
                hist.saturating_record(t1.saturating_sub(t0));
            }
            Ok::<_, String>(())
        })();
        // Release W (and the spinner) whatever happened.
        s.stop.store(true, Ordering::Release);
        let _ = spin_until("the gated task never parked", || {
            s.gate.is_parked.load(Ordering::Acquire)
        });
        s.gate.open.store(true, Ordering::Release);
        let _ = r.kick_cpu(TARGET, case.flags());
        result.map(|()| hist)
    });
    let hist = kicker.join().map_err(|e| format!("join kicker: {e:?}"))?;
    w.join().map_err(|e| format!("join gated task: {e:?}"))?;
    if let Some(sp) = spinner {
        sp.join().map_err(|e| format!("join spinner: {e:?}"))?;
    }
    if let (Some(h), Some(mut w)) = (io_waiter, io_release) {
        std::io::Write::write_all(&mut w, b"x").map_err(|e| format!("release: {e}"))?;
        h.join().map_err(|e| format!("join pipe reader: {e:?}"))?;
    }
    let after = rt.stats().cpus[TARGET].clone();
    rt.shutdown();
    let hist = hist?;
    let n = hist.len();
    let (got, what) = match case {
        Case::IdlePolling => (
            after.wakes_while_polling - before.wakes_while_polling,
            "found the target polling",
        ),
        Case::IdleSleeping => (
            after.doorbell_syscalls - before.doorbell_syscalls,
            "found the target asleep",
        ),
        Case::BusyPreempt => (
            after.preemptions - before.preemptions,
            "preempted the spinner",
        ),
        Case::IdleSleepingEpoll | Case::IoWake => (
            after.io_doorbell_wakes - before.io_doorbell_wakes,
            "found the target asleep in epoll",
        ),
    };
    // The stop kick is counted too; compare with the samples taken.
    if got.saturating_mul(10) < n.saturating_mul(9) {
        eprintln!(
            "{NAME}: {}: only {got} of {n} kicks {what}; the machine may be too busy for this case",
            case.name()
        );
    }
    Ok(hist)
}

/// `io-wake-sleeping`: a reader task on the target waits for one byte
/// of a pipe; the kicker writes it once the target is idle and settled.
/// Histogram of write-to-reader latencies in ns.
fn scx_io_wake(cpu_a: usize, cpu_b: usize, iters: u64) -> Result<Histogram<u64>, String> {
    let sh = Arc::new(Shared::default());
    let rt = crate::ctx::traced(Runtime::builder())
        .cpus([cpu_a, cpu_b])
        .idle_poll(Duration::ZERO)
        .scheduler(Gate(Arc::clone(&sh)))
        .build()
        .map_err(|e| format!("build runtime: {e}"))?;
    let base = Instant::now();
    let clock = move || base.elapsed().as_nanos() as u64;
    let (r, w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let s = Arc::clone(&sh);
    let reader = rt.spawn_on(TARGET, move || {
        let r = scx_rt::io::GreenFd::new(r).expect("green pipe");
        let mut b = [0u8; 1];
        loop {
            match std::io::Read::read(&mut &r, &mut b) {
                Ok(1) => {}
                _ => return,
            }
            let t = clock();
            s.out.stamp.store(t, Ordering::Relaxed);
            s.out.seq.fetch_add(1, Ordering::Release);
            if b[0] == b'q' {
                return;
            }
        }
    });
    let before = rt.stats().cpus[TARGET].clone();
    let s = Arc::clone(&sh);
    let writer = rt.spawn_on(KICKER, move || {
        let mut w = w;
        let mut hist = new_hist();
        let result = (|| {
            for i in 1..=iters {
                spin_until("the target never went idle", || {
                    s.gate.target_idle.load(Ordering::Acquire)
                })?;
                spin_for(SETTLE_SLEEPING);
                let t0 = clock();
                std::io::Write::write_all(&mut w, b"x").map_err(|e| e.to_string())?;
                spin_until(
                    "the reader never got its byte (a lost I/O wake-up?)",
                    || s.out.seq.load(Ordering::Acquire) >= i,
                )?;
                let t1 = s.out.stamp.load(Ordering::Relaxed);
                hist.saturating_record(t1.saturating_sub(t0));
            }
            Ok::<_, String>(())
        })();
        let _ = std::io::Write::write_all(&mut w, b"q");
        result.map(|()| hist)
    });
    let hist = writer.join().map_err(|e| format!("join writer: {e:?}"))?;
    reader.join().map_err(|e| format!("join reader: {e:?}"))?;
    let after = rt.stats().cpus[TARGET].clone();
    rt.shutdown();
    let hist = hist?;
    let n = hist.len();
    let woke = after.io_wakeups - before.io_wakeups;
    if woke.saturating_mul(10) < n.saturating_mul(9) {
        eprintln!(
            "{NAME}: io-wake-sleeping: only {woke} of {n} bytes woke the reader through the reactor"
        );
    }
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(cpus: Vec<usize>) -> Ctx {
        Ctx {
            cpus,
            opts: crate::args::Options {
                iters: Some(30),
                no_peers: true,
                ..Default::default()
            },
        }
    }

    #[test]
    fn one_cpu_is_skipped() {
        let cpus = crate::cpus::usable_cpus();
        let mut rows = Vec::new();
        run(&ctx(cpus[..1].to_vec()), &mut rows).unwrap();
        assert!(rows.is_empty());
    }

    #[test]
    fn every_case_gets_every_sample() {
        let cpus = crate::cpus::usable_cpus();
        if cpus.len() < 2 {
            eprintln!("one usable CPU: nothing to kick across");
            return;
        }
        let mut rows = Vec::new();
        run(&ctx(cpus[..2].to_vec()), &mut rows).unwrap();
        let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
        assert_eq!(
            cases,
            [
                "idle-polling",
                "idle-sleeping",
                "busy-preempt",
                "idle-sleeping-epoll",
                "io-wake-sleeping"
            ]
        );
        for r in &rows {
            assert_eq!(r.n, 30, "{r:?}");
            assert!(r.p50.unwrap() > 0.0 && r.p999 >= r.p50, "{r:?}");
        }
    }
}
