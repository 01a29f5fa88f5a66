//! Go's `sync.WaitGroup` for green tasks.

use std::sync::Arc;

use super::wait::{wait_on, wake_all, WaitList};

struct State {
    count: usize,
    waiters: WaitList,
}

/// Counts outstanding work; `wait` blocks until the count is zero.
#[derive(Clone)]
pub struct WaitGroup {
    st: Arc<scx_rt_sys::spinlock::SpinMutex<State>>,
}

impl WaitGroup {
    /// A group with count zero.
    pub fn new() -> Self {
        Self {
            st: Arc::new(scx_rt_sys::spinlock::SpinMutex::new(State {
                count: 0,
                waiters: WaitList::default(),
            })),
        }
    }

    /// Adds `n` to the count.
    ///
    /// # Panics
    /// If the count would exceed `usize::MAX` (the count is left as it
    /// was).
    pub fn add(&self, n: usize) {
        let mut s = self.st.lock();
        match s.count.checked_add(n) {
            Some(c) => s.count = c,
            None => {
                let count = s.count;
                drop(s);
                panic!("WaitGroup::add({n}) overflows the count ({count})");
            }
        }
    }

    /// Subtracts one; wakes the waiters when the count reaches zero.
    ///
    /// # Panics
    /// If the count is already zero.
    pub fn done(&self) {
        let ws = {
            let mut s = self.st.lock();
            assert!(s.count > 0, "WaitGroup::done called more often than add");
            s.count -= 1;
            if s.count == 0 {
                s.waiters.take_all()
            } else {
                crate::sync::wait::Taken::default()
            }
        };
        wake_all(ws);
    }

    /// Blocks until the count is zero.
    pub fn wait(&self) {
        wait_on(
            &self.st,
            |s| (s.count == 0).then_some(()),
            |s| &mut s.waiters,
        );
    }

    /// The current count.
    pub fn count(&self) -> usize {
        self.st.lock().count
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}
