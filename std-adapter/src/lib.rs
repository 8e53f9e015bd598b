#![doc = include_str!("../README.md")]
//!
//! ## The same over stdio
//!
//! A complete server on the process's stdin and stdout. This block is compiled but its `run` is not
//! called here: over stdio it would wait for a client that a doc test does not have (the example
//! above runs the same calls over an in-memory pipe).
//!
//! ```
//! use rmcp::{ServerHandler, ServiceExt, model::ServerConfig};
//!
//! #[derive(Clone)]
//! struct MyServer;
//! impl ServerHandler for MyServer {
//!     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
//! }
//!
//! # #[allow(dead_code)]
//! async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let vitals = vitals_std::Vitals::builder()
//!         .tool_rate_limit("100/1s".parse()?)      // per tool, all clients
//!         .tool_client_rate_limit("20/1s".parse()?) // per client, all tools
//!         .daily_tool_quota(100_000)                 // tool calls per UTC day
//!         .tool_upstream("search", "search_db")      // one breaker per upstream
//!         .build()?;
//!     let server = vitals.instrument(MyServer).serve(rmcp::transport::stdio()).await?;
//!     // Expose vitals.exposition().respond(&method, &headers) at GET /metrics.
//!     server.waiting().await?;
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The repository README's Rust examples, compiled as doc tests with this crate's dependencies
/// (`vitals-core`, `rmcp`, tokio); never part of a build.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

pub mod breakers;
pub mod clock;
pub mod exposition;
#[cfg(feature = "gateway")]
pub mod gateway;
pub mod http;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
pub mod process;
pub mod quota;
pub mod registry;
pub mod semconv;
pub mod series;
#[cfg(feature = "redis")]
pub mod shared_limits;

use crate::series::Exact as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;
use vitals_core::health::{Component, Health, HealthError, Status, StatusCell};
use vitals_core::resilience::BreakerConfig;

pub use breakers::{BreakerStatus, Upstream, Upstreams};
pub use clock::MonotonicClock;
pub use exposition::{Exposition, MetricsBody};
pub use limits::{ClientLimiter, LimiterMetrics, LimiterStatus, RateSpec, RetryAfter, ToolLimiter};
pub use mcp::{CallOutcome, CallReport, ClientKey, Instrumented};
pub use metrics::{HttpMetrics, McpMetrics, ResilienceMetrics};
pub use process::ProcessMetrics;
pub use quota::{NamedQuota, QuotaMetrics, QuotaStatus};
pub use registry::{leak, RegistryBuilder, RegistryError, RuntimeRegistry};
pub use vitals_core;
pub use vitals_core::Format;

/// Registers application metrics at build time.
type RegisterFn = Box<dyn FnOnce(&mut RegistryBuilder) -> Result<(), RegistryError>>;

/// Configures a [`Vitals`].
#[derive(Default)]
pub struct VitalsBuilder {
    http_rate_limit: Option<RateSpec>,
    tool_rate_limit: Option<RateSpec>,
    tool_client_rate_limit: Option<RateSpec>,
    breaker: Option<BreakerConfig>,
    upstreams: Vec<String>,
    tool_upstreams: HashMap<String, String>,
    metrics_token: Option<String>,
    tool_quota: Option<NamedQuota>,
    call_timeout: Option<std::time::Duration>,
    #[cfg(feature = "gateway")]
    gateway: bool,
    #[cfg(feature = "redis")]
    shared: Option<&'static shared_limits::SharedLimits>,
    extra: Vec<RegisterFn>,
}
impl std::fmt::Debug for VitalsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VitalsBuilder")
            .field("http_rate_limit", &self.http_rate_limit)
            .field("tool_rate_limit", &self.tool_rate_limit)
            .field("tool_client_rate_limit", &self.tool_client_rate_limit)
            .field("breaker", &self.breaker)
            .field("upstreams", &self.upstreams)
            .field("tool_upstreams", &self.tool_upstreams)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "…"))
            .field("extra", &self.extra.len())
            .finish_non_exhaustive()
    }
}

