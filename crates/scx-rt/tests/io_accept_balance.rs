//! An accept loop under the default scheduler spreads its connections over
//! the CPUs (`WorkStealing`, "Fork balancing"). A connection's task is
//! bound to the CPU of its first run, so where it starts is where it is
//! served for good; an accept loop that takes a burst of connections must
//! not leave them all on one CPU, whether by starting them itself or by
//! letting an idle CPU steal them all. Without fork balancing and the
//! steal allowance, a burst of 64 ended 63/2, 2/63 or 15/50 in most rounds.
#![cfg(not(scx_rt_loom))]

use std::io::{Read, Write};
use std::time::Duration;

use scx_rt::net::TcpListener;
use scx_rt::Runtime;

mod common;
use common::{guard, wait_until};

const CONNS: usize = 64;
const ROUNDS: usize = 5;
/// The largest difference in bound tasks per CPU accepted: twice
/// `FORK_IMBALANCE` (4), plus the accept loop, plus one.
const MAX_SKEW: usize = 2 * 4 + 2;

#[test]
fn a_burst_of_connections_is_spread_over_the_cpus() {
    guard("64 connections accepted on 2 CPUs, 5 rounds", || {
        let rt = Runtime::builder().nr_cpus(2).pin(false).build().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        rt.spawn(move || {
            while let Ok((mut s, _)) = l.accept() {
                scx_rt::spawn(move || {
                    let mut b = [0u8; 64];
                    while let Ok(n @ 1..) = s.read(&mut b) {
                        if s.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let bound = |rt: &Runtime| -> Vec<usize> {
            rt.stats().cpus.iter().map(|c| c.bound_tasks).collect()
        };
        let mut splits = Vec::new();
        for _ in 0..ROUNDS {
            // The burst: every connection is made (the kernel completes
            // them in the backlog) before any is served.
            let mut conns: Vec<_> = (0..CONNS)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            for c in &mut conns {
                c.write_all(&[7u8; 8]).unwrap();
                let mut b = [0u8; 8];
                c.read_exact(&mut b).unwrap();
                assert_eq!(b, [7u8; 8]);
            }
            let split = bound(&rt);
            assert_eq!(split.iter().sum::<usize>(), CONNS + 1, "{split:?}");
            splits.push(split);
            drop(conns);
            // The connections' tasks exit (only the accept loop is left).
            wait_until("the connections' tasks to exit", || {
                bound(&rt).iter().sum::<usize>() == 1
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for s in &splits {
            assert!(
                s[0].abs_diff(s[1]) <= MAX_SKEW,
                "bound tasks per CPU in each round: {splits:?}"
            );
        }
        rt.shutdown();
    });
}
