//! The GCRA parameters the store's script runs with: the core's own arithmetic (time in units of
//! `1 / scale` µs, the emission interval an exact integer of units), kept below 2^53 so that the
//! script's Lua doubles compute exactly what the core's integers would.

use std::fmt;

use crate::clock::TICKS_PER_SECOND;
use crate::limits::RateSpec;

/// Largest integer a double (the script's only number type) holds exactly, plus one.
const EXACT: u128 = 1 << 53;

/// One bucket's parameters, in units of `1 / scale` µs.
///
/// Invariant: `interval ≥ 1`, `scale ≥ 1`, `burst ≥ 1`, `span = interval × burst < 2^53`; for a
/// rate whose exact fraction fits, `interval / scale` µs is exactly `period / tokens` (the core's
/// `TokenBucket` on a µs clock makes the same decisions); otherwise `scale = 1` and the interval
/// is rounded up to whole µs (never faster than configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Units per token.
    pub interval: u64,
    /// Units per µs.
    pub scale: u64,
    /// Tokens available back-to-back from idle.
    pub burst: u64,
    /// Units a full bucket spans.
    pub span: u64,
}

/// A rate whose bucket cannot be computed exactly in the store (its period is longer than ~285
/// years per token even in whole µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTooLong(pub RateSpec);

impl fmt::Display for RateTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate {} is too slow to share through the store (its span exceeds 2^53 µs)",
            self.0
        )
    }
}

impl std::error::Error for RateTooLong {}

const fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

impl Bucket {
    /// The bucket of `spec` (burst = tokens, as the local limiters use).
    pub fn of(spec: RateSpec) -> Result<Bucket, RateTooLong> {
        let period = u128::from(spec.seconds.max(1)) * u128::from(TICKS_PER_SECOND);
        let tokens = u128::from(spec.tokens.max(1));
        let burst = tokens.min(u128::from(u32::MAX));
        let g = gcd(period, tokens);
        let (interval, scale) = (period / g, tokens / g);
        if interval * burst < EXACT {
            return Ok(Bucket::new(interval, scale, burst));
        }
        let interval = period.div_ceil(tokens);
        if interval * burst < EXACT {
            return Ok(Bucket::new(interval, 1, burst));
        }
        Err(RateTooLong(spec))
    }

    fn new(interval: u128, scale: u128, burst: u128) -> Bucket {
        // All three < 2^53 (checked by the caller).
        Bucket {
            interval: interval as u64,
            scale: scale as u64,
            burst: burst as u64,
            span: (interval * burst) as u64,
        }
    }

    /// Whole tokens left when the bucket's TAT is `d` units ahead of now.
    pub fn remaining(&self, d: u64) -> u64 {
        (self.span.saturating_sub(d) / self.interval).min(self.burst)
    }

    /// Whether `n` tokens would be refused `elapsed_us` after the bucket was `d` units ahead:
    /// the wait in µs (rounded up), or `None` when they would pass.
    pub fn wait_us(&self, d: u64, elapsed_us: u64, n: u64) -> Option<u64> {
        let d = d.saturating_sub(elapsed_us.saturating_mul(self.scale));
        let new = d.saturating_add(n.saturating_mul(self.interval));
        (new > self.span).then(|| (new - self.span).div_ceil(self.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> RateSpec {
        s.parse().unwrap()
    }

    #[test]
    fn exact_fractions_like_the_core() {
        // 3 per second: 1/3 s is not a whole µs; units of 1/3 µs make it exact.
        let b = Bucket::of(spec("3/1s")).unwrap();
        assert_eq!((b.interval, b.scale, b.burst), (1_000_000, 3, 3));
        assert_eq!(b.span, 3_000_000);
        let b = Bucket::of(spec("100/1h")).unwrap();
        assert_eq!((b.interval, b.scale), (36_000_000, 1));
        assert_eq!(b.remaining(0), 100);
        assert_eq!(b.remaining(b.span), 0);
        assert_eq!(b.wait_us(b.span, 0, 1), Some(36_000_000));
        assert_eq!(b.wait_us(b.span, 36_000_000, 1), None);
    }

    #[test]
    fn inexact_fractions_round_the_interval_up() {
        // 1 000 003 per day: the exact span would need 8.64e16 units.
        let b = Bucket::of(spec("1000003/1d")).unwrap();
        assert_eq!(b.scale, 1);
        assert!(b.interval * 1_000_003 >= 86_400_000_000);
        assert!(b.span < 1 << 53);
        assert!(Bucket::of(spec("4294967295/99999999999d")).is_err());
    }
}