/// A named part of the application whose health changes at run time (an upstream server, a
/// database): its status and a detail are read each time the health report is built.
pub trait HealthSource: Send + Sync {
    /// The component's name in the report.
    fn name(&self) -> &str;
    /// Its current status and an explanation.
    fn snapshot(&self) -> (Status, Option<String>);
}

/// A status captured from a [`HealthSource`], as the core's [`Check`](vitals_core::health::Check).
struct Captured {
    name: String,
    status: Status,
    detail: Option<String>,
    critical: bool,
}

impl vitals_core::health::Check for Captured {
    fn status(&self) -> Status {
        self.status
    }
    fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl VitalsBuilder {
    /// Per-client HTTP budget (keyed by remote IP), checked by [`Vitals::check_http_client`].
    pub fn http_rate_limit(mut self, spec: RateSpec) -> Self {
        self.http_rate_limit = Some(spec);
        self
    }

    /// Per-tool budget of `tools/call` (all clients together).
    pub fn tool_rate_limit(mut self, spec: RateSpec) -> Self {
        self.tool_rate_limit = Some(spec);
        self
    }

    /// Per-client budget of `tools/call` (all tools together).
    pub fn tool_client_rate_limit(mut self, spec: RateSpec) -> Self {
        self.tool_client_rate_limit = Some(spec);
        self
    }

    /// A budget of `limit` tool calls per UTC day (windows start at midnight UTC), named
    /// [`quota::DAILY_TOOL_CALLS`]; 0 means no quota. Limits above [`quota::MAX_LIMIT`] are
    /// clamped. See [`tool_quota`](Self::tool_quota).
    pub fn daily_tool_quota(self, limit: u32) -> Self {
        if limit == 0 {
            return self;
        }
        self.tool_quota(NamedQuota::new(
            quota::DAILY_TOOL_CALLS,
            quota::DAY_SECONDS,
            limit,
        ))
    }

    /// A budget of `tools/call` requests per window (all clients and tools together). Every call
    /// that passes the rate limits and its circuit breaker spends one unit; once the window's
    /// budget is spent, calls get a tool error carrying retry-after (the time until the window
    /// renews). The quota is a non-critical health component (degraded above 90 %), appears in
    /// [`Vitals::rate_limit_status`] and is exported as `quota_used{quota}`, `quota_limit{quota}`
    /// and `quota_rejected_total{quota}`.
    pub fn tool_quota(mut self, quota: NamedQuota) -> Self {
        self.tool_quota = Some(quota);
        self
    }

    /// The longest a `tools/call` may run in the handler (none: no limit). A call still running
    /// then is dropped (its future, and whatever it waits on), counted once with status
    /// `timeout`, timed, and recorded as a failure by its circuit breaker; the client gets a
    /// JSON-RPC internal error (-32603) whose data says `"reason": "timeout"`.
    pub fn tool_call_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Circuit breaker configuration (ticks per second must be [`clock::TICKS_PER_SECOND`]).
    pub fn breaker_config(mut self, config: BreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }

    /// Declares that `tool` depends on `upstream`: calls share that upstream's breaker. Tools not
    /// declared get a breaker of their own, named after the tool.
    pub fn tool_upstream(mut self, tool: &str, upstream: &str) -> Self {
        if !self.upstreams.iter().any(|u| u == upstream) {
            self.upstreams.push(upstream.to_owned());
        }
        self.tool_upstreams
            .insert(tool.to_owned(), upstream.to_owned());
        self
    }

    /// Requires a bearer token on the exposition.
    pub fn metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Registers the gateway's metrics ([`gateway::GatewayMetrics`]): upstream lifecycle,
    /// catalogue and forwarded requests.
    #[cfg(feature = "gateway")]
    pub fn gateway(mut self) -> Self {
        self.gateway = true;
        self
    }

    /// Decides the per-client and per-tool `tools/call` limits and the tool-call quota through a
    /// store shared by every replica ([`shared_limits`]) instead of this process's own limiters
    /// (which stay the fallback's model). Build `limits` with the same budgets as given here.
    #[cfg(feature = "redis")]
    pub fn shared_limits(mut self, limits: &'static shared_limits::SharedLimits) -> Self {
        self.shared = Some(limits);
        self
    }

    /// Registers application metrics next to the standard ones.
    pub fn metrics(
        mut self,
        f: impl FnOnce(&mut RegistryBuilder) -> Result<(), RegistryError> + 'static,
    ) -> Self {
        self.extra.push(Box::new(f));
        self
    }

    /// Builds the instruments. The metric sets are allocated once and live for the process.
    pub fn build(self) -> Result<Vitals, RegistryError> {
        let clock = MonotonicClock::new();
        // The large sets (fixed tables; exemplar slots with `otel`) are built off this stack.
        let mcp = registry::leak_built(McpMetrics::new);
        let http = registry::leak_built(HttpMetrics::new);
        let resilience = leak(ResilienceMetrics::new());
        let process = leak(ProcessMetrics::new());
        let tool_limiter: Option<&'static ToolLimiter> = self
            .tool_rate_limit
            .map(|spec| leak(limits::Limiter::new(spec)));
        let tool_quota: Option<&'static NamedQuota> = self.tool_quota.map(leak);
        let limiter_metrics = leak(LimiterMetrics {
            available: tool_limiter.map(|l| limits::ToolTokens::new(l, clock)),
            burst: limits::BurstTokens::new([
                ("http_client", self.http_rate_limit),
                ("tool_client", self.tool_client_rate_limit),
                ("tool", self.tool_rate_limit),
            ]),
        });
        let quota_metrics = leak(QuotaMetrics::new(tool_quota.into_iter().collect()));
        let mut b = RegistryBuilder::new();
        mcp.register(&mut b)?;
        http.register(&mut b)?;
        resilience.register(&mut b)?;
        limiter_metrics.register(&mut b)?;
        quota_metrics.register(&mut b)?;
        if ProcessMetrics::supported() {
            process.register(&mut b)?;
        }
        #[cfg(feature = "gateway")]
        let gateway = if self.gateway {
            let g = registry::leak_built(gateway::GatewayMetrics::new);
            g.register(&mut b)?;
            Some(g)
        } else {
            None
        };
        #[cfg(feature = "redis")]
        if let Some(s) = self.shared {
            s.register(&mut b)?;
        }
        #[cfg(feature = "otel")]
        if otel::enabled() {
            otel::register(&mut b)?;
        }
        for f in self.extra {
            f(&mut b)?;
        }
        let upstreams = Arc::new(Upstreams::new(
            self.breaker.unwrap_or_else(Upstreams::default_config),
            self.upstreams,
            self.tool_upstreams,
        ));
        let refresh = {
            let upstreams = upstreams.clone();
            move || {
                process.refresh();
                for u in upstreams.all() {
                    resilience
                        .breaker_state
                        .exact_labels([u.name()])
                        .set(u.breaker().state().gauge());
                }
            }
        };
        #[allow(unused_mut)]
        let mut sources: Vec<(Arc<dyn HealthSource>, bool)> = Vec::new();
        #[cfg(feature = "redis")]
        if let Some(s) = self.shared {
            // Non-critical: the server serves through its fallback while the store is down.
            sources.push((Arc::new(StaticSource(s)), false));
        }
        let exposition = Exposition::new(b.build(), Some(Box::new(refresh)))
            .with_token(self.metrics_token.as_deref());
        Ok(Vitals(Arc::new(Inner {
            clock,
            started: Instant::now(),
            mcp,
            http,
            resilience,
            exposition,
            http_limiter: self.http_rate_limit.map(ClientLimiter::new),
            tool_client_limiter: self.tool_client_rate_limit.map(ClientLimiter::new),
            tool_limiter,
            tool_tokens: limiter_metrics.available.as_ref(),
            tool_quota,
            call_timeout: self.call_timeout,
            upstreams,
            ready: AtomicBool::new(true),
            server: StatusCell::new(Status::Healthy),
            sources: RwLock::new(sources),
            #[cfg(feature = "redis")]
            shared: self.shared,
            #[cfg(feature = "gateway")]
            gateway,
        })))
    }
}

struct Inner {
    clock: MonotonicClock,
    started: Instant,
    mcp: &'static McpMetrics,
    http: &'static HttpMetrics,
    resilience: &'static ResilienceMetrics,
    exposition: Exposition,
    http_limiter: Option<ClientLimiter>,
    tool_client_limiter: Option<ClientLimiter>,
    tool_limiter: Option<&'static ToolLimiter>,
    tool_tokens: Option<&'static limits::ToolTokens>,
    tool_quota: Option<&'static NamedQuota>,
    call_timeout: Option<std::time::Duration>,
    upstreams: Arc<Upstreams>,
    ready: AtomicBool,
    server: StatusCell,
    sources: RwLock<Vec<(Arc<dyn HealthSource>, bool)>>,
    #[cfg(feature = "gateway")]
    gateway: Option<&'static gateway::GatewayMetrics>,
    #[cfg(feature = "redis")]
    shared: Option<&'static shared_limits::SharedLimits>,
}

/// A health source that lives for the process.
#[cfg(feature = "redis")]
struct StaticSource(&'static dyn HealthSource);

#[cfg(feature = "redis")]
impl HealthSource for StaticSource {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn snapshot(&self) -> (Status, Option<String>) {
        self.0.snapshot()
    }
}

/// Why a `tools/call` was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `status` label (rate limited, quota exhausted, unavailable).
    pub outcome: CallOutcome,
    /// The wait to report.
    pub retry: RetryAfter,
    /// The message the client reads.
    pub message: String,
}

/// The instruments of one server: metrics, limits, breakers, health. Cheap to clone (shared).
#[derive(Clone)]
pub struct Vitals(Arc<Inner>);

impl std::fmt::Debug for Vitals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vitals").finish_non_exhaustive()
    }
}

