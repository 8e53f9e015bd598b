//! Quota: a fixed-window request budget ("8 640 per day") in one atomic word.

use super::error::{config_error, ConfigError};
use crate::sync::{AtomicU64, Ordering};
use crate::Counter;
use core::fmt;

/// Bits of the word that hold the count used in the current window.
const COUNT_BITS: u32 = 28;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Bits of the word that hold the window number (wrapping).
const WINDOW_BITS: u32 = 64 - COUNT_BITS;
const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;
const HALF_RANGE: u64 = 1 << (WINDOW_BITS - 1);

/// The largest budget a window can hold (2^28 − 1).
pub const MAX_QUOTA_LIMIT: u32 = COUNT_MASK as u32;

/// Configuration of a [`Quota`]: `limit` units per window of `window_seconds`, on a clock of
/// `ticks_per_second`.
///
/// Invariant: `ticks_per_second ≥ 1`, `window_seconds ≥ 1`, `1 ≤ limit ≤ MAX_QUOTA_LIMIT`;
/// windows are `window_seconds × ticks_per_second` ticks long and aligned to tick 0 (pass ticks
/// since the Unix epoch for windows that start at UTC midnight). [`new`](Self::new) refuses
/// anything else (a compile error in a `static`, a panic at run time);
/// [`try_new`](Self::try_new) returns the [`ConfigError`].
///
/// ```compile_fail,E0080
/// use vitals_core::resilience::{Quota, QuotaConfig};
/// static DAILY: Quota = Quota::new(QuotaConfig::new(1, 86_400, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    ticks_per_second: u64,
    window_seconds: u64,
    limit: u32,
}

impl QuotaConfig {
    /// `limit` units per `window_seconds` on a clock of `ticks_per_second`; out-of-range values
    /// are refused (see above).
    pub const fn new(ticks_per_second: u64, window_seconds: u64, limit: u32) -> Self {
        match Self::try_new(ticks_per_second, window_seconds, limit) {
            Ok(c) => c,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// The configuration, or which field is out of range.
    pub const fn try_new(
        ticks_per_second: u64,
        window_seconds: u64,
        limit: u32,
    ) -> Result<Self, ConfigError> {
        if ticks_per_second == 0 {
            return Err(config_error!("ticks_per_second", "at least 1"));
        }
        if window_seconds == 0 {
            return Err(config_error!("window_seconds", "at least 1"));
        }
        if limit == 0 || limit > MAX_QUOTA_LIMIT {
            return Err(config_error!("limit", "in 1..=268435455"));
        }
        Ok(Self {
            ticks_per_second,
            window_seconds,
            limit,
        })
    }

    /// Ticks per second of the caller's clock.
    pub const fn ticks_per_second(&self) -> u64 {
        self.ticks_per_second
    }

    /// Window length in seconds.
    pub const fn window_seconds(&self) -> u64 {
        self.window_seconds
    }

    /// Units allowed per window.
    pub const fn limit(&self) -> u32 {
        self.limit
    }
}

/// Why a quota refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The window's budget is spent; it renews in `retry_after` ticks.
    Exhausted {
        /// Ticks until the next window starts.
        retry_after: u64,
    },
    /// `requested` is larger than the whole budget: it can never pass.
    ExceedsLimit {
        /// Units asked for.
        requested: u32,
        /// The budget of one window.
        limit: u32,
    },
}

impl core::error::Error for QuotaError {}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::Exhausted { retry_after } => {
                write!(
                    f,
                    "quota exhausted: the next window starts in {retry_after} ticks"
                )
            }
            QuotaError::ExceedsLimit { requested, limit } => {
                write!(
                    f,
                    "request for {requested} can never pass: the quota is {limit} per window"
                )
            }
        }
    }
}

/// A fixed-window counter: at most `limit` units per window, in one atomic `u64`
/// (window number in the high 36 bits, count in the low 28).
///
/// Invariants:
/// - within one window at most `limit` units are admitted; the count resets when a later window
///   starts;
/// - a `now` in an earlier window than the stored one counts in the stored window (no time passed);
/// - window numbers wrap after 2^36 windows; a quota left untouched for more than 2^35 windows (34
///   years of 30 s windows, 1 089 years of 1 s ones) may read a fresh window as an old one.
///
/// ```
/// use vitals_core::resilience::{Quota, QuotaConfig};
///
/// // 8 640 requests per day, clock in seconds.
/// static DAILY: Quota = Quota::new(QuotaConfig::new(1, 86_400, 8_640));
/// assert_eq!(DAILY.try_acquire(10), Ok(8_639)); // remaining
/// assert_eq!(DAILY.used(10), 1);
/// ```
#[derive(Debug)]
pub struct Quota {
    word: AtomicU64,
    rejected: Counter,
    window_ticks: u64,
    limit: u32,
}

const fn pack(window: u64, used: u64) -> u64 {
    ((window & WINDOW_MASK) << COUNT_BITS) | (used & COUNT_MASK)
}

