//! Loom models of scx-rt's concurrency protocols.
//!
//! The models live in `tests/` and are compiled only with
//! `--cfg scx_rt_loom`, which makes scx-rt import loom's atomics, locks and
//! condvars through its `loom` facade and swaps the futex doorbell for a
//! loom `Mutex` + `Condvar`. Each model drives the real scx-rt code through
//! `scx_rt::model`, never a copy of it. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg scx_rt_loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//!
//! | model | file | proves |
//! |---|---|---|
//! | idle handshake | `tests/doorbell.rs` | a resched racing with a worker going POLLING -> SLEEPING never leaves it asleep with work queued |
//! | cpumask | `tests/cpumask.rs` | concurrent `test_and_clear` on one bit hands it to exactly one caller; a set and a clear of two CPUs' bits in one word both land |
//! | dispatch vs dequeue | `tests/ownership.rs` | a buffered claim racing with a dequeue + re-enqueue is dropped when stale; the task ends in exactly one place |
//! | `KICK_PREEMPT` | `tests/kick.rs` | a CPU running X with Y queued behind it, with no other event, stops X because of the kick, finds its slice zeroed and switches to Y; no kick bit is left |
//! | `KICK_WAIT` | `tests/kick.rs` | the waiter does not return before the target re-entered its pick path after the kick; two CPUs wait-kicking each other both complete (the waiter advances its own pick sequence), neither early |
//! | consume vs dequeue | `tests/ownership.rs` | a `holding_cpu` transfer from the global DSQ racing with a dequeue is cancelled cleanly; no task on two queues, none in flight |
//! | `KICK_IDLE` vs balance | `tests/idle_kick.rs` | an `IDLE` kick reaching a CPU inside balance (rq lock dropped for a pull, `curr` still set) is not skipped; the CPU never sleeps while the policy holds the work it was kicked for |
//! | rq-lock order | `tests/lock_order.rs` | crossing moves (remote dispatches both ways with kicks in flight, crossing consumes, a consume crossing a `DSQ_LOCAL_ON` dispatch) never deadlock; every task lands in exactly one local DSQ, on the rq it names |
//! | `dsq_move` | `tests/dsq_move.rs` | a move of a task a DSQ walk saw, racing with a dequeue, with a remote consume, or with the task leaving and being queued on the DSQ again, either moves it (the consume then finds nothing) or fails quietly; the task ends in exactly one place, counted on the rq it names, none in flight |
//! | queued wake-ups | `tests/wakelist.rs` | a wake-up queued for an idle CPU (`queue_wakeup`) is never lost, wherever it lands in the target's loop (drain, `need_resched` clear, step, poll, SLEEPING, sleep); each woken task is enqueued exactly once and runs; one racing with the target's handling of another is enqueued or left with `irq_pending` set; two wakers at once (three threads, capped at bound 2): both tasks run |
//! | live-task count | `tests/live_count.rs` | the per-CPU count never misses a live parent whose child exited on another CPU; of two simultaneous last exits during shutdown one sees zero; a last exit and the start of shutdown see each other |
//! | fork lock | `tests/fork_lock.rs` | a spawn (on a worker, from outside, or two workers') and a pass over every task are never inside the fork lock at once; a spawn nested in a spawn's callback does not wait for a pending pass |
//! | batched consume | `tests/consume_batch.rs` | a batch taking two tasks off a user DSQ (one of another CPU's rq, moved with one hold of its lock; one of the consumer's own rq, which waits in transit while the consumer holds the other lock) racing with a dequeue + re-enqueue of either: the dequeued task is left alone or was taken back after it arrived; each task ends in exactly one place, counted on the rq it names, none in flight |
//!
//! Each test file is one group (one test binary); `run.sh` runs the groups
//! one at a time, each under its own time box, as CI does. The README's
//! reliability section lists, per model, the interleavings explored at
//! bounds 2 and 5 and the breaks of the protocol that make it fail.

#![deny(unsafe_code)]

/// Branch points one execution of a model may take, unless
/// `LOOM_MAX_BRANCHES` says otherwise. loom's default (1000) is too small
/// for a whole pick path (balance, a hand-off, put prev, the policy's
/// callbacks); a model that spins without progress still hits this bound.
#[cfg(scx_rt_loom)]
pub const MAX_BRANCHES: usize = 20_000;

/// Runs `f` under a loom model checker, prints how many interleavings it
/// explored and how long that took (`name: N interleavings explored in
/// S s`), and checks that it explored more than one (a model that cannot
/// branch proves nothing). The `LOOM_*` environment variables apply;
/// `LOOM_MAX_BRANCHES` defaults to [`MAX_BRANCHES`].
#[cfg(scx_rt_loom)]
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    check(name, None, f);
}

/// [`model`] with the preemption bound capped at `max_preemptions` (the
/// smaller of it and `LOOM_MAX_PREEMPTIONS` applies), for a three-thread
/// model whose search grows too fast for CI beyond that bound. The report
/// line names the bound used.
#[cfg(scx_rt_loom)]
pub fn model_capped(name: &str, max_preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    check(name, Some(max_preemptions), f);
}

#[cfg(scx_rt_loom)]
fn check(name: &str, cap: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        b.max_branches = MAX_BRANCHES;
    }
    let mut capped = String::new();
    if let Some(cap) = cap {
        let bound = b.preemption_bound.map_or(cap, |p| p.min(cap));
        b.preemption_bound = Some(bound);
        capped = format!(" (preemption bound capped at {bound})");
    }
    let start = std::time::Instant::now();
    report_failures();
    CURRENT.with(|c| *c.borrow_mut() = Some((name.to_string(), runs.clone(), start)));
    b.check(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    CURRENT.with(|c| *c.borrow_mut() = None);
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{name}: {n} interleavings explored in {:.1} s{capped}",
        start.elapsed().as_secs_f64()
    );
    assert!(n > 1, "{name}: the model explored a single interleaving");
}

#[cfg(scx_rt_loom)]
type Running = (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::time::Instant,
);

#[cfg(scx_rt_loom)]
std::thread_local! {
    /// The model this test thread is checking: name, interleavings started,
    /// start time (loom runs a model's threads on the caller's OS thread).
    static CURRENT: std::cell::RefCell<Option<Running>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that names the model and interleaving a
/// failure happened in, and how long the search took to get there, before
/// the usual report (loom may abort the process while unwinding, so this
/// cannot wait for the unwind).
#[cfg(scx_rt_loom)]
fn report_failures() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = CURRENT.try_with(|c| {
                if let Ok(c) = c.try_borrow() {
                    if let Some((name, n, start)) = c.as_ref() {
                        eprintln!(
                            "{name}: FAILED in interleaving {} after {:.1} s",
                            n.load(std::sync::atomic::Ordering::Relaxed),
                            start.elapsed().as_secs_f64()
                        );
                    }
                }
            });
            prev(info);
        }));
    });
}
