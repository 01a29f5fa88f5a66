//! Stack-overflow reports for green stacks.
//!
//! A green task that overflows its stack runs into the guard page below it
//! (see the `stack` module) and the kernel raises `SIGSEGV`. Left alone, the
//! process dies with a bare "Segmentation fault". Rust's standard library
//! says "thread 'x' has overflowed its stack" for its own threads; this
//! module does the same for green tasks: the process writes
//!
//! ```text
//! scx-rt: task 42 overflowed its 256 KiB stack
//! ```
//!
//! to stderr, then dies by `SIGSEGV` as before (so core dumps and exit
//! statuses are unchanged).
//!
//! # The pieces
//!
//! 1. **One handler** for `SIGSEGV` and `SIGBUS`, installed once per process
//!    ([`install_handler`]; the stack pool calls it when it maps its first
//!    slab) with `SA_SIGINFO | SA_ONSTACK`. The disposition it replaces is
//!    kept and *chained to* for every fault that is not ours: Rust's std
//!    installs its own handler at startup for the guard pages of OS-thread
//!    stacks, and it keeps working.
//! 2. **An alternate signal stack** per worker thread ([`AltStack`]). A fault
//!    caused by an overflow happens with the stack pointer in the guard page;
//!    the kernel cannot push a signal frame there, so without an alternate
//!    stack the handler never runs and the process dies silently.
//! 3. **A registry of slabs**: a fixed-size, lock-free (for readers) table of
//!    the address ranges of every mapped slab with its slot geometry, so the
//!    handler can tell, without locks or allocation, whether a fault address
//!    is in a guard page of one of our stacks. Slabs register when mapped and
//!    unregister before they are unmapped; each entry is a seqlock, so the
//!    handler never trusts a half-written entry.
//! 4. **What runs on each thread**: one thread-local word points at the
//!    *frame* that `Fiber::resume` (the `fiber` module) builds on its own
//!    stack for the fiber it switches to; the frame's head
//!    (`RunningStack`) names that fiber's stack (its guard range) and
//!    the label of the task it runs (the id the runtime resumes it with, or
//!    [`set_current_task`] inside it). Outside fibers the word is null and
//!    the label is the thread's own. The handler reads them through the
//!    same word (why it never sees a half-written frame: `RunningStack`).
//!
//! # What the handler does
//!
//! For a fault (`si_code > 0`; a `SIGSEGV` sent with `kill` carries no
//! address) whose address lies in a guard page of a registered slab, it
//! writes one line with `write(2)` (the text is built in a stack buffer: no
//! allocation, no formatting machinery), resets the signal to `SIG_DFL` and
//! returns; the faulting instruction runs again and the process dies by the
//! same signal. The line names the task when the guard is the one below the
//! stack running on this thread, which is what an overflow looks like; any
//! other access to one of our guard pages (a wild pointer) is reported with
//! its address. Everything else goes to the previous handler, or, when that
//! was `SIG_DFL`/`SIG_IGN`, is re-raised with the default action.
//!
//! Everything the handler touches is async-signal-safe: atomics (in statics
//! and in `const`-initialised thread-locals without destructors, which are
//! plain TLS accesses), plain reads of the frame its thread published
//! (complete before publication, unchanged while published: see
//! `RunningStack`), `write`, `sigaction`, `raise`, and `errno`, which it
//! saves and restores.

