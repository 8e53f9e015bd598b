//! Limits and quota shared across replicas through Redis or Valkey (feature `redis`).
//!
//! With [`VitalsBuilder::shared_limits`](crate::VitalsBuilder::shared_limits), every replica
//! pointing at the same store shares the per-client and per-tool `tools/call` budgets and the
//! tool-call quota:
//!
//! - **Exact decisions.** One server-side script per call ([`script`]) runs the core's GCRA on the
//!   store's clock (`TIME`, integer µs, the core's exact units: [`gcra`]), checks the quota and
//!   every bucket, and writes all of them or none. Every key has an expiry and carries the
//!   deployment's hash tag ([`keys`]), so the script also runs on Redis Cluster.
//! - **At most one round trip per admitted call.** A client already over a limit is refused from
//!   the last state the store returned ([`shadow`]), never refusing what the store would allow.
//! - **Store slow or down.** Each decision waits at most the timeout; a core
//!   [`CircuitBreaker`] around the store stops asking it while it fails, and the
//!   [`FallbackMode`] decides meanwhile (default: the local limiters with each budget divided by
//!   the replicas hint, quota spent meanwhile added back later: [`fallback`]). The store's state is
//!   a health component (`shared_limits`, degraded while falling back) and is exported
//!   ([`metrics`]).
//! - **Sessions.** [`sessions`] keeps MCP session records in the same store, so that a session
//!   created through one replica can be used through another.

pub mod config;
pub mod fallback;
pub mod gcra;
pub mod keys;
pub mod metrics;
pub mod script;
pub mod sessions;
pub mod shadow;
pub mod store;

use crate::series::Exact as _;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vitals_core::health::Status;
use vitals_core::resilience::{BreakerConfig, CircuitBreaker, Outcome, Ticket};

pub use config::{FallbackMode, FallbackModeError, SharedLimitsConfig};
pub use store::{ErrorKind, StoreError, UrlError};

use crate::clock::{MonotonicClock, TICKS_PER_SECOND};
use crate::limits::{RateSpec, RetryAfter};
use crate::logging::Sampler;
use crate::mcp::ClientKey;
use crate::registry::{RegistryBuilder, RegistryError};
use gcra::{Bucket, RateTooLong};
use metrics::{SharedMetrics, Source};
use script::{Call, QuotaArgs, Reply, Verdict};

/// The budgets to share: what the local limiters and quota are configured with.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    /// Per client, all tools together.
    pub client: Option<RateSpec>,
    /// Per tool, all clients together.
    pub tool: Option<RateSpec>,
    /// The quota: name, units per window (0: none), window in seconds.
    pub quota: Option<(String, u32, u64)>,
}

/// Why shared limits cannot be built.
#[derive(Debug)]
pub enum SharedLimitsError {
    /// The URL is not one the client library accepts.
    Url(UrlError),
    /// A rate cannot be computed exactly by the store.
    Rate(RateTooLong),
}

impl fmt::Display for SharedLimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedLimitsError::Url(e) => e.fmt(f),
            SharedLimitsError::Rate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SharedLimitsError {}

/// A decision about one `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Run it: every budget was spent.
    Admitted,
    /// A rate limit refused it; `scope` is `tool_client` or `tool`.
    RateLimited {
        /// The wait.
        retry: RetryAfter,
        /// Which limit.
        scope: &'static str,
    },
    /// The quota is spent for its window.
    QuotaExhausted(RetryAfter),
    /// The store cannot decide and the fallback is `closed`.
    Unavailable(RetryAfter),
}

impl Admission {
    fn verdict(&self) -> &'static str {
        match self {
            Admission::Admitted => "admitted",
            Admission::RateLimited { .. } => "rate_limited",
            Admission::QuotaExhausted(_) => "quota_exhausted",
            Admission::Unavailable(_) => "unavailable",
        }
    }
}

fn retry_us(us: u64) -> RetryAfter {
    RetryAfter(Duration::from_micros(us))
}

