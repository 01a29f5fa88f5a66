//! `scx_rt::sync` channels: rendezvous, bounded and unbounded capacity,
//! many producers, green task <-> OS thread in both directions, closing from
//! either end, `try_recv`, and a cross-CPU ping-pong.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_rt::sync::{channel, unbounded, RecvError, SendError, TryRecvError};
use scx_rt::Runtime;

mod common;
use common::with_timeout;

fn rt(n: usize) -> Runtime {
    Runtime::builder().nr_cpus(n).pin(false).build().unwrap()
}

/// Polls `cond` until it holds; panics after `secs`.
fn wait_until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn rendezvous_send_returns_only_after_recv_took_the_value() {
    with_timeout("rendezvous", 60, || {
        let rt = rt(2);
        for round in 0..3u32 {
            let (tx, rx) = channel::<u32>(0);
            let receiving = Arc::new(AtomicBool::new(false));
            let r2 = receiving.clone();
            let rh = rt.spawn(move || {
                // Long enough that a send that did not wait would be done.
                scx_rt::sleep(Duration::from_millis(50));
                r2.store(true, Ordering::SeqCst);
                rx.recv().unwrap()
            });
            let sh = rt.spawn(move || {
                tx.send(round + 7).unwrap();
                receiving.load(Ordering::SeqCst)
            });
            assert!(
                sh.join().unwrap(),
                "round {round}: a rendezvous send returned before the receiver called recv"
            );
            assert_eq!(rh.join().unwrap(), round + 7);
        }
    });
}

#[test]
fn rendezvous_from_an_os_thread_to_a_task() {
    with_timeout("rendezvous-os", 60, || {
        let rt = rt(2);
        let (tx, rx) = channel::<u32>(0);
        let receiving = Arc::new(AtomicBool::new(false));
        let r2 = receiving.clone();
        let rh = rt.spawn(move || {
            scx_rt::sleep(Duration::from_millis(50));
            r2.store(true, Ordering::SeqCst);
            let a = rx.recv().unwrap();
            let b = rx.recv().unwrap();
            (a, b)
        });
        // The OS thread parks in send until the task took the value.
        tx.send(1).unwrap();
        assert!(receiving.load(Ordering::SeqCst), "send returned early");
        tx.send(2).unwrap();
        assert_eq!(rh.join().unwrap(), (1, 2));
    });
}

#[test]
fn bounded_channel_blocks_the_send_past_capacity() {
    with_timeout("bounded", 60, || {
        const CAP: usize = 3;
        let rt = rt(2);
        let (tx, rx) = channel::<usize>(CAP);
        let sent = Arc::new(AtomicUsize::new(0));
        let s2 = sent.clone();
        let h = rt.spawn(move || {
            for i in 0..=CAP {
                tx.send(i).unwrap();
                s2.store(i + 1, Ordering::SeqCst);
            }
        });
        wait_until("the first CAP sends", 30, || {
            sent.load(Ordering::SeqCst) >= CAP
        });
        // Give a broken bound every chance to let the extra send through.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            sent.load(Ordering::SeqCst),
            CAP,
            "send number {} did not block on a full channel of capacity {CAP}",
            CAP + 1
        );
        assert_eq!(rx.len(), CAP);
        assert_eq!(rx.recv().unwrap(), 0);
        wait_until("the blocked send to complete", 30, || {
            sent.load(Ordering::SeqCst) == CAP + 1
        });
        h.join().unwrap();
        let rest: Vec<usize> = rx.collect();
        assert_eq!(rest, (1..=CAP).collect::<Vec<_>>(), "FIFO order");
    });
}