impl Quota {
    const_fn! {
        /// An unused quota.
        pub const fn new(config: QuotaConfig) -> Self {
            Self {
                word: AtomicU64::new(0),
                rejected: Counter::new(),
                window_ticks: config.ticks_per_second.saturating_mul(config.window_seconds),
                limit: config.limit,
            }
        }
    }

    /// The window number of `now` (wrapping to 36 bits).
    #[inline]
    fn window_of(&self, now: u64) -> u64 {
        (now.checked_div(self.window_ticks).unwrap_or(0)) & WINDOW_MASK
    }

    /// The count that applies at `now` and the window it belongs to, plus how many windows
    /// the stored window is ahead of `now`'s (a clock that went back).
    #[inline]
    fn current(&self, word: u64, now: u64) -> (u64, u64, u64) {
        let stored = word >> COUNT_BITS;
        let used = word & COUNT_MASK;
        let cur = self.window_of(now);
        let ahead = stored.wrapping_sub(cur) & WINDOW_MASK;
        if ahead == 0 {
            (cur, used, 0)
        } else if used == 0 {
            // Nothing to protect: adopt `now`'s window.
            (cur, 0, 0)
        } else if ahead < HALF_RANGE {
            // The stored window is later than `now`'s: the clock went back, no time passed.
            (stored, used, ahead)
        } else {
            // A later window: the budget renewed.
            (cur, 0, 0)
        }
    }

    /// Ticks from `now` until the window after the one `ahead` windows later than `now`'s.
    #[inline]
    fn retry_after(&self, now: u64, ahead: u64) -> u64 {
        let into = now.checked_rem(self.window_ticks).unwrap_or(0);
        ahead
            .saturating_mul(self.window_ticks)
            .saturating_add(self.window_ticks - into)
    }

    /// Takes one unit at `now`; returns what remains in this window.
    #[inline]
    pub fn try_acquire(&self, now: u64) -> Result<u32, QuotaError> {
        self.try_acquire_n(now, 1)
    }

    /// Takes `n` units at `now`, or none; returns what remains in this window. `n > limit` is
    /// [`QuotaError::ExceedsLimit`].
    pub fn try_acquire_n(&self, now: u64, n: u32) -> Result<u32, QuotaError> {
        if n > self.limit {
            self.rejected.inc();
            return Err(QuotaError::ExceedsLimit {
                requested: n,
                limit: self.limit,
            });
        }
        let limit = u64::from(self.limit);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let (window, used, ahead) = self.current(word, now);
            let wanted = used + u64::from(n); // ≤ 2 × 2^28: no overflow
            if wanted > limit {
                self.rejected.inc();
                return Err(QuotaError::Exhausted {
                    retry_after: self.retry_after(now, ahead),
                });
            }
            if n == 0 {
                return Ok((limit - used) as u32);
            }
            match self.word.compare_exchange_weak(
                word,
                pack(window, wanted),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok((limit - wanted) as u32),
                Err(actual) => word = actual,
            }
        }
    }

    /// Units used in the window that applies at `now`.
    pub fn used(&self, now: u64) -> u32 {
        self.current(self.word.load(Ordering::Relaxed), now).1 as u32
    }

    /// Units left in the window that applies at `now`.
    pub fn remaining(&self, now: u64) -> u32 {
        self.limit.saturating_sub(self.used(now))
    }

    /// Usage of the current window in per mille (`0..=1000`), integer maths only.
    pub fn usage_permille(&self, now: u64) -> u32 {
        (u64::from(self.used(now)) * 1000 / u64::from(self.limit)) as u32
    }

    /// Whether usage is above 90 % of the budget (the health report's "degraded" threshold).
    pub fn is_near_limit(&self, now: u64) -> bool {
        u64::from(self.used(now)) * 10 > u64::from(self.limit) * 9
    }

    /// Ticks until the window that applies at `now` ends.
    pub fn resets_in(&self, now: u64) -> u64 {
        let (_, _, ahead) = self.current(self.word.load(Ordering::Relaxed), now);
        self.retry_after(now, ahead)
    }

    /// The budget per window.
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The window length in ticks.
    pub const fn window_ticks(&self) -> u64 {
        self.window_ticks
    }

    /// Requests refused since start (wrapping).
    pub fn rejected(&self) -> u64 {
        self.rejected.get()
    }

    /// The rejection counter, to register as a metric.
    pub const fn rejections_counter(&self) -> &Counter {
        &self.rejected
    }

    /// Units used in the latest window this quota counted in (what its registry gauge and health
    /// check show: they have no clock, so after a window ends this reads the old window until
    /// the next request).
    pub fn used_latest(&self) -> u32 {
        (self.word.load(Ordering::Relaxed) & COUNT_MASK) as u32
    }

    /// Empties the current window (an operator action).
    pub fn reset(&self) {
        self.word.store(0, Ordering::Relaxed);
    }
}
