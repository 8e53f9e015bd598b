//! Fits `--max-connections` into the open-file limit: above it, `accept` fails with `EMFILE` and
//! clients hang in the listen backlog instead of getting 503. At start the soft limit is raised
//! (up to the hard limit) to hold every connection plus a reserve; when the hard limit is too low,
//! the connection limit is lowered with a warning.

use std::fmt;

/// File descriptors kept for everything that is not a client connection: stdio, the listener,
/// the runtime's epoll and wakers, triage connections and refusals in progress.
pub(crate) const RESERVE: u64 = 64;

/// What [`fit_connections`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// The connection limit to use.
    pub max_connections: usize,
    /// The soft open-file limit now in force.
    pub soft: u64,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
    /// The requested connection limit, when it had to be lowered.
    pub clamped_from: Option<usize>,
}

/// The open-file limit could not be read.
#[derive(Debug)]
pub(crate) struct NofileError(std::io::Error);

impl fmt::Display for NofileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read the open-file limit: {}", self.0)
    }
}

impl std::error::Error for NofileError {}

/// Raises the soft `RLIMIT_NOFILE` to hold `max_connections` plus [`RESERVE`] when needed and
/// allowed; returns the connection limit that fits.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every unix
pub(crate) fn fit_connections(max_connections: usize) -> Result<Fit, NofileError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(NofileError(std::io::Error::last_os_error()));
    }
    let needed = (max_connections as u64).saturating_add(RESERVE);
    let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    let infinite = lim.rlim_max == libc::RLIM_INFINITY;
    let mut fit = Fit {
        max_connections,
        soft,
        raised_from: None,
        clamped_from: None,
    };
    if lim.rlim_cur != libc::RLIM_INFINITY && soft < needed {
        let target = if infinite { needed } else { needed.min(hard) };
        if target > soft {
            let raised = libc::rlimit {
                rlim_cur: target as libc::rlim_t,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: `raised` is a valid rlimit; the soft value does not exceed the hard one.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                fit.raised_from = Some(soft);
                fit.soft = target;
            }
        }
        if fit.soft < needed {
            fit.clamped_from = Some(max_connections);
            fit.max_connections = fit.soft.saturating_sub(RESERVE).max(1) as usize;
        }
    }
    Ok(fit)
}

/// Without `getrlimit`, the limit is kept as given.
#[cfg(not(unix))]
pub fn fit_connections(max_connections: usize) -> Result<Fit, NofileError> {
    Ok(Fit {
        max_connections,
        soft: u64::MAX,
        raised_from: None,
        clamped_from: None,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_small_limit_fits_unchanged() {
        let fit = fit_connections(4).unwrap();
        assert_eq!(fit.max_connections, 4);
        assert_eq!(fit.clamped_from, None);
    }
}
