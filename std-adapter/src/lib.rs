//! # vitals-std
//!
//! Hosts the `no_std` [`vitals_core`] in a std process: a monotonic clock, a runtime registry,
//! Linux process metrics, an HTTP exposition handler (content negotiation, gzip, bearer token,
//! streamed without per-scrape allocation), rate limits per client and per tool, circuit breakers
//! per upstream, a health report, JSON logs — and [`Instrumented`], which adds all of it to any
//! [`rmcp`] server handler in one line.
//!
//! ```no_run
//! use rmcp::{ServerHandler, ServiceExt, model::ServerConfig};
//!
//! #[derive(Clone)]
//! struct MyServer;
//! impl ServerHandler for MyServer {
//!     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let vitals = vitals_std::Vitals::builder()
//!     .tool_rate_limit("100/1s".parse()?)      // per tool, all clients
//!     .tool_client_rate_limit("20/1s".parse()?) // per client, all tools
//!     .tool_upstream("search", "search_db")      // one breaker per upstream
//!     .build()?;
//! let server = vitals.instrument(MyServer).serve(rmcp::transport::stdio()).await?;
//! // Expose vitals.exposition().respond(&method, &headers) at GET /metrics.
//! # server.waiting().await?; Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod breakers;
pub mod clock;
pub mod exposition;
pub mod http;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod process;
pub mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use vitals_core::health::{Component, Health, HealthError, Status, StatusCell};
use vitals_core::resilience::BreakerConfig;

pub use breakers::{BreakerStatus, Upstream, Upstreams};
pub use clock::MonotonicClock;
pub use exposition::{Exposition, MetricsBody};
pub use limits::{ClientLimiter, LimiterStatus, RateSpec, RetryAfter};
pub use mcp::{ClientKey, Instrumented};
pub use metrics::{HttpMetrics, McpMetrics, ResilienceMetrics};
pub use process::ProcessMetrics;
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
    extra: Vec<RegisterFn>,
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
        let mcp = leak(McpMetrics::new());
        let http = leak(HttpMetrics::new());
        let resilience = leak(ResilienceMetrics::new());
        let process = leak(ProcessMetrics::new());
        let mut b = RegistryBuilder::new();
        mcp.register(&mut b)?;
        http.register(&mut b)?;
        resilience.register(&mut b)?;
        if ProcessMetrics::supported() {
            process.register(&mut b)?;
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
                        .labels([u.name()])
                        .set(u.breaker().state().gauge());
                }
            }
        };
        let exposition = Exposition::new(b.build(), Some(Box::new(refresh)))
            .with_token(self.metrics_token.as_deref());
        Ok(Vitals(Arc::new(Inner {
            clock: MonotonicClock::new(),
            started: Instant::now(),
            mcp,
            http,
            resilience,
            exposition,
            http_limiter: self.http_rate_limit.map(ClientLimiter::new),
            tool_client_limiter: self.tool_client_rate_limit.map(ClientLimiter::new),
            tool_limiter: self.tool_rate_limit.map(limits::Limiter::new),
            upstreams,
            ready: AtomicBool::new(true),
            server: StatusCell::new(Status::Healthy),
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
    tool_limiter: Option<limits::Limiter<{ limits::TOOL_SLOTS }>>,
    upstreams: Arc<Upstreams>,
    ready: AtomicBool,
    server: StatusCell,
}

/// The instruments of one server: metrics, limits, breakers, health. Cheap to clone (shared).
#[derive(Clone)]
pub struct Vitals(Arc<Inner>);

/// The snapshot the `rate_limit_status` tool reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RateLimitStatus {
    /// Per-client HTTP limit (keyed by remote address), if configured.
    pub http_client: Option<LimiterStatus>,
    /// Per-client `tools/call` limit, if configured.
    pub tool_client: Option<LimiterStatus>,
    /// Per-tool `tools/call` limit, if configured.
    pub tool: Option<LimiterStatus>,
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

    /// Wraps an rmcp handler so every tool call is instrumented.
    pub fn instrument<H: rmcp::ServerHandler>(&self, handler: H) -> Instrumented<H> {
        Instrumented::new(handler, self.clone())
    }

    /// The monotonic clock the limits and breakers run on.
    pub fn clock(&self) -> &MonotonicClock {
        &self.0.clock
    }

    /// Time since the instruments were built.
    pub fn uptime(&self) -> std::time::Duration {
        self.0.started.elapsed()
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
                    .labels(["http_client"])
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
        if let Some(l) = &self.0.tool_client_limiter {
            l.check(&client, now).inspect_err(|_| {
                self.0
                    .resilience
                    .rate_limit_rejected
                    .labels(["tool_client"])
                    .inc();
            })?;
        }
        if let Some(l) = &self.0.tool_limiter {
            l.check(tool, now).inspect_err(|_| {
                self.0.resilience.rate_limit_rejected.labels(["tool"]).inc();
            })?;
        }
        Ok(())
    }

    /// Snapshot of every limiter.
    pub fn rate_limit_status(&self) -> RateLimitStatus {
        let now = self.0.clock.now();
        RateLimitStatus {
            http_client: self.0.http_limiter.as_ref().map(|l| l.status(now)),
            tool_client: self.0.tool_client_limiter.as_ref().map(|l| l.status(now)),
            tool: self.0.tool_limiter.as_ref().map(|l| l.status(now)),
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

    fn with_health<R>(&self, f: impl FnOnce(&Health<'_>) -> R) -> R {
        let upstreams = self.0.upstreams.all();
        let mut components = Vec::with_capacity(upstreams.len() + 1);
        components.push(Component::new("server", &self.0.server));
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
