//! What the shared limits export: decisions by source, store latency, store errors by kind, the
//! store breaker's state and the quota the store last reported.

use crate::series::Exact as _;
use std::sync::atomic::{AtomicU64, Ordering};

use vitals_core::resilience::CircuitBreaker;
use vitals_core::{Bounds, Collect, Counter, Histogram, Kind, Series, StrFamily, Value};

use super::store::ErrorKind;
use crate::registry::{RegistryBuilder, RegistryError};

/// Buckets of `shared_limits_store_duration_seconds`, in µs (50 µs … 250 ms).
pub const STORE_DURATION_BOUNDS: Bounds<11> = Bounds::micros([
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000,
]);

/// Where a decision came from: the `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The store's script.
    Store,
    /// The last state the store returned (a refusal without a round trip).
    LocalCache,
    /// The fallback, while the store could not decide.
    Fallback,
}

impl Source {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::LocalCache => "local_cache",
            Source::Fallback => "fallback",
        }
    }
}

/// Every `verdict` label value ([`super::Admission`]'s).
pub const VERDICTS: [&str; 4] = ["admitted", "rate_limited", "quota_exhausted", "unavailable"];

/// The metric set.
#[derive(Debug)]
pub struct SharedMetrics {
    /// `shared_limits_decisions_total{source,verdict}`.
    pub decisions: StrFamily<Counter, 2, 16, 32>,
    /// `shared_limits_store_duration_seconds`: one decision's round trip, answered or not.
    pub store_duration: Histogram<11>,
    /// `shared_limits_store_errors_total{kind}`.
    pub store_errors: StrFamily<Counter, 1, 8, 16>,
    /// The store's breaker (its state is read at scrape).
    pub breaker: &'static CircuitBreaker,
    /// Quota units used in the current window, as the store last reported.
    pub quota_used: AtomicU64,
}

/// `shared_limits_breaker_state`, read at scrape.
struct BreakerGauge(&'static CircuitBreaker);

impl Collect for BreakerGauge {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then(|| Series {
            labels: vitals_core::labels::Labels::None,
            value: Value::Int(self.0.state().gauge()),
        })
    }
}

/// `shared_limits_quota_used`, read at scrape.
struct QuotaUsed(&'static AtomicU64);

impl Collect for QuotaUsed {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then(|| Series {
            labels: vitals_core::labels::Labels::None,
            value: Value::Uint(self.0.load(Ordering::Relaxed)),
        })
    }
}

impl SharedMetrics {
    /// Metrics around the store's breaker, every series at 0: each label set is claimed here,
    /// so the exposition shows every source × verdict and error kind from the start.
    pub fn new(breaker: &'static CircuitBreaker) -> Self {
        let m = SharedMetrics {
            decisions: StrFamily::new(["source", "verdict"]),
            store_duration: Histogram::new(STORE_DURATION_BOUNDS),
            store_errors: StrFamily::new(["kind"]),
            breaker,
            quota_used: AtomicU64::new(0),
        };
        for source in [Source::Store, Source::LocalCache, Source::Fallback] {
            for verdict in VERDICTS {
                m.decisions.exact_labels([source.as_str(), verdict]);
            }
        }
        for kind in ErrorKind::ALL {
            m.store_errors.exact_labels([kind.as_str()]);
        }
        m
    }

    /// Counts one decision.
    pub fn decided(&self, source: Source, verdict: &str) {
        debug_assert!(VERDICTS.contains(&verdict), "unknown verdict {verdict}");
        self.decisions
            .exact_labels([source.as_str(), verdict])
            .inc();
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "shared_limits_decisions_total",
            "Tool-call limit decisions with a shared store, by source (store, local_cache, fallback) and verdict.",
            None,
            &self.decisions,
        )?;
        b.register(
            "shared_limits_store_duration_seconds",
            "Round trip of one limit decision to the shared store (timeouts included).",
            Some("seconds"),
            &self.store_duration,
        )?;
        b.register(
            "shared_limits_store_errors_total",
            "Limit decisions the shared store did not answer, by kind.",
            None,
            &self.store_errors,
        )?;
        b.register_dyn(
            "shared_limits_breaker_state",
            "State of the circuit breaker around the shared store: 0 closed, 1 open, 2 half-open.",
            None,
            Kind::Gauge,
            crate::leak(BreakerGauge(self.breaker)),
        )?;
        b.register_dyn(
            "shared_limits_quota_used",
            "Tool-call quota units used in the current window, as the shared store last reported.",
            None,
            Kind::Gauge,
            crate::leak(QuotaUsed(&self.quota_used)),
        )?;
        Ok(())
    }
}