#[test]
fn unbounded_never_blocks_and_keeps_order() {
    with_timeout("unbounded", 60, || {
        let rt = rt(2);
        let (tx, rx) = unbounded::<u32>();
        let n = 100_000u32;
        rt.block_on(move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(rx.len(), n as usize);
        let got: Vec<u32> = rx.collect();
        assert_eq!(got.len(), n as usize);
        assert!(got.iter().copied().eq(0..n), "order lost");
    });
}

fn multi_producer(nr_cpus: usize, cap: Option<usize>, producers: usize, per: usize) {
    let rt = rt(nr_cpus);
    let (tx, rx) = match cap {
        Some(c) => channel::<(usize, usize)>(c),
        None => unbounded(),
    };
    let hs: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(move || {
                for i in 0..per {
                    tx.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = rt.spawn(move || {
        let mut seen = vec![0u8; producers * per];
        let mut next = vec![0usize; producers];
        let mut sum = 0u64;
        for (p, i) in rx {
            assert_eq!(i, next[p], "producer {p}: values out of order");
            next[p] += 1;
            seen[p * per + i] += 1;
            sum += (p * per + i) as u64;
        }
        (seen, sum)
    });
    for h in hs {
        h.join().unwrap();
    }
    let (seen, sum) = consumer.join().unwrap();
    let total = producers * per;
    for (k, &c) in seen.iter().enumerate() {
        assert_eq!(c, 1, "value {k} received {c} times");
    }
    assert_eq!(sum, (total as u64 - 1) * total as u64 / 2);
}

#[test]
fn eight_producers_bounded_on_4_cpus() {
    with_timeout("mp-bounded-4", 60, || {
        multi_producer(4, Some(16), 8, 10_000)
    });
}

#[test]
fn eight_producers_unbounded_on_2_cpus() {
    with_timeout("mp-unbounded-2", 60, || multi_producer(2, None, 8, 10_000));
}

#[test]
fn eight_producers_rendezvous_on_3_cpus() {
    with_timeout("mp-rendezvous-3", 60, || {
        multi_producer(3, Some(0), 8, 1_000)
    });
}

#[test]
fn task_to_os_thread_recv_parks_the_thread() {
    with_timeout("task-to-thread", 60, || {
        let rt = rt(2);
        let (tx, rx) = channel::<u64>(1);
        let h = rt.spawn(move || {
            // The OS thread is parked in recv by the time this sends.
            scx_rt::sleep(Duration::from_millis(30));
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u64> = rx.into_iter().collect();
        assert!(got.iter().copied().eq(0..1000));
        h.join().unwrap();
    });
}

#[test]
fn os_thread_to_task_wakes_the_blocked_receiver() {
    with_timeout("thread-to-task", 60, || {
        let rt = rt(1);
        let (tx, rx) = channel::<u64>(2);
        let h = rt.spawn(move || rx.into_iter().sum::<u64>());
        // The task is blocked in recv on an empty channel by now.
        std::thread::sleep(Duration::from_millis(30));
        for i in 1..=1000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(h.join().unwrap(), 500_500);
        // The worker was not blocked by the task's recv: it still runs tasks.
        assert_eq!(rt.spawn(|| 3).join().unwrap(), 3);
    });
}

#[test]
fn recv_errs_after_all_senders_dropped_and_queue_drained() {
    with_timeout("close-senders", 60, || {
        let rt = rt(2);
        // Queued values outlive the senders.
        let (tx, rx) = channel::<u8>(4);
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        drop(tx2);
        assert_eq!(rx.recv(), Ok(2));
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.recv(), Err(RecvError), "stays closed");

        // A receiver blocked in a task wakes with an error when the last
        // sender goes away in another task.
        let (tx, rx) = channel::<u8>(0);
        let tx2 = tx.clone();
        let r = rt.spawn(move || rx.recv());
        let a = rt.spawn(move || {
            scx_rt::sleep(Duration::from_millis(20));
            drop(tx);
        });
        let b = rt.spawn(move || {
            scx_rt::sleep(Duration::from_millis(40));
            drop(tx2);
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(r.join().unwrap(), Err(RecvError));
    });
}

#[test]
fn send_after_receiver_dropped_returns_the_value() {
    with_timeout("close-receiver", 60, || {
        let rt = rt(2);
        let (tx, rx) = unbounded::<String>();
        drop(rx);
        assert_eq!(tx.send("back".into()), Err(SendError("back".to_string())));

        // A send blocked on a full channel gets its value back when the
        // receiver is dropped.
        let (tx, rx) = channel::<String>(1);
        let h = rt.spawn(move || {
            tx.send("first".into()).unwrap();
            tx.send("second".into())
        });
        let end = Instant::now() + Duration::from_secs(30);
        while rx.is_empty() {
            assert!(Instant::now() < end, "first send never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(30));
        drop(rx);
        assert_eq!(h.join().unwrap(), Err(SendError("second".to_string())));
    });
}

#[test]
fn rendezvous_send_errs_when_receiver_drops_without_taking() {
    with_timeout("rendezvous-close", 60, || {
        let rt = rt(2);
        let (tx, rx) = channel::<String>(0);
        let h = rt.spawn(move || tx.send("lost?".into()));
        // The sender is now waiting for the receiver to take the value.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!h.is_finished(), "rendezvous send did not wait");
        drop(rx);
        // Nobody ever received the value, so the send must not report
        // success; the value must come back.
        assert_eq!(h.join().unwrap(), Err(SendError("lost?".to_string())));
    });
}

#[test]
fn try_recv_empty_then_value_then_disconnected() {
    let (tx, rx) = channel::<i32>(2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(5).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(6).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(6), "a queued value outlives the sender");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert!(rx.is_empty());
}

#[test]
fn try_recv_frees_room_for_a_blocked_sender() {
    with_timeout("try-recv-wakes", 60, || {
        let rt = rt(1);
        let (tx, rx) = channel::<u32>(1);
        let h = rt.spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while got.len() < 100 {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(TryRecvError::Disconnected) => panic!("disconnected early at {}", got.len()),
            }
            assert!(Instant::now() < end, "sender stuck after {}", got.len());
        }
        h.join().unwrap();
        assert!(got.iter().copied().eq(0..100));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn ping_pong_100k_round_trips_across_two_cpus() {
    with_timeout("ping-pong", 60, || {
        // 100k in release; fewer in debug, where a round trip costs ~10x
        // and the whole suite must stay quick on 2 shared cores.
        const N: u64 = if cfg!(debug_assertions) {
            25_000
        } else {
            100_000
        };
        let rt = rt(2);
        let (ping_tx, ping_rx) = channel::<u64>(1);
        let (pong_tx, pong_rx) = channel::<u64>(1);
        let a = rt.spawn_on(0, move || {
            let mut trips = 0u64;
            for i in 0..N {
                ping_tx.send(i).unwrap();
                assert_eq!(pong_rx.recv().unwrap(), i + 1);
                trips += 1;
            }
            assert_eq!(scx_rt::current_cpu(), Some(0));
            trips
        });
        let b = rt.spawn_on(1, move || {
            let mut n = 0u64;
            for v in ping_rx {
                pong_tx.send(v + 1).unwrap();
                n += 1;
            }
            assert_eq!(scx_rt::current_cpu(), Some(1));
            n
        });
        assert_eq!(a.join().unwrap(), N);
        assert_eq!(b.join().unwrap(), N);
    });
}
