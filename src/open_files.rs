//! Enough open files for a run's hosts in flight. Each host that is being
//! worked on holds a few descriptors at once (its connection, the second
//! one that confirms an upgrade, the package file while it is sent, a
//! ProxyCommand's pipes, a jump host's socket), so `--forks 1000` needs
//! thousands where many systems give a process 1,024 by default. The soft
//! limit is raised as far as the hard one allows, as OpenSSH's and Go's
//! runtimes do; where even that is too few, the run is refused before any
//! host is touched, naming what to change, instead of hosts failing
//! half-way with "too many open files".

/// Descriptors one host in flight may hold at once.
pub const PER_HOST: u64 = 6;
/// For everything else: std streams, the runtime, the lock, the report.
pub const SPARE: u64 = 64;

/// What a run with `in_flight` hosts at once may need.
pub fn needed(in_flight: usize) -> u64 {
    (in_flight as u64)
        .saturating_mul(PER_HOST)
        .saturating_add(SPARE)
}

/// Why a run cannot have the files it needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "{in_flight} hosts in flight (--forks) need about {needed} open files, but this process may \
     open at most {hard} (its hard limit, `ulimit -Hn`): raise that limit or pass --forks {fits} or fewer"
)]
pub struct TooFew {
    pub in_flight: usize,
    pub needed: u64,
    pub hard: u64,
    /// The most hosts in flight the hard limit allows.
    pub fits: u64,
}

/// Raises this process's soft `RLIMIT_NOFILE` to what `in_flight` hosts
/// need (never lowering it), or says why it cannot.
pub fn ensure(in_flight: usize) -> Result<(), TooFew> {
    let needed = needed(in_flight);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        // Not knowing is not a reason to refuse: the run goes as before.
        return Ok(());
    }
    // rlim_t is u64 on Linux, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(TooFew {
            in_flight,
            needed,
            hard,
            fits: hard.saturating_sub(SPARE) / PER_HOST,
        });
    }
    limit.rlim_cur = needed as libc::rlim_t;
    // SAFETY: setrlimit reads the struct we own; a soft limit at or below
    // the hard one is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_cast)]
    fn soft_limit() -> u64 {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        limit.rlim_cur as u64
    }

    #[test]
    fn the_soft_limit_rises_to_what_the_hosts_in_flight_need() {
        assert_eq!(needed(100), 664);
        let before = soft_limit();
        ensure(10).unwrap();
        assert_eq!(soft_limit(), before, "enough already: left alone");
        let more = usize::try_from((before - SPARE) / PER_HOST + 10).unwrap();
        match ensure(more) {
            Ok(()) => assert_eq!(soft_limit(), needed(more)),
            Err(too_few) => assert!(too_few.hard < needed(more)),
        }
    }
}
