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
//! # Frames: how the running fiber finds what it needs
//!
//! The body does not receive a handle; it calls free functions ([`suspend`],
//! [`try_suspend`], [`lent`], [`in_fiber`]). What they need is in a
//! *frame*: a small record that [`Fiber::resume`] builds on its own stack
//! for one resume, and that one thread-local word per OS thread points at
//! while the fiber runs. The word is kept by [`crate::sigsegv`], whose
//! handler reads the same frame:
//!
//! ```text
//!  thread-local word ──► Frame (on the resumer's stack, alive for one resume)
//!  (null: no fiber       ├─ head: stack ──► the fiber's guard range         } what the
//!   runs here)           │        task      label for overflow reports      } handler reads
//!                        ├─ yielder   the fiber's corosensei Yielder (null: forced unwind)
//!                        ├─ data, data_ty   what the resumer lends ([`Fiber::resume_with`])
//!                        └─ dropping  true for the forced unwind of a dropped fiber
//! ```
//!
//! The protocol:
//!
//! 1. `resume` builds the frame, saves the thread's word and points it at
//!    the frame (one TLS load, one store), switches in, and when the switch
//!    returns (the body suspended, returned or panicked) stores the saved
//!    word back (one store). Frames nest like the resumes: a fiber resuming
//!    another fiber publishes a frame over its own resumer's, and takes it
//!    down again when that resume returns.
//! 2. The yielder lives on the fiber's own stack, and only the body learns
//!    where (corosensei passes it in): the body wrapper writes it into the
//!    frame of the first resume, and the resumer keeps it with the fiber, so
//!    every later frame carries it from the start.
//! 3. [`suspend`] reads the word (one TLS load), takes the yielder from the
//!    frame, and switches out. When it returns, possibly on another OS
//!    thread, that thread's word already points at the frame of the resume
//!    that switched the fiber back in, yielder included: nothing to write.
//!
//! # Migration and thread-locals
//!
//! After `suspend` returns, the fiber may be running on another OS thread.
//! The compiler assumes a function never changes threads, so it may compute
//! a thread-local's address once and reuse it across the switch if the
//! accesses are inlined into the same function. Therefore:
//!
//! - code that may run in a fiber reads the word only inside functions that
//!   are never inlined ([`suspend`], [`try_suspend`], [`lent`],
//!   [`in_fiber`], [`unwinding_for_drop`], the body's first entry, and the
//!   label accessors of [`crate::sigsegv`]), once, before any switch;
//! - the resumer side (`resume_inner`, and the forced unwind in `Drop`) is
//!   never inlined either, and uses one computed address for the store
//!   before and the store after its switch. That is right because a resume
//!   does not change threads: the fiber it switches into can leave only by
//!   suspending, returning or panicking, and each of those hands control
//!   back to the resumer on the thread that resumed it.
//!
//! No reference to a thread-local or to a frame is held across a switch.
//! Bodies that migrate must follow the same rule (the runtime documents its
//! position on thread-locals in task code).
//!
//! # Stack overflow
//!
//! The frame's head names the fiber's guard range and task label, and the
//! `SIGSEGV` handler of [`crate::sigsegv`] reads it through
//! the same word, also while a dropped fiber is unwound: a fault in that
//! guard is reported as an overflow of the running fiber (named by the
//! task label the runtime resumes it with) before the process dies.

use std::any::TypeId;
use std::cell::Cell;
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use corosensei::{Coroutine, CoroutineResult};

use crate::sigsegv::{self, RunningStack, StackSpan};
use crate::stack::{Stack, StackPool};
use crate::stack_cache::StackCache;

type Yielder = corosensei::Yielder<(), usize>;
type Co = Coroutine<(), usize, (), Stack>;

/// What the body of a fiber is.
pub type Body = Box<dyn FnOnce() + Send + 'static>;

