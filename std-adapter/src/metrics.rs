//! The standard metric sets an MCP server exposes: tool calls and HTTP requests.
//!
//! Each set is created once, leaked for the life of the process ([`crate::registry::leak`]) and
//! registered with its conventional names. String labels live in the core's fixed-capacity
//! [`StrFamily`] tables: a full table routes new label sets to one overflow series, counted in
//! `vitals_label_overflow_total`, so a client sending random tool names or paths cannot grow memory.

use vitals_core::{Bounds, Counter, Gauge, HistogramCells, StrFamily};

use crate::registry::{RegistryBuilder, RegistryError};
use crate::semconv::ServerOperations;

/// Buckets of `mcp_tool_duration_seconds`, in microseconds (1 ms … 10 s).
pub const TOOL_DURATION_BOUNDS: Bounds<12> = Bounds::micros([
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
]);

/// Buckets of `http_request_duration_seconds`, in microseconds (0.5 ms … 10 s).
pub const HTTP_DURATION_BOUNDS: Bounds<12> = Bounds::micros([
    500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
]);

/// Buckets of `http_request_size_bytes` and `http_response_size_bytes` (64 B … 16 MiB).
pub const HTTP_SIZE_BOUNDS: Bounds<10> = Bounds::units([
    64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
]);

/// Tool-call metrics.
#[derive(Debug)]
pub struct McpMetrics {
    /// `mcp_tool_calls_total{upstream,tool,status}`; status is one of
    /// [`CallOutcome`](crate::mcp::CallOutcome)'s values (`ok`, `tool_error`, `jsonrpc_error`,
    /// `timeout`, `transport`, `cancelled`, `rate_limited`, `circuit_open`, `quota_exhausted`,
    /// `unavailable`).
    pub tool_calls: StrFamily<Counter, 3, 512, 128>,
    /// `mcp_tool_errors_total{upstream,tool,error_type}`.
    pub tool_errors: StrFamily<Counter, 3, 256, 128>,
    /// `mcp_tool_duration_seconds{upstream,tool}`.
    pub tool_duration: StrFamily<HistogramCells<12>, 2, 128, 96>,
    /// `mcp_active_requests`: tool calls in progress.
    pub active_requests: Gauge,
    /// `mcp_tool_input_rounds_total{upstream,tool}`: rounds of a 2026-07-28 multi-round call
    /// that asked the client for input (an input-required result). Such a round is not a call:
    /// the call is counted once in `mcp_tool_calls_total`, by the round that answers it.
    pub tool_input_rounds: StrFamily<Counter, 2, 128, 96>,
    /// `mcp_server_operation_duration_seconds`: every MCP request and notification, with the
    /// OpenTelemetry semantic-convention labels ([`crate::semconv`]).
    pub operations: ServerOperations,
}

impl Default for McpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl McpMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        McpMetrics {
            tool_calls: StrFamily::new(["upstream", "tool", "status"]),
            tool_errors: StrFamily::new(["upstream", "tool", "error_type"]),
            tool_duration: StrFamily::with_shared(["upstream", "tool"], TOOL_DURATION_BOUNDS),
            active_requests: Gauge::new(),
            tool_input_rounds: StrFamily::new(["upstream", "tool"]),
            operations: crate::semconv::server_operations(),
        }
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "mcp_tool_calls_total",
            "MCP tools/call requests by upstream, tool and outcome.",
            None,
            &self.tool_calls,
        )?;
        b.register(
            "mcp_tool_errors_total",
            "MCP tool calls that failed, by upstream, tool and error type.",
            None,
            &self.tool_errors,
        )?;
        b.register(
            "mcp_tool_duration_seconds",
            "Time to run an MCP tool call.",
            Some("seconds"),
            &self.tool_duration,
        )?;
        b.register(
            "mcp_active_requests",
            "MCP tool calls in progress.",
            None,
            &self.active_requests,
        )?;
        b.register(
            "mcp_tool_input_rounds_total",
            "MCP tool call rounds answered with an input-required result (2026-07-28), by upstream and tool; the call itself is counted once in mcp_tool_calls_total.",
            None,
            &self.tool_input_rounds,
        )?;
        b.register(
            crate::semconv::SERVER_OPERATION_DURATION,
            "Time to handle an MCP request or notification (OpenTelemetry mcp.server.operation.duration).",
            Some("seconds"),
            &self.operations,
        )?;
        Ok(())
    }
}

