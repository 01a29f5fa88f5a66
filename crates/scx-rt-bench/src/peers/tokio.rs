//! The `tokio` peer: a multi-thread runtime with one worker per CPU used,
//! each worker pinned to one of those CPUs (round robin).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::stats::new_hist;
use crate::workloads::ns;

/// A runtime with `cpus.len()` workers pinned to `cpus`.
pub fn runtime(cpus: &[usize]) -> Result<Runtime, String> {
    let cpus: Arc<[usize]> = cpus.into();
    let next = Arc::new(AtomicUsize::new(0));
    let n = cpus.len();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .on_thread_start(move || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            // Best effort: an unpinned worker still runs, only noisier.
            let _ = scx_rt_sys::affinity::pin_current_thread(cpus[i % n]);
        })
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// `spawn`: from inside `block_on`, spawn `tasks` empty tasks then await
/// them all; ns per task, one per rep.
pub fn spawn(cpus: &[usize], tasks: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(async move {
            let t = Instant::now();
            let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(async {})).collect();
            for h in handles {
                h.await.map_err(|e| format!("join: {e}"))?;
            }
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(ns(elapsed) / tasks as f64);
    }
    Ok(samples)
}

/// `pingpong`: two tasks on a runtime with two workers (pinned to `cpus`)
/// over `mpsc::channel(1)` each way; round trips in ns after `iters / 10`
/// warm-up rounds.
pub fn pingpong(cpus: &[usize], iters: u64) -> Result<Histogram<u64>, String> {
    let rt = runtime(cpus)?;
    let warmup = iters / 10;
    let rounds = warmup + iters;
    let (tx_ab, mut rx_ab) = tokio::sync::mpsc::channel::<u64>(1);
    let (tx_ba, mut rx_ba) = tokio::sync::mpsc::channel::<u64>(1);
    let echo = rt.spawn(async move {
        while let Some(v) = rx_ab.recv().await {
            if tx_ba.send(v).await.is_err() {
                break;
            }
        }
    });
    let ping = rt.spawn(async move {
        let mut hist = new_hist();
        for i in 0..rounds {
            let t = Instant::now();
            tx_ab.send(i).await.map_err(|_| "echo gone".to_string())?;
            rx_ba.recv().await.ok_or("echo gone")?;
            if i >= warmup {
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
        }
        Ok::<_, String>(hist)
    });
    let hist = rt.block_on(ping).map_err(|e| format!("join: {e}"))??;
    rt.block_on(echo).map_err(|e| format!("join: {e}"))?;
    Ok(hist)
}

type BoxFut = Pin<Box<dyn Future<Output = u64> + Send>>;

fn skynet_node(num: u64, size: u64, div: u64) -> BoxFut {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / div;
        let handles: Vec<_> = (0..div)
            .map(|i| tokio::spawn(skynet_node(num + i * sub, sub, div)))
            .collect();
        let mut sum = 0;
        for h in handles {
            // A child panic is impossible (pure arithmetic); count it as 0
            // and let the sum check report it.
            sum += h.await.unwrap_or(0);
        }
        sum
    })
}

/// `skynet`: the tree of `leaves` leaves with `tokio::spawn` + await; ms per
/// run, one per rep, after checking the sum.
pub fn skynet(cpus: &[usize], leaves: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let sum = rt.block_on(skynet_node(0, leaves, 10));
        let elapsed = t.elapsed();
        crate::workloads::skynet::check_sum(leaves, sum)?;
        samples.push(elapsed.as_secs_f64() * 1e3);
    }
    Ok(samples)
}