use std::io;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{compiler_fence, fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use crate::page::page_size;

/// Registry entries per chunk; chunks are allocated on demand.
const REGISTRY_CHUNK: usize = 1024;
/// Chunks in the registry: at most `REGISTRY_CHUNK * REGISTRY_CHUNKS` slabs
/// (16M stacks at 64 per slab) are registered at once. A slab that finds the
/// registry full still works; its overflows are just not named.
const REGISTRY_CHUNKS: usize = 256;

/// Usable bytes of an alternate signal stack (plus one guard page below).
/// The handler needs well under a page; the rest leaves room for a chained
/// handler and for large signal frames (AVX-512 state).
pub const ALTSTACK_SIZE: usize = 64 * 1024;

/// One registered slab. A seqlock: `seq` is odd while a writer changes the
/// entry; `start == 0` marks a free entry.
struct Entry {
    seq: AtomicUsize,
    /// First byte of the slab (the guard of slot 0).
    start: AtomicUsize,
    /// Length of the slab mapping.
    len: AtomicUsize,
    /// Bytes per slot (guard + usable stack + colour page).
    slot: AtomicUsize,
    /// Guard bytes at the low end of each slot.
    guard: AtomicUsize,
    /// The stack size the reports name (the pool's, without the colour
    /// page, `stack` module docs).
    size: AtomicUsize,
}

impl Entry {
    fn empty() -> Entry {
        Entry {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            slot: AtomicUsize::new(0),
            guard: AtomicUsize::new(0),
            size: AtomicUsize::new(0),
        }
    }

    /// Writer side (registry lock held): publishes new contents.
    fn write(&self, start: usize, len: usize, slot: usize, guard: usize, size: usize) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        self.slot.store(slot, Ordering::Relaxed);
        self.guard.store(guard, Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Reader side (any thread, signal handlers included): a consistent
    /// snapshot `(start, len, slot, guard, size)`, or `None` while it is
    /// written.
    fn read(&self) -> Option<(usize, usize, usize, usize, usize)> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let v = (
            self.start.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
            self.slot.load(Ordering::Relaxed),
            self.guard.load(Ordering::Relaxed),
            self.size.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s1).then_some(v)
    }
}

/// The registry's chunks. `OnceLock::get` is one acquire load, so readers
/// (the signal handler) never block.
static CHUNKS: [OnceLock<Box<[Entry]>>; REGISTRY_CHUNKS] =
    [const { OnceLock::new() }; REGISTRY_CHUNKS];
/// Entries ever used: readers scan `0..HIGH`.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Serialises writers and holds the indices of freed entries.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn entry(i: usize) -> Option<&'static Entry> {
    CHUNKS
        .get(i / REGISTRY_CHUNK)?
        .get()
        .map(|c| &c[i % REGISTRY_CHUNK])
}

/// Registers a slab of stacks: `[start, start + len)`, made of slots of
/// `slot` bytes whose low `guard` bytes are a guard region. Returns the
/// entry to pass to [`unregister_slab`], or `None` if the registry is full
/// (the slab works; its overflows are reported as a bare `SIGSEGV`).
pub(crate) fn register_slab(
    start: usize,
    len: usize,
    slot: usize,
    guard: usize,
    size: usize,
) -> Option<usize> {
    debug_assert!(start != 0 && slot >= guard + size && guard > 0);
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    let i = match free.pop() {
        Some(i) => i,
        None => {
            let i = HIGH.load(Ordering::Relaxed);
            if i >= REGISTRY_CHUNK * REGISTRY_CHUNKS {
                return None;
            }
            CHUNKS[i / REGISTRY_CHUNK].get_or_init(|| {
                (0..REGISTRY_CHUNK)
                    .map(|_| Entry::empty())
                    .collect::<Vec<_>>()
                    .into_boxed_slice()
            });
            HIGH.store(i + 1, Ordering::Release);
            i
        }
    };
    entry(i)
        .expect("registry chunk allocated above")
        .write(start, len, slot, guard, size);
    Some(i)
}

/// Forgets a slab before it is unmapped, so a later mapping at the same
/// address is not mistaken for it.
pub(crate) fn unregister_slab(i: usize) {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = entry(i) {
        e.write(0, 0, 0, 0, 0);
        free.push(i);
    }
}

/// If `addr` lies in a guard region of a registered slab: that guard
/// region and the usable size of the stack above it. Lock-free and
/// allocation-free (the signal handler calls it).
pub fn guard_at(addr: usize) -> Option<(Range<usize>, usize)> {
    let high = HIGH.load(Ordering::Acquire);
    (0..high).find_map(|i| {
        let (start, len, slot, guard, size) = entry(i)?.read()?;
        if start == 0 || addr < start || addr - start >= len {
            return None;
        }
        let lo = start + (addr - start) / slot * slot;
        (addr - lo < guard).then_some((lo..lo + guard, size))
    })
}

/// Where a fiber stack is, for overflow reports: its guard region (the
/// usable size comes from the slab registry, [`guard_at`]). The fiber
/// module keeps one with every started fiber; it does not change while the
/// fiber lives.
pub(crate) struct StackSpan {
    /// The guard region below the stack.
    pub(crate) guard: Range<usize>,
}