/// Limits shared through a store; see the [module docs](self). Lives for the process.
pub struct SharedLimits {
    store: store::Store,
    keys: keys::Keys,
    budgets: Budgets,
    client: Option<Bucket>,
    tool: Option<Bucket>,
    mode: FallbackMode,
    fallback: fallback::Fallback,
    shadow: shadow::Shadow,
    breaker: &'static CircuitBreaker,
    metrics: &'static SharedMetrics,
    clock: MonotonicClock,
    falling_back: AtomicBool,
    error_log: Sampler,
}

/// At most one "store did not decide" line per this period (the first failure is always logged;
/// later lines count the failures left out since the previous one).
pub const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits").finish_non_exhaustive()
    }
}

/// The store's breaker: opens after 3 failures in a row (or half of the last 10), stays open
/// 0.5 s at first, doubling up to 10 s, then lets one probe through.
pub fn breaker_config() -> BreakerConfig {
    BreakerConfig::new(TICKS_PER_SECOND)
        .window(10, 3)
        .failure_rate(50)
        .consecutive_failures(3)
        .open_wait(500, 10_000)
        .half_open(1, 5_000)
}

/// Gives the breaker ticket back if a decision is dropped before the store answered (the call
/// was cancelled), and the quota units it was adding back.
struct InFlight<'a> {
    limits: &'a SharedLimits,
    ticket: Option<Ticket>,
    pending: (u64, u64),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.limits.breaker.release(t);
            self.limits
                .fallback
                .restore_pending(self.pending.0, self.pending.1);
        }
    }
}

