//! The gateway's own metrics: upstream lifecycle, catalogue and every forwarded request.
//!
//! Tool calls are also counted by the standard `mcp_tool_calls_total{upstream,tool,status}`
//! family ([`McpMetrics`](crate::McpMetrics)), so dashboards and alerts work the same with and
//! without a gateway. Every label is bounded: upstream names come from the configuration,
//! methods from the MCP method list, outcomes and exit reasons from fixed sets.

use vitals_core::{Counter, Gauge, HistogramCells, StrFamily};

use crate::metrics::TOOL_DURATION_BOUNDS;
use crate::registry::{RegistryBuilder, RegistryError};

/// Metrics of the upstreams behind a gateway.
#[derive(Debug)]
pub struct GatewayMetrics {
    /// `mcp_upstream_up{upstream}`: 1 while initialized and serving.
    pub up: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_starts_total{upstream,result}`: connection attempts (`ok` or `failed`).
    pub starts: StrFamily<Counter, 2, 128, 64>,
    /// `mcp_upstream_restarts_total{upstream}`: starts after the first.
    pub restarts: StrFamily<Counter, 1, 64, 64>,
    /// `mcp_upstream_exits_total{upstream,reason}`: a connection or process ended.
    pub exits: StrFamily<Counter, 2, 256, 64>,
    /// `mcp_upstream_start_time_seconds{upstream}`: Unix time of the last successful start.
    pub start_time: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_failed{upstream}`: 1 once restarts are exhausted.
    pub failed: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_tools{upstream}`, `_prompts`, `_resources`: what it lists.
    pub tools: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_prompts{upstream}`.
    pub prompts: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_resources{upstream}` (resources and templates).
    pub resources: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_gateway_name_conflicts`: names listed by more than one upstream, hidden but one.
    pub conflicts: Gauge,
    /// `mcp_upstream_requests_total{upstream,method,outcome}`: every forwarded request.
    pub requests: StrFamily<Counter, 3, 1024, 128>,
    /// `mcp_upstream_request_duration_seconds{upstream,method}`.
    pub duration: StrFamily<HistogramCells<12>, 2, 256, 96>,
    /// `mcp_upstream_in_flight{upstream}`: requests sent and not yet answered.
    pub in_flight: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_queued{upstream}`: requests waiting for a concurrency slot.
    pub queued: StrFamily<Gauge, 1, 64, 64>,
    /// `mcp_upstream_notifications_total{upstream,method}`: notifications relayed to clients.
    pub notifications: StrFamily<Counter, 2, 256, 96>,
    /// `mcp_client_operation_duration_seconds{upstream,...}`: the OpenTelemetry semantic-convention
    /// twin of `mcp_upstream_request_duration_seconds` ([`crate::semconv`]).
    pub client_operations: crate::semconv::ClientOperations,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        GatewayMetrics {
            up: StrFamily::new(["upstream"]),
            starts: StrFamily::new(["upstream", "result"]),
            restarts: StrFamily::new(["upstream"]),
            exits: StrFamily::new(["upstream", "reason"]),
            start_time: StrFamily::new(["upstream"]),
            failed: StrFamily::new(["upstream"]),
            tools: StrFamily::new(["upstream"]),
            prompts: StrFamily::new(["upstream"]),
            resources: StrFamily::new(["upstream"]),
            conflicts: Gauge::new(),
            requests: StrFamily::new(["upstream", "method", "outcome"]),
            duration: StrFamily::with_shared(["upstream", "method"], TOOL_DURATION_BOUNDS),
            in_flight: StrFamily::new(["upstream"]),
            queued: StrFamily::new(["upstream"]),
            notifications: StrFamily::new(["upstream", "method"]),
            client_operations: crate::semconv::client_operations(),
        }
    }

    /// Registers the set.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "mcp_upstream_up",
            "1 while the upstream MCP server is initialized and serving.",
            None,
            &self.up,
        )?;
        b.register(
            "mcp_upstream_starts_total",
            "Attempts to start and initialize an upstream, by result.",
            None,
            &self.starts,
        )?;
        b.register(
            "mcp_upstream_restarts_total",
            "Upstream starts after the first (crash recovery).",
            None,
            &self.restarts,
        )?;
        b.register(
            "mcp_upstream_exits_total",
            "Upstream processes or connections that ended, by reason.",
            None,
            &self.exits,
        )?;
        b.register(
            "mcp_upstream_start_time_seconds",
            "Unix time of the upstream's last successful start.",
            Some("seconds"),
            &self.start_time,
        )?;
        b.register(
            "mcp_upstream_failed",
            "1 when the upstream crashed too often and is no longer restarted.",
            None,
            &self.failed,
        )?;
        b.register(
            "mcp_upstream_tools",
            "Tools the upstream lists.",
            None,
            &self.tools,
        )?;
        b.register(
            "mcp_upstream_prompts",
            "Prompts the upstream lists.",
            None,
            &self.prompts,
        )?;
        b.register(
            "mcp_upstream_resources",
            "Resources and resource templates the upstream lists.",
            None,
            &self.resources,
        )?;
        b.register(
            "mcp_gateway_name_conflicts",
            "Tool and prompt names listed by more than one upstream (all but one hidden).",
            None,
            &self.conflicts,
        )?;
        b.register(
            "mcp_upstream_requests_total",
            "Requests forwarded to upstreams, by method and outcome.",
            None,
            &self.requests,
        )?;
        b.register(
            "mcp_upstream_request_duration_seconds",
            "Time for an upstream to answer a forwarded request.",
            Some("seconds"),
            &self.duration,
        )?;
        b.register(
            "mcp_upstream_in_flight",
            "Requests sent to the upstream and not yet answered.",
            None,
            &self.in_flight,
        )?;
        b.register(
            "mcp_upstream_queued",
            "Requests waiting for one of the upstream's concurrency slots.",
            None,
            &self.queued,
        )?;
        b.register(
            "mcp_upstream_notifications_total",
            "Notifications from upstreams relayed to clients, by method.",
            None,
            &self.notifications,
        )?;
        b.register(
            crate::semconv::CLIENT_OPERATION_DURATION,
            "Time for an upstream to answer a forwarded MCP request (OpenTelemetry mcp.client.operation.duration).",
            Some("seconds"),
            &self.client_operations,
        )?;
        Ok(())
    }
}