/// The head of a fiber *frame* (module doc of `fiber`): the part of what a
/// resumer tells the fiber it runs that this module reads, namely which
/// stack runs and the task label. The fiber module builds the frame on the
/// resumer's stack, this head its first field (`#[repr(C)]`), and publishes
/// it with [`run_published`] while the fiber runs.
///
/// # Why the handler never reads a torn or dead head
///
/// The handler runs on the faulting thread, between two of its
/// instructions, and reads only the head that thread published:
///
/// - publishing and unpublishing are single aligned pointer stores, so the
///   handler sees the old head or the new one, never half of a pointer;
/// - `stack`, and the span it points to, are written before the head is
///   published (a release store; the handler loads with acquire, so the
///   compiler cannot sink those writes below the publication) and never
///   while it is published;
/// - `task` may change while published (`set_current_task` inside a fiber):
///   it is an atomic, one aligned 8-byte store;
/// - a head is unpublished before its frame dies (a compiler fence keeps
///   any reuse of the frame's stack slot after the restoring store).
pub(crate) struct RunningStack {
    /// The running fiber's stack.
    stack: *const StackSpan,
    /// Label of the task the fiber runs ([`set_current_task`]; 0: none).
    task: AtomicU64,
}

impl RunningStack {
    /// A head naming `stack`, running task `task`.
    pub(crate) fn new(stack: &StackSpan, task: u64) -> RunningStack {
        RunningStack {
            stack,
            task: AtomicU64::new(task),
        }
    }
}

/// What the handler knows about the running code of one thread.
struct ThreadRunning {
    /// Head of the innermost frame published on this thread (null: no
    /// fiber runs here).
    current: AtomicPtr<RunningStack>,
    /// The task label of code that runs outside any fiber.
    task: AtomicU64,
}

std::thread_local! {
    // `const`-initialised and without a destructor: every access is a plain
    // TLS address computation, safe inside a signal handler.
    static THREAD: ThreadRunning = const {
        ThreadRunning {
            current: AtomicPtr::new(std::ptr::null_mut()),
            task: AtomicU64::new(0),
        }
    };
}

/// The head of the innermost frame published on this thread (null: no
/// fiber runs here).
///
/// Inlined on purpose (one TLS load): the fiber module's accessors call it
/// on the path of every switch.
///
/// # Safety
///
/// Call it only from a function that is never inlined, once, before that
/// function switches fibers (module doc of `fiber`, "Migration"): the
/// compiler may compute the thread-local's address once per function and
/// reuse it, and after a switch the code may run on another OS thread.
#[inline(always)]
pub(crate) unsafe fn current_frame() -> *const RunningStack {
    THREAD.with(|t| t.current.load(Ordering::Relaxed))
}

/// Restores the previously published head on drop (also when unwinding).
struct Unpublish(*mut RunningStack);

impl Drop for Unpublish {
    #[inline(always)]
    fn drop(&mut self) {
        THREAD.with(|t| t.current.store(self.0, Ordering::Release));
        // The frame may die right after this: no write to its stack slot may
        // be moved above the store (a signal in between would read it).
        compiler_fence(Ordering::SeqCst);
    }
}

/// Publishes `head` as this thread's innermost frame while `f` runs, then
/// republishes the previous one (also if `f` unwinds). One TLS load and
/// one store before `f`, one store after.
///
/// # Safety
///
/// - The caller is never inlined, and `f` returns on the calling thread:
///   it may resume fibers (a fiber always hands control back on the thread
///   of its resumer) but must not suspend the fiber running the caller.
///   Then the one TLS address computed here is right for both stores.
/// - `head` points to the head (first field) of a `#[repr(C)]` frame of
///   the fiber module that stays alive and in place while `f` runs, and
///   carries the provenance of the whole frame: the fiber module reads the
///   frame through the published pointer.
#[inline(always)]
pub(crate) unsafe fn run_published<R>(head: *const RunningStack, f: impl FnOnce() -> R) -> R {
    let prev = THREAD.with(|t| {
        let prev = t.current.load(Ordering::Relaxed);
        // Release: the frame is written before it can be seen, by this
        // thread's signal handler included.
        t.current.store(head.cast_mut(), Ordering::Release);
        prev
    });
    let _unpublish = Unpublish(prev);
    f()
}

