//! Fibers: stackful green contexts, the execution vehicle of a green task.
//!
//! A [`Fiber`] wraps a body closure. It starts *not started* and owns no
//! stack: the stack is taken from a [`StackPool`] at the first
//! [`Fiber::resume`] (lazy allocation, so a million queued-but-never-run
//! tasks cost no stacks), and goes back to the pool the moment the body
//! returns.
//!
//! ```text
//!  NotStarted(body) --resume--> Running(coroutine) --body returns--> Finished
//!        |   ^                     |      ^
//!        +---+ Err(no stack)       +------+ suspend(code) / resume
//! ```
//!
//! # How `suspend` finds its fiber
//!
//! The body does not receive a handle; it calls the free function
//! [`suspend`]. Each OS thread has one thread-local *context*: a raw pointer
//! to the corosensei `Yielder` of the fiber currently running on that thread
//! (null when none). The protocol:
//!
//! 1. [`Fiber::resume`] saves the thread's context, switches in, and restores
//!    the saved value when the switch returns (suspend, finish or panic), so
//!    nesting (a fiber resuming another fiber) works.
//! 2. The body wrapper stores its `Yielder` into the context on first entry.
//! 3. [`suspend`] reads the context, switches out through that `Yielder`,
//!    and — because it may come back on a *different* OS thread, whose
//!    context was just saved by that thread's `resume` — stores its `Yielder`
//!    into the (new) thread's context again after the switch.
//!
//! # Migration and thread-locals
//!
//! After `suspend` returns, the fiber may be running on another OS thread.
//! The compiler assumes a function never changes threads, so it may compute
//! a thread-local's address once and reuse it across the switch if the
//! accesses are inlined into the same function. Therefore [`suspend`],
//! [`in_fiber`] and the context accessors are `#[inline(never)]`, each
//! computes the TLS address afresh, and no reference to a thread-local is
//! ever held across a switch. Bodies that migrate must follow the same rule
//! (the runtime documents its position on thread-locals in task code).
//!
//! # Stack overflow
//!
//! Around every switch into a fiber (and around the forced unwind of a
//! dropped one), `resume` records the fiber's guard range and stack size in
//! a thread-local that the `SIGSEGV` handler of [`crate::sigsegv`] reads: a
//! fault in that guard is reported as an overflow of the running fiber
//! (named by the task label the runtime sets) before the process dies.

use std::any::TypeId;
use std::cell::Cell;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use corosensei::{Coroutine, CoroutineResult};

use crate::sigsegv::RunningStack;
use crate::stack::{Stack, StackPool};

type Yielder = corosensei::Yielder<(), usize>;
type Co = Coroutine<(), usize, (), Stack>;

/// What the body of a fiber is.
pub type Body = Box<dyn FnOnce() + Send + 'static>;

/// The per-thread fiber context (see the module doc).
#[derive(Clone, Copy)]
struct Ctx {
    /// Yielder of the fiber running on this thread; null outside fibers.
    yielder: *const Yielder,
    /// True while a dropped, suspended fiber is being unwound on this thread.
    dropping: bool,
    /// What the resumer lent the running fiber ([`Fiber::resume_with`]):
    /// a pointer to a `T` that outlives the resume, and `T`'s type.
    data: *const (),
    data_ty: Option<TypeId>,
}

const NO_CTX: Ctx = Ctx {
    yielder: std::ptr::null(),
    dropping: false,
    data: std::ptr::null(),
    data_ty: None,
};

thread_local! {
    static CTX: Cell<Ctx> = const { Cell::new(NO_CTX) };
}

/// Reads this thread's context. Never inlined: see "Migration" above.
#[inline(never)]
fn ctx() -> Ctx {
    CTX.with(|c| c.get())
}

/// Replaces this thread's context, returning the old one. Never inlined: see
/// "Migration" above.
#[inline(never)]
fn swap_ctx(new: Ctx) -> Ctx {
    CTX.with(|c| c.replace(new))
}

/// Publishes the running fiber's yielder on this thread, keeping the data
/// its resumer lent (steps 2 and 3 of the protocol). Never inlined.
#[inline(never)]
fn set_yielder(yielder: *const Yielder) {
    CTX.with(|c| {
        let mut v = c.get();
        v.yielder = yielder;
        v.dropping = false;
        c.set(v);
    })
}

