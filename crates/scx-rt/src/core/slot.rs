//! The scheduler slots: which scheduler an rq calls (by generation), the
//! per-thread cache that makes a lookup cost no shared atomic, and the
//! "working for" record that lets a late error of a departed scheduler be
//! dropped.

use std::rc::Rc;

use std::sync::Arc;

use crate::consts::DSP_DFL_MAX_BATCH;
use crate::flags::OpsFlags;
use crate::loom::Ordering;
use crate::ops::{Scheduler, Shared};

/// The scheduler slot of the one `Shared` instance.
pub(crate) type SchedSlot = super::shared::SchedSlot<dyn Scheduler>;

/// What the core caches about a scheduler it installs.
pub(crate) fn new_slot(gen: u64, ops: Arc<dyn Scheduler>) -> SchedSlot {
    let flags = ops.flags();
    let mb = ops.dispatch_max_batch();
    SchedSlot {
        gen,
        name: ops.name().to_string(),
        flags,
        builtin_idle: ops.builtin_idle() || flags.contains(OpsFlags::KEEP_BUILTIN_IDLE),
        max_batch: if mb == 0 { DSP_DFL_MAX_BATCH } else { mb } as usize,
        wants_cpumask: ops.wants_cpumask(),
        hotplug: ops.handles_hotplug(),
        timeout_ns: {
            let max = crate::consts::WATCHDOG_MAX_TIMEOUT_MS;
            let ms = match ops.timeout_ms() {
                0 => max,
                ms => ms.min(max),
            };
            u64::from(ms) * 1_000_000
        },
        fallback: false,
        has: Arc::new(crate::core::has_op::OpsPresence::new(ops.scx_type_id())),
        events_base: Default::default(),
        ops,
    }
}

/// The built-in FIFO as the fallback.
pub(crate) fn fallback_slot(gen: u64) -> SchedSlot {
    SchedSlot {
        fallback: true,
        ..new_slot(gen, Arc::new(crate::schedulers::Fifo))
    }
}