/// Runs `f` on the label of the code running on this thread: the innermost
/// frame's while a fiber runs here (or is unwound), the thread's own
/// otherwise. Only from the never-inlined label accessors.
#[inline(always)]
fn with_label<R>(f: impl FnOnce(&AtomicU64) -> R) -> R {
    THREAD.with(|t| {
        let head = t.current.load(Ordering::Relaxed);
        if head.is_null() {
            f(&t.task)
        } else {
            // SAFETY: a published head stays alive until it is unpublished
            // (`run_published`), and only this thread unpublishes it: the
            // code running here is the fiber it runs (or code called by
            // it), which cannot end that resume while it runs.
            f(unsafe { &(*head).task })
        }
    })
}

/// Labels the code this thread runs as task `id` (0: no task), for
/// stack-overflow reports: inside a fiber, until it suspends (each resume
/// sets the label of its fiber, [`crate::fiber::Fiber::resume_as`]); outside
/// fibers, until the next call. Costs one thread-local access.
#[inline(never)]
pub fn set_current_task(id: u64) {
    with_label(|l| l.store(id, Ordering::Relaxed));
}

/// The label of the code running on this thread ([`set_current_task`], or
/// the label its fiber was resumed with).
#[inline(never)]
pub fn current_task() -> u64 {
    with_label(|l| l.load(Ordering::Relaxed))
}

/// The guard range below the fiber stack running on this thread (`None`
/// outside fibers) and the task label. Async-signal-safe (the handler
/// calls it): a TLS access, atomic loads, and plain reads of a published
/// head (`RunningStack`).
fn running() -> (Option<Range<usize>>, u64) {
    THREAD.with(|t| {
        let head = t.current.load(Ordering::Acquire);
        if head.is_null() {
            return (None, t.task.load(Ordering::Relaxed));
        }
        // SAFETY: a published head is alive until this thread unpublishes
        // it, which cannot happen during this read: the handler interrupts
        // this thread, and any other caller is this thread's own code. Its
        // `stack` points to a span that outlives the publication and is not
        // written while published (`RunningStack`).
        let (head, span) = unsafe { (&*head, &*(*head).stack) };
        (Some(span.guard.clone()), head.task.load(Ordering::Relaxed))
    })
}

/// What a fault address is, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardHit {
    /// The guard below the stack running on this thread: an overflow.
    /// `task` is the runtime's label (0 when the fiber runs outside a task).
    Overflow {
        /// The task label ([`set_current_task`]), 0 if none.
        task: u64,
        /// Usable bytes of the overflowed stack.
        stack_size: usize,
    },
    /// A guard of one of our stacks that is not the running one (a wild
    /// access, or a fault outside any fiber).
    Other {
        /// The fault address.
        addr: usize,
        /// Usable bytes of the stack above that guard.
        stack_size: usize,
        /// The task label of this thread, 0 if none.
        task: u64,
    },
}

/// Classifies a fault address as the handler does, for the calling thread.
/// `None`: not a guard page of ours.
pub fn classify(addr: usize) -> Option<GuardHit> {
    let (guard, stack_size) = guard_at(addr)?;
    let (running, task) = running();
    if running == Some(guard) {
        Some(GuardHit::Overflow { task, stack_size })
    } else {
        Some(GuardHit::Other {
            addr,
            stack_size,
            task,
        })
    }
}

/// A fixed-capacity byte buffer for the report (no allocation).
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    fn bytes(&mut self, s: &[u8]) -> &mut Line {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    fn dec(&mut self, mut v: u64) -> &mut Line {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&d[i..])
    }

    fn hex(&mut self, mut v: usize) -> &mut Line {
        let mut d = [0u8; 16];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[v & 0xf];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.bytes(b"0x").bytes(&d[i..])
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Writes the report line of `hit` into `line`.
fn format_hit(hit: GuardHit, line: &mut Line) {
    line.bytes(b"\nscx-rt: ");
    match hit {
        GuardHit::Overflow { task, stack_size } => {
            if task != 0 {
                line.bytes(b"task ").dec(task);
            } else {
                line.bytes(b"a green fiber");
            }
            line.bytes(b" overflowed its ")
                .dec((stack_size / 1024) as u64)
                .bytes(b" KiB stack\n");
        }
        GuardHit::Other {
            addr,
            stack_size,
            task,
        } => {
            line.bytes(b"access to the guard page of a ")
                .dec((stack_size / 1024) as u64)
                .bytes(b" KiB green stack at ")
                .hex(addr);
            if task != 0 {
                line.bytes(b" by task ").dec(task);
            }
            line.bytes(b"\n");
        }
    }
}

/// The report line for `hit`, as the handler writes it (tests).
pub fn report_text(hit: GuardHit) -> String {
    let mut line = Line::new();
    format_hit(hit, &mut line);
    String::from_utf8_lossy(line.as_bytes()).into_owned()
}

/// The dispositions our handler replaced, for chaining.
static PREV_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_BUS: OnceLock<libc::sigaction> = OnceLock::new();
static INSTALL: Once = Once::new();

fn prev_for(sig: libc::c_int) -> Option<&'static libc::sigaction> {
    match sig {
        libc::SIGSEGV => PREV_SEGV.get(),
        libc::SIGBUS => PREV_BUS.get(),
        _ => None,
    }
}

