//! What the primitives remember of the caller's clock: the breaker's high-water mark, and the
//! limiters' latest admission for their gauges.

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

    /// Records that the primitive acted at `now`: one `fetch_max` (only transitions call it, so
    /// no load to skip it: less code on MCUs).
    #[inline]
    pub(crate) fn advance(&self, now: u64) {
        self.seen.fetch_max(now, Ordering::Relaxed);
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

/// The token bucket's note of its latest admission, for its registry gauge only (the registry
/// has no clock): the admission's time in units, or [`FROM_FULL`](Self::FROM_FULL).
///
/// Invariants:
/// - decisions never read it, so it needs no read-modify-write: a load, and a plain store only
///   when what it says changes;
/// - one token taken from a full bucket (the TAT before it at or before `now`) leaves
///   `FROM_FULL`: such an admission's time is the TAT it leaves minus one interval, and it is
///   later than every earlier admission (each left the TAT past its own time), so the word need
///   not change while a bucket keeps being taken from full: an allow below the rate writes
///   nothing;
/// - any other admission leaves its time (never `u64::MAX`: an admission needs `now_u + cost ≤
///   u64::MAX − 1`), or the latest time noted if that is later, so a clock that steps back never
///   moves the gauge back: without races the time noted is the latest `now` admitted at since
///   the last reset (0 before any);
/// - two admissions racing may leave one's note beside the other's TAT (the load and the store
///   are not one atomic step): the gauge then reads the final bucket at one of their times, or
///   one interval before the TAT, possibly a token away from any sequential order's reading;
///   never past the burst; the next admission at or after the TAT minus one interval makes it
///   exact again (loom: `token_bucket_gauge_is_exact_again_after_racing_admissions`).
#[derive(Debug)]
pub(crate) struct Admitted {
    word: AtomicU64,
}

impl Admitted {
    /// The word after one token taken from a full bucket: the time is the TAT minus one interval.
    pub(crate) const FROM_FULL: u64 = u64::MAX;

    const_fn! {
        /// Nothing admitted yet (time 0).
        pub(crate) const fn new() -> Self {
            Self { word: AtomicU64::new(0) }
        }
    }

    /// Notes one token taken at `now_u` from a bucket whose TAT was `prev`.
    #[inline]
    pub(crate) fn one(&self, prev: u64, now_u: u64, interval: u64) {
        if prev <= now_u {
            if self.word.load(Ordering::Relaxed) != Self::FROM_FULL {
                self.word.store(Self::FROM_FULL, Ordering::Relaxed);
            }
        } else {
            self.at(prev, now_u, interval);
        }
    }

    /// Notes an admission at `now_u` (any number of tokens) into a bucket whose TAT was `prev`:
    /// its time, or the latest noted if that is later.
    #[inline]
    pub(crate) fn at(&self, prev: u64, now_u: u64, interval: u64) {
        let word = self.word.load(Ordering::Relaxed);
        // MCUs never note "from full" (the token bucket notes times only there: less code).
        let from_full = cfg!(target_pointer_width = "64") && word == Self::FROM_FULL;
        let latest = if from_full {
            // The latest admission took one token from full and left `prev`.
            prev.saturating_sub(interval)
        } else {
            word
        };
        if now_u > latest {
            self.word.store(now_u, Ordering::Relaxed);
        } else if from_full {
            self.word.store(latest, Ordering::Relaxed);
        }
    }

    /// The word itself (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }

    /// Forgets every admission (the bucket was refilled): time 0.
    #[inline]
    pub(crate) fn reset(&self) {
        self.word.store(0, Ordering::Relaxed);
    }

    /// The time (units) of the latest admission, for a bucket whose TAT is now `tat`.
    #[inline]
    pub(crate) fn units(&self, tat: u64, interval: u64) -> u64 {
        let word = self.word.load(Ordering::Relaxed);
        if cfg!(target_pointer_width = "64") && word == Self::FROM_FULL {
            tat.saturating_sub(interval)
        } else {
            word
        }
    }
}