/// Restores a saved context on drop (also when unwinding).
struct RestoreCtx(Ctx);

impl Drop for RestoreCtx {
    fn drop(&mut self) {
        swap_ctx(self.0);
    }
}

enum State {
    NotStarted(Body),
    /// The coroutine, and its stack's guard range and usable size (for
    /// overflow reports, `crate::sigsegv`).
    Running(Co, StackSpan),
    Finished,
}

/// Where a running fiber's stack is, for [`crate::sigsegv`].
struct StackSpan {
    guard: std::ops::Range<usize>,
    size: usize,
}

/// A not-yet-started or suspended green context.
pub struct Fiber {
    state: State,
}

// SAFETY: corosensei coroutines are `!Send` because a suspended body may
// hold thread-bound data (an `Rc`, a `MutexGuard`, a reference into a
// thread-local) on its stack. The body itself is `Send` by construction
// (`Body: Send`), so a fiber that has never run is as `Send` as its
// closure. For a started fiber, scx-rt's position (documented with its task
// type) is that it only resumes a fiber on a different OS thread than last
// time when the fiber never ran, or when the task's owner opted in to
// migration with an `unsafe` promise that its body keeps no thread-bound
// data across suspension points. The Fiber machinery itself makes no thread
// assumption: the stack is plain memory, and the thread-local context is
// re-read after every switch by non-inlined accessors (module doc,
// "Migration"), never cached across one.
unsafe impl Send for Fiber {}

/// Outcome of [`Fiber::resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The body called [`suspend`] with this code.
    Suspended(usize),
    /// The body returned; its stack is already back in the pool.
    Finished,
}

impl Fiber {
    /// A fiber that will run `body`. Allocates no stack.
    pub fn new(body: Body) -> Fiber {
        Fiber {
            state: State::NotStarted(body),
        }
    }

    /// Runs the body until it calls [`suspend`]`(code)` (=>
    /// `Ok(Resumed::Suspended(code))`) or returns (=> `Ok(Resumed::Finished)`,
    /// the stack already back in its pool).
    ///
    /// The first resume takes a stack from `pool`; `Err` only if that fails,
    /// and the fiber then stays not started and may be resumed later. Later
    /// resumes ignore `pool` (the stack always returns to the pool it came
    /// from).
    ///
    /// A panic escaping the body propagates out of `resume`; the fiber is
    /// then finished and its stack returned.
    ///
    /// # Panics
    ///
    /// If the fiber has already finished.
    pub fn resume(&mut self, pool: &StackPool) -> io::Result<Resumed> {
        self.resume_as(pool, crate::sigsegv::current_task())
    }

    /// [`Fiber::resume`], labelling the fiber as task `label` for
    /// stack-overflow reports while it runs (the label of
    /// [`crate::sigsegv::set_current_task`], set and restored here in the
    /// same thread-local access as the running stack).
    pub fn resume_as(&mut self, pool: &StackPool, label: u64) -> io::Result<Resumed> {
        self.resume_inner(pool, label, std::ptr::null(), None)
    }