/// HTTP request metrics.
#[derive(Debug)]
pub struct HttpMetrics {
    /// `http_requests_total{method,path,status}` (path normalised).
    pub requests: StrFamily<Counter, 3, 256, 128>,
    /// `http_request_duration_seconds{method,path}`.
    pub duration: StrFamily<HistogramCells<12>, 2, 64, 96>,
    /// `http_requests_in_flight`.
    pub in_flight: Gauge,
    /// `http_connections_active`.
    pub connections_active: Gauge,
    /// `http_connections_rejected_total`: refused because the connection limit was reached.
    pub connections_rejected: Counter,
    /// `http_rate_limited_total`: requests answered 429.
    pub rate_limited: Counter,
    /// `http_request_size_bytes{path}`: request bodies.
    pub request_size: StrFamily<HistogramCells<10>, 1, 16, 32>,
    /// `http_response_size_bytes{path}`: response bodies, counted as they are sent (a stream
    /// is observed when it ends or is dropped).
    pub response_size: StrFamily<HistogramCells<10>, 1, 16, 32>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        HttpMetrics {
            requests: StrFamily::new(["method", "path", "status"]),
            duration: StrFamily::with_shared(["method", "path"], HTTP_DURATION_BOUNDS),
            in_flight: Gauge::new(),
            connections_active: Gauge::new(),
            connections_rejected: Counter::new(),
            rate_limited: Counter::new(),
            request_size: StrFamily::with_shared(["path"], HTTP_SIZE_BOUNDS),
            response_size: StrFamily::with_shared(["path"], HTTP_SIZE_BOUNDS),
        }
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "http_requests_total",
            "HTTP requests by method, normalised path and status code.",
            None,
            &self.requests,
        )?;
        b.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head).",
            Some("seconds"),
            &self.duration,
        )?;
        b.register(
            "http_request_size_bytes",
            "Size of HTTP request bodies, by normalised path.",
            Some("bytes"),
            &self.request_size,
        )?;
        b.register(
            "http_response_size_bytes",
            "Size of HTTP response bodies as sent, by normalised path.",
            Some("bytes"),
            &self.response_size,
        )?;
        b.register(
            "http_requests_in_flight",
            "HTTP requests being answered.",
            None,
            &self.in_flight,
        )?;
        b.register(
            "http_connections_active",
            "Open HTTP connections.",
            None,
            &self.connections_active,
        )?;
        b.register(
            "http_connections_rejected_total",
            "HTTP connections refused because the connection limit was reached.",
            None,
            &self.connections_rejected,
        )?;
        b.register(
            "http_rate_limited_total",
            "HTTP requests refused with 429 by the per-client rate limit.",
            None,
            &self.rate_limited,
        )?;
        Ok(())
    }
}

/// Resilience state exported as metrics.
#[derive(Debug)]
pub struct ResilienceMetrics {
    /// `circuit_breaker_state{upstream}`: 0 closed, 1 open, 2 half-open (refreshed per scrape).
    pub breaker_state: StrFamily<Gauge, 1, 128, 64>,
    /// `rate_limit_rejected_total{scope}`: requests refused by a limiter (`http_client`,
    /// `tool_client`, `tool`).
    pub rate_limit_rejected: StrFamily<Counter, 1, 8, 32>,
}

impl Default for ResilienceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ResilienceMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        ResilienceMetrics {
            breaker_state: StrFamily::new(["upstream"]),
            rate_limit_rejected: StrFamily::new(["scope"]),
        }
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "circuit_breaker_state",
            "Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open.",
            None,
            &self.breaker_state,
        )?;
        b.register(
            "rate_limit_rejected_total",
            "Requests refused by a rate limiter, by scope.",
            None,
            &self.rate_limit_rejected,
        )?;
        Ok(())
    }
}
