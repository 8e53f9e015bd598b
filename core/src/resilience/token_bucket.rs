//! Token bucket by GCRA (generic cell rate algorithm): the whole state is one atomic `u64`, the
//! theoretical arrival time (TAT) of the next token.
//!
//! Time is kept in *units* of `1 / scale` tick, where `scale` and the emission interval are the
//! reduced fraction `seconds × ticks_per_second / tokens`, so every rate (1 per hour, 1e9 per
//! second with millisecond ticks) is exact: no rounding makes the bucket admit more or less than
//! configured.

use super::clock::Admitted;
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
    /// `span − interval`: how far past `now` the TAT may be for one more token to conform.
    pub(crate) room: u64,
    /// The first tick at which one token is *not* decided on the straight-line path of
    /// [`TokenBucket::try_acquire`]: below it, `now × scale + span ≤ u64::MAX − 1`, so the units
    /// of `now`, the last conforming TAT and the new TAT need no saturation and no overflow check
    /// (0 when `span ≥ u64::MAX − 1`: every tick takes the general path). 64-bit machines only,
    /// as the straight line (MCUs take the saturating path: less flash).
    #[cfg(target_pointer_width = "64")]
    pub(crate) fast_end: u64,
    /// `fast_end` when units are ticks (`scale = 1`: every rate that divides the tick rate),
    /// else 0: below it the straight line takes `now` as its units, with no multiply on the way
    /// to the compare-and-swap. Stored rather than derived from `scale`: the compiler folds
    /// `if scale == 1 { now } else { now × scale }` back into the multiply.
    #[cfg(target_pointer_width = "64")]
    pub(crate) ticks_end: u64,
    pub(crate) burst: u32,
}

/// The outcome of one GCRA decision: conform, or the units to wait.
pub(crate) enum Decision {
    Conform,
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
        let scale = scale as u64; // ≥ 1
        let span = interval.saturating_mul(burst as u64); // ≥ interval, as burst ≥ 1