    /// [`Fiber::resume_as`], lending `data` to the fiber while it runs: code
    /// inside the fiber gets a clone with [`lent`] (after a suspension,
    /// whatever the next resumer lent). The runtime lends the running task
    /// this way, so a task finds itself with one thread-local read.
    pub fn resume_with<T: Send + Sync + 'static>(
        &mut self,
        pool: &StackPool,
        label: u64,
        data: &Arc<T>,
    ) -> io::Result<Resumed> {
        self.resume_inner(
            pool,
            label,
            data as *const Arc<T> as *const (),
            Some(TypeId::of::<Arc<T>>()),
        )
    }

    fn resume_inner(
        &mut self,
        pool: &StackPool,
        label: u64,
        data: *const (),
        data_ty: Option<TypeId>,
    ) -> io::Result<Resumed> {
        match self.state {
            State::Finished => panic!("resumed a finished fiber"),
            State::NotStarted(_) => {
                let stack = pool.get()?;
                let span = StackSpan {
                    guard: stack.guard_range(),
                    size: stack.size(),
                };
                let State::NotStarted(body) = std::mem::replace(&mut self.state, State::Finished)
                else {
                    unreachable!()
                };
                let co = Co::with_stack(stack, move |yielder: &Yielder, ()| {
                    // Step 2 of the protocol: publish our yielder on the
                    // thread that runs us first.
                    set_yielder(yielder);
                    body();
                });
                self.state = State::Running(co, span);
            }
            State::Running(..) => {}
        }
        let State::Running(co, span) = &mut self.state else {
            unreachable!()
        };
        // Step 1: save this thread's context and lend the data; the fiber
        // sets its yielder.
        let restore = RestoreCtx(swap_ctx(Ctx {
            yielder: std::ptr::null(),
            dropping: false,
            data,
            data_ty,
        }));
        // Name this stack as the running one if it overflows.
        let running = RunningStack::enter(&span.guard, span.size, label);
        let result = catch_unwind(AssertUnwindSafe(|| co.resume(())));
        drop(running);
        drop(restore);
        match result {
            Ok(CoroutineResult::Yield(code)) => Ok(Resumed::Suspended(code)),
            Ok(CoroutineResult::Return(())) => {
                // Dropping the finished coroutine drops its `Stack`, which
                // returns it to its pool.
                self.state = State::Finished;
                Ok(Resumed::Finished)
            }
            Err(payload) => {
                // A panic escaped the body: the coroutine has terminated.
                self.state = State::Finished;
                resume_unwind(payload)
            }
        }
    }

    /// True once the fiber has been resumed at least once.
    pub fn is_started(&self) -> bool {
        !matches!(self.state, State::NotStarted(_))
    }

    /// True once the body has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

impl Drop for Fiber {
    /// Dropping a suspended fiber unwinds its stack on the current thread
    /// (running the destructors of the body's locals), then returns the
    /// stack to its pool. While that runs, [`in_fiber`] is false, [`suspend`]
    /// panics, and [`unwinding_for_drop`] is true: a body that catches panics
    /// must re-raise (`resume_unwind`) what it catches then, or corosensei
    /// panics because its unwind was swallowed.
    fn drop(&mut self) {
        if let State::Running(co, span) = &mut self.state {
            let _restore = RestoreCtx(swap_ctx(Ctx {
                yielder: std::ptr::null(),
                dropping: true,
                data: std::ptr::null(),
                data_ty: None,
            }));
            let _running =
                RunningStack::enter(&span.guard, span.size, crate::sigsegv::current_task());
            co.force_unwind();
        }
    }
}

impl std::fmt::Debug for Fiber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::NotStarted(_) => "not started",
            State::Running(..) => "suspended",
            State::Finished => "finished",
        };
        f.debug_struct("Fiber").field("state", &state).finish()
    }
}

/// Called from inside a running fiber body: switches back to whoever called
/// [`Fiber::resume`], passing `code`. Returns when the fiber is resumed
/// again, possibly on another OS thread.
///
/// Never inlined, and holds no thread-local reference across the switch
/// (module doc, "Migration").
///
/// # Panics
///
/// If the calling code is not running inside a fiber.
#[inline(never)]
pub fn suspend(code: usize) {
    let yielder = ctx().yielder;
    assert!(!yielder.is_null(), "suspend called outside a fiber");
    // SAFETY: a non-null context pointer is only ever the Yielder of the
    // fiber running on this thread right now (module doc, protocol steps
    // 1-3): it lives at a fixed place on that fiber's stack for as long as
    // the body runs, and we are that body (or code it called), so it is
    // valid, and suspending through it switches out of exactly this fiber.
    unsafe { (*yielder).suspend(code) };
    // Step 3: we may be on another thread now; publish our yielder there.
    // `set_yielder` recomputes the TLS address (never inlined).
    set_yielder(yielder);
}

