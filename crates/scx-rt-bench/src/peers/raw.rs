//! Raw limits: the cost of the mechanisms underneath any runtime, measured
//! in the same run so ratios survive noisy machines.
//!
//! - `raw-cacheline`: two threads pinned to two CPUs bouncing one
//!   `AtomicU64` with spin loops; ns per one-way hand-off.
//!   `cacheline_latency` times single hand-offs one way instead (p50/p99
//!   of clock reads on the two cores), for latency rows such as `kick`'s.
//! - `raw-futex`: futex wake-to-run latency, one way, between two pinned
//!   threads (the waker stamps the time just before `FUTEX_WAKE`; the
//!   sleeper reads the clock as soon as it runs).
//! - `raw-corosensei`: a bare `Coroutine::resume` / `Yielder::suspend`
//!   pair; ns per switch (a pair is two switches).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use hdrhistogram::Histogram;

use crate::peers::threads::wait_for;
use crate::pin::{on_pinned_thread, spawn_pinned};
use crate::stats::{new_hist, ns};

/// ns per one-way cache-line hand-off between `cpu_a` and `cpu_b`
/// (`iters` round trips per rep), one figure per rep.
pub fn cacheline(cpu_a: usize, cpu_b: usize, iters: u64, reps: u64) -> Result<Vec<f64>, String> {
    if cpu_a == cpu_b {
        return Err("needs two CPUs (spinning on one CPU measures the tick)".into());
    }
    let mut samples = Vec::new();
    for _ in 0..reps {
        let line = Arc::new(AtomicU64::new(0));
        let l = Arc::clone(&line);
        let echo = spawn_pinned(cpu_b, move || {
            for i in 0..iters {
                while l.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                l.store(2 * i + 2, Ordering::Release);
            }
            Ok(())
        })?;
        let l = Arc::clone(&line);
        let elapsed = on_pinned_thread(cpu_a, move || {
            let t = Instant::now();
            for i in 0..iters {
                l.store(2 * i + 1, Ordering::Release);
                while l.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            }
            Ok(t.elapsed())
        })?;
        echo.join()?;
        samples.push(ns(elapsed) / (2 * iters) as f64);
    }
    Ok(samples)
}

/// One-way latency of a cache-line hand-off from `sender_cpu` to
/// `receiver_cpu`, `iters` samples: the sender waits `settle`, reads the
/// clock and stores a sequence number; the receiver, spinning on it, reads
/// the clock as soon as it sees the store (the way `kick` times a kick).
pub fn cacheline_latency(
    sender_cpu: usize,
    receiver_cpu: usize,
    iters: u64,
    settle: Duration,
) -> Result<Histogram<u64>, String> {
    if sender_cpu == receiver_cpu {
        return Err("needs two CPUs (spinning on one CPU measures the tick)".into());
    }
    let base = Instant::now();
    let seq = Arc::new(AtomicU64::new(0));
    let ack = Arc::new(AtomicU64::new(0));
    let stamp = Arc::new(AtomicU64::new(0));
    let (q, a, s) = (Arc::clone(&seq), Arc::clone(&ack), Arc::clone(&stamp));
    let receiver = spawn_pinned(receiver_cpu, move || {
        let mut hist = new_hist();
        for i in 1..=iters {
            while q.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            let now = base.elapsed().as_nanos() as u64;
            hist.saturating_record(now.saturating_sub(s.load(Ordering::Relaxed)));
            a.store(i, Ordering::Release);
        }
        Ok(hist)
    })?;
    on_pinned_thread(sender_cpu, move || {
        for i in 1..=iters {
            let t = Instant::now();
            while t.elapsed() < settle {
                std::hint::spin_loop();
            }
            stamp.store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            seq.store(i, Ordering::Release);
            while ack.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
        }
        Ok(())
    })?;
    receiver.join()
}

/// How long the waker lets the sleeper settle into `FUTEX_WAIT` before
/// each wake, so every sample is a real wake-up of a sleeping thread.
const SETTLE: Duration = Duration::from_micros(30);

/// One-way futex wake-to-run latency from `waker_cpu` to `sleeper_cpu`,
/// `iters` samples.
pub fn futex(waker_cpu: usize, sleeper_cpu: usize, iters: u64) -> Result<Histogram<u64>, String> {
    let base = Instant::now();
    let flag = Arc::new(AtomicU32::new(0));
    let ack = Arc::new(AtomicU32::new(0));
    let stamp = Arc::new(AtomicU64::new(0));
    let (f, a, s) = (Arc::clone(&flag), Arc::clone(&ack), Arc::clone(&stamp));
    let sleeper = spawn_pinned(sleeper_cpu, move || {
        let mut hist = new_hist();
        for i in 1..=iters {
            let seq = i as u32;
            wait_for(&f, seq);
            let now = base.elapsed().as_nanos() as u64;
            hist.saturating_record(now.saturating_sub(s.load(Ordering::Acquire)));
            a.store(seq, Ordering::Release);
            atomic_wait::wake_one(&*a);
        }
        Ok(hist)
    })?;
    let (f, a, s) = (flag, ack, stamp);
    on_pinned_thread(waker_cpu, move || {
        for i in 1..=iters {
            let seq = i as u32;
            let settle = Instant::now();
            while settle.elapsed() < SETTLE {
                std::hint::spin_loop();
            }
            s.store(base.elapsed().as_nanos() as u64, Ordering::Release);
            f.store(seq, Ordering::Release);
            atomic_wait::wake_one(&*f);
            wait_for(&a, seq);
        }
        Ok(())
    })?;
    sleeper.join()
}

/// ns per switch of a bare corosensei resume/suspend loop on `cpu`
/// (`iters` pairs per rep), one figure per rep.
pub fn corosensei(cpu: usize, iters: u64, reps: u64) -> Result<Vec<f64>, String> {
    on_pinned_thread(cpu, move || {
        let mut samples = Vec::new();
        for _ in 0..reps {
            let mut co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
                for _ in 0..iters {
                    y.suspend(());
                }
            });
            let t = Instant::now();
            let mut pairs = 0u64;
            while let CoroutineResult::Yield(()) = co.resume(()) {
                pairs += 1;
            }
            let elapsed = t.elapsed();
            samples.push(ns(elapsed) / (2 * pairs.max(1)) as f64);
        }
        Ok(samples)
    })
}
