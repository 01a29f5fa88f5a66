//! CPU affinity: which CPUs the process may use, thread pinning, and
//! `sched_getcpu`.
//!
//! Masks are dynamically sized `Vec<u64>` bitmaps rather than the fixed
//! 1024-bit `cpu_set_t`, so machines with more than 1024 CPUs work: we grow
//! the buffer until `sched_getaffinity` stops failing with `EINVAL` (the
//! kernel refuses buffers smaller than its `nr_cpu_ids`).
//!
//! "Usable" means the affinity mask of the process (its main thread, whose
//! tid is the pid), which already reflects a restricted cgroup cpuset or a
//! `taskset`. It is deliberately not the calling thread's mask: a worker that
//! pinned itself must still see every CPU the runtime may use.

use std::io;

/// Largest mask we try, in bits (4M CPUs): a guard against looping forever
/// should the kernel keep answering `EINVAL` for another reason.
const MAX_MASK_BITS: usize = 1 << 22;

/// Bits in one mask word.
const WORD_BITS: usize = u64::BITS as usize;

/// Reads the affinity mask of thread `tid` (0 = the calling thread).
fn get_mask(tid: libc::pid_t) -> io::Result<Vec<u64>> {
    let mut words = 1024 / WORD_BITS;
    loop {
        let mut mask = vec![0u64; words];
        let bytes = words * std::mem::size_of::<u64>();
        // SAFETY: `mask` is a writable buffer of exactly `bytes` bytes, and
        // the kernel writes at most `bytes` bytes (the glibc wrapper zeroes
        // any tail the kernel did not fill, still within `bytes`). Its
        // alignment (8) satisfies cpu_set_t's (unsigned long).
        let rc = unsafe {
            libc::sched_getaffinity(tid, bytes, mask.as_mut_ptr().cast::<libc::cpu_set_t>())
        };
        if rc == 0 {
            return Ok(mask);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) && words * WORD_BITS < MAX_MASK_BITS {
            words *= 2;
            continue;
        }
        return Err(err);
    }
}

/// Sets the calling thread's affinity mask.
fn set_mask(mask: &[u64]) -> io::Result<()> {
    let bytes = std::mem::size_of_val(mask);
    // SAFETY: `mask` is a readable buffer of exactly `bytes` bytes, 8-byte
    // aligned; the kernel only reads it (and tolerates sizes below or above
    // its own cpumask size).
    let rc = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mask_to_cpus(mask: &[u64]) -> Vec<usize> {
    let mut cpus = Vec::new();
    for (w, &word) in mask.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            cpus.push(w * WORD_BITS + b);
            bits &= bits - 1;
        }
    }
    cpus
}

fn cpus_to_mask(cpus: &[usize]) -> io::Result<Vec<u64>> {
    let max = cpus.iter().copied().max().unwrap_or(0);
    if max >= MAX_MASK_BITS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {max} out of range"),
        ));
    }
    let mut mask = vec![0u64; max / WORD_BITS + 1];
    for &c in cpus {
        mask[c / WORD_BITS] |= 1 << (c % WORD_BITS);
    }
    Ok(mask)
}

/// CPUs this process may run on (the affinity of the process, so a
/// restricted cpuset works), ascending.
pub fn usable_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    Ok(mask_to_cpus(&get_mask(pid)?))
}

/// The calling thread's current affinity, ascending.
pub fn current_thread_cpus() -> io::Result<Vec<usize>> {
    Ok(mask_to_cpus(&get_mask(0)?))
}

/// Restricts the calling thread to `cpus` (e.g. to restore a mask saved with
/// [`current_thread_cpus`]). Errors if none of them is allowed.
pub fn set_current_thread_cpus(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty cpu set"));
    }
    set_mask(&cpus_to_mask(cpus)?)
}

/// Pins the calling thread to one CPU. Errors (`EINVAL`) if the CPU does not
/// exist, is offline, or is outside the process's cpuset.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    set_mask(&cpus_to_mask(&[cpu])?)
}

/// The CPU the calling thread is running on right now (`sched_getcpu`).
/// Only a hint unless the thread is pinned.
pub fn current_os_cpu() -> io::Result<usize> {
    // SAFETY: sched_getcpu takes no arguments; it returns a CPU or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(cpu as usize)
    }
}

/// Moves the calling thread to the real-time `SCHED_FIFO` class at
/// priority `prio` (1 is the lowest), so that the OS runs it as soon as it
/// wakes, ahead of every normal thread on its CPU. Errors (`EPERM`) unless
/// the process may (`CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` of at least
/// `prio`); `EINVAL` for a priority outside 1..=99.
pub fn set_current_thread_fifo(prio: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that the call only reads.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the calling thread runs in the `SCHED_FIFO` class.
pub fn current_thread_is_fifo() -> bool {
    // SAFETY: pid 0 is the calling thread; no memory is touched.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_FIFO }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_is_refused_with_a_clear_error_or_granted() {
        std::thread::spawn(|| {
            assert!(
                set_current_thread_fifo(0).is_err(),
                "priority 0 is not FIFO's"
            );
            match set_current_thread_fifo(1) {
                Ok(()) => assert!(current_thread_is_fifo()),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
                    assert!(!current_thread_is_fifo());
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn mask_roundtrip() {
        let cpus = vec![0, 3, 63, 64, 1500, 2047];
        let mask = cpus_to_mask(&cpus).unwrap();
        assert_eq!(mask.len(), 2047 / 64 + 1);
        assert_eq!(mask_to_cpus(&mask), cpus);
        assert!(cpus_to_mask(&[MAX_MASK_BITS]).is_err());
    }

    #[test]
    fn usable_nonempty_and_contains_current() {
        let cpus = usable_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        // Run on a fresh thread so another test's pinning can't interfere.
        let cpu = std::thread::spawn(|| current_os_cpu().unwrap())
            .join()
            .unwrap();
        assert!(cpus.contains(&cpu), "{cpu} not in {cpus:?}");
    }

    #[test]
    fn pin_to_each_usable_cpu() {
        std::thread::spawn(|| {
            let saved = current_thread_cpus().unwrap();
            for cpu in usable_cpus().unwrap() {
                pin_current_thread(cpu).unwrap();
                assert_eq!(current_thread_cpus().unwrap(), vec![cpu]);
                assert_eq!(current_os_cpu().unwrap(), cpu);
            }
            set_current_thread_cpus(&saved).unwrap();
            assert_eq!(current_thread_cpus().unwrap(), saved);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pin_to_invalid_cpu_errors() {
        std::thread::spawn(|| {
            let before = current_thread_cpus().unwrap();
            // Beyond any real nr_cpu_ids, but within our mask limit.
            let err = pin_current_thread(MAX_MASK_BITS - 1).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
            assert!(pin_current_thread(usize::MAX).is_err());
            assert!(set_current_thread_cpus(&[]).is_err());
            // A failed pin leaves the mask alone.
            assert_eq!(current_thread_cpus().unwrap(), before);
        })
        .join()
        .unwrap();
    }
}