/// [`suspend`] if the calling code runs inside a fiber body (then `true`
/// once resumed); `false` at once otherwise. One thread-local read for the
/// check and the switch together.
#[inline(never)]
pub fn try_suspend(code: usize) -> bool {
    let yielder = ctx().yielder;
    if yielder.is_null() {
        return false;
    }
    // SAFETY: as in `suspend`: a non-null context pointer is the Yielder of
    // the fiber running on this thread, which is us.
    unsafe { (*yielder).suspend(code) };
    set_yielder(yielder);
    true
}

/// A clone of the `Arc<T>` the resumer of the running fiber lent it
/// ([`Fiber::resume_with`]), if the calling code runs inside a fiber that
/// was lent one; `None` otherwise. Never inlined (module doc, "Migration").
#[inline(never)]
pub fn lent<T: Send + Sync + 'static>() -> Option<Arc<T>> {
    let c = ctx();
    if c.yielder.is_null() || c.data_ty != Some(TypeId::of::<Arc<T>>()) || c.data.is_null() {
        return None;
    }
    // SAFETY: `data` was set by the `resume_with::<T>` that runs this fiber
    // on this thread now (the type is checked above): it points to an
    // `Arc<T>` borrowed by that call until the fiber suspends or returns.
    // The fiber is running (this code is it), and cloning an `Arc` cannot
    // suspend it, so the borrow outlives this read.
    Some(Arc::clone(unsafe { &*(c.data as *const Arc<T>) }))
}

/// True when the calling code runs inside a fiber body. Never inlined (module
/// doc, "Migration").
#[inline(never)]
pub fn in_fiber() -> bool {
    !ctx().yielder.is_null()
}

