//! Rate limits on the std clock: per client at the HTTP edge, per client and per tool for MCP
//! tool calls. Both are the core's lock-free GCRA [`KeyedLimiter`]: a client that stays idle long
//! enough is indistinguishable from a new one, so the fixed table never loses state that matters.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use serde::Serialize;
use vitals_core::labels::{LabelSource, Labels};
use vitals_core::resilience::{KeyedLimiter, Rate, TokenBucketConfig};
use vitals_core::{Collect, Kind, Series, Value};

use crate::clock::{MonotonicClock, TICKS_PER_SECOND};
use crate::registry::{RegistryBuilder, RegistryError};

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
        // Raised to 1: a spec built by hand with a zero (parsing refuses one) never panics here.
        TokenBucketConfig::new(
            TICKS_PER_SECOND,
            Rate::new(self.tokens.max(1), self.seconds.max(1)),
            u32::try_from(self.tokens).unwrap_or(u32::MAX).max(1),
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
    /// Refusals: the core's limiter counts none, so this wrapper does (exactly, one per `Err`).
    rejected: vitals_core::Counter,
    hasher: std::collections::hash_map::RandomState,
}

impl<const CAP: usize> std::fmt::Debug for Limiter<CAP> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("spec", &self.spec)
            .field("slots", &CAP)
            .field("rejected", &self.rejected.get())
            .finish_non_exhaustive()
    }
}

