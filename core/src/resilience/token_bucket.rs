//! Token bucket by GCRA (generic cell rate algorithm): the whole state is one atomic `u64`, the
//! theoretical arrival time (TAT) of the next token.
//!
//! Time is kept in *units* of `1 / scale` tick, where `scale` and the emission interval are the
//! reduced fraction `seconds × ticks_per_second / tokens`, so every rate (1 per hour, 1e9 per
//! second with millisecond ticks) is exact: no rounding makes the bucket admit more or less than
//! configured.

use super::clock::LastSeen;
use super::error::{config_error, AcquireError, ConfigError, RateLimited};
use crate::sync::{AtomicU64, Ordering};

/// A sustained rate: `tokens` every `seconds` seconds, both at least 1.
///
/// [`new`](Self::new) (and `per_second` … `per_day`) refuses a zero: a compile error in a
/// `static` or `const`, a panic at run time; [`try_new`](Self::try_new) returns the
/// [`ConfigError`] instead, for values chosen at run time.
///
/// ```compile_fail,E0080
/// use vitals_core::resilience::Rate;
/// const NEVER: Rate = Rate::per_second(0);
/// # let _ = NEVER;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    tokens: u64,
    seconds: u64,
}

impl Rate {
    /// `tokens` every `seconds` seconds; a zero is refused (see above).
    pub const fn new(tokens: u64, seconds: u64) -> Self {
        match Self::try_new(tokens, seconds) {
            Ok(r) => r,
            Err(e) => panic!("{}", e.as_str()),
        }
    }
    /// `tokens` every `seconds` seconds, or which one is zero.
    pub const fn try_new(tokens: u64, seconds: u64) -> Result<Self, ConfigError> {
        if tokens == 0 {
            return Err(config_error!("rate.tokens", "at least 1"));
        }
        if seconds == 0 {
            return Err(config_error!("rate.seconds", "at least 1"));
        }
        Ok(Self { tokens, seconds })
    }
    /// `tokens` per second.
    pub const fn per_second(tokens: u64) -> Self {
        Self::new(tokens, 1)
    }
    /// `tokens` per minute.
    pub const fn per_minute(tokens: u64) -> Self {
        Self::new(tokens, 60)
    }
    /// `tokens` per hour.
    pub const fn per_hour(tokens: u64) -> Self {
        Self::new(tokens, 3_600)
    }
    /// `tokens` per day (86 400 s).
    pub const fn per_day(tokens: u64) -> Self {
        Self::new(tokens, 86_400)
    }
    /// Tokens per period.
    pub const fn tokens(&self) -> u64 {
        self.tokens
    }
    /// The period in seconds.
    pub const fn seconds(&self) -> u64 {
        self.seconds
    }
}

/// Configuration of a [`TokenBucket`] or a [`KeyedLimiter`](super::KeyedLimiter): the clock's
/// tick rate, the sustained [`Rate`] and the burst, every one at least 1.
///
/// [`new`](Self::new) refuses a zero (a compile error in a `static`, a panic at run time);
/// [`try_new`](Self::try_new) returns the [`ConfigError`].
///
/// Invariant: the bucket admits at most `burst + elapsed × rate` tokens over any interval and
/// exactly `burst` back-to-back requests from idle.
///
/// ```compile_fail,E0080
/// use vitals_core::resilience::{Rate, TokenBucket, TokenBucketConfig};
/// // A burst of 0 would refuse every request forever.
/// static LIMIT: TokenBucket = TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(10), 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucketConfig {
    ticks_per_second: u64,
    rate: Rate,
    burst: u32,
}