/// True while a dropped, suspended fiber is being unwound on this thread: a
/// panic caught then is corosensei's forced unwind and must be re-raised.
#[inline(never)]
pub fn unwinding_for_drop() -> bool {
    ctx().dropping
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigsegv::{classify, guard_at, set_current_task, GuardHit};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn pool() -> StackPool {
        StackPool::new(64 * 1024)
    }

    /// OS thread id without touching thread-locals (safe across migration).
    #[inline(never)]
    fn os_tid() -> libc::c_long {
        // SAFETY: gettid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) }
    }

    #[test]
    fn fiber_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Fiber>();
    }

    #[test]
    fn suspend_codes_in_order() {
        let pool = pool();
        let mut f = Fiber::new(Box::new(|| {
            assert!(in_fiber());
            for i in 1..=5 {
                suspend(i * 10);
            }
        }));
        assert!(!f.is_started());
        for i in 1..=5 {
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(i * 10));
            assert!(f.is_started());
            assert!(!f.is_finished());
            assert!(!in_fiber());
        }
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
        assert!(f.is_finished());
    }

    #[test]
    fn lazy_allocation_and_release() {
        let pool = pool();
        let mut f = Fiber::new(Box::new(|| suspend(1)));
        assert_eq!(pool.allocated(), 0);
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(1));
        assert_eq!(pool.allocated(), 1);
        assert_eq!(pool.cached(), 0);
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
        assert_eq!(pool.cached(), 1, "finished fiber returns its stack");
        // The next fiber reuses it.
        let mut g = Fiber::new(Box::new(|| {}));
        assert_eq!(g.resume(&pool).unwrap(), Resumed::Finished);
        assert_eq!(pool.allocated(), 1);
    }

    #[test]
    #[should_panic(expected = "resumed a finished fiber")]
    fn resume_finished_panics() {
        let pool = pool();
        let mut f = Fiber::new(Box::new(|| {}));
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
        let _ = f.resume(&pool);
    }

    #[test]
    fn stack_allocation_failure_keeps_fiber_unstarted() {
        // 64 slots of 2^44 bytes exceed any user address space.
        let huge = StackPool::new(1 << 44);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let mut f = Fiber::new(Box::new(move || {
            r.fetch_add(1, Ordering::Relaxed);
        }));
        assert!(f.resume(&huge).is_err());
        assert!(!f.is_started());
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!(f.resume(&pool()).unwrap(), Resumed::Finished);
        assert_eq!(ran.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn migrates_between_threads() {
        let pool = Arc::new(pool());
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mut f = Fiber::new(Box::new(move || {
            let before = os_tid();
            suspend(1);
            let after = os_tid();
            assert!(in_fiber());
            l.lock().unwrap().push((before, after));
            suspend(2);
            assert!(in_fiber());
        }));
        let t1 = os_tid();
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(1));
        let p = pool.clone();
        let t2 = std::thread::spawn(move || {
            assert!(!in_fiber());
            assert_eq!(f.resume(&p).unwrap(), Resumed::Suspended(2));
            assert!(!in_fiber());
            assert_eq!(f.resume(&p).unwrap(), Resumed::Finished);
            os_tid()
        })
        .join()
        .unwrap();
        assert_ne!(t1, t2);
        assert_eq!(*log.lock().unwrap(), vec![(t1, t2)]);
        assert_eq!(pool.cached(), 1);
    }

    #[test]
    fn panic_propagates_and_releases_stack() {
        let pool = pool();
        let mut f = Fiber::new(Box::new(|| {
            suspend(3);
            panic!("boom");
        }));
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(3));
        let err = catch_unwind(AssertUnwindSafe(|| f.resume(&pool))).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
        assert!(f.is_finished());
        assert!(!in_fiber(), "context restored after a panic");
        assert_eq!(pool.cached(), 1);
    }

    #[test]
    fn suspend_outside_fiber_panics() {
        assert!(!in_fiber());
        let err = catch_unwind(|| suspend(1)).unwrap_err();
        assert!(err
            .downcast_ref::<&str>()
            .is_some_and(|m| m.contains("outside a fiber")));
    }

    #[test]
    fn nested_fibers() {
        let pool = Arc::new(pool());
        let p = pool.clone();
        let mut outer = Fiber::new(Box::new(move || {
            let mut inner = Fiber::new(Box::new(|| {
                suspend(100);
                suspend(101);
            }));
            assert_eq!(inner.resume(&p).unwrap(), Resumed::Suspended(100));
            assert!(in_fiber());
            suspend(1); // suspends the outer fiber, not the inner one
            assert_eq!(inner.resume(&p).unwrap(), Resumed::Suspended(101));
            suspend(2);
            assert_eq!(inner.resume(&p).unwrap(), Resumed::Finished);
        }));
        assert_eq!(outer.resume(&pool).unwrap(), Resumed::Suspended(1));
        assert_eq!(outer.resume(&pool).unwrap(), Resumed::Suspended(2));
        assert_eq!(outer.resume(&pool).unwrap(), Resumed::Finished);
        assert!(!in_fiber());
        assert_eq!(pool.allocated(), 2);
        assert_eq!(pool.cached(), 2);
    }

    #[test]
    fn drop_suspended_fiber_unwinds_and_releases() {
        struct SetOnDrop(Arc<AtomicUsize>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                assert!(unwinding_for_drop());
                assert!(!in_fiber());
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let pool = pool();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let mut f = Fiber::new(Box::new(move || {
            let _guard = SetOnDrop(d);
            suspend(1);
            unreachable!();
        }));
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(1));
        drop(f);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(pool.cached(), 1);
        assert!(!unwinding_for_drop());
        // Dropping an unstarted fiber just drops the body.
        drop(Fiber::new(Box::new(|| {})));
        assert_eq!(pool.allocated(), 1);
    }

    /// `resume` records the fiber's stack as running, for the overflow
    /// handler, and restores the record when the fiber suspends.
    #[test]
    fn running_fiber_stack_is_classified_as_overflow() {
        let pool = Arc::new(StackPool::new(32 * 1024));
        let found = Arc::new(Mutex::new(None));
        let (p, fd) = (pool.clone(), found.clone());
        let mut f = Fiber::new(Box::new(move || {
            // Find our own guard: the one just below a local variable.
            let local = 0u8;
            let sp = std::hint::black_box(&local) as *const u8 as usize;
            let (g, size) = (0..64)
                .find_map(|k| guard_at(sp.saturating_sub(k * 4096)))
                .expect("a guard below the stack");
            assert_eq!(size, 32 * 1024);
            set_current_task(7);
            assert_eq!(
                classify(g.start),
                Some(GuardHit::Overflow {
                    task: 7,
                    stack_size: 32 * 1024
                })
            );
            // Another fiber's guard is not an overflow of ours.
            let other = p.get().unwrap();
            assert!(matches!(
                classify(other.guard_range().start),
                Some(GuardHit::Other { task: 7, .. })
            ));
            set_current_task(0);
            *fd.lock().unwrap() = Some(g);
            suspend(1);
        }));
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(1));
        let g = found.lock().unwrap().take().expect("the fiber ran");
        // Outside the fiber its stack is no longer recorded as running.
        assert!(matches!(
            classify(g.start),
            Some(GuardHit::Other { task: 0, .. })
        ));
        assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
    }

    const OVERFLOW_ENV: &str = "SCX_RT_SYS_OVERFLOW_CHILD";

    /// Recurses with a page-sized frame until the stack runs out.
    #[inline(never)]
    fn recurse(depth: usize) -> usize {
        let frame = std::hint::black_box([depth as u8; 4096]);
        if depth == usize::MAX {
            return 0;
        }
        recurse(depth + 1) + frame[depth % 4096] as usize
    }

    /// Child half of `overflow_is_reported`: does nothing unless the parent
    /// set `OVERFLOW_ENV`, then overflows a fiber's stack (must die by
    /// SIGSEGV after the report).
    #[test]
    fn overflow_child() {
        if std::env::var(OVERFLOW_ENV).is_err() {
            return;
        }
        let _alt = crate::sigsegv::AltStack::install().unwrap();
        let pool = pool();
        let mut f = Fiber::new(Box::new(|| {
            eprintln!("recursing");
            std::hint::black_box(recurse(0));
        }));
        let _ = f.resume(&pool);
        // Not reached when the guard works.
        std::process::exit(0);
    }

    #[test]
    fn overflow_is_reported() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fiber::tests::overflow_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(OVERFLOW_ENV, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "child status {:?}, stderr: {stderr}",
            out.status
        );
        assert!(stderr.contains("recursing"), "stderr: {stderr}");
        assert!(
            stderr.contains("scx-rt: a green fiber overflowed its 64 KiB stack\n"),
            "stderr: {stderr}"
        );
    }

    #[test]
    fn many_fibers_alive() {
        const N: usize = 10_000;
        let pool = pool();
        let sum = Arc::new(AtomicUsize::new(0));
        let mut fibers: Vec<Fiber> = (0..N)
            .map(|i| {
                let s = sum.clone();
                Fiber::new(Box::new(move || {
                    let mut local = [0u8; 1024]; // use some stack
                    local[i % 1024] = 1;
                    for round in 0..3 {
                        suspend(i * 10 + round);
                    }
                    s.fetch_add(local.iter().map(|&b| b as usize).sum(), Ordering::Relaxed);
                }))
            })
            .collect();
        for round in 0..3 {
            for (i, f) in fibers.iter_mut().enumerate() {
                assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(i * 10 + round));
            }
        }
        assert_eq!(pool.allocated(), N);
        for f in fibers.iter_mut() {
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
        }
        assert_eq!(sum.load(Ordering::Relaxed), N);
        assert_eq!(pool.cached(), N);
    }

    /// Requirement: a million spawns with ~120,000 fibers alive at once, on
    /// the runtime's default 256 KiB stacks, under vm.max_map_count = 65530.
    #[test]
    fn million_spawns_120k_live() {
        const TOTAL: usize = 1_000_000;
        const LIVE: usize = 120_000;
        let pool = StackPool::new(256 * 1024);
        let mut live = std::collections::VecDeque::with_capacity(LIVE + 1);
        let mut finished = 0;
        for i in 0..TOTAL {
            let mut f = Fiber::new(Box::new(move || suspend(i)));
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Suspended(i));
            live.push_back(f);
            if live.len() > LIVE {
                let mut old = live.pop_front().unwrap();
                assert_eq!(old.resume(&pool).unwrap(), Resumed::Finished);
                finished += 1;
            }
        }
        assert_eq!(pool.allocated(), LIVE + 1);
        for mut f in live {
            assert_eq!(f.resume(&pool).unwrap(), Resumed::Finished);
            finished += 1;
        }
        assert_eq!(finished, TOTAL);
        assert_eq!(pool.cached(), LIVE + 1);
    }
}
