//! Recycled task control blocks, per worker thread (the kernel's
//! `task_struct` slab cache, kept per CPU, with the decay of a slab
//! shrinker or of jemalloc's dirty-page purge).
//!
//! The last reference to an exited task, dropped on a worker thread,
//! leaves the task's control block to that thread instead of freeing it;
//! the next spawn on that thread builds its task in the block. Two drops
//! come here: the exit of a task nothing else refers to (its join handle
//! dropped before, no policy keeping it), on its CPU's worker; and the
//! join of a handle that outlived its task (a burst of spawns joined
//! afterwards), on whichever worker joins it. A spawn and exit pair then
//! calls neither `malloc` nor `free` (an `Arc<Task>` is about 400 bytes:
//! past the allocator's per-thread cache after a burst, both go the slow
//! way, about 200 instructions each under callgrind).
//!
//! A block is recycled only when its `Arc` is the last handle
//! ([`Vacant::try_vacate`], one compare-and-swap, which stands in for the
//! decrement of the drop it replaces): no reference to an exited task can
//! ever see its block reused. The task is dropped there, as the drop of
//! its last handle would have dropped it (its entry: the closure's
//! captures or an unread result; its scheduler data; its affinity mask);
//! the block keeps no value. So retiring is exactly that drop plus a push
//! onto a thread-local list: it may run wherever the drop could (the rq
//! lock-order rule on last references holds for it as for any drop). The
//! list is a stack linked through the vacant blocks themselves
//! ([`VacantStack`], a slab's free list): a push or a pop writes the block
//! and two words, and a list of any length allocates nothing.
//! Thread-local (no lock, no atomic): an exit runs on the worker thread of
//! the CPU, and so does a spawn from a task of that CPU. A spawn from any
//! other thread finds its own list empty and allocates; joins off the
//! workers do not retire (`JoinHandle::join`), so no thread that never
//! spawns collects blocks.
//!
//! # How many blocks a thread keeps
//!
//! The list may grow to hold a whole burst (a task spawning 100,000
//! children and joining them: every spawn of the next burst reuses a
//! block), and what stays unused is released over time. Time is cut into
//! epochs of `consts::TASK_POOL_EPOCH_NS` (1 s) of the thread's clock
//! (`core::clock::now`), and the thread keeps, per epoch:
//!
//! - `spawns`: the spawns made on the thread in the epoch (each
//!   [`take`], a block found or not), and `room`: those of the two
//!   epochs before it (kept as `limit`, the floor plus `room` plus
//!   `spawns`, one cell that a spawn increments).
//! - `low`: the fewest blocks the list held since the epoch began (set at
//!   each [`take`]): `low` of the blocks it holds no spawn took during
//!   the whole epoch (the bottom `low` of the stack).
//!
//! Protocol:
//!
//! 1. Retire ([`retire`], [`has_room`]): a block is kept while the list
//!    holds fewer than the floor `consts::TASK_POOL_FLOOR` (1,024) plus
//!    `room + spawns`, and fewer than the cap `consts::TASK_POOL_CAP`
//!    (2^20); past that it is freed at once. A thread keeps no more
//!    blocks than the floor and what its own spawns of the last three
//!    epochs could use: one that joins or runs tasks others spawned (a
//!    consumer of a producer CPU's tasks) keeps the floor and frees the
//!    rest, as the allocator would, instead of hoarding a producer's
//!    whole stream. Three epochs, not one: a burst whose spawns straddle
//!    an epoch's end and whose joins come in the next still finds room
//!    for all its blocks.
//! 2. Take ([`take`]): count the spawn, pop a block, lower `low` if the
//!    list is shorter than it. An increment, a load and a pop when the
//!    list is not empty; an increment and a load when it is.
//! 3. End of an epoch ([`tick`], at a clock reading past the epoch's
//!    end): `low` blocks, as many as no spawn wanted for a whole epoch,
//!    are owed, down to the floor; then `low` is the list's length,
//!    `room` the spawns of this epoch and the one before, and a new epoch
//!    begins. Blocks that bursts take in every epoch stay; the blocks of
//!    a burst that is not repeated are freed within two epochs after it
//!    (the epoch it ends in, and one whole epoch untouched).
//! 4. Pay ([`tick`], right after step 3 and at each later tick while
//!    blocks are owed): free at most a batch of them, and only as many as
//!    no spawn took since the epoch began (`low`), above the floor. A
//!    burst that starts while a release is spread out keeps what it takes
//!    (the frees stop at the blocks it left untouched). Which blocks go
//!    does not matter, only how many (they are alike): they are popped
//!    from the top, so the frees touch only the blocks they free, where
//!    reaching the bottom ones would walk the whole list.
//!
//! Where: the worker calls [`tick`] where it looks at its reactor between
//! busy steps (every `consts::IO_POLL_INTERVAL_NS`, behind a compare it
//! pays anyway: the step itself pays nothing), with a batch of
//! `consts::TASK_POOL_BUSY_RELEASE` (the release after a burst of 100,000
//! is spread over some 400 looks, tens of microseconds each, instead of
//! delaying the next task by milliseconds); and before it sleeps
//! (`worker::idle`, next to the stack cache's trim), batch after batch
//! until nothing is owed or work arrives: the CPU still shows as polling
//! there, so a wake-up waits for the batch in hand, not for the whole
//! release. Always
//! off the rq lock: freeing runs no user code (a vacant block holds no
//! value) but takes the allocator's slow path once a block. A sleeping
//! worker keeps what it holds until it wakes (no timer wakes it to
//! release): at most the floor and what the spawns of its last epoch
//! took. The epoch logic runs at the sleep too (not a release to the
//! floor at every sleep): a worker that sleeps between periodic bursts
//! keeps what each burst needs.
//!
//! Memory: at most `TASK_POOL_CAP` blocks of about 400 bytes (about
//! 400 MiB) per worker thread (the list itself is two words), and never
//! more than the floor and what the thread's spawns of the last three
//! epochs could use; at rest (no spawns for two epochs, the worker
//! awake), the floor: about 400 KiB. Everything is freed with the
//! thread.

