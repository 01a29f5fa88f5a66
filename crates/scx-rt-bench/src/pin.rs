//! Pinned OS threads: run a closure on a new OS thread pinned to one CPU,
//! or restricted to a set of CPUs, and collect its result. Plumbing for the
//! peers and for the workloads that start raw threads; depends on nothing
//! else in this crate.

use std::thread;

/// Runs `f` on a new OS thread pinned to OS CPU `cpu` and waits for it.
pub fn on_pinned_thread<T, F>(cpu: usize, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    spawn_pinned(cpu, f)?.join()
}

/// A running pinned thread; [`Pinned::join`] collects its result.
pub struct Pinned<T>(thread::JoinHandle<Result<T, String>>);

impl<T> Pinned<T> {
    /// Waits for the thread; a panic becomes an error.
    pub fn join(self) -> Result<T, String> {
        self.0.join().map_err(|_| "thread panicked".to_string())?
    }
}

/// Starts `f` on a new OS thread pinned to OS CPU `cpu`.
pub fn spawn_pinned<T, F>(cpu: usize, f: F) -> Result<Pinned<T>, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    thread::Builder::new()
        .name(format!("bench-cpu{cpu}"))
        .spawn(move || {
            scx_rt_sys::affinity::pin_current_thread(cpu)
                .map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
            f()
        })
        .map(Pinned)
        .map_err(|e| format!("spawn thread: {e}"))
}

/// Runs `f` on a new OS thread restricted to `cpus` (threads it starts
/// inherit the mask) and waits for it.
pub fn on_cpus<T, F>(cpus: &[usize], f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let cpus = cpus.to_vec();
    thread::Builder::new()
        .spawn(move || {
            scx_rt_sys::affinity::set_current_thread_cpus(&cpus)
                .map_err(|e| format!("restrict to CPUs {cpus:?}: {e}"))?;
            f()
        })
        .map_err(|e| format!("spawn thread: {e}"))?
        .join()
        .map_err(|_| "thread panicked".to_string())?
}
