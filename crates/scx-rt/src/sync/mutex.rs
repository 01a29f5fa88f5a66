//! A green-aware mutex: contention blocks the green task, not its worker.
//!
//! The data sits in a `parking_lot::Mutex` that is only ever `try_lock`ed,
//! so no thread blocks inside it; who waits, and whom an unlock wakes, is
//! kept in a wait list under a small state lock.

use super::wait::{wait_on, WaitList};

struct State {
    waiters: WaitList,
}

/// A mutual-exclusion lock for green tasks (and OS threads).
pub struct Mutex<T> {
    data: parking_lot::Mutex<T>,
    st: scx_rt_sys::spinlock::SpinMutex<State>,
}

/// Holds the lock; unlocks on drop.
pub struct MutexGuard<'a, T> {
    guard: Option<parking_lot::MutexGuard<'a, T>>,
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(v: T) -> Self {
        Self {
            data: parking_lot::Mutex::new(v),
            st: scx_rt_sys::spinlock::SpinMutex::new(State {
                waiters: WaitList::default(),
            }),
        }
    }

    /// Locks, blocking the green task while another holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if let Some(g) = self.data.try_lock() {
            return MutexGuard {
                guard: Some(g),
                m: self,
            };
        }
        let g = wait_on(&self.st, |_| self.data.try_lock(), |s| &mut s.waiters);
        MutexGuard {
            guard: Some(g),
            m: self,
        }
    }

    /// Locks if free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.data.try_lock().map(|g| MutexGuard {
            guard: Some(g),
            m: self,
        })
    }

    /// The value, by ownership.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("locked")
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("locked")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.guard = None;
        // Taking the state lock after the data is free orders us after any
        // waiter's "try_lock failed, register" step, so a registered waiter
        // is always seen here.
        let w = self.m.st.lock().waiters.pop();
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}
