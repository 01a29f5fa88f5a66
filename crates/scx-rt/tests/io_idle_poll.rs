//! Who finds I/O readiness on a CPU that is not asleep in `epoll_wait`
//! (`scx_rt::io`, "Who waits where"): an idle CPU that is still in its idle
//! poll looks at its reactor at a bounded interval, and a busy CPU looks at
//! it between scheduling steps. Each test makes the other ways impossible,
//! so that a CPU without the look under test never wakes the reader: the
//! test then hangs, and the guard reports the hang as a failure.
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use scx_rt::io::GreenFd;
use scx_rt::Runtime;

mod common;
use common::guard;

/// Rounds of each test: one lucky ordering cannot pass them all.
const ROUNDS: u8 = 5;

/// An idle poll far longer than the guard's hang limit: a CPU that looked
/// at its reactor only once the poll ran out (in its epoll sleep) would
/// not see the pipe become readable before the guard gives up.
const ENDLESS_POLL: Duration = Duration::from_secs(3600);

/// A pipe and, on `rt`, a task reading it byte by byte for [`ROUNDS`]
/// rounds: before each read it sends the round's number on the returned
/// receiver (it is about to park), and it returns the bytes it read.
fn pipe_reader(
    rt: &Runtime,
) -> (
    scx_rt::JoinHandle<Vec<u8>>,
    mpsc::Receiver<u8>,
    std::io::PipeWriter,
) {
    let (r, w) = std::io::pipe().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel::<u8>();
    let reader = rt.spawn(move || {
        let r = GreenFd::new(r).unwrap();
        let mut got = Vec::new();
        for i in 0..ROUNDS {
            ready_tx.send(i).unwrap();
            let mut b = [0u8; 1];
            (&r).read_exact(&mut b).unwrap();
            got.push(b[0]);
        }
        got
    });
    (reader, ready_rx, w)
}

/// One CPU with idle poll `poll`, its only task reading a pipe for
/// [`ROUNDS`] rounds; each byte is written 20 ms after the reader said it
/// is about to park, so the reader's CPU has passed the look it takes just
/// before idling and is in its poll or its epoll sleep when the byte
/// arrives (had it come earlier, that look would find it and the round
/// would prove nothing; the callers' counts catch a run of such rounds).
/// Returns the CPU's statistics once every byte was read, in order.
fn idle_rounds(poll: Duration) -> scx_rt::CpuStats {
    let rt = Runtime::builder()
        .nr_cpus(1)
        .pin(false)
        .idle_poll(poll)
        .build()
        .unwrap();
    let (reader, ready_rx, mut w) = pipe_reader(&rt);
    for i in 0..ROUNDS {
        assert_eq!(ready_rx.recv().unwrap(), i);
        std::thread::sleep(Duration::from_millis(20));
        w.write_all(&[i]).unwrap();
    }
    assert_eq!(reader.join().unwrap(), (0..ROUNDS).collect::<Vec<_>>());
    let c = rt.stats().cpus[0].clone();
    rt.shutdown();
    c
}

/// One CPU spinning in a one-hour idle poll, its only task parked reading
/// a pipe; a plain thread writes the pipe once the CPU is in its poll. The
/// CPU's peeks at its reactor while it polls must find the byte each
/// round, and the stats must say so (`io_wakeups_polling`), with no epoll
/// sleep at all.
#[test]
fn readiness_during_the_idle_poll_is_found_by_the_poll() {
    guard("a read while the CPU polls idle for an hour", || {
        let c = idle_rounds(ENDLESS_POLL);
        assert!(
            c.io_wakeups_polling >= 1,
            "no read was woken from the idle poll: {c:?}"
        );
        assert_eq!(c.io_wakeups_slept, 0, "the CPU slept in epoll: {c:?}");
        assert!(c.io_wakeups_polling <= c.io_wakeups, "{c:?}");
    });
}

/// The same with no idle poll: the CPU sleeps in `epoll_wait` at once,
/// and the pipe's readiness ends the sleep; the wake-ups count as found by
/// the sleep, none by the poll.
#[test]
fn readiness_ends_an_epoll_sleep() {
    guard("a read while the CPU sleeps in epoll", || {
        let c = idle_rounds(Duration::ZERO);
        assert_eq!(c.io_wakeups_polling, 0, "{c:?}");
        assert!(c.io_wakeups_slept >= 1, "no epoll sleep woke a read: {c:?}");
    });
}

/// An epoll sleep that returns with the reader's byte is the CPU's look
/// at its reactor: the busy CPU's periodic look is due an interval later,
/// not at the first step after the sleep (which would put an empty
/// `epoll_wait` between every I/O wake-up and its task). Each round's
/// sleep outlasts that interval, so without the rule every round costs a
/// busy look; one slow round on a loaded machine (the worker descheduled
/// for an interval right after its sleep) is allowed for.
#[test]
fn an_epoll_sleep_counts_as_the_busy_look() {
    guard("reads woken out of epoll sleeps", || {
        let c = idle_rounds(Duration::ZERO);
        assert!(c.io_wakeups_slept >= 1, "no epoll sleep woke a read: {c:?}");
        assert!(
            c.io_busy_looks <= 1,
            "busy looks right after epoll sleeps: {c:?}"
        );
    });
}

/// One CPU kept busy by a task that only yields (it never idles, so
/// neither idle look can run): a read parked on that CPU must still
/// complete, found by the busy CPU's periodic look at its reactor
/// (`consts::IO_POLL_INTERVAL_NS`).
#[test]
fn a_busy_cpu_still_finds_readiness() {
    guard("a read on a CPU kept busy by a yielding task", || {
        let rt = Runtime::builder().nr_cpus(1).pin(false).build().unwrap();
        let (reader, ready_rx, mut w) = pipe_reader(&rt);
        let stop = Arc::new(AtomicBool::new(false));
        // A failed assertion must stop the spinner too, or the runtime's
        // drop would wait for it and the failure would read as a hang.
        let _stop_on_unwind = StopOnDrop(stop.clone());
        let (spin_tx, spin_rx) = mpsc::channel::<()>();
        let spinner = {
            let stop = stop.clone();
            rt.spawn(move || {
                spin_tx.send(()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    scx_rt::yield_now();
                }
            })
        };
        spin_rx.recv().unwrap();
        let idle_looks = |rt: &Runtime| {
            let c = &rt.stats().cpus[0];
            c.io_wakeups_polling + c.io_wakeups_slept
        };
        assert_eq!(ready_rx.recv().unwrap(), 0);
        for i in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(5));
            let before = idle_looks(&rt);
            w.write_all(&[i]).unwrap();
            // The reader's next round (or its end) says the byte was read.
            if i + 1 < ROUNDS {
                assert_eq!(ready_rx.recv().unwrap(), i + 1);
            }
            // The spinner kept the CPU busy: no idle look found it.
            assert_eq!(idle_looks(&rt), before);
        }
        assert_eq!(reader.join().unwrap(), (0..ROUNDS).collect::<Vec<_>>());
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(rt.stats().cpus[0].io_wakeups >= u64::from(ROUNDS));
        rt.shutdown();
    });
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
