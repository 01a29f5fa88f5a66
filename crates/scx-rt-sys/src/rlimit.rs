//! The open-file limit (`RLIMIT_NOFILE`): read it, and raise it so that a
//! process can hold many sockets (the echo benchmark holds 10,000 idle
//! connections, two fds each when both ends live in one process).
//!
//! Raising follows the kernel's rules: the soft limit may go up to the hard
//! limit freely; the hard limit itself only with `CAP_SYS_RESOURCE`, and
//! never above `/proc/sys/fs/nr_open`. [`raise_nofile`] never lowers either.

use std::io;

/// The soft and hard `RLIMIT_NOFILE` (`RLIM_INFINITY` as `u64::MAX`).
pub fn nofile() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a live, writable rlimit on our stack for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (and the hard limit
/// with it when it is lower, which needs `CAP_SYS_RESOURCE`). Returns the
/// soft limit now in force; an error (`EPERM`, `EINVAL` above `nr_open`)
/// leaves both limits as they were.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let (cur, max) = nofile()?;
    if cur >= want {
        return Ok(cur);
    }
    let r = libc::rlimit {
        rlim_cur: want,
        rlim_max: max.max(want),
    };
    // SAFETY: `r` is a live rlimit on our stack for the call; the kernel
    // only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_to_the_current_soft_limit_changes_nothing() {
        let (cur, max) = nofile().unwrap();
        assert!(cur <= max);
        assert_eq!(raise_nofile(cur).unwrap(), cur);
        assert_eq!(raise_nofile(1).unwrap(), cur, "never lowered");
        assert_eq!(nofile().unwrap(), (cur, max));
    }
}