impl SharedLimits {
    /// Shares `budgets` through the store of `config` (nothing is connected yet).
    pub fn new(
        config: &SharedLimitsConfig,
        budgets: Budgets,
    ) -> Result<&'static SharedLimits, SharedLimitsError> {
        let store =
            store::Store::open_with_ca(&config.url, config.timeout, config.ca_cert.as_deref())
                .map_err(SharedLimitsError::Url)?;
        let bucket = |s: Option<RateSpec>| s.map(Bucket::of).transpose();
        let client = bucket(budgets.client).map_err(SharedLimitsError::Rate)?;
        let tool = bucket(budgets.tool).map_err(SharedLimitsError::Rate)?;
        let (quota_limit, window) = budgets.quota.as_ref().map_or((0, 1), |q| (q.1, q.2));
        let breaker: &'static CircuitBreaker = crate::leak(CircuitBreaker::new(breaker_config()));
        Ok(crate::leak(SharedLimits {
            store,
            keys: keys::Keys::new(&config.prefix),
            fallback: fallback::Fallback::new(
                budgets.client,
                budgets.tool,
                quota_limit,
                window,
                config.replicas_hint,
            ),
            budgets,
            client,
            tool,
            mode: config.fallback,
            shadow: shadow::Shadow::default(),
            breaker,
            metrics: crate::leak(SharedMetrics::new(breaker)),
            clock: MonotonicClock::new(),
            falling_back: AtomicBool::new(false),
            error_log: Sampler::new(ERROR_LOG_PERIOD),
        }))
    }

    /// Registers the metrics.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        self.metrics.register(b)
    }

    /// The metric set.
    pub fn metrics(&self) -> &'static SharedMetrics {
        self.metrics
    }

    /// The breaker around the store.
    pub fn breaker(&self) -> &'static CircuitBreaker {
        self.breaker
    }

    /// Quota units spent while falling back and not yet added back to the store.
    pub fn pending_quota(&self) -> u64 {
        self.fallback.pending()
    }

    fn quota_args(&self, pending: (u64, u64)) -> QuotaArgs {
        let (name, limit, window) = self
            .budgets
            .quota
            .as_ref()
            .map_or(("", 0, 1), |q| (q.0.as_str(), q.1, q.2));
        QuotaArgs {
            key: self.keys.quota(name),
            limit,
            window_seconds: window,
            add_back: pending.0,
            add_back_window: pending.1,
        }
    }

    /// The buckets of a call by `client` to `tool`, with their scopes.
    fn buckets(&self, client: ClientKey, tool: &str) -> Vec<(String, Bucket, &'static str)> {
        let mut v = Vec::with_capacity(2);
        if let Some(b) = self.client {
            v.push((self.keys.client(client), b, "tool_client"));
        }
        if let Some(b) = self.tool {
            v.push((self.keys.tool(tool), b, "tool"));
        }
        v
    }

    /// Decides one call by `client` to `tool`; see the [module docs](self).
    pub async fn admit(&self, client: ClientKey, tool: &str) -> Admission {
        let buckets = self.buckets(client, tool);
        let quota = self.budgets.quota.as_ref().is_some_and(|q| q.1 > 0);
        if buckets.is_empty() && !quota {
            return Admission::Admitted;
        }
        if let Some(a) = self.cached(&buckets) {
            self.metrics.decided(Source::LocalCache, a.verdict());
            return a;
        }
        let now = self.clock.now();
        let Ok(ticket) = self.breaker.try_acquire_ticket(now) else {
            return self.fall_back(client, tool);
        };
        let pending = self.fallback.take_pending();
        let mut flight = InFlight {
            limits: self,
            ticket: Some(ticket),
            pending,
        };
        let call = Call {
            now_us: None,
            quota: self.quota_args(pending),
            n: 1,
            buckets: buckets.iter().map(|(k, b, _)| (k.clone(), *b)).collect(),
        };
        let sent = Instant::now();
        let result = self.store.decide(&call).await;
        self.metrics.store_duration.observe_duration(sent.elapsed());
        let ticket = flight.ticket.take();
        drop(flight);
        let done = self.clock.now();
        match result {
            Ok(reply) => {
                if let Some(t) = ticket {
                    self.breaker.record(t, done, Outcome::Success);
                }
                if self.falling_back.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared limits: the store answers again");
                }
                let a = self.apply(&reply, &buckets, sent);
                self.metrics.decided(Source::Store, a.verdict());
                a
            }
            Err(e) => {
                if let Some(t) = ticket {
                    self.breaker.record(t, done, Outcome::Failure);
                }
                self.fallback.restore_pending(pending.0, pending.1);
                self.metrics
                    .store_errors
                    .exact_labels([e.kind.as_str()])
                    .inc();
                if let Some(suppressed) = self.error_log.sample() {
                    // The first failure, then at most one line per ERROR_LOG_PERIOD saying how
                    // many were not logged: an outage does not flood the log.
                    tracing::warn!(error = %e, fallback = %self.mode, suppressed,
                        "shared limits: store did not decide");
                }
                self.fall_back(client, tool)
            }
        }
    }

    /// A refusal from the last state the store returned, if it already refuses.
    fn cached(&self, buckets: &[(String, Bucket, &'static str)]) -> Option<Admission> {
        if let Some(wait) = self.shadow.quota_wait() {
            return Some(Admission::QuotaExhausted(retry_us(wait)));
        }
        buckets.iter().find_map(|(key, _, scope)| {
            self.shadow
                .bucket_wait(key, 1)
                .map(|w| Admission::RateLimited {
                    retry: retry_us(w),
                    scope,
                })
        })
    }

    /// Takes the store's answer into the local cache and the fallback's view.
    fn apply(
        &self,
        reply: &Reply,
        buckets: &[(String, Bucket, &'static str)],
        sent: Instant,
    ) -> Admission {
        for ((key, bucket, _), ahead) in buckets.iter().zip(&reply.ahead) {
            self.shadow.record_bucket(key, *bucket, *ahead, sent, 1);
        }
        let quota_limit = self.budgets.quota.as_ref().map_or(0, |q| u64::from(q.1));
        if quota_limit > 0 {
            self.shadow
                .record_quota(reply.quota_used >= quota_limit, sent, reply.quota_resets_us);
            self.fallback
                .observe_quota(reply.quota_used, reply.quota_resets_us);
            self.metrics
                .quota_used
                .store(reply.quota_used, Ordering::Relaxed);
        }
        match reply.verdict {
            Verdict::Admitted => Admission::Admitted,
            Verdict::QuotaExhausted => Admission::QuotaExhausted(retry_us(reply.retry_us)),
            Verdict::RateLimited => {
                let scope = buckets
                    .iter()
                    .zip(&reply.ahead)
                    .find(|((_, b, _), d)| b.wait_us(**d, 0, 1).is_some())
                    .map_or("tool", |((_, _, s), _)| *s);
                Admission::RateLimited {
                    retry: retry_us(reply.retry_us),
                    scope,
                }
            }
        }
    }

    /// Decides while the store cannot.
    fn fall_back(&self, client: ClientKey, tool: &str) -> Admission {
        if !self.falling_back.swap(true, Ordering::Relaxed) {
            tracing::warn!(fallback = %self.mode, "shared limits: falling back while the store cannot decide");
        }
        let a = match self.mode {
            FallbackMode::Open => Admission::Admitted,
            FallbackMode::Closed => {
                let wait = self
                    .breaker
                    .try_acquire_ticket(self.clock.now())
                    .map_or_else(
                        |r| r.retry_after.unwrap_or(TICKS_PER_SECOND),
                        |t| {
                            self.breaker.release(t);
                            TICKS_PER_SECOND
                        },
                    );
                Admission::Unavailable(retry_us(wait))
            }
            FallbackMode::Local => match self.fallback.decide(client, tool, self.clock.now()) {
                Ok(()) => Admission::Admitted,
                Err(fallback::Refused::Rate(w, scope)) => Admission::RateLimited {
                    retry: retry_us(w),
                    scope,
                },
                Err(fallback::Refused::Quota(w)) => Admission::QuotaExhausted(retry_us(w)),
            },
        };
        self.metrics.decided(Source::Fallback, a.verdict());
        a
    }

    /// Runs one decision on the store with a given clock and `n` tokens, bypassing the cache,
    /// the breaker and the fallback: for tests that compare the script with the core. `None`
    /// when `n` exceeds a burst (refused without asking the store).
    #[doc(hidden)]
    pub async fn decide_at(
        &self,
        client: ClientKey,
        tool: &str,
        now_us: u64,
        n: u64,
    ) -> Result<Option<Reply>, StoreError> {
        let buckets = self.buckets(client, tool);
        // n > burst can never pass: refused before any call, as the core does.
        if buckets.iter().any(|(_, b, _)| n > b.burst) {
            return Ok(None);
        }
        let call = Call {
            now_us: Some(now_us),
            quota: self.quota_args((0, 0)),
            n,
            buckets: buckets.into_iter().map(|(k, b, _)| (k, b)).collect(),
        };
        self.store.decide(&call).await.map(Some)
    }
}

/// The store as a health component (`shared_limits`, non-critical): degraded while the
/// fallback decides or the breaker is not closed.
impl crate::HealthSource for SharedLimits {
    fn name(&self) -> &str {
        "shared_limits"
    }

    fn snapshot(&self) -> (Status, Option<String>) {
        let state = self.breaker.state();
        if self.falling_back.load(Ordering::Relaxed) || state.gauge() != 0 {
            (
                Status::Degraded,
                Some(format!(
                    "store unreachable (breaker {state:?}): {} fallback decides",
                    self.mode
                )),
            )
        } else {
            (Status::Healthy, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Counts the events whose message contains a text.
    struct CountLines(&'static str, Arc<AtomicUsize>);

    struct Message(String);

    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountLines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut m = Message(String::new());
            event.record(&mut m);
            if m.0.contains(self.0) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn an_outage_logs_its_first_failure_not_every_one() {
        let lines = Arc::new(AtomicUsize::new(0));
        let subscriber =
            tracing_subscriber::registry().with(CountLines("store did not decide", lines.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let dir = std::env::temp_dir().join(format!("vitals-no-limits-{}", std::process::id()));
        let config = SharedLimitsConfig::new(&format!("unix://{}/absent.sock", dir.display()));
        let limits = SharedLimits::new(
            &config,
            Budgets {
                client: Some("100/1s".parse().unwrap()),
                ..Budgets::default()
            },
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..20 {
                limits.admit(ClientKey::Token(1), "t").await;
            }
        });
        let failures: u64 = ErrorKind::ALL
            .iter()
            .map(|k| {
                limits
                    .metrics()
                    .store_errors
                    .exact_labels([k.as_str()])
                    .get()
            })
            .sum();
        // The breaker opens after 3 failures in a row: the store was asked (and failed) 3 times.
        assert!(failures >= 2, "store failures: {failures}");
        assert_eq!(
            lines.load(Ordering::Relaxed),
            1,
            "one line for {failures} failures"
        );
    }
}