/// What a resumer tells the fiber it runs, for one resume (module doc,
/// "Frames"). Built on the resumer's stack, published as this thread's
/// innermost frame while the fiber runs ([`sigsegv::run_published`]), and
/// read through that pointer, so only through shared references: what
/// the fiber writes is in a `Cell`.
#[repr(C)]
struct Frame {
    /// What the overflow handler reads: the fiber's stack and task label.
    /// The first field (`repr(C)`): the published pointer is this head's,
    /// and [`frame`] casts it back to the frame.
    head: RunningStack,
    /// Yielder of the running fiber. Null in the frame of a forced unwind,
    /// and on the first entry until the body wrapper sets it (step 2).
    yielder: Cell<*const Yielder>,
    /// What the resumer lent ([`Fiber::resume_with`]): a pointer to a `T`
    /// that outlives the resume, and `T`'s type. Null: nothing lent.
    data: *const (),
    data_ty: TypeId,
    /// True in the frame of the forced unwind of a dropped fiber.
    dropping: bool,
}

impl Frame {
    /// Runs `f` with this frame published as the thread's innermost one.
    ///
    /// # Safety
    ///
    /// As [`sigsegv::run_published`]: the caller is never inlined, and `f`
    /// returns on the calling thread (it may resume a fiber, and must not
    /// suspend the one running the caller).
    #[inline(always)]
    unsafe fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        // The head pointer is derived from the whole frame, so it may be
        // cast back to it (`frame`).
        let head = (self as *const Frame).cast::<RunningStack>();
        // SAFETY: our caller's promise covers the thread; `head` is the
        // first field of this `repr(C)` frame, with its provenance, and the
        // frame is borrowed (alive, in place) until `f` returns.
        unsafe { sigsegv::run_published(head, f) }
    }
}

/// The innermost frame of this thread (null: no fiber runs here).
///
/// # Safety
///
/// As [`sigsegv::current_frame`]: call it only from a function that is
/// never inlined, once, before that function switches fibers (module doc,
/// "Migration").
#[inline(always)]
unsafe fn frame() -> *const Frame {
    // SAFETY: forwarded to our caller. Every published head is the first
    // field of a `Frame` of this module (`Frame::run` is the only
    // publisher), with the whole frame's provenance: the cast is exact.
    unsafe { sigsegv::current_frame() }.cast::<Frame>()
}

/// Where a resume takes a first stack from, and gives it back to.
enum Stacks<'a> {
    /// The pool (through the thread's cache); the stack goes back when the
    /// coroutine is dropped.
    Pool(&'a StackPool),
    /// The resumer's own cache; the stack goes back to it explicitly.
    Cache(&'a mut StackCache),
}

enum State {
    NotStarted(Body),
    Running(Running),
    Finished,
}

/// A started fiber.
struct Running {
    co: Co,
    /// Its stack's guard range, for overflow reports.
    span: StackSpan,
    /// The body's yielder once its first entry has run, else null: each
    /// frame starts with it (protocol step 2).
    yielder: *const Yielder,
}

/// A not-yet-started or suspended green context.
pub struct Fiber {
    /// Dropped by `Fiber`'s own `drop`, which skips a finished one (it
    /// holds nothing) without a call.
    state: ManuallyDrop<State>,
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
// assumption: the stack is plain memory, the yielder pointer it keeps
// points into that stack, and the thread-local frame word is re-read after
// every switch by non-inlined accessors (module doc, "Migration"), never
// cached across one.
unsafe impl Send for Fiber {}

/// Outcome of [`Fiber::resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The body called [`suspend`] with this code.
    Suspended(usize),
    /// The body returned; its stack is already back in the pool.
    Finished,
}

/// What `resume_inner` returns: [`Resumed`] and the first resume's stack
/// refusal in one two-word value, which comes back in registers (an
/// `io::Result<Resumed>` is three words, returned through memory). The
/// public methods turn it into an `io::Result<Resumed>` inline, so a
/// caller's match on that reads this directly.
enum Outcome {
    Suspended(usize),
    Finished,
    NoStack(io::Error),
}

impl From<Outcome> for io::Result<Resumed> {
    #[inline(always)]
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Suspended(code) => Ok(Resumed::Suspended(code)),
            Outcome::Finished => Ok(Resumed::Finished),
            Outcome::NoStack(e) => Err(e),
        }
    }
}