        // `now < fast_end` ⇔ `now ≤ (u64::MAX − 1 − span) / scale` ⇒ `now × scale + span ≤
        // u64::MAX − 1`. The `+ 1` cannot overflow: `span ≥ 1`.
        #[cfg(target_pointer_width = "64")]
        let fast_end = if span < u64::MAX - 1 {
            (u64::MAX - 1 - span) / scale + 1
        } else {
            0
        };
        Self {
            interval,
            scale,
            span,
            room: span - interval,
            #[cfg(target_pointer_width = "64")]
            fast_end,
            #[cfg(target_pointer_width = "64")]
            ticks_end: if scale == 1 { fast_end } else { 0 },
            burst,
        }
    }

    /// `now` in units on the straight-line path of [`TokenBucket::try_acquire`] (then
    /// `now_u + span ≤ u64::MAX − 1`), `None` past it and on 32-bit targets.
    #[inline]
    pub(crate) const fn straight_units(&self, now: u64) -> Option<u64> {
        #[cfg(target_pointer_width = "64")]
        {
            if now < self.ticks_end {
                return Some(now);
            }
            if now < self.fast_end {
                return Some(now.wrapping_mul(self.scale));
            }
        }
        let _ = now;
        None
    }

    /// `now` in units (saturating).
    #[inline]
    pub(crate) const fn units(&self, now: u64) -> u64 {
        now.saturating_mul(self.scale)
    }

    /// Units to ticks, rounded up; `u64::MAX` stays "never".
    #[inline]
    pub(crate) const fn ticks(&self, units: u64) -> u64 {
        // Units are ticks (every rate that divides the tick rate): no division on a refusal.
        // `≤ 1` rather than `== 1` (the invariant says `scale ≥ 1`): the compiler then sees a
        // non-zero divisor below, so a refusal whose wait is unused costs no code at all and
        // there is no division-by-zero panic path.
        if self.scale <= 1 {
            return units;
        }
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
                    Decision::Conform
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

    /// Charges `n ≥ 1` tokens at `now_u` to the TAT in `cell`: exactly [`decide`](Self::decide),
    /// run through the one compare-and-swap loop, [`charge_until`](Self::charge_until). Used by
    /// every GCRA bucket (each keyed slot, the keyed overflow bucket, and the token bucket when
    /// `now` is past its straight-line range or `n > 1`).
    ///
    /// `decide` conforms iff `max(tat, now_u) + cost ≤ min(now_u + span, u64::MAX − 1)` (both
    /// sides without overflow, `+` saturating in `now_u + span`), i.e. iff `tat ≤ last` and
    /// `now_u ≤ last` for `last = min(now_u + span, u64::MAX − 1) − cost`; when that is negative
    /// or below `now_u`, nothing conforms whatever the TAT.
    #[inline]
    pub(crate) fn charge(
        &self,
        cell: &AtomicU64,
        now_u: u64,
        n: u32,
        owned: impl Fn(u64) -> bool,
    ) -> Option<Result<u64, u64>> {
        let cost = self.interval.saturating_mul(n as u64);
        let top = now_u.saturating_add(self.span);
        let top = if top < u64::MAX - 1 {
            top
        } else {
            u64::MAX - 1
        };
        match top.checked_sub(cost) {
            Some(last) if now_u <= last => self.charge_until(cell, now_u, cost, last, owned),
            _ => {
                let tat = cell.load(Ordering::Acquire);
                if !owned(tat) {
                    return None;
                }
                Some(Err(self.wait(tat, now_u, n)))
            }
        }
    }

    /// The one compare-and-swap loop of every GCRA bucket: charges tokens costing `cost`
    /// units at `now_u` to the TAT in `cell`, given `last`, the latest TAT that conforms.
    ///
    /// Precondition (what [`charge`](Self::charge) and the token bucket's straight-line path
    /// establish): `cost = interval × n`, `now_u ≤ last` and `last + cost = min(now_u + span,
    /// u64::MAX − 1)`, so `tat ≤ last` is exactly [`decide`](Self::decide)'s test and the new TAT
    /// `max(tat, now_u) + cost ≤ last + cost < u64::MAX` needs no overflow check (the keyed table
    /// reserves `u64::MAX`). A refusal (`tat > last`) is loads only; its wait is `decide`'s
    /// ([`wait_past`](Self::wait_past)).
    ///
    /// `owned(tat)` is asked before each attempt whether `cell` still belongs to the caller (the
    /// keyed table hands slots over); `None` when it does not. `Some(Ok(prev))` with the TAT it
    /// replaced after exactly one successful `compare_exchange`, `Some(Err(units))` with the
    /// units to wait after loads only.
    #[inline]
    pub(crate) fn charge_until(
        &self,
        cell: &AtomicU64,
        now_u: u64,
        cost: u64,
        last: u64,
        owned: impl Fn(u64) -> bool,
    ) -> Option<Result<u64, u64>> {
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            if !owned(tat) {
                return None;
            }
            if tat > last {
                return Some(Err(Self::wait_past(tat, last, cost)));
            }
            // ≤ last + cost < u64::MAX (precondition): no overflow.
            let new = (if tat > now_u { tat } else { now_u }).wrapping_add(cost);
            match cell.compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(prev) => return Some(Ok(prev)),
                Err(actual) => tat = actual,
            }
        }
    }

    /// [`decide`](Self::decide)'s wait for a TAT past `last` (the refusal of
    /// [`charge_until`](Self::charge_until), under its precondition), without recomputing it:
    /// the new TAT would be `tat + cost`; at or past `u64::MAX` that is "never"; otherwise
    /// `last + cost` is `now_u + span` (not capped), so the wait `min(tat + cost − (now_u +
    /// span), cost)` is `min(tat − last, cost)`. (`cost ≤ u64::MAX − 1`, as `last + cost` is.)
    #[inline]
    const fn wait_past(tat: u64, last: u64, cost: u64) -> u64 {
        if tat > (u64::MAX - 1).wrapping_sub(cost) {
            u64::MAX
        } else {
            let wait = tat.wrapping_sub(last);
            if wait < cost {
                wait
            } else {
                cost
            }
        }
    }

    /// The units to wait for a request that does not conform at `now_u` (what
    /// [`decide`](Self::decide) says; callers only ask when it refuses).
    #[inline]
    const fn wait(&self, tat: u64, now_u: u64, n: u32) -> u64 {
        match self.decide(tat, now_u, n) {
            Decision::Wait(units) => units,
            // Not reached (callers ask only for a refusal); "never" rather than a panic.
            Decision::Conform => u64::MAX,
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
/// - admission is one `compare_exchange` on the TAT, and a note for the gauge that is a load and
///   a plain store only when what it says changes (never while each admission finds the bucket
///   full, see [`available_latest`](Self::available_latest)); refusal is loads only (it counts
///   nothing: the caller counts refusals where it exports them, see below);
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
    admitted: Admitted,
    gcra: Gcra,
    config: TokenBucketConfig,
}

impl TokenBucket {
    const_fn! {
        /// A full bucket.
        pub const fn new(config: TokenBucketConfig) -> Self {
            Self {
                tat: AtomicU64::new(0),
                admitted: Admitted::new(),
                gcra: Gcra::new(&config),
                config,
            }
        }
    }

    /// Takes one token at `now` or says how long to wait.
    ///
    /// Exactly `try_acquire_n(now, 1)`, on a straight line: one token always fits (`burst ≥ 1`),
    /// and up to a tick precomputed from the configuration (near `u64::MAX` divided by the units
    /// per tick) the arithmetic cannot overflow, so it is plain products and sums; later ticks
    /// take the saturating path, out of line. An admission is one `compare_exchange`; the gauge's
    /// note of it is one more load, and a store only when the bucket was not full before it (see
    /// [`available_latest`](Self::available_latest)).
    #[inline]
    pub fn try_acquire(&self, now: u64) -> Result<(), RateLimited> {
        let g = &self.gcra;
        // On 32-bit targets (MCUs) flash counts for more than a few instructions, and a 64-bit
        // product is a library call either way: one path there, the saturating one.
        let Some(now_u) = g.straight_units(now) else {
            return self.try_acquire_late(now);
        };
        // now_u + span ≤ u64::MAX − 1: neither overflows.
        let last = now_u.wrapping_add(g.room);
        self.settle(
            now_u,
            1,
            g.charge_until(&self.tat, now_u, g.interval, last, |_| true),
        )
    }

    /// [`try_acquire`](Self::try_acquire) at a tick whose units could overflow: the saturating
    /// path every `n` takes.
    #[cfg_attr(target_pointer_width = "64", cold, inline(never))]
    fn try_acquire_late(&self, now: u64) -> Result<(), RateLimited> {
        let now_u = self.gcra.units(now);
        self.settle(now_u, 1, self.gcra.charge(&self.tat, now_u, 1, |_| true))
    }

    /// The outcome of a charge of `n` tokens at `now_u`: notes an admission for the gauge, or
    /// converts the wait to ticks.
    #[inline]
    fn settle(
        &self,
        now_u: u64,
        n: u32,
        charged: Option<Result<u64, u64>>,
    ) -> Result<(), RateLimited> {
        match charged {
            Some(Ok(prev)) => {
                // MCUs: one kind of note (the time), the smaller code.
                if cfg!(target_pointer_width = "64") && n == 1 {
                    self.admitted.one(prev, now_u, self.gcra.interval);
                } else {
                    self.admitted.at(prev, now_u, self.gcra.interval);
                }
                Ok(())
            }
            Some(Err(units)) => Err(RateLimited {
                retry_after: self.gcra.ticks(units),
            }),
            // `owned` is always true.
            None => Err(RateLimited {
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
        let now_u = self.gcra.units(now);
        self.settle(now_u, n, self.gcra.charge(&self.tat, now_u, n, |_| true))
            .map_err(AcquireError::RateLimited)
    }

    /// Whether `try_acquire_n(now, n)` would pass now, consuming nothing.
    pub fn peek(&self, now: u64, n: u32) -> Result<(), AcquireError> {
        if !self.gcra.admissible(n)? {
            return Ok(());
        }
        let now_u = self.gcra.units(now);
        match self.gcra.decide(self.tat.load(Ordering::Acquire), now_u, n) {
            Decision::Conform => Ok(()),
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
    /// either side of it). The gauge then shows `burst` until the next admission.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Release);
        self.admitted.reset();
    }

    /// The capacity: tokens available back-to-back from idle.
    pub const fn burst(&self) -> u32 {
        self.gcra.burst
    }

    /// The configuration this bucket was built from.
    pub const fn config(&self) -> &TokenBucketConfig {
        &self.config
    }

    /// Whole tokens available at the latest `now` this bucket admitted at since it was built or
    /// [`reset`](Self::reset), just after that admission (what its registry gauge shows: the
    /// registry has no clock); `burst` before the first admission.
    ///
    /// The allow path notes this without a read-modify-write and, while the bucket is full before
    /// each admission (traffic below the rate), without a store: one token taken from a full
    /// bucket is noted once as "from full", its time being the TAT minus one interval (so the
    /// gauge reads `burst − 1`); any other admission notes its time, or keeps the latest time
    /// noted if that is later (a clock stepping back never moves the gauge back). Admissions
    /// racing may leave it a token off (one's time beside the other's TAT) until the next
    /// admission at or after the TAT minus one interval; decisions never read it.
    pub fn available_latest(&self) -> u32 {
        let tat = self.tat.load(Ordering::Acquire);
        self.gcra
            .available(tat, self.admitted.units(tat, self.gcra.interval))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gcra() -> impl Strategy<Value = Gcra> {
        (
            prop_oneof![Just(1u64), Just(1_000), Just(1_000_000_000), any::<u64>()],
            prop_oneof![1u64..2_000, Just(1_000_000_000), any::<u64>()],
            prop_oneof![Just(1u64), Just(3_600), any::<u64>()],
            prop_oneof![1u32..12, any::<u32>()],
        )
            .prop_map(|(tps, tokens, seconds, burst)| {
                Gcra::new(&TokenBucketConfig::new(
                    tps.max(1),
                    Rate::new(tokens.max(1), seconds.max(1)),
                    burst.max(1),
                ))
            })
    }

    /// A value near `edge` or anywhere.
    fn near(edge: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (0u64..64).prop_map(move |d| edge.saturating_sub(d)),
            (0u64..64).prop_map(move |d| edge.saturating_add(d)),
        ]
    }

    proptest! {
        // 4 cases under miri, like the integration tests (core/tests/common).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 1024 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// `charge` is exactly `decide` through the compare-and-swap loop: same verdict, same
        /// wait, and the new TAT `max(tat, now_u) + cost`, for any parameters, TAT and time
        /// (saturation, `u64::MAX` and the clock stepped back included).
        #[test]
        fn charge_is_decide(g in gcra(), tat in near(u64::MAX - 1), now_u in near(u64::MAX), n in 1u32..16, pick in 0u8..3) {
            let n = n.min(g.burst);
            let cost = g.interval.saturating_mul(n as u64);
            // Two thirds of the cases put the TAT where the verdict flips: near `now_u + span`,
            // or near where the new TAT would reach `u64::MAX`.
            let (tat, now_u) = match pick {
                0 => (tat, now_u),
                1 => (now_u.saturating_add(g.span).saturating_sub(tat % 4), now_u),
                _ => (
                    (u64::MAX - cost).saturating_sub(tat % 3),
                    (u64::MAX - cost).saturating_sub(now_u % 3),
                ),
            };
            let tat = tat.min(u64::MAX - 1);
            let cell = AtomicU64::new(tat);
            let got = g.charge(&cell, now_u, n, |_| true);
            match g.decide(tat, now_u, n) {
                Decision::Conform => {
                    prop_assert_eq!(got, Some(Ok(tat)));
                    let want = tat.max(now_u) as u128 + g.interval as u128 * n as u128;
                    prop_assert!(want < u64::MAX as u128);
                    prop_assert_eq!(cell.load(Ordering::Relaxed) as u128, want);
                }
                Decision::Wait(w) => {
                    prop_assert_eq!(got, Some(Err(w)));
                    prop_assert_eq!(cell.load(Ordering::Relaxed), tat);
                }
            }
        }

        /// The gauge's note: after any sequence of `try_acquire`, `try_acquire_n` (clock stepping
        /// back included) and `reset`, `available_latest` is exactly the tokens available at the
        /// latest `now` admitted at since the last reset (0 before any), whether the note says
        /// "from full" or holds a time; nothing else is written on an allow from full.
        #[test]
        fn gauge_reads_at_the_latest_admission(
            tps in prop_oneof![Just(1u64), Just(1_000), Just(1_000_000_000)],
            tokens in prop_oneof![1u64..5, Just(1_000), Just(1_000_000_000)],
            burst in 1u32..6,
            start in prop_oneof![Just(0u64), Just(u64::MAX - 5_000), any::<u64>()],
            ops in proptest::collection::vec((0u8..8, 0u64..3_000, 1u32..4), 1..40),
        ) {
            let b = TokenBucket::new(TokenBucketConfig::new(tps, Rate::per_second(tokens), burst));
            let mut latest = 0u64;
            let mut now = start;
            for (op, dt, n) in ops {
                match op {
                    // Mostly forward, sometimes back.
                    0..=3 => now = now.saturating_add(dt),
                    4 => now = now.saturating_sub(dt),
                    _ => {}
                }
                let admitted = match op {
                    5 => b.try_acquire_n(now, n).is_ok() && n > 0,
                    6 => {
                        b.reset();
                        latest = 0;
                        false
                    }
                    _ => {
                        let before = b.admitted.word();
                        let full = b.available(now) == b.burst();
                        let ok = b.try_acquire(now).is_ok();
                        if ok && full && before == Admitted::FROM_FULL {
                            prop_assert_eq!(b.admitted.word(), before);
                        }
                        ok
                    }
                };
                if admitted {
                    latest = latest.max(now);
                }
                prop_assert_eq!(b.available_latest(), b.available(latest));
            }
        }

        /// The straight-line path of `try_acquire`: below `fast_end`, `now × scale + span ≤
        /// u64::MAX − 1` (the invariant that lets it skip saturation), at `fast_end` it is not,
        /// its units are `now × scale` on both of its ranges, and its plain arithmetic decides
        /// exactly like `charge`.
        #[test]
        fn straight_line_invariant_and_verdict(g in gcra(), tat in any::<u64>(), d in 0u64..64, pick in 0u8..3) {
            let bound = |now: u64| now as u128 * g.scale as u128 + g.span as u128;
            if g.fast_end > 0 {
                prop_assert!(bound(g.fast_end - 1) < u64::MAX as u128);
            }
            prop_assert!(g.fast_end == u64::MAX || bound(g.fast_end) > u64::MAX as u128 - 1 || g.span >= u64::MAX - 1);
            prop_assert_eq!(g.room + g.interval, g.span);
            prop_assert_eq!(g.straight_units(g.fast_end), None);
            prop_assert!(g.ticks_end == 0 || (g.scale == 1 && g.ticks_end == g.fast_end));
            if g.fast_end == 0 {
                return Ok(());
            }
            let now = match pick {
                0 => g.fast_end - 1 - d.min(g.fast_end - 1),
                1 => d.min(g.fast_end - 1),
                _ => tat % g.fast_end,
            };
            let now_u = now * g.scale;
            prop_assert_eq!(g.straight_units(now), Some(now_u));
            let tat = match pick {
                0 => tat.min(u64::MAX - 1),
                _ => (now_u + g.room).saturating_sub(g.interval).saturating_add(tat % (2 * g.interval.min(1 << 40))),
            }
            .min(u64::MAX - 1);
            let (a, b) = (AtomicU64::new(tat), AtomicU64::new(tat));
            let fast = g.charge_until(&a, now_u, g.interval, now_u + g.room, |_| true);
            let general = g.charge(&b, g.units(now), 1, |_| true);
            prop_assert_eq!(fast, general);
            prop_assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
        }
    }
}
