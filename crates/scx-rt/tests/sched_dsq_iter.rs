//! DSQ iterators and `dsq_move` through the public API (SPEC.md §2.7):
//! walks in dispatch order and reverse over FIFO and vtime DSQs, seeing
//! only what was queued when they began; moves to this CPU's local DSQ,
//! to another (idle) CPU's, and into a vtime DSQ, with the slice and vtime
//! overrides; a move of a task that left the DSQ fails quietly; moves from
//! a timer work and from an rq-locked callback are an error.
//!
//! Order tests run on ONE CPU: a parent task spawns tagged children
//! without reaching a switch point, so every child is queued before any
//! runs, and the first `dispatch` after the parent sees them all.
// The runtime is not compiled under the loom cfg (only its core is).
#![cfg(not(scx_rt_loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use scx_rt::{
    Ctx, DispatchCtx, DsqIterError, DsqIterFlags, EnqFlags, EnqueueCtx, InitCtx, InitTaskArgs,
    Scheduler, SelectCpuCtx, TaskRef, WakeFlags, DSQ_GLOBAL, DSQ_LOCAL, DSQ_LOCAL_ON, SLICE_DFL,
};

/// The DSQ every task is queued on.
const A: u64 = 1;
/// A second user DSQ (vtime-ordered moves land here).
const B: u64 = 2;
/// Children per test.
const N: u64 = 6;

/// What the tests look at afterwards.
#[derive(Default)]
struct State {
    /// Tag lists a test's hook recorded (walk orders, ...).
    notes: Mutex<Vec<(&'static str, Vec<u64>)>>,
    /// (tag, cpu, slice) of every task as it starts running.
    runs: Mutex<Vec<(u64, usize, u64)>>,
    /// The hook ran its one-time part.
    done: AtomicBool,
    /// Moves that returned true / false.
    moved: AtomicUsize,
    refused: AtomicUsize,
    /// Errors `dsq_iter` returned.
    errors: Mutex<Vec<DsqIterError>>,
}

impl State {
    fn note(&self, what: &'static str, tags: Vec<u64>) {
        self.notes.lock().push((what, tags));
    }

