//! How the resilience primitives show up in the registry and in the health report.
//!
//! Each primitive is itself a gauge [`Instrument`](crate::registry::Instrument) (one series, no
//! labels) and exposes its counters as [`Counter`](crate::Counter)s:
//!
//! | primitive | gauge (the primitive itself) | counters |
//! |---|---|---|
//! | [`CircuitBreaker`] | state: 0 closed, 1 open, 2 half-open | `transitions_counter()`, `rejections_counter()` |
//! | [`TokenBucket`] | tokens available | none: refusals are counted by the caller |
//! | [`KeyedLimiter`] | active clients | `overflow_counter()`; refusals are counted by the caller |
//! | [`Quota`] | units used in the window | `rejections_counter()` |
//!
//! The limiters count no refusal themselves (a refusal is loads only, like governor's): where
//! refusals are exported, the caller increments its own [`Counter`](crate::Counter) on `Err`.
//!
//! The registry has no clock, so the time-dependent gauges read at the latest `now` the primitive
//! acted on. Health: a breaker that is open or forced open is unhealthy, half-open or disabled is
//! degraded; a quota above 90 % of its budget is degraded.
//!
//! ```
//! use vitals_core::resilience::{BreakerConfig, CircuitBreaker, Quota, QuotaConfig};
//! use vitals_core::{Component, Entry, Health, Registry, Status};
//!
//! static UPSTREAM: CircuitBreaker = CircuitBreaker::new(BreakerConfig::new(1_000));
//! static DAILY: Quota = Quota::new(QuotaConfig::new(1_000, 86_400, 10));
//! static REGISTRY: Registry = Registry::new(&[
//!     Entry::new("upstream_circuit_breaker_state", "0 closed, 1 open, 2 half-open.", &UPSTREAM),
//!     Entry::new("upstream_circuit_breaker_transitions", "State changes.", UPSTREAM.transitions_counter()),
//!     Entry::new("upstream_circuit_breaker_rejections", "Calls refused.", UPSTREAM.rejections_counter()),
//!     Entry::new("daily_quota_used", "Requests used today.", &DAILY),
//! ]);
//! static HEALTH: [Component; 2] = [Component::new("upstream", &UPSTREAM), Component::new("daily_quota", &DAILY)];
//!
//! assert_eq!(REGISTRY.entries().len(), 4);
//! DAILY.try_acquire_n(0, 10).unwrap();
//! assert_eq!(HEALTH[1].status(), Status::Degraded);
//! UPSTREAM.force_open();
//! assert_eq!(HEALTH[0].status(), Status::Unhealthy);
//! ```

use super::BreakerState;
use super::{CircuitBreaker, KeyedLimiter, Quota, TokenBucket};
use crate::health::{Check, Status};
use crate::labels::Labels;
use crate::registry::{Collect, Instrument, Kind, Series, Value};

macro_rules! gauge {
    ($t:ty $(, const $g:ident)?, |$s:ident| $value:expr) => {
        impl$(<const $g: usize>)? Collect for $t {
            fn series_len(&self) -> usize {
                1
            }
            fn series(&self, index: usize) -> Option<Series<'_>> {
                let $s = self;
                (index == 0).then(|| Series { labels: Labels::None, value: $value })
            }
        }
        impl$(<const $g: usize>)? Instrument for $t {
            const KIND: Kind = Kind::Gauge;
        }
    };
}

gauge!(CircuitBreaker, |s| Value::Int(s.state().gauge()));
gauge!(TokenBucket, |s| Value::Uint(u64::from(
    s.available_latest()
)));
gauge!(Quota, |s| Value::Uint(u64::from(s.used_latest())));
gauge!(KeyedLimiter<CAP>, const CAP, |s| Value::Uint(s.active_latest() as u64));

impl Check for CircuitBreaker {
    fn status(&self) -> Status {
        match self.state() {
            BreakerState::Closed => Status::Healthy,
            BreakerState::HalfOpen | BreakerState::Disabled => Status::Degraded,
            BreakerState::Open | BreakerState::ForcedOpen => Status::Unhealthy,
        }
    }
    fn detail(&self) -> Option<&str> {
        match self.state() {
            BreakerState::Closed => None,
            BreakerState::Open => Some("circuit breaker open"),
            BreakerState::HalfOpen => Some("circuit breaker half-open: probing"),
            BreakerState::ForcedOpen => Some("circuit breaker forced open by an operator"),
            BreakerState::Disabled => Some("circuit breaker disabled by an operator"),
        }
    }
}

impl Check for Quota {
    fn status(&self) -> Status {
        if u64::from(self.used_latest()) * 10 > u64::from(self.limit()) * 9 {
            Status::Degraded
        } else {
            Status::Healthy
        }
    }
    fn detail(&self) -> Option<&str> {
        (self.status() == Status::Degraded).then_some("quota above 90 % of its budget")
    }
}