use std::cell::Cell;
use std::sync::Arc;

use scx_rt_sys::in_place::{Vacant, VacantStack};

use crate::consts::{TASK_POOL_CAP, TASK_POOL_EPOCH_NS, TASK_POOL_FLOOR};
use crate::task::{Task, TaskRef};

/// The counts of one thread's list (module docs): plain cells (no
/// destructor, so no lazy registration to check), read before `FREE` is
/// touched, so that a spawn with nothing kept costs a load.
struct Marks {
    /// How many blocks `FREE` holds.
    kept: Cell<usize>,
    /// The fewest blocks `FREE` held since the epoch began.
    low: Cell<usize>,
    /// How many blocks `FREE` may hold (protocol step 1): `base`, plus one
    /// for each spawn in this epoch.
    limit: Cell<usize>,
    /// `limit` when the epoch began: the floor plus the spawns of the two
    /// epochs before.
    base: Cell<usize>,
    /// The spawns of the epoch before.
    prev: Cell<usize>,
    /// Blocks the last epoch's end left to free (protocol steps 3 and 4).
    owed: Cell<usize>,
    /// The clock reading at which this epoch ends.
    end: Cell<u64>,
}

impl Marks {
    /// Whether the list may take another block (protocol step 1).
    #[inline(always)]
    fn has_room(&self) -> bool {
        let k = self.kept.get();
        k < self.limit.get() && k < TASK_POOL_CAP
    }
}

std::thread_local! {
    /// The kept blocks, the most recently kept on top.
    static FREE: VacantStack<Task> = const { VacantStack::new() };
    /// Their counts.
    static MARKS: Marks = const {
        Marks {
            kept: Cell::new(0),
            low: Cell::new(0),
            limit: Cell::new(TASK_POOL_FLOOR),
            base: Cell::new(TASK_POOL_FLOOR),
            prev: Cell::new(0),
            owed: Cell::new(0),
            end: Cell::new(0),
        }
    };
}

/// `p`, an exited task, is dropped on the calling worker thread: keeps its
/// block for a later spawn when `p` is its last handle and the list has
/// room (module docs), else drops `p` as usual.
#[inline]
pub(crate) fn retire(p: TaskRef) {
    // A full list keeps nothing: `p` is dropped as usual (no vacating
    // compare-and-swap, no push).
    if Arc::strong_count(&p) != 1 || !has_room() {
        return;
    }
    // The task is dropped here, before the list is touched: dropping a
    // result may run any code, a spawn included.
    let Ok(v) = Vacant::try_vacate(p) else {
        return;
    };
    // Checked again: that drop may have retired blocks.
    if has_room() {
        let _ = FREE.try_with(|f| {
            f.push(v);
            MARKS.with(|m| m.kept.set(f.len()));
        });
    }
}

