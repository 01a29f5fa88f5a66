//! The scheduling core: the runtime state, the enqueue path, balance with
//! sched_ext's exact decision order, pick/put, the dispatch buffer,
//! consume, the cross-CPU transfer protocol, bypass, and the scheduling
//! step a worker runs.
//!
//! Function names follow `kernel/sched/ext.c` so a reader can hold the two
//! side by side; the code is ours. Each function states the locks it expects
//! on entry and holds on return. "rq" below is always a guard of the rq lock
//! of the CPU named `cpu` unless said otherwise.
//!
//! # The step a CPU runs to pick its next task
//!
//! ```text
//! schedule(prev, why)                         rq locked for the whole step,
//!   charge prev's runtime (update_curr)       except inside hand-offs
//!   why = block: dequeue prev (SLEEP)
//!   balance: IN_BALANCE set
//!     1 prev runnable with slice left -> keep (BAL_KEEP)
//!     2 local DSQ non-empty
//!     3 consume the global DSQ
//!     4 up to 32 x { ops.dispatch; flush; keep prev?; local?; global? }
//!       exhausted -> self-kick
//!     5 prev still runnable and no ENQ_LAST -> keep
//!   IN_BALANCE cleared (its one exit)
//!   pick: prev if kept, else head of the local DSQ (zero slice -> refill)
//!   put_prev (stopping; head of local DSQ if slice left, else enqueue)
//!   set_next (unlink, running)
//! ```
//!
//! # Files, bottom to top
//!
//! | file | holds |
//! |---|---|
//! | `clock`, `errctx`, `current`, `timer_word`, `idle_mask`, `live`, `fork_lock` | leaves: time, the error context, who the calling thread is, the slice timer's word, the idle mask, the per-CPU live-task count, the fork lock (per-CPU readers) |
//! | `shared` | the runtime state every CPU shares (`Shared`) |
//! | `slot`, `error` | which scheduler an rq calls; errors and how callbacks are called |
//! | `user_dsqs` | the user-DSQ table: create, destroy, lookup by id |
//! | `dsqs` | DSQ ids, insertion into local and non-local DSQs, runnable-set bookkeeping |
//! | `dispatch` | the dispatch buffer, consume (one task, or a batch with one hold of each source rq's lock), cross-CPU transfers |
//! | `dsq_iter` | DSQ iterators and `dsq_move` (moving a task a walk saw, with its lost-task checks) |
//! | `enqueue`, `dequeue` | the enqueue path and wake-up; dequeue and a task's exit from a scheduler |
//! | `curr` | `rq.curr`, the uncounted name of the running task, and why it is safe |
//! | `balance`, `pick` | balance; pick, put prev, set next |
//! | `step` | the scheduling step a worker (and a loom model) runs |
//! | `migrate`, `bypass` | hotplug moves; bypass mode |
//! | `events` | the event counters (`scx_bpf_events`): per CPU, counted under the rq lock, summed on read |
//! | `release` | higher-class work (`Runtime::run_on_cpu`), `cpu_release`/`cpu_acquire`, `reenqueue_local` |
//! | `irq` | the safe point between two tasks: interrupt work, the wake list, the `need_resched` clear |
//! | `helpers`, `compat` | the `scx_bpf_*` helpers on the callback contexts; the names before Linux 6.13, deprecated |

pub(crate) mod balance;
pub(crate) mod bypass;
pub(crate) mod clock;
pub(crate) mod compat;
pub(crate) mod curr;
pub(crate) mod current;
pub(crate) mod dequeue;
pub(crate) mod dispatch;
pub(crate) mod dsq_iter;
pub(crate) mod dsqs;
pub(crate) mod enqueue;
pub(crate) mod errctx;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod fork_lock;
pub(crate) mod has_op;
pub(crate) mod helpers;
pub(crate) mod idle_mask;
pub(crate) mod irq;
pub(crate) mod live;
pub(crate) mod migrate;
pub(crate) mod pick;
pub(crate) mod release;
pub(crate) mod shared;
pub(crate) mod slot;
pub(crate) mod step;
#[cfg(not(scx_rt_loom))]
pub(crate) mod timer_word;
pub(crate) mod user_dsqs;
