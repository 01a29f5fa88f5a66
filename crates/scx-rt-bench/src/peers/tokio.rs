//! The `tokio` peer: a multi-thread runtime with one worker per CPU used,
//! each worker pinned to one of those CPUs (round robin).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// `ring`: `tasks` tasks in a cycle of channels passing one token for
/// `hops` hops; hops per second, one per rep. tokio has no zero-capacity
/// (rendezvous) channel, so the ring uses `mpsc::channel(1)`: a send
/// completes as soon as the slot is free instead of when the receiver took
/// the value. With a single token in flight every slot is empty when sent
/// to, so no send waits either way.
pub fn ring(cpus: &[usize], tasks: u64, hops: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(ring_once(tasks, hops))?;
        samples.push(crate::workloads::ring::rate(hops, elapsed));
    }
    Ok(samples)
}

async fn ring_once(tasks: u64, hops: u64) -> Result<Duration, String> {
    let (mut txs, rxs): (Vec<_>, Vec<_>) = (0..tasks)
        .map(|_| tokio::sync::mpsc::channel::<u64>(1))
        .unzip();
    let inject = txs[0].clone();
    // Task i receives on channel i and sends on channel i + 1.
    txs.rotate_left(1);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let handles: Vec<_> = rxs
        .into_iter()
        .zip(txs)
        .map(|(mut rx, next)| {
            let done = done_tx.clone();
            tokio::spawn(async move {
                while let Some(left) = rx.recv().await {
                    if left == 0 {
                        let _ = done.send(()).await;
                        break;
                    }
                    if next.send(left - 1).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let t = Instant::now();
    inject.send(hops).await.map_err(|_| "ring closed")?;
    drop(inject);
    done_rx.recv().await.ok_or("ring broke")?;
    let elapsed = t.elapsed();
    for h in handles {
        h.await.map_err(|e| format!("join: {e}"))?;
    }
    Ok(elapsed)
}

/// `yield-many`: from inside `block_on`, spawn `tasks` tasks that each
/// call `tokio::task::yield_now().await` `yields` times, then await them
/// all; ms per run, one per rep.
pub fn yield_many(cpus: &[usize], tasks: u64, yields: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(async move {
            let t = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..yields {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.map_err(|e| format!("join: {e}"))?;
            }
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(crate::workloads::yield_many::ms(elapsed));
    }
    Ok(samples)
}

fn chain_link(left: u64, done: tokio::sync::oneshot::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
    } else {
        tokio::spawn(async move { chain_link(left - 1, done) });
    }
}

/// `chained-spawn`: from inside `block_on`, spawn one task; each spawns the
/// next until `tasks` have been spawned, and the last one completes a
/// `oneshot`; µs per chain, one per rep.
pub fn chained_spawn(cpus: &[usize], tasks: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(async move {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let t = Instant::now();
            // `tasks` spawns in all: this one, then `tasks - 1` links.
            tokio::spawn(async move { chain_link(tasks - 1, done_tx) });
            done_rx.await.map_err(|_| "chain broke".to_string())?;
            Ok::<_, String>(t.elapsed())
        })?;
        samples.push(crate::workloads::chained_spawn::us(elapsed));
    }
    Ok(samples)
}

/// `wakeup`: the shape of [`crate::workloads::wakeup`] with async tasks,
/// `mpsc::channel(1)` to each worker and one `mpsc::channel(workers)` of
/// acks per message task; workers spin their think time without yielding
/// (tokio cannot preempt a task). Merged wake-up latencies in ns.
pub fn wakeup(
    cpus: &[usize],
    shape: &crate::workloads::wakeup::Shape,
) -> Result<Histogram<u64>, String> {
    use crate::workloads::wakeup::{merge, record, think};
    let rt = runtime(cpus)?;
    let shape = shape.clone();
    let hists = rt.block_on(async move {
        let mut workers = Vec::new();
        let mut messengers = Vec::new();
        for _ in 0..shape.messengers {
            let (ack_tx, mut ack_rx) = tokio::sync::mpsc::channel::<()>(shape.workers);
            let mut txs = Vec::new();
            for _ in 0..shape.workers {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Instant>(1);
                let ack = ack_tx.clone();
                let warmup = shape.warmup;
                txs.push(tx);
                workers.push(tokio::spawn(async move {
                    let mut hist = new_hist();
                    let mut round = 0;
                    while let Some(stamp) = rx.recv().await {
                        record(&mut hist, round, warmup, stamp);
                        round += 1;
                        think(|| {});
                        if ack.send(()).await.is_err() {
                            break;
                        }
                    }
                    hist
                }));
            }
            let rounds = shape.rounds;
            messengers.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    for tx in &txs {
                        tx.send(Instant::now()).await.map_err(|_| "worker gone")?;
                    }
                    for _ in 0..txs.len() {
                        ack_rx.recv().await.ok_or("workers gone")?;
                    }
                }
                Ok::<_, String>(())
            }));
        }
        for m in messengers {
            m.await.map_err(|e| format!("join: {e}"))??;
        }
        let mut hists = Vec::new();
        for w in workers {
            hists.push(w.await.map_err(|e| format!("join: {e}"))?);
        }
        Ok::<_, String>(hists)
    })?;
    merge(hists)
}