impl TokenBucketConfig {
    /// `rate` with bursts of `burst`, on a clock of `ticks_per_second` (1 000 for milliseconds,
    /// 1e9 for nanoseconds); a zero is refused (see above).
    pub const fn new(ticks_per_second: u64, rate: Rate, burst: u32) -> Self {
        match Self::try_new(ticks_per_second, rate, burst) {
            Ok(c) => c,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// The configuration, or which field is zero.
    pub const fn try_new(
        ticks_per_second: u64,
        rate: Rate,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        if ticks_per_second == 0 {
            return Err(config_error!("ticks_per_second", "at least 1"));
        }
        if burst == 0 {
            return Err(config_error!("burst", "at least 1"));
        }
        Ok(Self {
            ticks_per_second,
            rate,
            burst,
        })
    }

    /// Ticks per second of the caller's clock.
    pub const fn ticks_per_second(&self) -> u64 {
        self.ticks_per_second
    }

    /// The sustained refill rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// Capacity: tokens available back-to-back from idle.
    pub const fn burst(&self) -> u32 {
        self.burst
    }
}

const fn max1(v: u64) -> u64 {
    if v == 0 {
        1
    } else {
        v
    }
}

const fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

/// GCRA parameters in units of `1 / scale` tick.
///
/// Invariant: `interval ≥ 1`, `scale ≥ 1`, `span = interval × burst` (saturating), `burst ≥ 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Units per token (the emission interval).
    pub(crate) interval: u64,
    /// Units per tick.
    pub(crate) scale: u64,
    /// Units a full bucket spans: `interval × burst`.
    pub(crate) span: u64,
    pub(crate) burst: u32,
}

/// The outcome of one GCRA decision: the new TAT, or the units to wait.
pub(crate) enum Decision {
    Conform(u64),
    Wait(u64),
}

impl Gcra {
    /// Whether a request for `n` tokens needs a decision: `Ok(false)` for `n = 0` (always
    /// passes, takes nothing), `Ok(true)` otherwise, [`AcquireError::ExceedsBurst`] when `n` can
    /// never pass.
    pub(crate) const fn admissible(&self, n: u32) -> Result<bool, AcquireError> {
        if n > self.burst {
            return Err(AcquireError::ExceedsBurst {
                requested: n,
                burst: self.burst,
            });
        }
        Ok(n != 0)
    }

    pub(crate) const fn new(config: &TokenBucketConfig) -> Self {
        let period = (max1(config.rate.seconds) as u128) * (max1(config.ticks_per_second) as u128);
        let tokens = max1(config.rate.tokens) as u128;
        let g = gcd(period, tokens);
        let (mut interval, mut scale) = (period / g, tokens / g);
        // Absurd configurations whose reduced fraction does not fit u64: shrink both while
        // keeping the rate at or below the configured one.
        while interval > u64::MAX as u128 || scale > u64::MAX as u128 {
            interval = interval.div_ceil(2);
            scale /= 2;
            if scale == 0 {
                scale = 1;
            }
        }
        let burst = if config.burst == 0 { 1 } else { config.burst };
        let interval = max1(interval as u64);
        Self {
            interval,
            scale: scale as u64,
            span: interval.saturating_mul(burst as u64),
            burst,
        }
    }

    /// `now` in units (saturating).
    #[inline]
    pub(crate) const fn units(&self, now: u64) -> u64 {
        now.saturating_mul(self.scale)
    }

    /// Units to ticks, rounded up; `u64::MAX` stays "never".
    #[inline]
    pub(crate) const fn ticks(&self, units: u64) -> u64 {
        if units == u64::MAX {
            return u64::MAX;
        }
        units.div_ceil(self.scale)
    }