impl<const CAP: usize> Limiter<CAP> {
    /// A limiter giving each key the budget `spec`.
    pub fn new(spec: RateSpec) -> Self {
        Limiter {
            spec,
            table: Box::new(KeyedLimiter::new(spec.config())),
            rejected: vitals_core::Counter::new(),
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
        self.table.try_acquire(self.key(key), now).map_err(|e| {
            self.rejected.inc();
            RetryAfter(MonotonicClock::to_duration(e.retry_after))
        })
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
        self.rejected.get()
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

/// The per-tool `tools/call` limit, keyed by tool name.
pub type ToolLimiter = Limiter<TOOL_SLOTS>;

/// Key of an HTTP client: its IPv4 address, or the /64 network of its IPv6 address (one
/// subscriber or host usually owns a whole /64, so keying by the exact IPv6 address would let a
/// client pick a new key per request). IPv4-mapped IPv6 addresses are keyed as IPv4. The port
/// changes per connection and is never part of the key.
///
/// ```
/// use std::net::IpAddr;
/// use vitals_std::limits::client_key;
/// let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
/// assert_eq!(client_key(a), client_key(b));
/// assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
/// ```
pub fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// A tool name as the `tool` label.
struct ToolName(Box<str>);

impl LabelSource for ToolName {
    fn len(&self) -> usize {
        1
    }
    fn name(&self, _i: usize) -> &str {
        "tool"
    }
    fn value(&self, _i: usize) -> &str {
        &self.0
    }
}

/// `rate_limit_available_tokens{tool}`: the tokens the per-tool limiter could hand out to each
/// tool now, read on the limiter's clock at scrape time (the core's registry has no clock).
///
/// A tool appears once [`track`](Self::track)ed (the first call that reaches the limiter), up to
/// [`TOOL_SLOTS`] tools, the size of the per-tool table; later names are not exported. Per-client
/// buckets are deliberately not exported (cardinality, client addresses in labels).
pub struct ToolTokens {
    limiter: &'static ToolLimiter,
    clock: MonotonicClock,
    seen: RwLock<HashSet<Box<str>>>,
    names: Box<[OnceLock<ToolName>]>,
    len: AtomicUsize,
}

impl std::fmt::Debug for ToolTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolTokens").finish_non_exhaustive()
    }
}

impl ToolTokens {
    /// The gauge over `limiter`, whose ticks come from `clock`.
    pub fn new(limiter: &'static ToolLimiter, clock: MonotonicClock) -> Self {
        ToolTokens {
            limiter,
            clock,
            seen: RwLock::new(HashSet::new()),
            names: (0..TOOL_SLOTS).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// Adds `tool` to the exported series (once; a read lock and a hash when already known,
    /// nothing once the table is full).
    pub fn track(&self, tool: &str) {
        if self.len.load(Ordering::Relaxed) >= TOOL_SLOTS
            || self
                .seen
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(tool)
        {
            return;
        }
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        let i = seen.len();
        if i >= TOOL_SLOTS || seen.contains(tool) {
            return;
        }
        if self.names[i].set(ToolName(tool.into())).is_ok() {
            seen.insert(tool.into());
            self.len.store(i + 1, Ordering::Release);
        }
    }

    /// Number of tools exported.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no tool is exported yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Collect for ToolTokens {
    fn series_len(&self) -> usize {
        self.len()
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        let name = self.names.get(index)?.get()?;
        let available = self.limiter.available(&*name.0, self.clock.now());
        Some(Series {
            labels: Labels::Dyn(name),
            value: Value::Uint(u64::from(available)),
        })
    }
}

/// `rate_limit_burst_tokens{scope}`: the burst (`RateSpec::tokens`) of each configured limiter,
/// by the same `scope` values as `rate_limit_rejected_total`.
#[derive(Debug, Default)]
pub struct BurstTokens {
    scopes: Vec<(&'static str, u64)>,
}

const SCOPE_LABEL: &[&str] = &["scope"];

impl BurstTokens {
    /// The bursts of the limiters that are configured, by scope (`http_client`, `tool_client`,
    /// `tool`).
    pub fn new(scopes: impl IntoIterator<Item = (&'static str, Option<RateSpec>)>) -> Self {
        BurstTokens {
            scopes: scopes
                .into_iter()
                .filter_map(|(scope, spec)| spec.map(|s| (scope, s.tokens)))
                .collect(),
        }
    }
}

impl Collect for BurstTokens {
    fn series_len(&self) -> usize {
        self.scopes.len()
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        let (scope, tokens) = self.scopes.get(index)?;
        Some(Series {
            labels: Labels::Static {
                names: SCOPE_LABEL,
                values: std::slice::from_ref(scope),
            },
            value: Value::Uint(*tokens),
        })
    }
}

/// The limiter gauges: `rate_limit_available_tokens{tool}` and `rate_limit_burst_tokens{scope}`.
#[derive(Debug)]
pub struct LimiterMetrics {
    /// `rate_limit_available_tokens{tool}`, when a per-tool limit is configured.
    pub available: Option<ToolTokens>,
    /// `rate_limit_burst_tokens{scope}`.
    pub burst: BurstTokens,
}

/// Stands in for `rate_limit_available_tokens` when there is no per-tool limiter: no series.
struct NoSeries;

impl Collect for NoSeries {
    fn series_len(&self) -> usize {
        0
    }
    fn series(&self, _index: usize) -> Option<Series<'_>> {
        None
    }
}

impl LimiterMetrics {
    /// Registers the set (both families, empty when the limiters are not configured).
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        static NONE: NoSeries = NoSeries;
        let available: &'static dyn Collect = match &self.available {
            Some(a) => a,
            None => &NONE,
        };
        b.register_dyn(
            "rate_limit_available_tokens",
            "Tokens the per-tool rate limiter could hand out to each tool now.",
            None,
            Kind::Gauge,
            available,
        )?;
        b.register_dyn(
            "rate_limit_burst_tokens",
            "Burst of each rate limiter (tokens available back-to-back from idle), by scope.",
            None,
            Kind::Gauge,
            &self.burst,
        )?;
        Ok(())
    }
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

    #[test]
    fn exports_available_and_burst_tokens() {
        let clock = MonotonicClock::new();
        let limiter: &'static ToolLimiter = crate::leak(Limiter::new("5/1h".parse().unwrap()));
        let m: &'static LimiterMetrics = crate::leak(LimiterMetrics {
            available: Some(ToolTokens::new(limiter, clock)),
            burst: BurstTokens::new([
                ("http_client", Some("7/1m".parse().unwrap())),
                ("tool_client", None),
                ("tool", Some(limiter.spec())),
            ]),
        });
        let mut b = RegistryBuilder::new();
        m.register(&mut b).unwrap();
        let r = b.build();
        let tokens = m.available.as_ref().unwrap();
        for _ in 0..2 {
            tokens.track("search");
            limiter.check("search", clock.now()).unwrap();
        }
        tokens.track("idle");
        assert_eq!(tokens.len(), 2);
        let text = r.render_to_string(vitals_core::Format::Prometheus);
        for needle in [
            "# TYPE rate_limit_available_tokens gauge\n",
            "rate_limit_available_tokens{tool=\"search\"} 3\n",
            "rate_limit_available_tokens{tool=\"idle\"} 5\n",
            "rate_limit_burst_tokens{scope=\"http_client\"} 7\n",
            "rate_limit_burst_tokens{scope=\"tool\"} 5\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("tool_client"), "{text}");
    }

    #[test]
    fn tool_table_is_bounded() {
        let limiter: &'static ToolLimiter = crate::leak(Limiter::new("5/1s".parse().unwrap()));
        let t = ToolTokens::new(limiter, MonotonicClock::new());
        for i in 0..TOOL_SLOTS + 10 {
            t.track(&format!("tool{i}"));
            t.track("tool0");
        }
        assert_eq!(t.len(), TOOL_SLOTS);
        assert_eq!(t.series_len(), TOOL_SLOTS);
        assert!(t.series(TOOL_SLOTS - 1).is_some());
        assert!(t.series(TOOL_SLOTS).is_none());
    }
}
