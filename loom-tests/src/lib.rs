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
//!     cargo test -p loom-tests --release
//! ```
//!
//! | model | file | proves |
//! |---|---|---|
//! | idle handshake | `tests/doorbell.rs` | a resched racing with a worker going POLLING -> SLEEPING never leaves it asleep with work queued |
//! | cpumask claim | `tests/cpumask.rs` | concurrent `test_and_clear` on one bit hands it to exactly one caller |
//! | dispatch vs dequeue | `tests/ownership.rs` | a buffered claim racing with a dequeue + re-enqueue is dropped when stale; the task ends in exactly one place |
//! | `KICK_PREEMPT` | `tests/kick.rs` | after the kick step the victim's slice is 0, `need_resched` is set, no kick bit is left (with a concurrent self-kick) |
//! | `KICK_WAIT` | `tests/kick.rs` | two CPUs wait-kicking each other both complete (the waiter advances its own pick sequence) |
//! | consume vs dequeue | `tests/ownership.rs` | a `holding_cpu` transfer from the global DSQ racing with a dequeue is cancelled cleanly; no task on two queues, none in flight |

/// Runs `f` under `loom::model`, prints how many interleavings it explored
/// (`name: N interleavings explored`), and checks that it explored more than
/// one (a model that cannot branch proves nothing).
#[cfg(scx_rt_loom)]
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{name}: {n} interleavings explored");
    assert!(n > 1, "{name}: the model explored a single interleaving");
}
