//! The `os-threads` peer: plain OS threads, pinned where the workload pins.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::pin::{on_cpus, spawn_pinned};
use crate::spec::wakeup::{merge, record, think, Shape};
use crate::stats::{new_hist, ns};

/// `switch`: two threads pinned to `cpu`, each calling
/// `std::thread::yield_now` `iters` times; ns per yield, one per rep.
pub fn switch(cpu: usize, iters: u64, reps: u64) -> Result<Vec<f64>, String> {
    let mut samples = Vec::new();
    for _ in 0..reps {
        let start = Arc::new(Barrier::new(3));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let start = Arc::clone(&start);
            threads.push(spawn_pinned(cpu, move || {
                start.wait();
                for _ in 0..iters {
                    thread::yield_now();
                }
                Ok(())
            })?);
        }
        start.wait();
        let t = Instant::now();
        for th in threads {
            th.join()?;
        }
        samples.push(ns(t.elapsed()) / (2 * iters) as f64);
    }
    Ok(samples)
}

/// `spawn`: `std::thread::spawn` of `tasks` empty threads, then join all,
/// on threads restricted to `cpus`; ns per thread, one per rep.
pub fn spawn(cpus: &[usize], tasks: u64, reps: u64) -> Result<Vec<f64>, String> {
    on_cpus(cpus, move || {
        let mut samples = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let handles: Vec<_> = (0..tasks).map(|_| thread::spawn(|| ())).collect();
            for h in handles {
                h.join().map_err(|_| "empty thread panicked".to_string())?;
            }
            samples.push(ns(t.elapsed()) / tasks as f64);
        }
        Ok(samples)
    })
}

/// `pingpong`: two threads pinned to `cpu_a` / `cpu_b` (the same CPU for
/// `same-cpu`) passing a turn through one `AtomicU32` with futex wait/wake
/// (no spinning); histogram of `iters` round trips in ns, after `warmup`
/// unrecorded ones.
pub fn pingpong(
    cpu_a: usize,
    cpu_b: usize,
    iters: u64,
    warmup: u64,
) -> Result<Histogram<u64>, String> {
    let rounds = warmup + iters;
    let flag = Arc::new(AtomicU32::new(0));
    let f = Arc::clone(&flag);
    let echo = spawn_pinned(cpu_b, move || {
        for i in 0..rounds {
            let ping = (2 * i + 1) as u32;
            wait_for(&f, ping);
            f.store(ping.wrapping_add(1), Ordering::Release);
            atomic_wait::wake_one(&*f);
        }
        Ok(())
    })?;
    let f = Arc::clone(&flag);
    let hist = spawn_pinned(cpu_a, move || {
        let mut hist = new_hist();
        for i in 0..rounds {
            let ping = (2 * i + 1) as u32;
            let t = Instant::now();
            f.store(ping, Ordering::Release);
            atomic_wait::wake_one(&*f);
            wait_for(&f, ping.wrapping_add(1));
            if i >= warmup {
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
        }
        Ok(hist)
    })?
    .join()?;
    echo.join()?;
    Ok(hist)
}

/// Blocks on the futex until `flag` holds `want`.
pub fn wait_for(flag: &AtomicU32, want: u32) {
    loop {
        let v = flag.load(Ordering::Acquire);
        if v == want {
            return;
        }
        atomic_wait::wait(flag, v);
    }
}

/// `wakeup`: the shape of [`crate::spec::wakeup`] with OS threads
/// restricted to `cpus` (placed by the kernel), a
/// `std::sync::mpsc::sync_channel(1)` to each worker (futex wait/wake) and
/// one `sync_channel(workers)` of acks per message thread. Merged wake-up
/// latencies in ns.
pub fn wakeup(cpus: &[usize], shape: &Shape) -> Result<Histogram<u64>, String> {
    let shape = shape.clone();
    on_cpus(cpus, move || {
        let mut workers = Vec::new();
        let mut messengers = Vec::new();
        for _ in 0..shape.messengers {
            let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel::<()>(shape.workers);
            let mut txs = Vec::new();
            for _ in 0..shape.workers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Instant>(1);
                let ack = ack_tx.clone();
                let warmup = shape.warmup;
                txs.push(tx);
                workers.push(thread::spawn(move || {
                    let mut hist = new_hist();
                    let mut round = 0;
                    while let Ok(stamp) = rx.recv() {
                        record(&mut hist, round, warmup, stamp);
                        round += 1;
                        think(|| {});
                        if ack.send(()).is_err() {
                            break;
                        }
                    }
                    hist
                }));
            }
            let rounds = shape.rounds;
            messengers.push(thread::spawn(move || {
                for _ in 0..rounds {
                    for tx in &txs {
                        tx.send(Instant::now()).map_err(|_| "worker gone")?;
                    }
                    for _ in 0..txs.len() {
                        ack_rx.recv().map_err(|_| "workers gone")?;
                    }
                }
                Ok::<_, String>(())
            }));
        }
        for m in messengers {
            m.join().map_err(|_| "message thread panicked")??;
        }
        let hists = workers
            .into_iter()
            .map(|w| w.join().map_err(|_| "worker thread panicked".to_string()))
            .collect::<Result<Vec<_>, String>>()?;
        merge(hists)
    })
}
