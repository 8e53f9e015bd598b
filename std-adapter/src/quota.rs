//! Request quotas: a fixed-window budget ("1 000 000 tool calls per day") on the wall clock, built
//! on the core's lock-free [`Quota`].
//!
//! A [`NamedQuota`] counts in windows aligned to the Unix epoch, so a daily window starts at UTC
//! midnight. It is a health check (degraded above 90 % of the budget) and [`QuotaMetrics`] exports
//! it as `quota_used{quota}`, `quota_limit{quota}` and `quota_rejected_total{quota}`. The core's
//! registry has no clock, so these collectors read the quota's clock themselves at scrape time:
//! `quota_used` drops to 0 when a new window starts even if no request came since.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use vitals_core::health::{Check, Status};
use vitals_core::labels::{LabelSource, Labels};
use vitals_core::resilience::{Quota, QuotaConfig, QuotaError, MAX_QUOTA_LIMIT};
use vitals_core::{Collect, Kind, Series, Value};

use crate::clock::{MonotonicClock, TICKS_PER_SECOND};
use crate::limits::RetryAfter;
use crate::registry::{RegistryBuilder, RegistryError};

/// Seconds in a day: the window of a daily quota.
pub const DAY_SECONDS: u64 = 86_400;

/// The `quota` label of the tool-call quota set by
/// [`VitalsBuilder::daily_tool_quota`](crate::VitalsBuilder::daily_tool_quota).
pub const DAILY_TOOL_CALLS: &str = "daily_tool_calls";

/// The largest budget a quota window can hold (the core's [`MAX_QUOTA_LIMIT`], 2^28 − 1).
pub const MAX_LIMIT: u32 = MAX_QUOTA_LIMIT;

/// The quota clock: microseconds ([`TICKS_PER_SECOND`]) since the Unix epoch, so windows start at
/// UTC midnight. A system clock before 1970 reads 0; a clock set back counts in the window already
/// started (the core's [`Quota`] never renews a budget because time went backwards).
pub fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fixed-window budget with a name (the `quota` label) and a clock.
///
/// Invariant: at most `limit` units are admitted per window of `window_seconds`, windows aligned
/// to tick 0 of `clock`.
#[derive(Debug)]
pub struct NamedQuota {
    name: Box<str>,
    component: Box<str>,
    quota: Quota,
    window_seconds: u64,
    clock: fn() -> u64,
}

/// The state of a quota, as the `rate_limit_status` tool reports it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QuotaStatus {
    /// The quota's name (its `quota` label).
    pub name: String,
    /// Units allowed per window.
    pub limit: u32,
    /// Units spent in the current window.
    pub used: u32,
    /// Units left in the current window.
    pub remaining: u32,
    /// Share of the budget spent, in per mille (0..=1000).
    pub usage_permille: u32,
    /// Whether more than 90 % is spent (the health component is then degraded).
    pub near_limit: bool,
    /// Window length in seconds.
    pub window_seconds: u64,
    /// Seconds until the current window ends and the budget renews.
    pub resets_in_seconds: u64,
    /// Requests refused since start.
    pub rejected_total: u64,
}

impl NamedQuota {
    /// `limit` units per window of `window_seconds` on the wall clock ([`wall_now`]). Out-of-range
    /// values are clamped: `limit` to `1..=`[`MAX_LIMIT`], `window_seconds` to at least 1.
    pub fn new(name: &str, window_seconds: u64, limit: u32) -> Self {
        Self::with_clock(name, window_seconds, limit, wall_now)
    }

    /// Like [`new`](Self::new) on another clock, in microseconds ([`TICKS_PER_SECOND`]); windows
    /// are aligned to its tick 0. For tests, or for windows that start when the process starts.
    pub fn with_clock(name: &str, window_seconds: u64, limit: u32, clock: fn() -> u64) -> Self {
        let window_seconds = window_seconds.max(1);
        NamedQuota {
            name: name.into(),
            component: format!("quota:{name}").into(),
            quota: Quota::new(QuotaConfig::new(
                TICKS_PER_SECOND,
                window_seconds,
                limit.clamp(1, MAX_QUOTA_LIMIT),
            )),
            window_seconds,
            clock,
        }
    }

    /// The quota's name (its `quota` label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of its health component, `quota:<name>`.
    pub fn component_name(&self) -> &str {
        &self.component
    }

    /// The core quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The quota's clock, now.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Units allowed per window.
    pub fn limit(&self) -> u32 {
        self.quota.limit()
    }

