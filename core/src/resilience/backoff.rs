//! Retry backoff: exponential delays with jitter, as a pure function of the attempt number and
//! a random `u32` the caller supplies, plus a tiny deterministic PRNG for callers without one.

use core::fmt;

/// How the exponential delay is randomised (see the AWS Architecture Blog, "Exponential Backoff
/// And Jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// `min(cap, base × 2^attempt)`: no randomness.
    None,
    /// Uniform in `0..=min(cap, base × 2^attempt)`.
    Full,
    /// Half the exponential delay plus a uniform share of the other half.
    Equal,
    /// Uniform in `base..=min(cap, base × 3^attempt)`: the attempt-indexed form of AWS's
    /// decorrelated jitter. [`Backoff::decorrelated_next`] gives the stateful original.
    Decorrelated,
}

/// Every allowed retry has been used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetriesExhausted {
    /// The configured maximum number of retries.
    pub max_attempts: u32,
}

impl core::error::Error for RetriesExhausted {}

impl fmt::Display for RetriesExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "giving up: all {} retries used", self.max_attempts)
    }
}

/// A backoff policy. Delays are in ticks of the caller's clock.
///
/// Invariants: every delay is at most `cap`; `delay(attempt, r)` depends only on its arguments
/// (same inputs, same delay); attempts `≥ max_attempts` are [`RetriesExhausted`]; no overflow on
/// any input.
///
/// ```
/// use vitals_core::resilience::{Backoff, Jitter, Rng};
///
/// // 100 ms doubling up to 5 s, full jitter, at most 5 retries (clock in milliseconds).
/// const RETRY: Backoff = Backoff::new(100, 5_000).with_jitter(Jitter::Full).with_max_attempts(5);
/// let mut rng = Rng::new(42);
/// let mut attempt = 0;
/// while let Ok(delay) = RETRY.delay(attempt, rng.next_u32()) {
///     assert!(delay <= 100 << attempt);
///     attempt += 1;
/// }
/// assert_eq!(attempt, 5);
/// assert_eq!(Backoff::new(100, 5_000).delay(10, 0), Ok(5_000)); // capped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: u64,
    cap: u64,
    max_attempts: u32,
    jitter: Jitter,
}

/// Uniform in `lo..=hi` (`lo ≤ hi`) from a random `u32`, by multiply-shift.
const fn uniform(lo: u64, hi: u64, random: u32) -> u64 {
    let span = (hi - lo) as u128 + 1;
    lo + ((span * random as u128) >> 32) as u64
}

const fn min(a: u64, b: u64) -> u64 {
    if a < b {
        a
    } else {
        b
    }
}

impl Backoff {
    /// Exponential from `base` ticks, doubling, capped at `cap`, no jitter, unlimited attempts.
    pub const fn new(base: u64, cap: u64) -> Self {
        Self {
            base,
            cap,
            max_attempts: u32::MAX,
            jitter: Jitter::None,
        }
    }

    /// The same policy with `jitter`.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same policy giving up after `max_attempts` retries.
    pub const fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The un-jittered delay before retry number `attempt` (0-based): `min(cap, base × 2^attempt)`.
    pub const fn exponential(&self, attempt: u32) -> u64 {
        let factor = match 1u64.checked_shl(attempt) {
            Some(f) => f,
            None => u64::MAX,
        };
        min(self.cap, self.base.saturating_mul(factor))
    }

    /// The delay before retry number `attempt` (0-based), using `random` for the jitter.
    pub const fn delay(&self, attempt: u32, random: u32) -> Result<u64, RetriesExhausted> {
        if attempt >= self.max_attempts {
            return Err(RetriesExhausted {
                max_attempts: self.max_attempts,
            });
        }
        let e = self.exponential(attempt);
        Ok(match self.jitter {
            Jitter::None => e,
            Jitter::Full => uniform(0, e, random),
            Jitter::Equal => {
                let half = e / 2;
                half + uniform(0, e - half, random)
            }
            Jitter::Decorrelated => {
                let lo = min(self.base, self.cap);
                let mut hi = self.base;
                let mut i = 0;
                while i < attempt && hi < self.cap {
                    hi = hi.saturating_mul(3);
                    i += 1;
                }
                uniform(lo, min(self.cap, hi), random)
            }
        })
    }

    /// AWS's stateful decorrelated jitter: uniform in `base..=min(cap, previous × 3)`. Start with
    /// `previous = base`.
    pub const fn decorrelated_next(&self, previous: u64, random: u32) -> u64 {
        let lo = min(self.base, self.cap);
        let hi = min(self.cap, previous.saturating_mul(3));
        if hi <= lo {
            lo
        } else {
            uniform(lo, hi, random)
        }
    }

    /// The configured maximum number of retries.
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

/// A tiny deterministic PRNG (SplitMix64, upper 32 bits) for jitter when the platform has no
/// random source. Not for cryptography.
///
/// Invariant: the same seed gives the same sequence on every target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed` (any value, including 0).
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next pseudo-random `u32`.
    pub fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}
