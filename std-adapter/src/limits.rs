//! Rate limits on the std clock: per client at the HTTP edge, per client and per tool for MCP
//! tool calls. Both are the core's lock-free GCRA [`KeyedLimiter`]: a client that stays idle long
//! enough is indistinguishable from a new one, so the fixed table never loses state that matters.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use vitals_core::resilience::{KeyedLimiter, Rate, TokenBucketConfig};

use crate::clock::{MonotonicClock, TICKS_PER_SECOND};

/// Client slots in a limiter table (a full table shares one overflow bucket, counted).
pub const CLIENT_SLOTS: usize = 4096;
/// Tool slots in the per-tool limiter table.
pub const TOOL_SLOTS: usize = 256;

/// A budget `tokens` per `seconds`, written `N/PERIOD` (`100/1m`, `10/1s`, `5000/1h`, `20/30s`);
/// the burst equals `tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RateSpec {
    /// Requests allowed per period (also the burst).
    pub tokens: u64,
    /// Period length in seconds.
    pub seconds: u64,
}

/// Why a rate spec does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpecError(String);

impl fmt::Display for RateSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rate `{}`: expected N/PERIOD with N ≥ 1 and PERIOD like 1s, 30s, 1m, 1h, 1d",
            self.0
        )
    }
}

impl std::error::Error for RateSpecError {}

impl FromStr for RateSpec {
    type Err = RateSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RateSpecError(s.to_owned());
        let (n, period) = s.trim().split_once('/').ok_or_else(err)?;
        let tokens: u64 = n.trim().parse().map_err(|_| err())?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (count, unit) = period.split_at(split);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| err())?
        };
        let unit_secs = match unit {
            "s" | "sec" | "" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(err()),
        };
        let seconds = count.checked_mul(unit_secs).ok_or_else(err)?;
        if tokens == 0 || seconds == 0 || tokens > u64::from(u32::MAX) {
            return Err(err());
        }
        Ok(RateSpec { tokens, seconds })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.tokens, self.seconds)
    }
}

impl RateSpec {
    /// The core configuration on the std clock.
    pub fn config(&self) -> TokenBucketConfig {
        TokenBucketConfig::new(
            TICKS_PER_SECOND,
            Rate::new(self.tokens, self.seconds),
            u32::try_from(self.tokens).unwrap_or(u32::MAX),
        )
    }
}

/// A refusal: wait this long before the same request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds to wait, rounded up, at least 1 (the `Retry-After` header value).
    pub fn secs(&self) -> u64 {
        MonotonicClock::to_retry_after_secs(u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX))
    }
}

/// One keyed limiter: a budget per key (client address, client id, tool name).
pub struct Limiter<const CAP: usize> {
    spec: RateSpec,
    table: Box<KeyedLimiter<CAP>>,
    hasher: std::collections::hash_map::RandomState,
}

impl<const CAP: usize> Limiter<CAP> {
    /// A limiter giving each key the budget `spec`.
    pub fn new(spec: RateSpec) -> Self {
        Limiter {
            spec,
            table: Box::new(KeyedLimiter::new(spec.config())),
            hasher: Default::default(),
        }
    }

    /// The budget.
    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    fn key<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Takes one token from `key`'s budget at `now` (std clock ticks).
    pub fn check<K: Hash + ?Sized>(&self, key: &K, now: u64) -> Result<(), RetryAfter> {
        self.table
            .try_acquire(self.key(key), now)
            .map_err(|e| RetryAfter(MonotonicClock::to_duration(e.retry_after)))
    }

    /// Tokens `key` could take right now.
    pub fn available<K: Hash + ?Sized>(&self, key: &K, now: u64) -> u32 {
        self.table.available(self.key(key), now)
    }

    /// Keys with a budget in use at `now`.
    pub fn active(&self, now: u64) -> usize {
        self.table.active(now)
    }

    /// Requests refused since start.
    pub fn rejected(&self) -> u64 {
        self.table.rejected()
    }

    /// Keys that found the table full and shared the overflow bucket.
    pub fn overflowed(&self) -> u64 {
        self.table.overflowed()
    }

    /// A serialisable snapshot.
    pub fn status(&self, now: u64) -> LimiterStatus {
        LimiterStatus {
            limit: self.spec.to_string(),
            tokens: self.spec.tokens,
            period_seconds: self.spec.seconds,
            active_keys: self.active(now) as u64,
            rejected_total: self.rejected(),
            overflowed_total: self.overflowed(),
        }
    }
}

/// The state of one limiter, as the `rate_limit_status` tool reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LimiterStatus {
    /// The budget, `N/Ss`.
    pub limit: String,
    /// Requests per period (and burst).
    pub tokens: u64,
    /// Period in seconds.
    pub period_seconds: u64,
    /// Keys currently holding a partly used budget.
    pub active_keys: u64,
    /// Requests refused since start.
    pub rejected_total: u64,
    /// Keys that found the table full and shared the overflow bucket.
    pub overflowed_total: u64,
}

/// The per-client HTTP limit, keyed by remote IP address (not by MCP session, so a client cannot
/// escape it by opening new sessions).
pub type ClientLimiter = Limiter<CLIENT_SLOTS>;

/// Key of an HTTP client: its IP address (the port changes per connection).
pub fn client_key(addr: IpAddr) -> IpAddr {
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(
            "100/1m".parse(),
            Ok(RateSpec {
                tokens: 100,
                seconds: 60
            })
        );
        assert_eq!(
            "10/s".parse(),
            Ok(RateSpec {
                tokens: 10,
                seconds: 1
            })
        );
        assert_eq!(
            "5/30s".parse(),
            Ok(RateSpec {
                tokens: 5,
                seconds: 30
            })
        );
        assert_eq!(
            "7/2h".parse(),
            Ok(RateSpec {
                tokens: 7,
                seconds: 7200
            })
        );
        for bad in ["", "10", "0/1s", "10/0s", "x/1s", "10/1y", "10/-1s"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_per_key_with_retry_after() {
        let l: Limiter<64> = Limiter::new("2/1s".parse().unwrap());
        assert!(l.check("a", 0).is_ok());
        assert!(l.check("a", 0).is_ok());
        let r = l.check("a", 0).unwrap_err();
        assert!(r.0 > Duration::ZERO && r.0 <= Duration::from_secs(1));
        assert_eq!(r.secs(), 1);
        assert!(l.check("b", 0).is_ok());
        assert_eq!(l.rejected(), 1);
        assert!(l.check("a", 1_000_000).is_ok());
    }
}