    /// Window length in seconds.
    pub fn window_seconds(&self) -> u64 {
        self.window_seconds
    }

    /// Takes one unit at `now`; returns what remains in the window, or the wait until the budget
    /// renews.
    pub fn try_acquire_at(&self, now: u64) -> Result<u32, RetryAfter> {
        self.quota.try_acquire(now).map_err(|e| match e {
            QuotaError::Exhausted { retry_after } => {
                RetryAfter(MonotonicClock::to_duration(retry_after))
            }
            // One unit never exceeds a limit of at least 1; answer "next window" all the same (and
            // for a refusal a later core adds).
            _ => RetryAfter(MonotonicClock::to_duration(self.quota.resets_in(now))),
        })
    }

    /// Takes one unit now (see [`try_acquire_at`](Self::try_acquire_at)).
    pub fn try_acquire(&self) -> Result<u32, RetryAfter> {
        self.try_acquire_at(self.now())
    }

    /// Health at `now`: degraded above 90 % of the budget (and when exhausted), else healthy.
    pub fn status_at(&self, now: u64) -> Status {
        if self.quota.is_near_limit(now) {
            Status::Degraded
        } else {
            Status::Healthy
        }
    }

    /// A serialisable snapshot at `now`.
    pub fn snapshot_at(&self, now: u64) -> QuotaStatus {
        let used = self.quota.used(now);
        QuotaStatus {
            name: self.name.to_string(),
            limit: self.limit(),
            used,
            remaining: self.limit().saturating_sub(used),
            usage_permille: self.quota.usage_permille(now),
            near_limit: self.quota.is_near_limit(now),
            window_seconds: self.window_seconds,
            resets_in_seconds: self.quota.resets_in(now).div_ceil(TICKS_PER_SECOND),
            rejected_total: self.quota.rejected(),
        }
    }

    /// A serialisable snapshot now.
    pub fn snapshot(&self) -> QuotaStatus {
        self.snapshot_at(self.now())
    }
}

/// A quota is a health check on its own clock: degraded above 90 % of the budget. (The core's
/// `Check for Quota` reads the latest window it counted in, which stays "near the limit" after the
/// window ended until the next request; this one reads the clock.)
impl Check for NamedQuota {
    fn status(&self) -> Status {
        self.status_at(self.now())
    }
    fn detail(&self) -> Option<&str> {
        let now = self.now();
        if self.quota.remaining(now) == 0 {
            Some("quota exhausted: calls are refused until the window renews")
        } else if self.quota.is_near_limit(now) {
            Some("quota above 90 % of its budget")
        } else {
            None
        }
    }
}

/// The `quota` label of a quota's series.
impl LabelSource for NamedQuota {
    fn len(&self) -> usize {
        1
    }
    fn name(&self, _i: usize) -> &str {
        "quota"
    }
    fn value(&self, _i: usize) -> &str {
        &self.name
    }
}

/// What a [`QuotaSeries`] reads from each quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaField {
    /// Units spent in the current window (read on the quota's clock at scrape time).
    Used,
    /// Units allowed per window.
    Limit,
    /// Requests refused since start.
    Rejected,
}

/// One series per quota, labelled `{quota}`: a custom [`Collect`] that reads the quota (and its
/// clock) when rendered.
#[derive(Debug)]
pub struct QuotaSeries {
    quotas: Vec<&'static NamedQuota>,
    field: QuotaField,
}

impl QuotaSeries {
    /// `field` of each of `quotas`.
    pub fn new(quotas: Vec<&'static NamedQuota>, field: QuotaField) -> Self {
        QuotaSeries { quotas, field }
    }
}

impl Collect for QuotaSeries {
    fn series_len(&self) -> usize {
        self.quotas.len()
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        let q: &'static NamedQuota = *self.quotas.get(index)?;
        let value = match self.field {
            QuotaField::Used => u64::from(q.quota.used(q.now())),
            QuotaField::Limit => u64::from(q.limit()),
            QuotaField::Rejected => q.quota.rejected(),
        };
        Some(Series {
            labels: Labels::Dyn(q),
            value: Value::Uint(value),
        })
    }
}

/// The quota metrics: `quota_used{quota}`, `quota_limit{quota}`, `quota_rejected_total{quota}`.
#[derive(Debug)]
pub struct QuotaMetrics {
    /// `quota_used{quota}`: units spent in the current window (fresh at scrape).
    pub used: QuotaSeries,
    /// `quota_limit{quota}`: units allowed per window.
    pub limit: QuotaSeries,
    /// `quota_rejected_total{quota}`: requests refused because the quota was exhausted.
    pub rejected: QuotaSeries,
}

