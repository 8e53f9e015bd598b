//! What the primitives remember of the caller's clock: the breaker's high-water mark, and the
//! limiters' latest admission time for their gauges.

use crate::sync::{AtomicU64, Ordering};

/// The latest `now` (in ticks) a primitive has acted on.
///
/// Invariant: the stored value never decreases. A `now` earlier than it is read as it (no time
/// passed), so a caller whose clock steps back, or a thread that read the clock before another
/// one, never makes a primitive refill or reopen early.
#[derive(Debug)]
pub(crate) struct Clock {
    seen: AtomicU64,
}

impl Clock {
    const_fn! {
        /// A clock that has seen tick 0.
        pub(crate) const fn new() -> Self {
            Self { seen: AtomicU64::new(0) }
        }
    }

    /// `now`, or the latest tick seen if that is later. One load, no write.
    #[inline]
    pub(crate) fn effective(&self, now: u64) -> u64 {
        let seen = self.seen.load(Ordering::Relaxed);
        if now > seen {
            now
        } else {
            seen
        }
    }

    /// Records that the primitive acted at `now` (a `fetch_max` only when `now` is newer).
    #[inline]
    pub(crate) fn advance(&self, now: u64) {
        if now > self.seen.load(Ordering::Relaxed) {
            self.seen.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// The latest `now` (in ticks) an admission used, kept for the registry's gauges only (the
/// registry has no clock).
///
/// Invariant: decisions never read it, so it needs no read-modify-write: one load, and a plain
/// store when `now` is newer. Two admissions racing may leave the earlier of their two `now`s
/// (a gauge then reads at a slightly earlier time, never a later one than was seen).
#[derive(Debug)]
pub(crate) struct LastSeen {
    seen: AtomicU64,
}

impl LastSeen {
    const_fn! {
        /// Nothing seen yet (tick 0).
        pub(crate) const fn new() -> Self {
            Self { seen: AtomicU64::new(0) }
        }
    }

    /// Notes an admission at `now` (a plain store, only when `now` is newer).
    #[inline]
    pub(crate) fn note(&self, now: u64) {
        if now > self.seen.load(Ordering::Relaxed) {
            self.seen.store(now, Ordering::Relaxed);
        }
    }

    /// `now`, or the latest tick noted if that is later.
    #[inline]
    pub(crate) fn at_least(&self, now: u64) -> u64 {
        now.max(self.seen.load(Ordering::Relaxed))
    }

    /// The latest tick noted.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}