impl Fiber {
    /// A fiber that will run `body`. Allocates no stack.
    pub fn new(body: Body) -> Fiber {
        Fiber {
            state: ManuallyDrop::new(State::NotStarted(body)),
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
    /// [`crate::sigsegv::set_current_task`], which inside the fiber changes
    /// it until the fiber suspends). The label travels in the frame of this
    /// resume (module doc): no thread-local access of its own.
    pub fn resume_as(&mut self, pool: &StackPool, label: u64) -> io::Result<Resumed> {
        self.resume_inner(
            &mut Stacks::Pool(pool),
            label,
            std::ptr::null(),
            TypeId::of::<()>(),
        )
        .into()
    }

    /// [`Fiber::resume_as`], lending `data` to the fiber while it runs: code
    /// inside the fiber gets a clone with [`lent`] (after a suspension,
    /// whatever the next resumer lent). The runtime lends the running task
    /// this way, so a task finds itself with one thread-local read.
    pub fn resume_with<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        pool: &StackPool,
        label: u64,
        data: &Arc<T>,
    ) -> io::Result<Resumed> {
        self.resume_inner(
            &mut Stacks::Pool(pool),
            label,
            data as *const Arc<T> as *const (),
            TypeId::of::<Arc<T>>(),
        )
        .into()
    }

    /// [`Fiber::resume_with`], with the stack of the first resume taken
    /// from `cache` and given back to it when the body returns
    /// ([`crate::stack_cache`]: no thread-local lookup on either side). A
    /// body that panics, or a fiber dropped while suspended, returns its
    /// stack to its pool the ordinary way.
    ///
    /// Inlined, like the resume's outcome conversion: the caller's match
    /// reads the two-word outcome of `resume_inner` in registers.
    #[inline]
    pub fn resume_cached<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        cache: &mut StackCache,
        label: u64,
        data: &Arc<T>,
    ) -> io::Result<Resumed> {
        self.resume_inner(
            &mut Stacks::Cache(cache),
            label,
            data as *const Arc<T> as *const (),
            TypeId::of::<Arc<T>>(),
        )
        .into()
    }

    /// The resume (protocol step 1). Never inlined: it publishes its frame
    /// around the switch with one thread-local address (module doc,
    /// "Migration").
    #[inline(never)]
    fn resume_inner(
        &mut self,
        stacks: &mut Stacks<'_>,
        label: u64,
        data: *const (),
        data_ty: TypeId,
    ) -> Outcome {
        if !matches!(*self.state, State::Running(_)) {
            if let Err(e) = self.start(stacks) {
                return Outcome::NoStack(e);
            }
        }
        let State::Running(run) = &mut *self.state else {
            unreachable!("started above")
        };
        let frame = Frame {
            head: RunningStack::new(&run.span, label),
            yielder: Cell::new(run.yielder),
            data,
            data_ty,
            dropping: false,
        };
        let co = &mut run.co;
        // SAFETY: this function is never inlined, and the closure only
        // resumes a fiber, which hands control back on this thread.
        let result = unsafe { frame.run(|| catch_unwind(AssertUnwindSafe(|| co.resume(())))) };
        // Step 2: the first entry wrote the yielder into the frame.
        run.yielder = frame.yielder.get();
        match result {
            Ok(CoroutineResult::Yield(code)) => Outcome::Suspended(code),
            Ok(CoroutineResult::Return(())) => {
                let State::Running(run) = std::mem::replace(&mut *self.state, State::Finished)
                else {
                    unreachable!("running above")
                };
                match stacks {
                    Stacks::Cache(c) => c.put(run.co.into_stack()),
                    // Dropping the finished coroutine drops its `Stack`,
                    // which returns it to its pool.
                    Stacks::Pool(_) => drop(run),
                }
                Outcome::Finished
            }
            Err(payload) => {
                // A panic escaped the body: the coroutine has terminated.
                *self.state = State::Finished;
                resume_unwind(payload)
            }
        }
    }

    /// Takes a stack for a fiber that has not started (a no-op for a
    /// started one): `NotStarted` becomes `Running`, or stays as it was if
    /// the pool refuses.
    ///
    /// # Panics
    ///
    /// If the fiber has already finished.
    #[cold]
    #[inline(never)]
    fn start(&mut self, stacks: &mut Stacks<'_>) -> io::Result<()> {
        match *self.state {
            State::Finished => panic!("resumed a finished fiber"),
            State::Running(_) => return Ok(()),
            State::NotStarted(_) => {}
        }
        let stack = match stacks {
            Stacks::Pool(p) => p.get()?,
            Stacks::Cache(c) => c.get()?,
        };
        let span = StackSpan {
            guard: stack.guard_range(),
        };
        let State::NotStarted(body) = std::mem::replace(&mut *self.state, State::Finished) else {
            unreachable!("checked above")
        };
        let co = Co::with_stack(stack, move |yielder: &Yielder, ()| {
            first_entry(yielder);
            body();
        });
        *self.state = State::Running(Running {
            co,
            span,
            yielder: std::ptr::null(),
        });
        Ok(())
    }