std::thread_local! {
    /// Per-thread cache of the scheduler slot, so that calling a callback
    /// costs no shared atomic (an `Rc` clone is a plain increment).
    static SLOT_CACHE: std::cell::RefCell<Option<(u64, Rc<SchedSlot>)>> =
        const { std::cell::RefCell::new(None) };
    /// (runtime, scheduler generation) this thread last looked a scheduler
    /// up for: the scheduler an error it records belongs to. An error a
    /// late caller records on behalf of a scheduler that has since left
    /// (the kernel's RCU grace period keeps such callers from existing)
    /// must not end its successor.
    static WORKING_FOR: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

impl Shared {
    /// The scheduler of generation `gen` (current, or the one being
    /// replaced while a swap is in progress).
    pub(crate) fn slot(&self, gen: u64) -> Rc<SchedSlot> {
        if let Some(s) = self.cached_slot(gen) {
            return s;
        }
        let key = self.rt_id;
        let slots = self.slots.read();
        let s = if slots.cur.gen == gen {
            slots.cur.clone()
        } else {
            match &slots.prev {
                Some(p) if p.gen == gen => p.clone(),
                _ => slots.cur.clone(),
            }
        };
        drop(slots);
        let s = Rc::new(s);
        WORKING_FOR.with(|w| w.set((self.rt_id, s.gen)));
        SLOT_CACHE.with(|c| *c.borrow_mut() = Some((key, s.clone())));
        s
    }

    /// A fresh scheduler generation (never reused: per-thread slot caches
    /// and `WORKING_FOR` compare generations).
    pub(crate) fn new_gen(&self) -> u64 {
        self.next_gen.fetch_add(1, Ordering::AcqRel)
    }

    /// Marks the current scheduler as the fallback (a runtime built
    /// without one).
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn set_cur_fallback(&self) {
        self.slots.write().cur.fallback = true;
    }

    /// Makes `slot` current; the one it replaces stays reachable (as
    /// `prev`) for the rqs that still use its generation.
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn install(&self, mut slot: SchedSlot) {
        let gen = slot.gen;
        // The scheduler's event counters start here (`core::events`).
        slot.events_base = self.events_total();
        self.cur_builtin_idle
            .store(slot.builtin_idle, Ordering::Relaxed);
        {
            let mut s = self.slots.write();
            let prev = std::mem::replace(&mut s.cur, slot);
            s.prev = Some(prev);
        }
        self.sched_gen.store(gen, Ordering::Release);
    }

    /// Drops the replaced scheduler once no rq uses its generation.
    #[cfg_attr(scx_rt_loom, allow(dead_code))]
    pub(crate) fn forget_prev_slot(&self) {
        self.slots.write().prev = None;
    }

    /// The current scheduler (for callers holding no rq lock). Inline: on
    /// a worker (a spawn from a task) the lookup hits this thread's cache,
    /// a compare and an `Rc` count; `slot`, out of line, does the rest.
    #[inline]
    pub(crate) fn cur_slot(&self) -> Rc<SchedSlot> {
        let gen = self.sched_gen.load(Ordering::Acquire);
        match self.cached_slot(gen) {
            Some(s) => s,
            None => self.slot(gen),
        }
    }

    /// [`Shared::slot`] with the cache hit inline (a wake-up's lookup under
    /// the target's rq lock: the out-of-line call's frame cost a same-CPU
    /// round trip ~26 instructions).
    #[inline]
    pub(crate) fn slot_of(&self, gen: u64) -> Rc<SchedSlot> {
        match self.cached_slot(gen) {
            Some(s) => s,
            None => self.slot(gen),
        }
    }

    /// This thread's cached slot if it is this runtime's generation `gen`
    /// (then also recorded as the scheduler this thread works for).
    #[inline(always)]
    fn cached_slot(&self, gen: u64) -> Option<Rc<SchedSlot>> {
        let key = self.rt_id;
        let s = SLOT_CACHE.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(k, s)| *k == key && s.gen == gen)
                .map(|(_, s)| s.clone())
        })?;
        WORKING_FOR.with(|w| w.set((key, gen)));
        Some(s)
    }

    pub(crate) fn builtin_idle(&self) -> bool {
        self.cur_builtin_idle.load(Ordering::Relaxed)
    }

    pub(crate) fn check_builtin_idle(&self, what: &str) -> bool {
        if self.builtin_idle() {
            return true;
        }
        self.ops_error(format!("{what}: built-in idle tracking is disabled"));
        false
    }
}

/// A scheduler slot found once and reused for the rest of one operation
/// (a spawn, a wake-up), so that its callbacks cost one lookup, not one
/// per callback. `given` is a slot the caller already holds; a lookup for
/// any other generation goes through `Shared::slot` and is kept.
pub(crate) struct SlotHint<'a> {
    given: Option<&'a SchedSlot>,
    found: Option<Rc<SchedSlot>>,
}

impl<'a> SlotHint<'a> {
    pub(crate) fn new(given: Option<&'a SchedSlot>) -> Self {
        Self { given, found: None }
    }

    /// The slot of generation `gen` (as `Shared::slot` would return it).
    #[inline]
    pub(crate) fn get(&mut self, sh: &Shared, gen: u64) -> &SchedSlot {
        if let Some(s) = self.given.filter(|s| s.gen == gen) {
            return s;
        }
        if self.found.as_ref().is_none_or(|s| s.gen != gen) {
            self.found = Some(sh.slot(gen));
        }
        self.found.as_deref().expect("set above")
    }
}

/// Records that the calling thread works for generation `gen` of runtime
/// `rt` with a slot it held already (what a lookup records).
#[inline]
pub(crate) fn set_working_for(rt: u64, gen: u64) {
    WORKING_FOR.with(|w| w.set((rt, gen)));
}

/// The (runtime, generation) the calling thread last looked a scheduler
/// up for (`record_exit`).
pub(crate) fn working_for() -> (u64, u64) {
    WORKING_FOR.with(|w| w.get())
}
