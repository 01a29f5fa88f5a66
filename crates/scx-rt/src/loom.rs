//! The one place that names std's, parking_lot's or loom's synchronisation
//! types.
//!
//! Every atomic, lock, condvar, thread and spin hint of scx-rt's concurrency
//! core comes from here. Normally these are std atomics and parking_lot locks;
//! under `--cfg scx_rt_loom` they are loom's, so the loom models in
//! `loom-tests` drive the real rq, DSQ, cpumask, kick, idle and doorbell code
//! (never a copy of it). The cfg is namespaced (`scx_rt_loom`, not `loom`) so
//! that it does not flip loom support in dependencies.
//!
//! Normally the lock is `scx_rt_sys::spinlock` (the rq and DSQ locks are
//! short and held by running workers, as the kernel's raw spinlocks are).
//! The lock type is a thin wrapper with one API over both backends
//! (`lock`, `try_lock`, and [`MutexGuard::unlocked`] for the rq-lock
//! hand-offs of SPEC.md §3.9).

#[cfg(not(scx_rt_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(scx_rt_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// An atomic that no protocol reads, only statistics (`core::events`):
/// std's in every build, loom's included, so that a model does not
/// explore the interleavings of counter updates, which change nothing the
/// code decides.
pub(crate) use std::sync::atomic::AtomicU64 as StatAtomicU64;

/// A spin-wait hint (`loom::hint::spin_loop` yields to the model checker).
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(scx_rt_loom))]
    std::hint::spin_loop();
    #[cfg(scx_rt_loom)]
    loom::hint::spin_loop();
}

/// Cooperative yield of the OS thread (a scheduling point under loom).
#[inline]
#[allow(dead_code)]
pub(crate) fn thread_yield() {
    #[cfg(not(scx_rt_loom))]
    std::thread::yield_now();
    #[cfg(scx_rt_loom)]
    loom::thread::yield_now();
}

#[cfg(not(scx_rt_loom))]
type RawGuard<'a, T> = scx_rt_sys::spinlock::SpinMutexGuard<'a, T>;
#[cfg(scx_rt_loom)]
type RawGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutex with the same API over parking_lot and loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(scx_rt_loom))]
    inner: scx_rt_sys::spinlock::SpinMutex<T>,
    #[cfg(scx_rt_loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(scx_rt_loom))]
            inner: scx_rt_sys::spinlock::SpinMutex::new(value),
            #[cfg(scx_rt_loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(scx_rt_loom))]
        return MutexGuard {
            raw: self.inner.lock(),
        };
        #[cfg(scx_rt_loom)]
        return MutexGuard {
            lock: self,
            raw: Some(self.inner.lock().unwrap()),
        };
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(scx_rt_loom))]
        return self.inner.try_lock().map(|raw| MutexGuard { raw });
        #[cfg(scx_rt_loom)]
        return self.inner.try_lock().ok().map(|raw| MutexGuard {
            lock: self,
            raw: Some(raw),
        });
    }
}

/// Guard of a [`Mutex`]; derefs to the protected value. Normally the spin
/// lock's own guard (no state of its own: a deref is a plain pointer);
/// under loom, loom's guard, which cannot be released in place, so it is
/// kept in an `Option` that [`MutexGuard::unlocked`] empties and refills.
pub(crate) struct MutexGuard<'a, T> {
    #[cfg(scx_rt_loom)]
    lock: &'a Mutex<T>,
    #[cfg(not(scx_rt_loom))]
    raw: RawGuard<'a, T>,
    #[cfg(scx_rt_loom)]
    raw: Option<RawGuard<'a, T>>,
}

impl<T> MutexGuard<'_, T> {
    /// Releases the lock while `f` runs and takes it again before returning.
    /// Everything read under the lock before the call may have changed.
    pub(crate) fn unlocked<R>(this: &mut Self, f: impl FnOnce() -> R) -> R {
        #[cfg(not(scx_rt_loom))]
        return scx_rt_sys::spinlock::unlocked(&mut this.raw, f);
        #[cfg(scx_rt_loom)]
        {
            this.raw = None;
            let r = f();
            this.raw = Some(this.lock.inner.lock().unwrap());
            r
        }
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        #[cfg(not(scx_rt_loom))]
        return &self.raw;
        #[cfg(scx_rt_loom)]
        return self.raw.as_ref().expect("guard is locked");
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(scx_rt_loom))]
        return &mut self.raw;
        #[cfg(scx_rt_loom)]
        return self.raw.as_mut().expect("guard is locked");
    }
}

/// Reader-writer lock used for rarely written tables (user DSQs, the
/// attached scheduler).
#[derive(Debug, Default)]
pub(crate) struct RwLock<T> {
    #[cfg(not(scx_rt_loom))]
    inner: parking_lot::RwLock<T>,
    #[cfg(scx_rt_loom)]
    inner: loom::sync::RwLock<T>,
}

#[cfg(not(scx_rt_loom))]
pub(crate) type ReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
#[cfg(not(scx_rt_loom))]
pub(crate) type WriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;
#[cfg(scx_rt_loom)]
pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
#[cfg(scx_rt_loom)]
pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(scx_rt_loom))]
            inner: parking_lot::RwLock::new(value),
            #[cfg(scx_rt_loom)]
            inner: loom::sync::RwLock::new(value),
        }
    }
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        #[cfg(not(scx_rt_loom))]
        return self.inner.read();
        #[cfg(scx_rt_loom)]
        return self.inner.read().unwrap();
    }
    #[inline]
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        #[cfg(not(scx_rt_loom))]
        return self.inner.write();
        #[cfg(scx_rt_loom)]
        return self.inner.write().unwrap();
    }
}