/// Installs the `SIGSEGV`/`SIGBUS` handler (module doc), once per process;
/// later calls do nothing. A failure leaves the previous handlers in place:
/// overflows then die with a bare `SIGSEGV`, as without this module.
pub fn install_handler() {
    INSTALL.call_once(|| {
        for (sig, prev) in [(libc::SIGSEGV, &PREV_SEGV), (libc::SIGBUS, &PREV_BUS)] {
            // SAFETY: an all-zero `sigaction` is a valid value of this plain
            // C struct (SIG_DFL, empty mask, no flags).
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a query (null new action) of a valid signal into a
            // valid out-pointer.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
                continue;
            }
            // Stored before our handler can run, so it always finds it.
            let _ = prev.set(old);
            // SAFETY: as above, all-zero is a valid `sigaction`.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_fault as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `sa_mask` is a valid sigset inside `new`.
            unsafe { libc::sigemptyset(&mut new.sa_mask) };
            // SAFETY: installs a handler with the three-argument signature
            // SA_SIGINFO requires; `on_fault` only does async-signal-safe
            // work (module doc) and lives for the whole program.
            unsafe { libc::sigaction(sig, &new, std::ptr::null_mut()) };
        }
    });
}

/// Restores the default action for `sig` (async-signal-safe).
fn reset_default(sig: libc::c_int) {
    // SAFETY: all-zero is a valid `sigaction` (SIG_DFL, empty mask).
    let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: sigaction is async-signal-safe; `dfl` is a valid action.
    unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
}

/// The handler. Runs on the alternate signal stack where one is installed.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot, always
    // valid; we restore the value before returning.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid siginfo.
    let code = unsafe { (*info).si_code };
    // A real fault (si_code > 0) carries its address; a signal sent with
    // kill/tgkill (si_code <= 0) does not.
    let hit = if code > 0 {
        // SAFETY: as above; si_addr is the fault address for SIGSEGV and
        // SIGBUS faults.
        classify(unsafe { (*info).si_addr() } as usize)
    } else {
        None
    };
    match hit {
        Some(hit) => {
            let mut line = Line::new();
            format_hit(hit, &mut line);
            let b = line.as_bytes();
            // SAFETY: write(2) is async-signal-safe; `b` is a valid buffer.
            // Nothing useful can be done if it fails.
            let _ = unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
            // Returning re-runs the faulting access, now with the default
            // action: the process dies by this signal.
            reset_default(sig);
        }
        None => chain(sig, info, uctx),
    }
    // SAFETY: see the load above.
    unsafe { *libc::__errno_location() = errno };
}

/// Passes a fault that is not ours to the disposition we replaced.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: valid siginfo (see `on_fault`).
    let user_sent = unsafe { (*info).si_code } <= 0;
    let Some(prev) = prev_for(sig) else {
        reset_default(sig);
        return;
    };
    match prev.sa_sigaction {
        libc::SIG_IGN if user_sent => {}
        libc::SIG_DFL | libc::SIG_IGN => {
            // A fault cannot be ignored: the kernel would force the default
            // action too. A sent signal is raised again (it is blocked
            // while we run, so it is delivered when we return).
            reset_default(sig);
            if user_sent {
                // SAFETY: raise is async-signal-safe.
                unsafe { libc::raise(sig) };
            }
        }
        h if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous action was installed with SA_SIGINFO, so
            // its handler has the three-argument signature, and we pass it
            // the kernel's own arguments.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            f(sig, info, uctx);
        }
        h => {
            // SAFETY: without SA_SIGINFO the handler takes the signal number
            // only.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
    }
}

