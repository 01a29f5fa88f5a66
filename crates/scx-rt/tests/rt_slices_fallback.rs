//! `SliceTimer::Signal` when its signal (`SIGRTMIN + 4`) already belongs to
//! another handler: the workers cannot create their expiry timers and the
//! timer thread ends their slices instead. Its own test binary: the handler
//! it installs is process-wide.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::{Runtime, SliceTimer};

use common::{guard, wait_until};

extern "C" fn foreign_handler(_sig: libc::c_int) {}

#[test]
fn a_taken_signal_falls_back_to_the_timer_thread() {
    // SAFETY: an all-zero sigaction is valid; the handler does nothing
    // (async-signal-safe), and no other test in this binary uses the
    // signal.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = foreign_handler as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGRTMIN() + 4, &sa, std::ptr::null_mut()),
            0
        );
    }
    guard("spinners yield under the fallback", || {
        let rt = Runtime::builder()
            .nr_cpus(2)
            .pin(false)
            .slice_timer(SliceTimer::Signal)
            .slice(Duration::from_micros(200))
            .scheduler(scx_rt::schedulers::Simple::fifo())
            .build()
            .expect("a taken signal does not fail the build");
        let done = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let (done, running) = (done.clone(), running.clone());
                rt.spawn(move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    while !done.load(Ordering::SeqCst) {
                        if start.elapsed() > Duration::from_secs(20) {
                            return false;
                        }
                        scx_rt::preempt_point();
                    }
                    true
                })
            })
            .collect();
        wait_until("both spinners to run", || {
            running.load(Ordering::SeqCst) == 2
        });
        let d = done.clone();
        rt.spawn(move || d.store(true, Ordering::SeqCst))
            .join()
            .expect("waiter");
        for s in spinners {
            assert!(
                s.join().expect("spinner"),
                "no slice expiry let the waiter run"
            );
        }
        rt.shutdown();
    });
}