    /// True once the fiber has been resumed at least once.
    pub fn is_started(&self) -> bool {
        !matches!(*self.state, State::NotStarted(_))
    }

    /// True once the body has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        matches!(*self.state, State::Finished)
    }
}

/// Step 2 of the protocol: the body's first code publishes its yielder in
/// the frame of the resume that started it. Never inlined (module doc,
/// "Migration").
#[inline(never)]
fn first_entry(yielder: &Yielder) {
    // SAFETY: never inlined; read once, and nothing here switches.
    let frame = unsafe { frame() };
    debug_assert!(!frame.is_null(), "a body runs inside a resume");
    if !frame.is_null() {
        // SAFETY: a body's first entry runs inside the resume that started
        // it, never inside a forced unwind (corosensei drops a body that
        // never ran without running it), so the innermost frame is that
        // resume's, alive until the body suspends; the field is a `Cell`.
        unsafe { (*frame).yielder.set(yielder) };
    }
}

impl Drop for Fiber {
    /// Dropping a suspended fiber unwinds its stack on the current thread
    /// (running the destructors of the body's locals), then returns the
    /// stack to its pool. While that runs, [`in_fiber`] is false, [`suspend`]
    /// panics, and [`unwinding_for_drop`] is true: a body that catches panics
    /// must re-raise (`resume_unwind`) what it catches then, or corosensei
    /// panics because its unwind was swallowed.
    /// A finished fiber holds nothing: a compare, no call.
    #[inline]
    fn drop(&mut self) {
        if !matches!(*self.state, State::Finished) {
            drop_live(&mut self.state);
        }
    }
}

/// The drop of a fiber that has not finished: the forced unwind of a
/// suspended one, then its state (also if the unwind panics).
#[inline(never)]
fn drop_live(state: &mut ManuallyDrop<State>) {
    struct DropState<'a>(&'a mut ManuallyDrop<State>);
    impl Drop for DropState<'_> {
        fn drop(&mut self) {
            // SAFETY: the fiber's state is dropped once, here, from the
            // fiber's own `drop` (through `drop_live`), and never used
            // after.
            unsafe { ManuallyDrop::drop(self.0) }
        }
    }
    let g = DropState(state);
    if let State::Running(run) = &mut **g.0 {
        unwind_suspended(run);
    }
    drop(g);
}

/// The forced unwind of a dropped, suspended fiber, under a frame that says
/// so (no yielder, `dropping`), still naming the fiber's stack and the
/// current task label for overflow reports. Never inlined (module doc,
/// "Migration").
#[inline(never)]
fn unwind_suspended(run: &mut Running) {
    let frame = Frame {
        head: RunningStack::new(&run.span, sigsegv::current_task()),
        yielder: Cell::new(std::ptr::null()),
        data: std::ptr::null(),
        data_ty: TypeId::of::<()>(),
        dropping: true,
    };
    let co = &mut run.co;
    // SAFETY: this function is never inlined, and the forced unwind runs
    // the fiber's destructors and hands control back on this thread (or
    // unwinds into it).
    unsafe { frame.run(|| co.force_unwind()) };
}

impl std::fmt::Debug for Fiber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match *self.state {
            State::NotStarted(_) => "not started",
            State::Running(_) => "suspended",
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
    assert!(try_suspend(code), "suspend called outside a fiber");
}

/// [`suspend`] if the calling code runs inside a fiber body (then `true`
/// once resumed); `false` at once otherwise. One thread-local read for the
/// check and the switch together, none after it (protocol step 3).
#[inline(never)]
pub fn try_suspend(code: usize) -> bool {
    // SAFETY: never inlined; read once, before the switch.
    let frame = unsafe { frame() };
    if frame.is_null() {
        return false;
    }
    // SAFETY: the innermost frame of this thread stays alive while the code
    // it runs runs, and that is us (a nested resume would have published
    // its own frame over it and taken it down before returning to us).
    let yielder = unsafe { (*frame).yielder.get() };
    if yielder.is_null() {
        return false;
    }
    // SAFETY: a non-null frame yielder is the Yielder of the fiber that
    // frame runs, which is us (above): it lives at a fixed place on our own
    // stack for as long as the body runs, so it is valid, and suspending
    // through it switches out of exactly this fiber. Nothing below touches
    // the frame or a thread-local after the switch.
    unsafe { (*yielder).suspend(code) };
    true
}