/// An alternate signal stack for the calling thread, so the overflow
/// handler can run when the thread's stack pointer is in a guard page.
/// Dropping it reinstates the thread's previous alternate stack (Rust's std
/// gives its threads a small one) and unmaps ours. Not `Send`: it belongs
/// to the thread that installed it.
pub struct AltStack {
    /// The mapping: one guard page, then [`ALTSTACK_SIZE`] usable bytes.
    addr: usize,
    len: usize,
    prev: libc::stack_t,
    _thread: PhantomData<*const ()>,
}

impl AltStack {
    /// Maps an alternate stack of [`ALTSTACK_SIZE`] bytes (with a guard
    /// page below it), makes it the calling thread's, and installs the
    /// handler ([`install_handler`]) if that has not happened yet.
    pub fn install() -> io::Result<AltStack> {
        install_handler();
        let page = page_size();
        let size = ALTSTACK_SIZE.max(libc::SIGSTKSZ).div_ceil(page) * page;
        let len = size + page;
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // affected (no MAP_FIXED).
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let unmap = |addr: *mut libc::c_void| {
            // SAFETY: exactly the mapping created above, not in use.
            unsafe { libc::munmap(addr, len) };
        };
        // SAFETY: the lowest page of the mapping we just created; nothing
        // uses it; PROT_NONE only removes access.
        if unsafe { libc::mprotect(addr, page, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            unmap(addr);
            return Err(e);
        }
        let new = libc::stack_t {
            ss_sp: (addr as usize + page) as *mut libc::c_void,
            ss_flags: 0,
            ss_size: size,
        };
        // SAFETY: all-zero is a valid `stack_t`.
        let mut prev: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: `new` describes memory we own for as long as the
        // `AltStack` lives (it reinstates `prev` before unmapping), and
        // `prev` is a valid out-pointer.
        if unsafe { libc::sigaltstack(&new, &mut prev) } != 0 {
            let e = io::Error::last_os_error();
            unmap(addr);
            return Err(e);
        }
        Ok(AltStack {
            addr: addr as usize,
            len,
            prev,
            _thread: PhantomData,
        })
    }

    /// The usable range of this alternate stack.
    pub fn range(&self) -> Range<usize> {
        let page = page_size();
        self.addr + page..self.addr + self.len
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let mut prev = self.prev;
        // A previous state that reads "on stack" cannot be reinstated as
        // such; disabling is the safe choice then.
        if prev.ss_flags & libc::SS_ONSTACK != 0 {
            prev.ss_flags = libc::SS_DISABLE;
        }
        // SAFETY: reinstates the thread's previous alternate stack (still
        // owned by whoever installed it), or disables ours. We are not
        // running on ours (this is ordinary code, not a handler), so the
        // call cannot fail with EPERM.
        let rc = unsafe { libc::sigaltstack(&prev, std::ptr::null_mut()) };
        if rc == 0 {
            // SAFETY: our mapping, no longer registered as the alternate
            // stack of any thread.
            unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        }
    }
}

impl std::fmt::Debug for AltStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AltStack")
            .field("range", &self.range())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_reports_by_hand() {
        assert_eq!(
            report_text(GuardHit::Overflow {
                task: 42,
                stack_size: 256 * 1024
            }),
            "\nscx-rt: task 42 overflowed its 256 KiB stack\n"
        );
        assert_eq!(
            report_text(GuardHit::Overflow {
                task: 0,
                stack_size: 16 * 1024
            }),
            "\nscx-rt: a green fiber overflowed its 16 KiB stack\n"
        );
        assert_eq!(
            report_text(GuardHit::Other {
                addr: 0x7f00_dead_b000,
                stack_size: 64 * 1024,
                task: 0
            }),
            "\nscx-rt: access to the guard page of a 64 KiB green stack at 0x7f00deadb000\n"
        );
        assert_eq!(
            report_text(GuardHit::Overflow {
                task: u64::MAX,
                stack_size: 0
            }),
            "\nscx-rt: task 18446744073709551615 overflowed its 0 KiB stack\n"
        );
    }

