//! Model 1: the idle handshake (no lost wake-up).
//!
//! A kicker queues a token into CPU 0's local DSQ and calls the real
//! `resched` (set `need_resched`, ring the doorbell if SLEEPING) while the
//! worker runs the real sequence of its loop: clear `need_resched`, look at
//! the local DSQ under the rq lock, and if empty do the real idle wait (poll,
//! publish SLEEPING, re-check, sleep on the doorbell). If a wake-up could be
//! lost, some interleaving leaves the worker blocked forever and loom
//! reports a deadlock.
#![cfg(scx_rt_loom)]
#![deny(unsafe_code)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use scx_rt::model::Cpu;
use scx_rt::Task;

fn worker_takes_token(cpu: &Cpu) -> u64 {
    loop {
        cpu.clear_need_resched();
        if let Some(t) = cpu.pop_local() {
            return t.id();
        }
        cpu.idle_wait();
    }
}

#[test]
fn resched_racing_with_sleep_is_never_lost() {
    model("resched_racing_with_sleep_is_never_lost", || {
        let cpu = Arc::new(Cpu::new(0, 2));
        let k = cpu.clone();
        let kicker = thread::spawn(move || {
            k.push_local(Task::new_token(7));
            k.resched();
        });
        assert_eq!(worker_takes_token(&cpu), 7);
        kicker.join().unwrap();
    });
}

#[test]
fn two_kicks_one_sleep() {
    model("two_kicks_one_sleep", || {
        let cpu = Arc::new(Cpu::new(0, 2));
        let k = cpu.clone();
        let kicker = thread::spawn(move || {
            k.resched();
            k.push_local(Task::new_token(9));
            k.resched();
        });
        assert_eq!(worker_takes_token(&cpu), 9);
        kicker.join().unwrap();
    });
}

/// The same handshake for a CPU with I/O registered, whose idle sleep is
/// its reactor's epoll wait (`SLEEPING_IO`): a resched racing with that
/// sleep is never lost either (the waker must move SLEEPING_IO, not only
/// SLEEPING, to RUNNING and wake the sleeper).
#[test]
fn resched_racing_with_io_sleep_is_never_lost() {
    model("resched_racing_with_io_sleep_is_never_lost", || {
        let cpu = Arc::new(Cpu::new(0, 2));
        let k = cpu.clone();
        let kicker = thread::spawn(move || {
            k.push_local(Task::new_token(5));
            k.resched();
        });
        let got = loop {
            cpu.clear_need_resched();
            if let Some(t) = cpu.pop_local() {
                break t.id();
            }
            cpu.idle_wait_io();
        };
        assert_eq!(got, 5);
        kicker.join().unwrap();
    });
}