    /// The GCRA test for `n ≥ 1` tokens at `now_u`: conform iff `max(tat, t) + n × interval ≤
    /// t + span`, decided at `t = max(now_u, tat − span)`. The new TAT is always `< u64::MAX`
    /// (which the keyed table reserves).
    ///
    /// Why `tat − span`: every admission leaves `tat ≤ t + span` for the `t` it was decided at,
    /// and TATs only grow, so `tat − span` is never later than the latest admission. A `now`
    /// before it (a clock that stepped back, or a thread that read the clock before another one
    /// admitted) is decided at a time between `now` and the latest admission: never a refill,
    /// and never a deeper debt than the bucket already has. No second word, no second write.
    /// As `cost ≥ 1`, the clamp never turns a refusal into an admission (an earlier `now` is
    /// never more generous, as in any GCRA); it only caps the wait at the cost, which is the
    /// wait at `tat − span`.
    #[inline]
    pub(crate) const fn decide(&self, tat: u64, now_u: u64, n: u32) -> Decision {
        let base = if tat > now_u { tat } else { now_u };
        let cost = self.interval.saturating_mul(n as u64);
        let limit = now_u.saturating_add(self.span);
        match base.checked_add(cost) {
            Some(new) if new < u64::MAX => {
                if new <= limit {
                    Decision::Conform(new)
                } else {
                    // Deciding at `max(now_u, tat − span)` changes only this: the wait is at most
                    // the cost (the clamp cannot make a request conform, as `cost ≥ 1`).
                    let wait = new - limit;
                    Decision::Wait(if wait < cost { wait } else { cost })
                }
            }
            _ => Decision::Wait(u64::MAX),
        }
    }

    /// The one compare-and-swap loop of every GCRA bucket (the token bucket, each keyed slot, the
    /// keyed overflow bucket): charges `n ≥ 1` tokens at `now_u` to the TAT in `cell`.
    ///
    /// `owned(tat)` is asked before each attempt whether `cell` still belongs to the caller (the
    /// keyed table hands slots over); `None` when it does not. `Some(Ok(()))` after exactly one
    /// successful `compare_exchange`, `Some(Err(units))` with the units to wait after loads only.
    #[inline]
    pub(crate) fn charge(
        &self,
        cell: &AtomicU64,
        now_u: u64,
        n: u32,
        owned: impl Fn(u64) -> bool,
    ) -> Option<Result<(), u64>> {
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            if !owned(tat) {
                return None;
            }
            match self.decide(tat, now_u, n) {
                Decision::Conform(new) => {
                    match cell.compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => return Some(Ok(())),
                        Err(actual) => tat = actual,
                    }
                }
                Decision::Wait(units) => return Some(Err(units)),
            }
        }
    }

    /// Whole tokens available at `now_u` for a bucket whose TAT is `tat` (none before
    /// `tat − span`, as [`decide`](Self::decide) sees it).
    #[inline]
    pub(crate) const fn available(&self, tat: u64, now_u: u64) -> u32 {
        let base = if tat > now_u { tat } else { now_u };
        let room = now_u.saturating_add(self.span).saturating_sub(base);
        let tokens = room / self.interval;
        if tokens >= self.burst as u64 {
            self.burst
        } else {
            tokens as u32
        }
    }
}

/// A lock-free token bucket: `burst` tokens, refilled at a [`Rate`], one atomic word of state.
///
/// Invariants:
/// - starts full: `burst` requests pass back-to-back from idle, the next one is refused;
/// - over any interval of `d` ticks at most `burst + d × rate` tokens are admitted, and a request
///   that conforms to that budget at a `now` no earlier than the latest admission is never
///   refused;
/// - admission is one `compare_exchange` on the TAT; refusal is loads only (it counts nothing:
///   the caller counts refusals where it exports them, see below);
/// - a `now` earlier than one already admitted is decided at a time between that `now` and the
///   latest admission (`max(now, TAT − span)`, derived from the TAT: no second word): no time passed, so nothing
///   refills; near `u64::MAX` the arithmetic saturates and the bucket refuses rather than
///   over-admits.
///
/// ```
/// use vitals_core::resilience::{Rate, TokenBucket, TokenBucketConfig};
/// use vitals_core::Counter;
///
/// // 10 requests per second, bursts of 5, clock in milliseconds.
/// static LIMIT: TokenBucket = TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(10), 5));
/// // Refusals, counted by the caller (register it as `ratelimit_rejections_total`).
/// static REJECTED: Counter = Counter::new();
///
/// for _ in 0..5 {
///     assert!(LIMIT.try_acquire(0).is_ok());
/// }
/// let refused = LIMIT.try_acquire(0).inspect_err(|_| REJECTED.inc()).unwrap_err();
/// assert_eq!(refused.retry_after, 100); // one token every 100 ms
/// assert_eq!(REJECTED.get(), 1);
/// assert!(LIMIT.try_acquire(100).is_ok());
/// ```
#[derive(Debug)]
pub struct TokenBucket {
    tat: AtomicU64,
    seen: LastSeen,
    gcra: Gcra,
    config: TokenBucketConfig,
}