/// A clone of the `Arc<T>` the resumer of the running fiber lent it
/// ([`Fiber::resume_with`]), if the calling code runs inside a fiber that
/// was lent one; `None` otherwise. Never inlined (module doc, "Migration").
#[inline(never)]
pub fn lent<T: ?Sized + Send + Sync + 'static>() -> Option<Arc<T>> {
    // SAFETY: never inlined; read once, and nothing here switches.
    let frame = unsafe { frame() };
    if frame.is_null() {
        return None;
    }
    // SAFETY: the innermost frame stays alive while the code it runs (us)
    // runs, as in `try_suspend`; only shared access.
    let f = unsafe { &*frame };
    if f.yielder.get().is_null() || f.data.is_null() || f.data_ty != TypeId::of::<Arc<T>>() {
        return None;
    }
    // SAFETY: `data` was set by the `resume_with::<T>` that runs this fiber
    // on this thread now (the type is checked above): it points to an
    // `Arc<T>` borrowed by that call until the fiber suspends or returns.
    // The fiber is running (this code is it), and cloning an `Arc` cannot
    // suspend it, so the borrow outlives this read.
    Some(Arc::clone(unsafe { &*(f.data as *const Arc<T>) }))
}

/// True when the calling code runs inside a fiber body. Never inlined (module
/// doc, "Migration").
#[inline(never)]
pub fn in_fiber() -> bool {
    // SAFETY: never inlined; read once, and nothing here switches.
    let frame = unsafe { frame() };
    // SAFETY: alive while we run, as in `try_suspend`.
    !frame.is_null() && !unsafe { (*frame).yielder.get() }.is_null()
}