/// The snapshot the `rate_limit_status` tool reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RateLimitStatus {
    /// Per-client HTTP limit (keyed by remote address), if configured.
    pub http_client: Option<LimiterStatus>,
    /// Per-client `tools/call` limit, if configured.
    pub tool_client: Option<LimiterStatus>,
    /// Per-tool `tools/call` limit, if configured.
    pub tool: Option<LimiterStatus>,
    /// The `tools/call` quota (e.g. `daily_tool_calls`), if configured.
    pub tool_quota: Option<QuotaStatus>,
    /// Requests answered 429 at the HTTP edge since start.
    pub http_rate_limited_total: u64,
}

/// One component of the health report, owned (for tool output).
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ComponentStatus {
    /// Component name.
    pub name: String,
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    /// Whether an unhealthy component makes the whole report unhealthy.
    pub critical: bool,
    /// Short explanation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The health report, owned (for tool output and `/healthz`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HealthSnapshot {
    /// Overall status: `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    /// Every component.
    pub components: Vec<ComponentStatus>,
}

impl Vitals {
    /// A builder with no limits configured.
    pub fn builder() -> VitalsBuilder {
        VitalsBuilder::default()
    }

    /// Wraps an rmcp handler so every tool call is instrumented and every MCP operation observed
    /// ([`semconv`]).
    pub fn instrument<H: rmcp::ServerHandler>(
        &self,
        handler: H,
    ) -> semconv::Observed<Instrumented<H>> {
        semconv::Observed::new(
            Instrumented::new(handler, self.clone()),
            &self.0.mcp.operations,
        )
    }