impl TokenBucket {
    const_fn! {
        /// A full bucket.
        pub const fn new(config: TokenBucketConfig) -> Self {
            Self {
                tat: AtomicU64::new(0),
                seen: LastSeen::new(),
                gcra: Gcra::new(&config),
                config,
            }
        }
    }

    /// Takes one token at `now` or says how long to wait.
    #[inline]
    pub fn try_acquire(&self, now: u64) -> Result<(), RateLimited> {
        match self.try_acquire_n(now, 1) {
            Ok(()) => Ok(()),
            Err(AcquireError::RateLimited(e)) => Err(e),
            // Unreachable: burst ≥ 1. Reported as "never" rather than panicking.
            Err(AcquireError::ExceedsBurst { .. }) => Err(RateLimited {
                retry_after: u64::MAX,
            }),
        }
    }

    /// Takes `n` tokens at once at `now`, or none. `n = 0` always passes; `n > burst` is
    /// [`AcquireError::ExceedsBurst`] (it can never pass, waiting does not help).
    #[inline]
    pub fn try_acquire_n(&self, now: u64, n: u32) -> Result<(), AcquireError> {
        if !self.gcra.admissible(n)? {
            return Ok(());
        }
        match self
            .gcra
            .charge(&self.tat, self.gcra.units(now), n, |_| true)
        {
            Some(Ok(())) => {
                self.seen.note(now);
                Ok(())
            }
            Some(Err(units)) => Err(RateLimited {
                retry_after: self.gcra.ticks(units),
            }
            .into()),
            // `owned` is always true.
            None => Err(RateLimited {
                retry_after: u64::MAX,
            }
            .into()),
        }
    }

    /// Whether `try_acquire_n(now, n)` would pass now, consuming nothing.
    pub fn peek(&self, now: u64, n: u32) -> Result<(), AcquireError> {
        if !self.gcra.admissible(n)? {
            return Ok(());
        }
        let now_u = self.gcra.units(now);
        match self.gcra.decide(self.tat.load(Ordering::Acquire), now_u, n) {
            Decision::Conform(_) => Ok(()),
            Decision::Wait(units) => Err(RateLimited {
                retry_after: self.gcra.ticks(units),
            }
            .into()),
        }
    }

    /// Whole tokens available at `now` (`0..=burst`), consuming nothing.
    pub fn available(&self, now: u64) -> u32 {
        let now_u = self.gcra.units(now);
        self.gcra.available(self.tat.load(Ordering::Acquire), now_u)
    }

    /// Refills the bucket completely (an operator action; concurrent acquisitions may land on
    /// either side of it).
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Release);
    }

    /// The capacity: tokens available back-to-back from idle.
    pub const fn burst(&self) -> u32 {
        self.gcra.burst
    }

    /// The configuration this bucket was built from.
    pub const fn config(&self) -> &TokenBucketConfig {
        &self.config
    }

    /// Whole tokens available at the latest `now` this bucket admitted at (what its registry
    /// gauge shows: the registry has no clock).
    pub fn available_latest(&self) -> u32 {
        self.available(self.seen.get())
    }
}