/// True while a dropped, suspended fiber is being unwound on this thread: a
/// panic caught then is corosensei's forced unwind and must be re-raised.
#[inline(never)]
pub fn unwinding_for_drop() -> bool {
    // SAFETY: never inlined; read once, and nothing here switches.
    let frame = unsafe { frame() };
    // SAFETY: alive while we run, as in `try_suspend`.
    !frame.is_null() && unsafe { (*frame).dropping }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigsegv::{classify, current_task, guard_at, set_current_task, GuardHit};
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
    fn a_cached_resume_takes_and_returns_the_cache_stack() {
        let pool = pool();
        let mut cache = pool.cache();
        let data = Arc::new(5u32);
        let mut f = Fiber::new(Box::new(|| {
            assert_eq!(lent::<u32>().map(|v| *v), Some(5));
            suspend(1);
        }));
        assert_eq!(
            f.resume_cached(&mut cache, 0, &data).unwrap(),
            Resumed::Suspended(1)
        );
        assert_eq!(pool.cached(), 0, "the running fiber holds the stack");
        assert_eq!(
            f.resume_cached(&mut cache, 0, &data).unwrap(),
            Resumed::Finished
        );
        assert_eq!(pool.cached(), 1, "back in a cache");
        drop(cache);
        // The slot went to the shared list, not to this thread's cache: a
        // fresh cache of the pool refills from it without carving.
        assert_eq!(pool.allocated(), 1);
        let mut again = pool.cache();
        drop(again.get().unwrap());
        assert_eq!(pool.allocated(), 1, "the returned stack was reused");
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

    /// The guard below the calling fiber's stack (the one just below a
    /// local variable).
    #[inline(never)]
    fn own_guard() -> std::ops::Range<usize> {
        let local = 0u8;
        let sp = std::hint::black_box(&local) as *const u8 as usize;
        (0..64)
            .find_map(|k| guard_at(sp.saturating_sub(k * 4096)))
            .expect("a guard below the stack")
            .0
    }

    /// Whether `guard` is classified as an overflow of the running fiber,
    /// and the task label the report would name.
    fn hit(guard: &std::ops::Range<usize>) -> (bool, u64) {
        match classify(guard.start).expect("a guard of ours") {
            GuardHit::Overflow { task, .. } => (true, task),
            GuardHit::Other { task, .. } => (false, task),
        }
    }

    /// Each frame names its own fiber: inside a nested fiber its guard is
    /// the running one, with its label and lent data; when it suspends, its
    /// resumer's frame is back, unchanged (labels set inside do not leak).
    #[test]
    fn nested_frames_label_lend_and_restore() {
        let pool = Arc::new(pool());
        let p = pool.clone();
        let guards = Arc::new(Mutex::new(Vec::new()));
        let g = guards.clone();
        set_current_task(5);
        let mut outer = Fiber::new(Box::new(move || {
            let mine = own_guard();
            assert_eq!(hit(&mine), (true, 11));
            assert_eq!(lent::<u32>().as_deref(), Some(&1));
            let gi = g.clone();
            let mut inner = Fiber::new(Box::new(move || {
                let theirs = own_guard();
                gi.lock().unwrap().push(theirs.clone());
                assert_eq!(hit(&theirs), (true, 22));
                assert_eq!(lent::<u32>().as_deref(), Some(&2));
                set_current_task(23);
                assert_eq!(hit(&theirs), (true, 23));
                suspend(100);
                // Resumed with a new label and new data.
                assert_eq!(hit(&theirs), (true, 24));
                assert_eq!(lent::<u32>().as_deref(), Some(&3));
                assert!(lent::<u64>().is_none(), "the type is checked");
            }));
            assert_eq!(
                inner.resume_with(&p, 22, &Arc::new(2u32)).unwrap(),
                Resumed::Suspended(100)
            );
            // Our frame again: our guard, our label, our data.
            let theirs = g.lock().unwrap()[0].clone();
            assert_eq!(hit(&mine), (true, 11));
            assert_eq!(hit(&theirs), (false, 11));
            assert_eq!(lent::<u32>().as_deref(), Some(&1));
            assert!(in_fiber());
            suspend(1);
            assert_eq!(hit(&mine), (true, 12));
            assert_eq!(
                inner.resume_with(&p, 24, &Arc::new(3u32)).unwrap(),
                Resumed::Finished
            );
            assert_eq!(current_task(), 12);
            assert_eq!(lent::<u32>().as_deref(), Some(&4));
        }));
        let r = outer.resume_with(&pool, 11, &Arc::new(1u32)).unwrap();
        assert_eq!(r, Resumed::Suspended(1));
        assert!(!in_fiber());
        assert_eq!(current_task(), 5, "the thread's label is untouched");
        let r = outer.resume_with(&pool, 12, &Arc::new(4u32)).unwrap();
        assert_eq!(r, Resumed::Finished);
        assert_eq!(current_task(), 5);
        assert!(lent::<u32>().is_none());
        assert_eq!(hit(&guards.lock().unwrap()[0]).1, 5);
        set_current_task(0);
    }

    /// After migrating, the fiber finds the new thread's frame: its
    /// resumer's data and label, its own guard as the running one; neither
    /// thread keeps a frame once its resume has returned.
    #[test]
    fn migrated_fiber_reads_the_new_threads_frame() {
        let pool = Arc::new(pool());
        let mut f = Fiber::new(Box::new(move || {
            let mine = own_guard();
            let before = os_tid();
            assert_eq!(lent::<&str>().as_deref(), Some(&"first"));
            assert_eq!(hit(&mine), (true, 1));
            suspend(1);
            assert_ne!(os_tid(), before, "resumed on another thread");
            assert!(in_fiber());
            assert!(!unwinding_for_drop());
            assert_eq!(lent::<&str>().as_deref(), Some(&"second"));
            assert_eq!(hit(&mine), (true, 2));
            suspend(2);
            assert_eq!(os_tid(), before, "back on the first thread");
            assert_eq!(lent::<&str>().as_deref(), Some(&"third"));
            assert_eq!(hit(&mine), (true, 3));
        }));
        let r = f.resume_with(&pool, 1, &Arc::new("first")).unwrap();
        assert_eq!(r, Resumed::Suspended(1));
        assert!(!in_fiber());
        let p = pool.clone();
        let mut f = std::thread::spawn(move || {
            let r = f.resume_with(&p, 2, &Arc::new("second")).unwrap();
            assert_eq!(r, Resumed::Suspended(2));
            assert!(!in_fiber());
            assert!(lent::<&str>().is_none());
            assert_eq!(current_task(), 0);
            f
        })
        .join()
        .unwrap();
        let r = f.resume_with(&pool, 3, &Arc::new("third")).unwrap();
        assert_eq!(r, Resumed::Finished);
        assert!(!in_fiber());
        assert_eq!(current_task(), 0);
    }

    /// A fiber that drops a suspended inner fiber, or catches the panic of
    /// one, finds its own frame afterwards.
    #[test]
    fn nested_drop_and_panic_restore_the_outer_frame() {
        struct Check;
        impl Drop for Check {
            fn drop(&mut self) {
                assert!(unwinding_for_drop());
                assert!(!in_fiber());
                assert!(lent::<u32>().is_none());
                assert!(!try_suspend(9), "no switch during a forced unwind");
                // The unwind runs on the dropped fiber's stack, which the
                // drop's frame names, with the dropping code's label.
                assert_eq!(hit(&own_guard()), (true, 1));
            }
        }
        let pool = Arc::new(pool());
        let p = pool.clone();
        let mut outer = Fiber::new(Box::new(move || {
            let mut inner = Fiber::new(Box::new(|| {
                let _check = Check;
                suspend(1);
            }));
            assert_eq!(
                inner.resume_with(&p, 2, &Arc::new(2u32)).unwrap(),
                Resumed::Suspended(1)
            );
            drop(inner);
            assert!(in_fiber());
            assert!(!unwinding_for_drop());
            assert_eq!(lent::<u32>().as_deref(), Some(&1));
            assert_eq!(current_task(), 1);
            let mut bad = Fiber::new(Box::new(|| panic!("inner boom")));
            let err = catch_unwind(AssertUnwindSafe(|| bad.resume_as(&p, 3))).unwrap_err();
            assert_eq!(err.downcast_ref::<&str>(), Some(&"inner boom"));
            assert!(in_fiber());
            assert_eq!(lent::<u32>().as_deref(), Some(&1));
            assert_eq!(current_task(), 1);
            suspend(7);
        }));
        let r = outer.resume_with(&pool, 1, &Arc::new(1u32)).unwrap();
        assert_eq!(r, Resumed::Suspended(7));
        assert_eq!(outer.resume(&pool).unwrap(), Resumed::Finished);
        assert!(!in_fiber());
        // `bad` ran on the stack `inner` gave back; every stack is back.
        assert_eq!(pool.allocated(), 2);
        assert_eq!(pool.cached(), 2);
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
        let pool = Arc::new(pool());
        let mut f = if std::env::var(OVERFLOW_ENV).as_deref() == Ok("nested") {
            // Overflow a fiber resumed, with its own label, by a fiber
            // labelled otherwise.
            let p = pool.clone();
            Fiber::new(Box::new(move || {
                let mut inner = Fiber::new(Box::new(|| {
                    eprintln!("recursing");
                    std::hint::black_box(recurse(0));
                }));
                let _ = inner.resume_as(&p, 42);
            }))
        } else {
            Fiber::new(Box::new(|| {
                eprintln!("recursing");
                std::hint::black_box(recurse(0));
            }))
        };
        let _ = f.resume_as(&pool, 0);
        // Not reached when the guard works.
        std::process::exit(0);
    }

    /// Runs `overflow_child` in `mode`; returns its stderr once it died by
    /// `SIGSEGV` after saying it recursed.
    fn overflow_child_stderr(mode: &str) -> String {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fiber::tests::overflow_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(OVERFLOW_ENV, mode)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "child status {:?}, stderr: {stderr}",
            out.status
        );
        assert!(stderr.contains("recursing"), "stderr: {stderr}");
        stderr
    }

    #[test]
    fn overflow_is_reported() {
        let stderr = overflow_child_stderr("1");
        assert!(
            stderr.contains("scx-rt: a green fiber overflowed its 64 KiB stack\n"),
            "stderr: {stderr}"
        );
    }

    /// The report names the innermost fiber, with the label of its own
    /// resume, not its resumer's.
    #[test]
    fn nested_overflow_is_reported_with_its_label() {
        let stderr = overflow_child_stderr("nested");
        assert!(
            stderr.contains("scx-rt: task 42 overflowed its 64 KiB stack\n"),
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