/// Whether the calling thread's list has room for another block (a
/// full one makes [`retire`] a plain drop).
#[inline]
fn has_room() -> bool {
    MARKS.with(Marks::has_room)
}

/// A block kept by the calling thread, if any; counts a spawn.
#[inline]
pub(crate) fn take() -> Option<Vacant<Task>> {
    let kept = MARKS.with(|m| {
        m.limit.set(m.limit.get().wrapping_add(1));
        m.kept.get()
    });
    if kept == 0 {
        return None;
    }
    pop()
}

/// [`take`] from a list that is not empty.
#[inline]
fn pop() -> Option<Vacant<Task>> {
    FREE.try_with(|f| {
        let v = f.pop();
        let n = f.len();
        MARKS.with(|m| {
            m.kept.set(n);
            if n < m.low.get() {
                m.low.set(n);
            }
        });
        v
    })
    .ok()
    .flatten()
}

/// The calling worker thread's clock reads `now`: ends its list's epoch
/// if it is over and frees at most `batch` of the blocks owed (module
/// docs, protocol step 3). A compare or two when nothing is due. No lock
/// may be held. Returns whether blocks are still owed.
#[inline]
pub(crate) fn tick(now: u64, batch: usize) -> bool {
    if MARKS.with(|m| now >= m.end.get() || m.owed.get() != 0) {
        return tick_slow(now, batch);
    }
    false
}

#[cold]
#[inline(never)]
fn tick_slow(now: u64, batch: usize) -> bool {
    FREE.try_with(|f| {
        MARKS.with(|m| {
            if now >= m.end.get() {
                end_epoch(f, m, now);
            }
            pay(f, m, batch);
            m.owed.get() != 0
        })
    })
    .unwrap_or(false)
}

/// Protocol step 3 at clock reading `now`: what the ended epoch owes, and
/// a new epoch.
fn end_epoch(f: &VacantStack<Task>, m: &Marks, now: u64) {
    m.owed
        .set(m.low.get().min(f.len().saturating_sub(TASK_POOL_FLOOR)));
    m.low.set(f.len());
    let spawns = m.limit.get().wrapping_sub(m.base.get());
    let room = spawns.saturating_add(m.prev.replace(spawns));
    m.base.set(room.saturating_add(TASK_POOL_FLOOR));
    m.limit.set(m.base.get());
    m.end.set(now.saturating_add(TASK_POOL_EPOCH_NS));
}

/// Frees at most `batch` of the blocks owed, and only blocks no spawn
/// took since the epoch began, above the floor: a burst that starts
/// while a release is spread out keeps what it takes.
fn pay(f: &VacantStack<Task>, m: &Marks, batch: usize) {
    let n = m
        .owed
        .get()
        .min(m.low.get())
        .min(f.len().saturating_sub(TASK_POOL_FLOOR))
        .min(batch);
    // Which blocks go does not matter, only how many (they are alike):
    // those on top, whose memory the frees touch anyway, rather than a
    // walk down to the bottom ones.
    for _ in 0..n {
        drop(f.pop());
    }
    m.kept.set(f.len());
    m.low.set(m.low.get() - n);
    // Short of the batch: nothing more may go this epoch.
    m.owed.set(if n == batch { m.owed.get() - n } else { 0 });
}

