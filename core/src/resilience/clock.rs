//! The high-water mark of the caller's clock, shared by the primitives that need it.

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

    /// The latest tick seen.
    #[inline]
    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}
