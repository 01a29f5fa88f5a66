//! The `tokio` peer: a multi-thread runtime with one worker per CPU used,
//! each worker pinned to one of those CPUs (round robin); `pingpong`'s
//! pinned cases use current-thread runtimes on pinned threads instead.
//! `echo`'s server uses `tokio::net`, a task per connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::pin::{on_pinned_thread, spawn_pinned};
use crate::spec::wakeup::{merge, record, think, Shape};
use crate::spec::{chained_spawn, echo, pingpong, ring, skynet, yield_many};
use crate::stats::{new_hist, ns};

/// A runtime with `cpus.len()` workers pinned to `cpus`.
pub fn runtime(cpus: &[usize]) -> Result<Runtime, String> {
    builder(cpus)
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The builder of [`runtime`] (no I/O or time driver enabled).
fn builder(cpus: &[usize]) -> tokio::runtime::Builder {
    let cpus: Arc<[usize]> = cpus.into();
    let next = Arc::new(AtomicUsize::new(0));
    let n = cpus.len();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(n).on_thread_start(move || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        // Best effort: an unpinned worker still runs, only noisier.
        let _ = scx_rt_sys::affinity::pin_current_thread(cpus[i % n]);
    });
    b
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

/// A current-thread runtime (the calling thread is its only worker).
fn current_thread() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

type PingChannels = (
    tokio::sync::mpsc::Sender<u64>,
    tokio::sync::mpsc::Receiver<u64>,
    tokio::sync::mpsc::Sender<u64>,
    tokio::sync::mpsc::Receiver<u64>,
);

/// The two `pingpong` channels: (ping's sender, echo's receiver, echo's
/// sender, ping's receiver).
fn ping_channels() -> PingChannels {
    let cap = pingpong::CHANNEL_CAP;
    let (tx_ab, rx_ab) = tokio::sync::mpsc::channel::<u64>(cap);
    let (tx_ba, rx_ba) = tokio::sync::mpsc::channel::<u64>(cap);
    (tx_ab, rx_ab, tx_ba, rx_ba)
}

/// The echo end of `pingpong`: sends back what it receives.
async fn echo(mut rx: tokio::sync::mpsc::Receiver<u64>, tx: tokio::sync::mpsc::Sender<u64>) {
    while let Some(v) = rx.recv().await {
        if tx.send(v).await.is_err() {
            break;
        }
    }
}

/// The pinger of `pingpong`: `warmup` unrecorded round trips, then
/// `iters` timed ones (ns).
async fn ping(
    tx: tokio::sync::mpsc::Sender<u64>,
    mut rx: tokio::sync::mpsc::Receiver<u64>,
    iters: u64,
    warmup: u64,
) -> Result<Histogram<u64>, String> {
    let mut hist = new_hist();
    for i in 0..warmup + iters {
        let t = Instant::now();
        tx.send(i).await.map_err(|_| "echo gone".to_string())?;
        rx.recv().await.ok_or("echo gone")?;
        if i >= warmup {
            hist.saturating_record(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(hist)
}

/// `pingpong`, `same-cpu`: both tasks on one current-thread runtime, on a
/// thread pinned to `cpu`.
pub fn pingpong_same_cpu(cpu: usize, iters: u64, warmup: u64) -> Result<Histogram<u64>, String> {
    on_pinned_thread(cpu, move || {
        let rt = current_thread()?;
        rt.block_on(async move {
            let (tx_ab, rx_ab, tx_ba, rx_ba) = ping_channels();
            let echo_task = tokio::spawn(echo(rx_ab, tx_ba));
            let hist = ping(tx_ab, rx_ba, iters, warmup).await?;
            echo_task.await.map_err(|e| format!("join: {e}"))?;
            Ok(hist)
        })
    })
}

/// `pingpong`, `cross-cpu`: a current-thread runtime on each of two
/// threads pinned to `cpu_a` (pinger) and `cpu_b` (echo); the channels
/// link the two runtimes, so every hop wakes the other thread.
pub fn pingpong_cross_cpu(
    cpu_a: usize,
    cpu_b: usize,
    iters: u64,
    warmup: u64,
) -> Result<Histogram<u64>, String> {
    let (tx_ab, rx_ab, tx_ba, rx_ba) = ping_channels();
    // If the echo side fails, its channel ends drop and the pinger stops.
    let echo_thread = spawn_pinned(cpu_b, move || {
        current_thread()?.block_on(echo(rx_ab, tx_ba));
        Ok(())
    })?;
    let hist = on_pinned_thread(cpu_a, move || {
        current_thread()?.block_on(ping(tx_ab, rx_ba, iters, warmup))
    });
    // An echo failure explains a pinger's "echo gone": report it first.
    echo_thread.join()?;
    hist
}

/// `pingpong`, `2cpu-free`: both tasks spawned on a multi-thread runtime
/// with two workers pinned to `cpus`; tokio places them.
pub fn pingpong_free(cpus: &[usize], iters: u64, warmup: u64) -> Result<Histogram<u64>, String> {
    let rt = runtime(cpus)?;
    let (tx_ab, rx_ab, tx_ba, rx_ba) = ping_channels();
    let echo_task = rt.spawn(echo(rx_ab, tx_ba));
    let ping_task = rt.spawn(ping(tx_ab, rx_ba, iters, warmup));
    let hist = rt.block_on(ping_task).map_err(|e| format!("join: {e}"))??;
    rt.block_on(echo_task).map_err(|e| format!("join: {e}"))?;
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
        skynet::check_sum(leaves, sum)?;
        samples.push(elapsed.as_secs_f64() * 1e3);
    }
    Ok(samples)
}

/// `ring`: `tasks` tasks in a cycle of `mpsc` channels of
/// [`ring::CHANNEL_CAP`] passing one token for `hops`
/// hops; hops per second, one per rep.
pub fn ring(cpus: &[usize], tasks: u64, hops: u64, reps: u64) -> Result<Vec<f64>, String> {
    let rt = runtime(cpus)?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        let elapsed = rt.block_on(ring_once(tasks, hops))?;
        samples.push(ring::rate(hops, elapsed));
    }
    Ok(samples)
}

async fn ring_once(tasks: u64, hops: u64) -> Result<Duration, String> {
    let (mut txs, rxs): (Vec<_>, Vec<_>) = (0..tasks)
        .map(|_| tokio::sync::mpsc::channel::<u64>(ring::CHANNEL_CAP))
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
        samples.push(yield_many::ms(elapsed));
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
        samples.push(chained_spawn::us(elapsed));
    }
    Ok(samples)
}

/// `wakeup`: the shape of [`crate::spec::wakeup`] with async tasks,
/// `mpsc::channel(1)` to each worker and one `mpsc::channel(workers)` of
/// acks per message task; workers spin their think time without yielding
/// (tokio cannot preempt a task). Merged wake-up latencies in ns.
pub fn wakeup(cpus: &[usize], shape: &Shape) -> Result<Histogram<u64>, String> {
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

/// `echo`: the server on a multi-thread runtime over `cpus` with its I/O
/// driver, a task per connection echoing through a [`echo::BUF`]-byte buffer. Stopping it
/// shuts the runtime down (dropping the accept loop).
pub fn echo_server(cpus: &[usize]) -> Result<echo::Server, String> {
    let rt = builder(cpus)
        .enable_io()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    rt.spawn(async move {
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(echo_conn(s));
                }
                // Out of fds, a connection reset before it was accepted.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    });
    Ok(echo::Server::new(addr, move || {
        rt.shutdown_timeout(Duration::from_secs(5));
        Ok(())
    }))
}

async fn echo_conn(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; echo::BUF];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
