//! Green I/O: file descriptors whose blocking calls park only the calling
//! task, with readiness from a per-CPU epoll reactor behind the doorbell.
//!
//! [`GreenFd`] wraps any non-blocking fd (`AsFd`); `scx_rt::net` builds
//! `TcpListener`, `TcpStream` and `UdpSocket` on it. Inside a task, a call
//! that would block suspends the task until the fd is ready (or its
//! timeout passes); the CPU runs other tasks meanwhile. Outside a task
//! (a plain thread, `spawn_blocking`), the same call blocks the thread in
//! `poll(2)`, as std's blocking socket would.
//!
//! # Protocol
//!
//! ```text
//! task (any CPU)                          reactor (whoever collects, below)
//! T1 seq := source.seq;                   R1 epoll_wait -> (token, bits)
//!    if !(ready & dir): go to T3          R2 lock source; ready |= bits;
//! T2 op()  -> WouldBlock                     seq += 1; take the waiters
//!    (byte stream, 0 < moved < asked:     R3 unlock; wake each waiter
//!     lock; if seq unchanged and dir         (select_cpu/enqueue, TTWU)
//!     not no_drain: ready &= !dir;
//!     unlock; return)
//! T3 lock source;
//!    if seq unchanged: ready &= !dir
//!    if ready & dir: unlock, retry at T1
//!    else list self as a waiter; unlock
//! T4 park; on wake-up retry at T1
//! ```
//!
//! Why no readiness is lost: an fd is registered once, edge-triggered, for
//! reading and writing (`EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP |
//! EPOLLET`). Every edge after T2's failed attempt (or after T1, when T2
//! was skipped) bumps `seq` under the source lock (R2). If it came before T3, T3 sees `seq` moved and keeps the bit: the task
//! retries instead of parking. If after, T3 cleared the bit and listed the
//! task before unlocking, so R2 finds the task listed and R3 wakes it. A
//! wake-up that reaches the task before it parks is kept by the task's wake
//! state (`NOTIFIED`, see `task`), so T4 returns at once. The reactor never
//! clears a bit: only the task that saw `WouldBlock` (or a short transfer,
//! below) does, and only when no edge came since it read `seq` (so a second task's success cannot hide an
//! edge from a first one; both retry).
//!
//! A short transfer on a byte stream (a TCP read that returned some bytes
//! but fewer than the buffer holds, a write that took some but not all)
//! means the socket's queue ran empty (or its room full) during the call,
//! exactly what a `WouldBlock` would have told the next call; so T2 clears
//! the bit as T3 would, under the same `seq` rule, and the next call waits
//! at T3 without the system call that would only find `WouldBlock` (tokio
//! does the same). Any byte that arrives after the queue ran empty makes a
//! new edge, which sets the bit again. Two cases break "short means
//! empty", and the source keeps a `no_drain` mark for them, set by the
//! reactor and never cleared: a hang-up or error was reported (the next
//! call returns end of file or the error at once, and no further edge
//! would come), and urgent data (`EPOLLPRI`: a read stops short at the
//! urgent mark with data behind it). End of file itself (0 bytes) never
//! clears the bit. Datagram sockets and `GreenFd`s made by users are not
//! byte streams: a short datagram proves nothing about the next.
//!
//! # One reactor per CPU
//!
//! Each CPU of a runtime has its own epoll instance, made on first use,
//! with the CPU's doorbell eventfd in it. A source registers with the
//! reactor of the CPU its first blocking call runs on, for the source's
//! life. Tasks are bound to the CPU they first ran on unless the runtime
//! lets them migrate (`Builder::allow_migration`), so in the default
//! runtime the CPU that sees a task's readiness is the CPU the task runs
//! on. The alternative, one epoll per runtime, would let any idle CPU take
//! any event, at the price of a lock (or a poller role) every CPU contends
//! for on every idle transition; with bound tasks it buys nothing.
//!
//! # Who collects what
//!
//! Each worker collects through its own event buffer (`look::Looker`), so
//! several threads may be in `epoll_wait` on one instance at once; the
//! kernel hands each edge-triggered event to exactly one of them, and R2
//! and R3 above run on whichever thread got it (the source lock orders
//! them with T1-T3 as before; the token table's generations turn an event
//! for a source removed meanwhile into nothing).
//!
//! - CPU `c`'s worker collects `c`'s reactor (the three looks below), and
//!   is the only thread that *blocks* in `c`'s epoll and the only one that
//!   reads `c`'s eventfd (a sibling that sees the eventfd's token only
//!   marks it unread, `Reactor::collect`).
//! - In a runtime whose tasks may migrate (and more than one CPU), a CPU
//!   with nothing to run also collects its siblings', without blocking:
//!   one sibling (in rotation, so a look stays one system call whatever
//!   the number of CPUs) in the look before idling, and every other peek
//!   of its idle poll. The tasks it finds are woken from this CPU, so the
//!   policy's `select_cpu` sees this CPU as the waker: a connection whose
//!   registering CPU is held by a CPU-bound task (which takes no step, and
//!   so no look, until its slice ends), or by the host (a worker thread
//!   that waits for a vCPU), runs on the idle CPU instead of waiting
//!   (Go's and tokio's idle workers take any ready connection the same
//!   way). A bound task could run nowhere else, so without migration no
//!   CPU collects another's readiness: it would only be handed back.
//!
//! A CPU in its epoll *sleep* watches only its own reactor (a sibling's
//! readiness does not end it; nesting epolls would wake every CPU for
//! every event). So a helper finds a held sibling's readiness while it
//! polls, or when it next goes idle, not while it sleeps.
//!
//! The wake-ups of the looks a CPU takes with nothing to run (before
//! idling, the idle peeks, the sleep) carry `WakeFlags::SYNC` beside
//! `TTWU`: the waker, this CPU, is about to go idle, which is what the
//! flag tells a policy (`select_cpu_dfl` then places a task that may run
//! here on this CPU when its local DSQ is empty). In the kernel an I/O
//! wake-up comes from an interrupt and carries no such hint; here it comes
//! from a CPU that is known to be free, and saying so lets every policy
//! use it. The busy CPU's periodic look wakes with `TTWU` alone.
//!
//! Who waits where. CPU `c`'s worker looks into `c`'s epoll in three
//! places, each without blocking except the last:
//!
//! 1. Busy: after a scheduling step, if `consts::IO_POLL_INTERVAL_NS`
//!    (200 µs) passed since its last look (Go's `sysmon` netpoll; one
//!    compare per step otherwise). Steps come at every switch, so CPU-bound
//!    tasks delay readiness by at most that interval plus the slice of the
//!    task running when it arrived (a task that never reaches a switch
//!    point is stopped at its slice's end).
//!    An epoll sleep that returned (below) or a look going idle that found
//!    events (2) was such a look: the next busy look is due an interval
//!    after it, not at the first step (which put a second, empty
//!    `epoll_wait` between an I/O wake-up and its task).
//! 2. Going idle: once before the idle poll (Go's `findrunnable`), so that
//!    readiness that came while the CPU was busy needs no spin.
//! 3. Polling idle (`Cpu::idle_wait_with`, state `POLLING`): every
//!    `consts::IO_IDLE_PEEK_NS` (2 µs), at the clock read that ends a spin
//!    batch, so readiness that arrives during the idle poll (50 µs by
//!    default, `Builder::idle_poll`) is found within ~2 µs instead of when
//!    the poll ends. The interval, from figures on the 2-vCPU EPYC: a
//!    non-blocking `epoll_wait` costs 0.57–0.98 µs and a spin batch (64
//!    `PAUSE`s) 2.4–2.8 µs, so there the peek comes once per batch and
//!    takes at most a fifth of the poll; a kick that lands during the
//!    peek is seen when it returns, under a µs later. On cores with a
//!    short `PAUSE` (tens of cycles, older Intel) a batch is ~0.2 µs, and
//!    peeking at every batch would spend most of the poll in the system
//!    call: the interval is time, not batches. Found events end the poll;
//!    the worker handles them as `RUNNING`.
//!
//! Then the CPU sleeps in `epoll_wait` instead of `futex_wait`
//! (`SLEEPING_IO`, see `doorbell`): an I/O event, a kick or a wake-up (the
//! eventfd) and the earliest task timer (the timeout) each end the sleep.
//! The events are handled after the CPU is `RUNNING` again, so that the
//! wake-ups they make (usually for tasks bound to this very CPU) do not
//! ring its own doorbell. `CpuStats` counts the tasks woken from the idle
//! peeks (`io_wakeups_polling`) and from the sleep (`io_wakeups_slept`)
//! apart from the total. A CPU with no source registered pays nothing: its
//! idle poll makes no peek (`Reactors::active` is one load), and its idle
//! sleep stays on the futex.
//!
//! Shutdown: `Runtime::shutdown` closes every source (`Reactors::close`);
//! waiting tasks wake with an error (`ErrorKind::NotConnected`, "runtime
//! shut down"), so a task blocked on a read can finish instead of keeping
//! shutdown waiting forever.

pub(crate) mod look;
pub(crate) mod reactor;
pub(crate) mod source;

mod green_fd;

pub use green_fd::GreenFd;