    /// Registry bookkeeping on fake ranges in the kernel half of the
    /// address space, which no mapping of ours (or of a concurrent test)
    /// can ever occupy.
    #[test]
    fn registry_registers_unregisters_and_reuses() {
        const FAKE: usize = 0xffff_f000_0000_0000;
        std::thread::scope(|sc| {
            for t in 0..4usize {
                sc.spawn(move || {
                    for k in 0..50usize {
                        let start = FAKE + (t * 1000 + k) * 0x10_0000;
                        // 4 slots of 16 KiB: a 4 KiB guard + 12 KiB stack.
                        let i = register_slab(start, 4 * 0x4000, 0x4000, 0x1000, 0x3000).unwrap();
                        for slot in 0..4 {
                            let lo = start + slot * 0x4000;
                            assert_eq!(guard_at(lo), Some((lo..lo + 0x1000, 0x3000)));
                            assert_eq!(guard_at(lo + 0xfff), Some((lo..lo + 0x1000, 0x3000)));
                            assert_eq!(guard_at(lo + 0x1000), None);
                            assert_eq!(guard_at(lo + 0x3fff), None);
                        }
                        assert_eq!(guard_at(start + 4 * 0x4000), None, "past the slab");
                        assert_eq!(guard_at(start - 1), None, "below the slab");
                        unregister_slab(i);
                        assert_eq!(guard_at(start), None, "unregistered");
                    }
                });
            }
        });
    }

    const CHAIN_ENV: &str = "SCX_RT_SYS_CHAIN_CHILD";

    #[inline(never)]
    fn recurse(depth: usize) -> usize {
        let frame = std::hint::black_box([depth as u8; 4096]);
        if depth == usize::MAX {
            return 0;
        }
        recurse(depth + 1) + frame[depth % 4096] as usize
    }

    /// Child half of the chaining tests: with our handler installed, faults
    /// that are not ours must behave as before.
    #[test]
    fn chain_child() {
        let Ok(mode) = std::env::var(CHAIN_ENV) else {
            return;
        };
        // What the stack pool does when it maps its first slab.
        install_handler();
        // SAFETY: all-zero is a valid sigaction.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a query with a valid out-pointer.
        let rc = unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut cur) };
        assert_eq!(rc, 0);
        assert_eq!(cur.sa_sigaction, on_fault as *const () as usize);
        eprintln!("handler installed");
        match mode.as_str() {
            // Rust's std reports overflows of OS-thread stacks itself.
            "thread" => {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(|| std::hint::black_box(recurse(0)))
                    .unwrap()
                    .join()
                    .unwrap();
            }
            // An ordinary wild access: a plain SIGSEGV, no report.
            _ => {
                let p = std::hint::black_box(8usize) as *mut u8;
                // SAFETY: none — this write is meant to fault.
                unsafe { std::ptr::write_volatile(p, 1) };
            }
        }
        std::process::exit(0);
    }

    fn run_chain_child(mode: &str) -> (Option<i32>, String) {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigsegv::tests::chain_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHAIN_ENV, mode)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("handler installed"), "stderr: {stderr}");
        assert!(!stderr.contains("scx-rt:"), "not ours: {stderr}");
        (out.status.signal(), stderr)
    }

    #[test]
    fn std_thread_overflow_still_reported_by_std() {
        let (sig, stderr) = run_chain_child("thread");
        assert!(
            stderr.contains("has overflowed its stack"),
            "stderr: {stderr}"
        );
        assert_eq!(sig, Some(libc::SIGABRT), "stderr: {stderr}");
    }

    #[test]
    fn wild_access_is_a_plain_sigsegv() {
        let (sig, stderr) = run_chain_child("wild");
        assert_eq!(sig, Some(libc::SIGSEGV), "stderr: {stderr}");
    }

    #[test]
    fn altstack_installs_and_restores() {
        std::thread::spawn(|| {
            let query = || {
                // SAFETY: all-zero is a valid stack_t.
                let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
                // SAFETY: a query with a valid out-pointer.
                assert_eq!(unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) }, 0);
                cur
            };
            let before = query();
            let alt = AltStack::install().unwrap();
            let during = query();
            assert_eq!(during.ss_sp as usize, alt.range().start);
            assert_eq!(during.ss_size, alt.range().len());
            assert!(alt.range().len() >= ALTSTACK_SIZE);
            drop(alt);
            let after = query();
            assert_eq!(after.ss_sp, before.ss_sp);
            assert_eq!(after.ss_flags, before.ss_flags);
        })
        .join()
        .unwrap();
        // The handler is ours now.
        // SAFETY: all-zero is a valid sigaction.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a query with a valid out-pointer.
        let rc = unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut cur) };
        assert_eq!(rc, 0);
        assert_eq!(cur.sa_sigaction, on_fault as *const () as usize);
        assert_ne!(cur.sa_flags & libc::SA_ONSTACK, 0);
    }
}