/// How many blocks the calling thread keeps.
#[cfg(test)]
pub(crate) fn kept() -> usize {
    MARKS.with(|m| m.kept.get())
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;

    fn token(i: u64) -> TaskRef {
        Task::new_token(i)
    }

    /// Runs `f` on a fresh thread (an empty list, epoch end 0).
    fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    /// A thread that spawns nothing keeps the floor of what it retires:
    /// no hoarding of another thread's stream of tasks.
    #[test]
    fn a_thread_that_does_not_spawn_keeps_the_floor() {
        on_fresh_thread(|| {
            for i in 0..TASK_POOL_FLOOR as u64 + 100 {
                retire(token(i));
            }
            assert_eq!(kept(), TASK_POOL_FLOOR);
            assert!(!has_room());
        });
    }

    /// Spawns make room for as many blocks, across two epoch ends; the
    /// blocks no spawn took during a whole epoch go at its end, down to
    /// the floor, and those taken stay.
    #[test]
    fn spawns_make_room_and_untaken_blocks_decay_to_the_floor() {
        on_fresh_thread(|| {
            let e = TASK_POOL_EPOCH_NS;
            let t0 = 10 * e;
            tick(t0, usize::MAX);
            let n = 3 * TASK_POOL_FLOOR;
            // A burst: n spawns (nothing kept: all allocate), then its n
            // blocks come back.
            for _ in 0..n {
                assert!(take().is_none());
            }
            // The joins come in the next epoch and the one after: the
            // burst's spawns still count.
            tick(t0 + e, usize::MAX);
            for i in 0..n as u64 / 2 {
                retire(token(i));
            }
            tick(t0 + 2 * e, usize::MAX);
            for i in 0..n as u64 / 2 {
                retire(token(i));
            }
            assert_eq!(kept(), n, "the whole burst is kept");
            // And the floor beside it, no more.
            for i in 0..TASK_POOL_FLOOR as u64 + 1 {
                retire(token(i));
            }
            assert_eq!(kept(), n + TASK_POOL_FLOOR);
            assert!(!has_room());
            let n = n + TASK_POOL_FLOOR;
            // The epoch at t0 + 2e: the spawns of a smaller burst take
            // all but a quarter of the blocks, which come back.
            let m = n - n / 4;
            let taken: Vec<_> = (0..m).map(|_| take().unwrap()).collect();
            assert_eq!(kept(), n / 4);
            drop(taken);
            for i in 0..m as u64 {
                retire(token(i));
            }
            assert_eq!(kept(), n);
            tick(t0 + 3 * e - 1, usize::MAX);
            assert_eq!(kept(), n, "the epoch is not over");
            // The quarter no spawn took goes; the blocks taken stay.
            tick(t0 + 3 * e, usize::MAX);
            assert_eq!(kept(), m);
            // An epoch with no spawns: all but the floor go.
            tick(t0 + 4 * e, usize::MAX);
            assert_eq!(kept(), TASK_POOL_FLOOR);
            tick(t0 + 5 * e, usize::MAX);
            assert_eq!(kept(), TASK_POOL_FLOOR, "the floor stays");
            // The spawns of two epochs ago no longer make room.
            assert!(!has_room());
            retire(token(0));
            assert_eq!(kept(), TASK_POOL_FLOOR);
        });
    }

    /// Starts the first epoch at one epoch's clock reading, then a burst of
    /// `n` spawns on an empty list (each allocates) whose `n` tasks all
    /// retire: the list holds `n` blocks, and `low` stayed 0.
    fn burst_in_first_epoch(n: usize) {
        tick(TASK_POOL_EPOCH_NS, usize::MAX);
        for _ in 0..n {
            assert!(take().is_none());
        }
        for i in 0..n as u64 {
            retire(token(i));
        }
    }

    /// A busy worker's ticks free what an epoch owes a batch at a time;
    /// a burst in the meantime keeps the blocks it takes.
    #[test]
    fn the_release_is_paid_in_batches_and_spares_a_new_burst() {
        on_fresh_thread(|| {
            let e = TASK_POOL_EPOCH_NS;
            let n = 3 * TASK_POOL_FLOOR;
            burst_in_first_epoch(n);
            assert!(!tick(2 * e, 100), "nothing owed");
            assert_eq!(kept(), n, "low was 0: nothing owed");
            // No spawn for an epoch: n - floor owed, 100 a tick.
            assert!(tick(3 * e, 100), "more owed");
            assert_eq!(kept(), n - 100);
            assert!(tick(3 * e + 1, 100));
            assert_eq!(kept(), n - 200);
            // A burst takes all but 500, then gives them back: only those
            // 500 may still go.
            let left = 500;
            let taken: Vec<_> = (0..n - 200 - left).map(|_| take().unwrap()).collect();
            drop(taken);
            for i in 0..(n - 200 - left) as u64 {
                retire(token(i));
            }
            assert_eq!(kept(), n - 200);
            for k in 1..=5 {
                tick(3 * e + 1 + k, 100);
                assert_eq!(kept(), n - 200 - 100 * k as usize);
            }
            assert!(!tick(3 * e + 10, 100), "the last batch was short");
            assert_eq!(kept(), n - 200 - left, "nothing more owed");
        });
    }

    /// A taken block lowers the mark only below it: blocks retired during
    /// the epoch above the mark stay at its end.
    #[test]
    fn blocks_retired_during_an_epoch_stay_at_its_end() {
        on_fresh_thread(|| {
            let e = TASK_POOL_EPOCH_NS;
            let n = 2 * TASK_POOL_FLOOR;
            burst_in_first_epoch(n);
            // `low` was 0 all epoch: nothing goes.
            tick(2 * e, usize::MAX);
            assert_eq!(kept(), n);
        });
    }
}