    fn notes(&self, what: &str) -> Vec<u64> {
        let n = self.notes.lock();
        let (_, v) = n
            .iter()
            .find(|(w, _)| *w == what)
            .unwrap_or_else(|| panic!("nothing noted as {what:?}: {:?}", *n));
        v.clone()
    }
}

type DspHook = dyn Fn(&mut DispatchCtx<'_, '_>, usize, &State) + Send + Sync;
type CtxHook = dyn Fn(&Ctx<'_>, &State) + Send + Sync;

/// Queues every tagged task on user DSQ `A` (FIFO, or by `vtimes[tag]`),
/// runs every untagged one at once, and leaves the rest to its hooks.
struct Walker {
    tag: Arc<AtomicU64>,
    st: Arc<State>,
    vtimes: Option<Vec<u64>>,
    dispatch: Box<DspHook>,
    timer: Option<Box<CtxHook>>,
    on_running: Option<Box<CtxHook>>,
}

impl Walker {
    fn new(
        dispatch: impl Fn(&mut DispatchCtx<'_, '_>, usize, &State) + Send + Sync + 'static,
    ) -> Self {
        Self {
            tag: Arc::new(AtomicU64::new(NO_TAG)),
            st: Arc::new(State::default()),
            vtimes: None,
            dispatch: Box::new(dispatch),
            timer: None,
            on_running: None,
        }
    }
}

impl Scheduler for Walker {
    fn name(&self) -> &str {
        "walker"
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(A, -1).map_err(|_| -17)?;
        ctx.create_dsq(B, -1).map_err(|_| -17)?;
        // Iterator errors, from an init callback (any context may walk).
        for (id, flags) in [
            (DSQ_GLOBAL, DsqIterFlags::empty()),
            (999, DsqIterFlags::empty()),
            (A, DsqIterFlags(1)),
        ] {
            if let Err(e) = ctx.dsq_iter(id, flags) {
                self.st.errors.lock().push(e);
            }
        }
        if self.timer.is_some() {
            ctx.timer_start(0, 300_000, 0);
        }
        Ok(())
    }
    fn init_task(&self, _ctx: &InitCtx<'_>, p: &TaskRef, _a: InitTaskArgs) -> Result<(), i32> {
        p.set_data(Tag(self.tag.load(Ordering::SeqCst)));
        Ok(())
    }
    fn select_cpu(
        &self,
        _c: &mut SelectCpuCtx<'_>,
        _p: &TaskRef,
        _prev: usize,
        _w: WakeFlags,
    ) -> i32 {
        0
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        let t = tag_of(p);
        if t == NO_TAG {
            ctx.dsq_insert(p, DSQ_LOCAL, SLICE_DFL, f);
            return;
        }
        match &self.vtimes {
            Some(v) => ctx.dsq_insert_vtime(p, A, SLICE_DFL, v[t as usize], f),
            None => ctx.dsq_insert(p, A, SLICE_DFL, f),
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, cpu: usize, _prev: Option<&TaskRef>) {
        (self.dispatch)(ctx, cpu, &self.st)
    }
    fn running(&self, ctx: &Ctx<'_>, p: &TaskRef) {
        if tag_of(p) != NO_TAG {
            let cpu = ctx.cpu().unwrap();
            self.st.runs.lock().push((tag_of(p), cpu, p.slice()));
        }
        if let Some(h) = &self.on_running {
            h(ctx, &self.st);
        }
    }
    fn timer(&self, ctx: &Ctx<'_>, id: u32) {
        if let Some(h) = &self.timer {
            h(ctx, &self.st);
            ctx.timer_start(id, 300_000, 0);
        }
    }
}

/// Runs `N` tagged children on a runtime of `cpus` CPUs with `w`; returns
/// the run order, the state and the exit record.
fn run(cpus: usize, w: Walker) -> (Vec<u64>, Arc<State>, Option<scx_rt::ExitInfo>) {
    let st = w.st.clone();
    let (order, exit) = guard("run tagged children", move || {
        let tag = w.tag.clone();
        let rt = rt_with(cpus, w);
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs = spawn_tagged_children(&rt, &tag, N, &log);
        join_tagged(hs);
        rt.shutdown();
        let order = log.lock().clone();
        (order, rt.exit_info())
    });
    (order, st, exit)
}

fn tags(it: impl Iterator<Item = TaskRef>) -> Vec<u64> {
    it.map(|p| tag_of(&p)).collect()
}

/// The first time `A` holds every child, `once` runs; then `A` is
/// consumed as a FIFO would be.
fn once_full(once: impl Fn(&mut DispatchCtx<'_, '_>, &State) + Send + Sync + 'static) -> Walker {
    Walker::new(move |ctx, _cpu, st| {
        if ctx.dsq_nr_queued(A) == N as i32 && !st.done.swap(true, Ordering::SeqCst) {
            once(ctx, st);
        }
        if !ctx.dsq_move_to_local(A) {
            ctx.dsq_move_to_local(B);
        }
    })
}

fn walk_both_ways(ctx: &mut DispatchCtx<'_, '_>, st: &State) {
    st.note(
        "forward",
        tags(ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap()),
    );
    st.note("reverse", tags(ctx.dsq_iter(A, DsqIterFlags::REV).unwrap()));
}

#[test]
fn a_walk_follows_dispatch_order_both_ways_on_a_fifo_dsq() {
    let (order, st, exit) = run(1, once_full(walk_both_ways));
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(st.notes("forward"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(st.notes("reverse"), vec![5, 4, 3, 2, 1, 0]);
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_walk_follows_vtime_order_both_ways_on_a_vtime_dsq() {
    let mut w = once_full(walk_both_ways);
    w.vtimes = Some(vec![30, 10, 50, 20, 60, 40]);
    let (order, st, exit) = run(1, w);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(st.notes("forward"), vec![1, 3, 0, 5, 2, 4]);
    assert_eq!(st.notes("reverse"), vec![4, 2, 5, 0, 3, 1]);
    assert_eq!(
        order,
        vec![1, 3, 0, 5, 2, 4],
        "consumers take the same order"
    );
}

#[test]
fn a_walk_sees_what_was_queued_when_it_began_and_a_requeued_task_does_not_move() {
    let (order, st, exit) = run(
        1,
        once_full(|ctx, st| {
            let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
            let first = it.next().unwrap();
            // To the tail of the same DSQ: linked again, after the walk began.
            assert!(ctx.dsq_move(&mut it, &first, A, EnqFlags::empty()));
            st.note("rest", tags(it.by_ref()));
            // It left and came back since the walk began: no longer this
            // walk's to move.
            if ctx.dsq_move(&mut it, &first, DSQ_LOCAL, EnqFlags::empty()) {
                st.moved.fetch_add(1, Ordering::SeqCst);
            } else {
                st.refused.fetch_add(1, Ordering::SeqCst);
            }
            st.note(
                "fresh",
                tags(ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap()),
            );
        }),
    );
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(
        st.notes("rest"),
        vec![1, 2, 3, 4, 5],
        "the moved task is not seen twice"
    );
    assert_eq!(st.refused.load(Ordering::SeqCst), 1);
    assert_eq!(st.moved.load(Ordering::SeqCst), 0);
    assert_eq!(st.notes("fresh"), vec![1, 2, 3, 4, 5, 0]);
    assert_eq!(order, vec![1, 2, 3, 4, 5, 0]);
}

#[test]
fn dsq_move_runs_the_chosen_tasks_first_with_the_slice_set_for_each_move() {
    let (order, st, exit) = run(
        1,
        once_full(|ctx, st| {
            let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
            let seen: Vec<_> = it.by_ref().collect();
            it.set_slice(777_777);
            assert!(ctx.dsq_move(&mut it, &seen[4], DSQ_LOCAL, EnqFlags::empty()));
            // The override was for that move only.
            assert!(ctx.dsq_move(&mut it, &seen[5], DSQ_LOCAL, EnqFlags::empty()));
            st.moved.fetch_add(2, Ordering::SeqCst);
        }),
    );
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(st.moved.load(Ordering::SeqCst), 2);
    assert_eq!(order, vec![4, 5, 0, 1, 2, 3]);
    let runs = st.runs.lock().clone();
    assert_eq!(
        runs[0],
        (4, 0, 777_777),
        "tag 4 runs first with the slice set"
    );
    assert_eq!(runs[1], (5, 0, SLICE_DFL), "tag 5 keeps its slice");
}

#[test]
fn dsq_move_vtime_reorders_by_the_vtime_set_for_each_move() {
    let (order, st, exit) = run(
        1,
        once_full(|ctx, st| {
            let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
            while let Some(p) = it.next() {
                it.set_vtime(100 - tag_of(&p));
                assert!(ctx.dsq_move_vtime(&mut it, &p, B, EnqFlags::empty()));
                st.moved.fetch_add(1, Ordering::SeqCst);
            }
            st.note("b", tags(ctx.dsq_iter(B, DsqIterFlags::empty()).unwrap()));
        }),
    );
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(st.moved.load(Ordering::SeqCst), N as usize);
    assert_eq!(st.notes("b"), vec![5, 4, 3, 2, 1, 0]);
    assert_eq!(order, vec![5, 4, 3, 2, 1, 0]);
}

#[test]
fn a_task_that_left_the_dsq_is_not_moved_and_that_is_no_error() {
    let (order, st, exit) = run(
        1,
        once_full(|ctx, st| {
            let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
            let head = it.next().unwrap();
            // Consumed (the head goes to this CPU's local DSQ): it left A.
            assert!(ctx.dsq_move_to_local(A));
            if ctx.dsq_move(&mut it, &head, B, EnqFlags::empty()) {
                st.moved.fetch_add(1, Ordering::SeqCst);
            } else {
                st.refused.fetch_add(1, Ordering::SeqCst);
            }
        }),
    );
    assert!(exit.is_none(), "a refused move is no error: {exit:?}");
    assert_eq!(st.refused.load(Ordering::SeqCst), 1);
    assert_eq!(st.moved.load(Ordering::SeqCst), 0);
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "each task ran once");
}

#[test]
fn dsq_move_into_an_idle_cpus_local_dsq_wakes_it() {
    // CPU 0 moves every task to CPU 1's local DSQ; CPU 1 has no dispatch
    // of its own, so only the move's wake-up makes it run them.
    let w = Walker::new(|ctx, cpu, st| {
        if cpu != 0 {
            return;
        }
        let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
        while let Some(p) = it.next() {
            if ctx.dsq_move(&mut it, &p, DSQ_LOCAL_ON | 1, EnqFlags::empty()) {
                st.moved.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let st = w.st.clone();
    // Tagged, so that `enqueue` queues them on A.
    w.tag.store(0, Ordering::SeqCst);
    let (cpus, exit) = guard("moves to an idle CPU", move || {
        let rt = rt_with(2, w);
        let hs: Vec<_> = (0..N)
            .map(|_| rt.spawn(|| scx_rt::current_cpu().unwrap()))
            .collect();
        let cpus: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        rt.shutdown();
        (cpus, rt.exit_info())
    });
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(cpus, vec![1; N as usize], "every task ran on CPU 1");
    assert_eq!(st.moved.load(Ordering::SeqCst), N as usize);
}

#[test]
fn a_timer_moves_tasks_and_an_rq_locked_callback_may_not() {
    // No dispatch at all: the timer (no rq lock) moves A's tasks to the
    // local DSQ of its CPU.
    let mut w = Walker::new(|_ctx, _cpu, _st| {});
    w.timer = Some(Box::new(|ctx, st| {
        let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
        while let Some(p) = it.next() {
            if ctx.dsq_move(&mut it, &p, DSQ_LOCAL, EnqFlags::empty()) {
                st.moved.fetch_add(1, Ordering::SeqCst);
            }
        }
    }));
    let (order, st, exit) = run(1, w);
    assert!(exit.is_none(), "unexpected exit: {exit:?}");
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(st.moved.load(Ordering::SeqCst), N as usize);
    assert_eq!(
        *st.errors.lock(),
        vec![
            DsqIterError::NoSuchDsq { id: DSQ_GLOBAL },
            DsqIterError::NoSuchDsq { id: 999 },
            DsqIterError::InvalidFlags { bits: 1 },
        ],
        "built-in and unknown DSQs cannot be walked; unknown flags are refused"
    );

    // `running` holds the rq lock: a move from there is the scheduler's
    // error, and moves nothing.
    let mut w = once_full(|_ctx, _st| {});
    w.on_running = Some(Box::new(|ctx, st| {
        let mut it = ctx.dsq_iter(A, DsqIterFlags::empty()).unwrap();
        if let Some(p) = it.next() {
            if ctx.dsq_move(&mut it, &p, DSQ_LOCAL, EnqFlags::empty()) {
                st.moved.fetch_add(1, Ordering::SeqCst);
            }
        }
    }));
    let (order, st, exit) = run(1, w);
    let exit = exit.expect("the scheduler must be ejected");
    assert!(
        exit.msg
            .contains("dsq_move called from a callback that holds an rq lock"),
        "msg: {}",
        exit.msg
    );
    assert_eq!(st.moved.load(Ordering::SeqCst), 0);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![0, 1, 2, 3, 4, 5],
        "each task still ran once: {order:?}"
    );
}