impl QuotaMetrics {
    /// The metrics of `quotas` (possibly none: the families are then empty).
    pub fn new(quotas: Vec<&'static NamedQuota>) -> Self {
        QuotaMetrics {
            used: QuotaSeries::new(quotas.clone(), QuotaField::Used),
            limit: QuotaSeries::new(quotas.clone(), QuotaField::Limit),
            rejected: QuotaSeries::new(quotas, QuotaField::Rejected),
        }
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register_dyn(
            "quota_used",
            "Units spent in the quota's current window.",
            None,
            Kind::Gauge,
            &self.used,
        )?;
        b.register_dyn(
            "quota_limit",
            "Units a quota allows per window.",
            None,
            Kind::Gauge,
            &self.limit,
        )?;
        b.register_dyn(
            "quota_rejected_total",
            "Requests refused because a quota was exhausted.",
            None,
            Kind::Counter,
            &self.rejected,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use vitals_core::Format;

    const SEC: u64 = TICKS_PER_SECOND;
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn fake_now() -> u64 {
        NOW.load(Ordering::Relaxed)
    }

    #[test]
    fn exhausts_with_retry_after_until_the_next_window() {
        let q = NamedQuota::with_clock("daily", DAY_SECONDS, 3, || 0);
        let t = 86_000 * SEC; // 400 s before the window ends
        assert_eq!(q.try_acquire_at(t), Ok(2));
        assert_eq!(q.try_acquire_at(t), Ok(1));
        assert_eq!(q.status_at(t), Status::Healthy);
        assert_eq!(q.try_acquire_at(t), Ok(0));
        assert_eq!(q.status_at(t), Status::Degraded);
        let retry = q.try_acquire_at(t).unwrap_err();
        assert_eq!(retry.secs(), 400);
        let s = q.snapshot_at(t);
        assert_eq!(
            (s.used, s.remaining, s.usage_permille, s.rejected_total),
            (3, 0, 1000, 1)
        );
        assert!(s.near_limit);
        assert_eq!(s.resets_in_seconds, 400);
        // The next window renews the budget.
        let next = DAY_SECONDS * SEC;
        assert_eq!(q.try_acquire_at(next), Ok(2));
        assert_eq!(q.status_at(next), Status::Healthy);
    }

    #[test]
    fn metrics_are_read_on_the_quota_clock_at_scrape() {
        let q: &'static NamedQuota = crate::leak(NamedQuota::with_clock("test", 60, 4, fake_now));
        let m = crate::leak(QuotaMetrics::new(vec![q]));
        let mut b = RegistryBuilder::new();
        m.register(&mut b).unwrap();
        let r = b.build();
        NOW.store(10 * SEC, Ordering::Relaxed);
        for _ in 0..5 {
            let _ = q.try_acquire();
        }
        let text = r.render_to_string(Format::Prometheus);
        for needle in [
            "# TYPE quota_used gauge\nquota_used{quota=\"test\"} 4\n",
            "# TYPE quota_limit gauge\nquota_limit{quota=\"test\"} 4\n",
            "# TYPE quota_rejected_total counter\nquota_rejected_total{quota=\"test\"} 1\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(Check::status(q), Status::Degraded);
        assert!(Check::detail(q).unwrap().contains("exhausted"));
        // A new window started and no request came: the scrape still reads 0.
        NOW.store(61 * SEC, Ordering::Relaxed);
        let text = r.render_to_string(Format::Prometheus);
        assert!(text.contains("quota_used{quota=\"test\"} 0\n"), "{text}");
        assert_eq!(Check::status(q), Status::Healthy);
        assert_eq!(Check::detail(q), None);
    }

    #[test]
    fn wall_clock_windows_start_at_utc_midnight() {
        let now = wall_now();
        assert!(now > 1_600_000_000 * SEC);
        let q = NamedQuota::new(DAILY_TOOL_CALLS, DAY_SECONDS, 10);
        let s = q.snapshot();
        assert!(s.resets_in_seconds <= DAY_SECONDS);
        // Seconds into the day plus seconds to its end is a whole day (give or take the
        // seconds between the two clock reads, across midnight too).
        let into_day = (now / SEC) % DAY_SECONDS;
        let sum = (into_day + s.resets_in_seconds) % DAY_SECONDS;
        assert!(
            !(3..DAY_SECONDS - 3).contains(&sum),
            "{into_day} + {}",
            s.resets_in_seconds
        );
    }
}