    /// The monotonic clock the limits and breakers run on.
    pub fn clock(&self) -> &MonotonicClock {
        &self.0.clock
    }

    /// Time since the instruments were built.
    pub fn uptime(&self) -> std::time::Duration {
        self.0.started.elapsed()
    }

    /// The longest a `tools/call` may run ([`VitalsBuilder::tool_call_timeout`]).
    pub fn tool_call_timeout(&self) -> Option<std::time::Duration> {
        self.0.call_timeout
    }

    /// Tool-call metrics.
    pub fn mcp_metrics(&self) -> &'static McpMetrics {
        self.0.mcp
    }

    /// HTTP metrics.
    pub fn http_metrics(&self) -> &'static HttpMetrics {
        self.0.http
    }

    /// The `/metrics` endpoint.
    pub fn exposition(&self) -> &Exposition {
        &self.0.exposition
    }

    /// The circuit breakers.
    pub fn upstreams(&self) -> &Upstreams {
        &self.0.upstreams
    }

    /// Checks the per-client HTTP budget of `ip`; `Err` carries the wait (answer 429 with
    /// `Retry-After`).
    pub fn check_http_client(&self, ip: std::net::IpAddr) -> Result<(), RetryAfter> {
        let Some(l) = &self.0.http_limiter else {
            return Ok(());
        };
        l.check(&limits::client_key(ip), self.0.clock.now())
            .inspect_err(|_| {
                self.0.http.rate_limited.inc();
                self.0
                    .resilience
                    .rate_limit_rejected
                    .exact_labels(["http_client"])
                    .inc();
            })
    }

    /// Checks the per-client and per-tool `tools/call` budgets at `now`.
    pub fn check_tool_limits(
        &self,
        client: ClientKey,
        tool: &str,
        now: u64,
    ) -> Result<(), RetryAfter> {
        // Look at both before spending at either: a call the per-tool budget refuses spends
        // nothing of its client's budget. (Between the look and the spend another call may take
        // the last token; the spend then refuses it, as it would have anyway.)
        // The client's budget is looked at only when the tool's is empty (the rare case).
        let tool_empty = self
            .0
            .tool_limiter
            .is_some_and(|l| l.available(tool, now) == 0);
        let client_empty = tool_empty
            && self
                .0
                .tool_client_limiter
                .as_ref()
                .is_some_and(|l| l.available(&client, now) == 0);
        if !client_empty && tool_empty {
            if let Some(l) = self.0.tool_limiter {
                if let Some(t) = self.0.tool_tokens {
                    t.track(tool);
                }
                return l.check(tool, now).inspect_err(|_| {
                    self.0
                        .resilience
                        .rate_limit_rejected
                        .exact_labels(["tool"])
                        .inc();
                });
            }
        }
        if let Some(l) = &self.0.tool_client_limiter {
            l.check(&client, now).inspect_err(|_| {
                self.0
                    .resilience
                    .rate_limit_rejected
                    .exact_labels(["tool_client"])
                    .inc();
            })?;
        }
        if let Some(l) = &self.0.tool_limiter {
            if let Some(t) = self.0.tool_tokens {
                t.track(tool);
            }
            l.check(tool, now).inspect_err(|_| {
                self.0
                    .resilience
                    .rate_limit_rejected
                    .exact_labels(["tool"])
                    .inc();
            })?;
        }
        Ok(())
    }

    /// Decides one `tools/call` by `client` to `tool` at `now`: the per-client and per-tool
    /// limits and the quota, on the shared store when one is configured, else on this process's
    /// limiters (a spent quota refuses first, so that it costs no rate budget; a call one limit
    /// refuses spends nothing at the others).
    pub async fn admit_tool_call(
        &self,
        client: ClientKey,
        tool: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        #[cfg(feature = "redis")]
        if let Some(shared) = self.0.shared {
            use shared_limits::Admission;
            if let Some(t) = self.0.tool_tokens {
                t.track(tool);
            }
            return match shared.admit(client, tool).await {
                Admission::Admitted => Ok(()),
                Admission::RateLimited { retry, scope } => {
                    self.0
                        .resilience
                        .rate_limit_rejected
                        .exact_labels([scope])
                        .inc();
                    Err(Refusal {
                        outcome: CallOutcome::RateLimited,
                        retry,
                        message: format!("rate limited: retry after {} s", retry.secs()),
                    })
                }
                Admission::QuotaExhausted(retry) => {
                    let quota = self.tool_quota().map_or("", |q| q.name());
                    Err(Refusal {
                        outcome: CallOutcome::QuotaExhausted,
                        retry,
                        message: format!(
                            "quota `{quota}` exhausted: retry after {} s",
                            retry.secs()
                        ),
                    })
                }
                Admission::Unavailable(retry) => Err(Refusal {
                    outcome: CallOutcome::RateLimited,
                    retry,
                    message: format!(
                        "rate limit store unavailable: retry after {} s",
                        retry.secs()
                    ),
                }),
            };
        }
        let quota_spent = self.tool_quota_exhausted();
        if !quota_spent {
            self.check_tool_limits(client, tool, now)
                .map_err(|retry| Refusal {
                    outcome: CallOutcome::RateLimited,
                    retry,
                    message: format!("rate limited: retry after {} s", retry.secs()),
                })?;
        }
        self.check_tool_quota().map_err(|retry| {
            let quota = self.tool_quota().map_or("", |q| q.name());
            Refusal {
                outcome: CallOutcome::QuotaExhausted,
                retry,
                message: format!("quota `{quota}` exhausted: retry after {} s", retry.secs()),
            }
        })
    }

    /// The shared limits, when configured.
    #[cfg(feature = "redis")]
    pub fn shared_limits(&self) -> Option<&'static shared_limits::SharedLimits> {
        self.0.shared
    }

    /// Whether the `tools/call` quota is spent for its current window (a look, spending nothing).
    pub fn tool_quota_exhausted(&self) -> bool {
        self.0
            .tool_quota
            .is_some_and(|q| q.snapshot().remaining == 0)
    }

    /// The `tools/call` quota, if configured.
    pub fn tool_quota(&self) -> Option<&NamedQuota> {
        self.0.tool_quota
    }

    /// Spends one unit of the `tools/call` quota on its clock; `Err` carries the wait until the
    /// window renews (answer a tool error with retry-after). `Ok` when no quota is configured.
    pub fn check_tool_quota(&self) -> Result<(), RetryAfter> {
        match self.0.tool_quota {
            Some(q) => q.try_acquire().map(drop),
            None => Ok(()),
        }
    }

    /// Snapshot of every limiter.
    pub fn rate_limit_status(&self) -> RateLimitStatus {
        let now = self.0.clock.now();
        RateLimitStatus {
            http_client: self.0.http_limiter.as_ref().map(|l| l.status(now)),
            tool_client: self.0.tool_client_limiter.as_ref().map(|l| l.status(now)),
            tool: self.0.tool_limiter.as_ref().map(|l| l.status(now)),
            tool_quota: self.0.tool_quota.map(|q| q.snapshot()),
            http_rate_limited_total: self.0.http.rate_limited.get(),
        }
    }

    /// Snapshot of every breaker.
    pub fn breaker_status(&self) -> Vec<BreakerStatus> {
        self.0.upstreams.status()
    }

    /// Marks the server ready or not (e.g. not ready while draining).
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the server is ready and not unhealthy.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed) && self.health_status() != Status::Unhealthy
    }

    /// The application's own status (the critical `server` component).
    pub fn set_status(&self, status: Status) {
        self.0.server.set(status);
    }

    /// Adds a component to the health report; a `critical` one that is unhealthy makes the
    /// whole report unhealthy (and `/readyz` 503).
    pub fn add_health_source(&self, source: Arc<dyn HealthSource>, critical: bool) {
        self.0
            .sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((source, critical));
    }

    /// The gateway's metrics, when built with [`VitalsBuilder::gateway`].
    #[cfg(feature = "gateway")]
    pub fn gateway_metrics(&self) -> Option<&'static gateway::GatewayMetrics> {
        self.0.gateway
    }

    fn with_health<R>(&self, f: impl FnOnce(&Health<'_>) -> R) -> R {
        let upstreams = self.0.upstreams.all();
        let captured: Vec<Captured> = self
            .0
            .sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(s, critical)| {
                let (status, detail) = s.snapshot();
                Captured {
                    name: s.name().to_owned(),
                    status,
                    detail,
                    critical: *critical,
                }
            })
            .collect();
        let mut components = Vec::with_capacity(upstreams.len() + captured.len() + 2);
        components.push(Component::new("server", &self.0.server));
        for c in &captured {
            components.push(if c.critical {
                Component::new(&c.name, c)
            } else {
                Component::non_critical(&c.name, c)
            });
        }
        if let Some(q) = self.0.tool_quota {
            components.push(Component::non_critical(q.component_name(), q));
        }
        for u in &upstreams {
            components.push(Component::non_critical(u.name(), &**u));
        }
        f(&Health::new(&components))
    }

    /// The overall status.
    pub fn health_status(&self) -> Status {
        self.with_health(|h| h.status())
    }

    /// The health report as JSON (the core's serialiser), e.g. for `/healthz`.
    pub fn health_json(&self) -> Vec<u8> {
        self.with_health(|h| {
            let mut buf = vec![0u8; 1024];
            loop {
                match h.write_json(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        return buf;
                    }
                    Err(HealthError::BufferTooSmall) => {
                        let len = buf.len() * 2;
                        buf.resize(len, 0);
                    }
                    // An error a later core adds: an empty body rather than a retry forever.
                    Err(_) => {
                        buf.clear();
                        return buf;
                    }
                }
            }
        })
    }

    /// The health report as an owned value.
    pub fn health(&self) -> HealthSnapshot {
        serde_json::from_slice(&self.health_json()).unwrap_or(HealthSnapshot {
            status: Status::Unhealthy.as_str().to_owned(),
            components: Vec::new(),
        })
    }

    /// The exposition as text in `format` (refreshing process metrics first).
    pub fn render(&self, format: Format) -> String {
        self.0.exposition.render_to_string(format)
    }

    /// Number of series currently exposed.
    pub fn series_count(&self) -> usize {
        self.0.exposition.registry().series_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_one_limit_refuses_spends_nothing_at_the_other() {
        let v = Vitals::builder()
            .tool_client_rate_limit("2/1h".parse().unwrap())
            .tool_rate_limit("1/1h".parse().unwrap())
            .build()
            .unwrap();
        let client = ClientKey::Local;
        let now = v.clock().now();
        assert!(v.check_tool_limits(client, "a", now).is_ok());
        assert!(
            v.check_tool_limits(client, "a", now).is_err(),
            "tool a's budget"
        );
        assert!(
            v.check_tool_limits(client, "b", now).is_ok(),
            "the refused call spent none of the client's budget"
        );
        assert!(
            v.check_tool_limits(client, "c", now).is_err(),
            "client's budget"
        );
        let s = v.rate_limit_status();
        assert_eq!(s.tool.unwrap().rejected_total, 1);
        assert_eq!(s.tool_client.unwrap().rejected_total, 1);
    }

    #[test]
    fn builds_and_reports() {
        let v = Vitals::builder()
            .http_rate_limit("1/1m".parse().unwrap())
            .tool_upstream("search", "db")
            .build()
            .unwrap();
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        assert!(v.check_http_client(ip).is_ok());
        assert!(v.check_http_client(ip).unwrap_err().secs() >= 59);
        let h = v.health();
        assert_eq!(h.status, "healthy");
        assert_eq!(h.components.len(), 2);
        let text = v.render(Format::Prometheus);
        assert!(text.contains("http_rate_limited_total 1\n"), "{text}");
        assert!(
            text.contains("circuit_breaker_state{upstream=\"db\"} 0\n"),
            "{text}"
        );
        let s = v.rate_limit_status();
        assert_eq!(s.http_client.unwrap().rejected_total, 1);
        assert!(v.is_ready());
        v.set_ready(false);
        assert!(!v.is_ready());
    }
}
