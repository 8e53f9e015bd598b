//! A monotonic clock from [`std::time::Instant`], in the ticks the core's primitives take.
//!
//! Invariant: [`MonotonicClock::now`] never decreases (it is `Instant` elapsed since the clock was
//! made, in microseconds, saturating).

use std::time::{Duration, Instant};

/// Ticks per second of every [`MonotonicClock`]: one tick is one microsecond.
pub const TICKS_PER_SECOND: u64 = 1_000_000;

/// Microsecond ticks since the clock was created.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock {
    /// A clock whose tick 0 is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }

    /// Ticks (microseconds) elapsed since the clock was created.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Converts a tick count into a [`Duration`].
    pub fn to_duration(ticks: u64) -> Duration {
        Duration::from_micros(ticks)
    }

    /// Converts a tick count into whole seconds, rounded up (for `Retry-After`), at least 1.
    pub fn to_retry_after_secs(ticks: u64) -> u64 {
        ticks.div_ceil(TICKS_PER_SECOND).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back_and_rounds_up() {
        let c = MonotonicClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert_eq!(MonotonicClock::to_retry_after_secs(0), 1);
        assert_eq!(MonotonicClock::to_retry_after_secs(1_000_001), 2);
        assert_eq!(
            MonotonicClock::to_duration(1_500),
            Duration::from_micros(1_500)
        );
    }
}
