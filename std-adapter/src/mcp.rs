//! Instrumentation for any rmcp [`ServerHandler`]: wrap it with [`Vitals::instrument`] and every
//! `tools/call` is counted, timed, tracked, rate limited, charged to the tool-call quota and
//! guarded by a circuit breaker, with one log line per call. Every other request is passed through unchanged.
//!
//! ```no_run
//! # use rmcp::{ServerHandler, model::ServerConfig};
//! # #[derive(Clone)] struct MyServer;
//! # impl ServerHandler for MyServer { fn get_info(&self) -> ServerConfig { ServerConfig::default() } }
//! let vitals = vitals_std::Vitals::builder().build().unwrap();
//! let handler = vitals.instrument(MyServer); // serve `handler` with any rmcp transport
//! ```

use crate::series::Exact as _;
use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::*;
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use vitals_core::resilience::{Outcome, Ticket};

use crate::clock::TICKS_PER_SECOND;
use crate::http::ClientAddr;
use crate::limits::RetryAfter;
use crate::Vitals;

/// Label used for tool names the handler does not know (so junk names cannot add series).
pub const UNKNOWN_TOOL: &str = "__unknown__";

/// Who is calling: the remote IP over HTTP, or the local process over stdio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An HTTP client, by IP address (an IPv6 client by its /64).
    Ip(IpAddr),
    /// A client that authenticated with a bearer token: the token's index.
    Token(u32),
    /// The single client of a stdio server (or a transport without addresses).
    Local,
}

impl ClientKey {
    /// The caller of the request in `context`.
    pub fn of(context: &RequestContext<RoleServer>) -> ClientKey {
        let parts = context.extensions.get::<http::request::Parts>();
        if let Some(id) = parts.and_then(|p| p.extensions.get::<crate::http::ClientIdentity>()) {
            return ClientKey::Token(id.0);
        }
        parts
            .and_then(|p| p.extensions.get::<ClientAddr>())
            .map(|a| ClientKey::Ip(crate::limits::client_key(a.0.ip())))
            .unwrap_or(ClientKey::Local)
    }
}

/// An rmcp handler with vitals instrumentation; see the [module docs](self).
#[derive(Clone)]
pub struct Instrumented<H> {
    inner: H,
    vitals: Vitals,
}

impl<H> std::fmt::Debug for Instrumented<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented").finish_non_exhaustive()
    }
}

impl<H> Instrumented<H> {
    /// Wraps `inner`.
    pub fn new(inner: H, vitals: Vitals) -> Self {
        Instrumented { inner, vitals }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

/// Classifies a protocol error for `mcp_tool_errors_total{error_type}` the way the OpenTelemetry
/// conventions do: the JSON-RPC code as a string (`"-32602"`), `_OTHER` for codes outside
/// JSON-RPC's and MCP's ([`crate::semconv::error_code`]).
pub fn error_type(code: ErrorCode) -> &'static str {
    crate::semconv::error_code(code)
}

/// How one `tools/call` ended: the `status` label of `mcp_tool_calls_total`. Every call gets
/// exactly one, whichever way it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The tool ran and returned a result.
    Ok,
    /// The tool ran and returned a result with `isError: true`.
    ToolError,
    /// The call was answered with a JSON-RPC error (unknown tool, bad arguments, internal error).
    JsonRpcError,
    /// The upstream did not answer in time.
    Timeout,
    /// The connection to the upstream was lost (a crash, a closed pipe, a network error).
    Transport,
    /// The client cancelled the call, or went away before its answer.
    Cancelled,
    /// A per-client or per-tool rate limit refused the call.
    RateLimited,
    /// The upstream's circuit breaker refused the call.
    CircuitOpen,
    /// The tool-call quota was spent.
    QuotaExhausted,
    /// The upstream is down, restarting, failed, or has no free slot.
    Unavailable,
}

impl CallOutcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::ToolError => "tool_error",
            CallOutcome::JsonRpcError => "jsonrpc_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Transport => "transport",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::CircuitOpen => "circuit_open",
            CallOutcome::QuotaExhausted => "quota_exhausted",
            CallOutcome::Unavailable => "unavailable",
        }
    }

    /// Whether the call ran and failed (what error-ratio alerts count).
    pub const fn is_failure(self) -> bool {
        matches!(
            self,
            CallOutcome::ToolError
                | CallOutcome::JsonRpcError
                | CallOutcome::Timeout
                | CallOutcome::Transport
        )
    }
}

/// What a handler can tell the instrumentation about a call that [`Instrumented`] cannot see in
/// the result: the precise outcome (a timeout and a lost connection are both plain errors to the
/// caller) and whether it should count against the circuit breaker. [`Instrumented`] puts one in
/// the request context's extensions before calling the inner handler; a handler that does not
/// know about it changes nothing.
#[derive(Debug, Clone, Default)]
pub struct CallReport(Arc<Mutex<Report>>);

#[derive(Debug, Default)]
struct Report {
    outcome: Option<CallOutcome>,
    breaker_failure: Option<bool>,
}

impl CallReport {
    /// The report travelling with `context`, if the call is instrumented.
    pub fn of(context: &RequestContext<RoleServer>) -> Option<CallReport> {
        context.extensions.get::<CallReport>().cloned()
    }

    /// Sets the outcome label and whether the breaker counts the call as a failure.
    pub fn set(&self, outcome: CallOutcome, breaker_failure: bool) {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        r.outcome = Some(outcome);
        r.breaker_failure = Some(breaker_failure);
    }

    fn take(&self) -> (Option<CallOutcome>, Option<bool>) {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (r.outcome, r.breaker_failure)
    }
}

fn refused(message: String, retry: RetryAfter, reason: &str) -> CallToolResponse {
    let mut meta = JsonObject::new();
    meta.insert(
        "io.vitals/retryAfterSeconds".to_owned(),
        serde_json::Value::from(retry.secs()),
    );
    meta.insert(
        "io.vitals/reason".to_owned(),
        serde_json::Value::from(reason),
    );
    let meta = MetaObject(meta);
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    result.meta = Some(meta);
    CallToolResponse::Complete(result)
}

/// A breaker ticket held across an await: given back unreported if the future is dropped.
/// Whether the handler lists the tool a `tools/call` names, found by the layer in front
/// ([`crate::semconv::Observed`]) and carried in the request's extensions, so that a call costs
/// one lookup (a `Tool` clone) instead of one per layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ToolListed(pub(crate) bool);

struct HeldTicket<'a>(&'a vitals_core::resilience::CircuitBreaker, Option<Ticket>);

impl HeldTicket<'_> {
    fn into_inner(mut self) -> Option<Ticket> {
        self.1.take()
    }
}

impl Drop for HeldTicket<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.1.take() {
            self.0.release(t);
        }
    }
}

/// The bookkeeping of one admitted call. Whatever way the call ends (a result, an error, a
/// cancellation that drops the future, a lost connection, shutdown), [`Drop`] records it exactly
/// once: the in-flight gauge goes back down, the call is counted and timed, and its breaker
/// ticket is returned.
struct CallGuard {
    vitals: Vitals,
    upstream: Option<Arc<crate::breakers::Upstream>>,
    ticket: Option<Ticket>,
    tool: String,
    client: ClientKey,
    started: Instant,
    outcome: CallOutcome,
    error_type: Option<&'static str>,
    breaker_failure: bool,
    /// The round asked the client for input (2026-07-28): counted as a round, not as a call.
    input_round: bool,
    /// The request's sampled SERVER span, for the duration's exemplar.
    #[cfg(feature = "otel")]
    span: Option<crate::otel::SpanIds>,
}

impl CallGuard {
    fn finish(&mut self, outcome: CallOutcome, error_type: Option<&'static str>, failure: bool) {
        self.outcome = outcome;
        self.error_type = error_type;
        self.breaker_failure = failure;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let v = &self.vitals;
        let m = v.mcp_metrics();
        m.active_requests.dec();
        let elapsed = self.started.elapsed();
        let upstream = self.upstream.as_ref().map_or("", |u| u.name());
        let label = self.tool.as_str();
        let status = self.outcome.as_str();
        if self.input_round {
            // Not a call yet: the client answers and calls again; the breaker learns nothing.
            m.tool_input_rounds.exact_labels([upstream, label]).inc();
            if let (Some(u), Some(ticket)) = (&self.upstream, self.ticket.take()) {
                u.breaker().release(ticket);
            }
            tracing::debug!(
                method = "tools/call",
                tool = label,
                upstream,
                "input required"
            );
            return;
        }
        m.tool_calls.exact_labels([upstream, label, status]).inc();
        let duration = m.tool_duration.exact_labels([upstream, label]);
        #[cfg(feature = "otel")]
        match self.span {
            Some(ids) => duration.observe_duration_with_exemplar(elapsed, &ids.exemplar()),
            None => duration.observe_duration(elapsed),
        }
        #[cfg(not(feature = "otel"))]
        duration.observe_duration(elapsed);
        let error_type = self.error_type.or(match self.outcome {
            CallOutcome::Timeout => Some("timeout"),
            CallOutcome::Transport => Some("transport"),
            CallOutcome::Cancelled => Some("cancelled"),
            CallOutcome::Unavailable => Some("unavailable"),
            _ => None,
        });
        if let Some(t) = error_type {
            m.tool_errors.exact_labels([upstream, label, t]).inc();
        }
        if let (Some(u), Some(ticket)) = (&self.upstream, self.ticket.take()) {
            match self.outcome {
                // Neither the upstream's fault nor its merit: the ticket goes back unreported.
                CallOutcome::Cancelled | CallOutcome::Unavailable => u.breaker().release(ticket),
                _ => {
                    let outcome = if self.breaker_failure {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    u.breaker().record(ticket, v.clock().now(), outcome);
                }
            }
        }
        let duration_ms = elapsed.as_secs_f64() * 1e3;
        let client = self.client;
        if self.outcome == CallOutcome::Ok {
            tracing::info!(method = "tools/call", tool = label, upstream, status, duration_ms,
                client = ?client, "tool call");
        } else {
            tracing::warn!(method = "tools/call", tool = label, upstream, status,
                error_type = error_type.unwrap_or(""), duration_ms, client = ?client, "tool call");
        }
    }
}

impl<H: ServerHandler> Instrumented<H> {
    fn refuse(
        &self,
        upstream: &str,
        label: &str,
        outcome: CallOutcome,
        client: ClientKey,
        retry: RetryAfter,
        message: String,
    ) -> CallToolResponse {
        let m = self.vitals.mcp_metrics();
        let status = outcome.as_str();
        m.tool_calls.exact_labels([upstream, label, status]).inc();
        tracing::warn!(method = "tools/call", tool = label, upstream, status,
            retry_after_s = retry.secs(), client = ?client, "tool call refused");
        refused(message, retry, status)
    }

    async fn instrumented_call(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let v = &self.vitals;
        let m = v.mcp_metrics();
        let name = request.name.to_string();
        let known = match context.extensions.get::<ToolListed>() {
            Some(listed) => listed.0,
            None => self.inner.get_tool(&name).is_some(),
        };
        let client = ClientKey::of(&context);
        let now = v.clock().now();
        let label = if known { name.as_str() } else { UNKNOWN_TOOL };

        // A call to a tool nobody lists spends no budget: it is answered by the handler (an
        // invalid-params error) and counted under `__unknown__`.
        let upstream = known.then(|| v.upstreams().for_tool(&name));

        let mut ticket = None;
        if let Some(u) = &upstream {
            // The circuit breaker of the upstream this tool depends on: first, so that a call it
            // refuses spends no rate or quota budget.
            ticket = match u.breaker().try_acquire_ticket(now) {
                Ok(t) => Some(t),
                Err(rejected) => {
                    let wait = rejected.retry_after.unwrap_or(60 * TICKS_PER_SECOND);
                    let retry = RetryAfter(crate::clock::MonotonicClock::to_duration(wait));
                    return Ok(self.refuse(
                        u.name(),
                        label,
                        CallOutcome::CircuitOpen,
                        client,
                        retry,
                        format!(
                            "upstream `{}` unavailable (circuit {}): retry after {} s",
                            u.name(),
                            rejected.state,
                            retry.secs()
                        ),
                    ));
                }
            };
            // The limits and the quota ([`Vitals::admit_tool_call`]; shared across replicas when
            // a store is configured, which is an await). A refusal is a tool error with
            // retry-after and gives the breaker ticket back unreported, as does a call dropped
            // while it waits.
            let held = HeldTicket(u.breaker(), ticket.take());
            let admitted = v.admit_tool_call(client, label, now).await;
            ticket = held.into_inner();
            if let Err(r) = admitted {
                if let Some(t) = ticket.take() {
                    u.breaker().release(t);
                }
                return Ok(self.refuse(u.name(), label, r.outcome, client, r.retry, r.message));
            }
        }

        m.active_requests.inc();
        let mut guard = CallGuard {
            vitals: v.clone(),
            upstream,
            ticket,
            tool: label.to_owned(),
            client,
            started: Instant::now(),
            // What the call counts as if its future is dropped before it returns.
            outcome: CallOutcome::Cancelled,
            error_type: None,
            breaker_failure: false,
            input_round: false,
            #[cfg(feature = "otel")]
            span: context.extensions.get::<crate::otel::SpanIds>().copied(),
        };
        let report = CallReport::default();
        context.extensions.insert(report.clone());
        let cancelled = context.ct.clone();
        // The call ends when the client cancels it (`notifications/cancelled`), its session
        // closes or the server stops, even if the handler never looks at the token (one waiting
        // on the client would wait for ever): its future is dropped and the guard counts it.
        // The handler is polled first: one that watches the token itself (the gateway) ends
        // in the same poll and does its own bookkeeping (forwarding the cancellation upstream).
        // A call that outlives the tool-call timeout is dropped the same way; the guard counts
        // it as a timeout and the breaker records a failure.
        let limit = v.tool_call_timeout();
        let timed_out = async {
            match limit {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            r = self.inner.call_tool(request, context) => r,
            () = cancelled.cancelled() => return Err(McpError::new(
                ErrorCode::INTERNAL_ERROR, "request cancelled", None)),
            () = timed_out => {
                let after = limit.unwrap_or_default().as_secs_f64();
                guard.finish(CallOutcome::Timeout, None, true);
                return Err(McpError::internal_error(
                    format!("tool `{}` did not finish within {after} s", guard.tool),
                    Some(serde_json::json!({"tool": guard.tool, "reason": "timeout"})),
                ));
            }
        };
        let (reported, breaker_failure) = report.take();
        let (outcome, error_type, failure) = match &result {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => (
                reported.unwrap_or(CallOutcome::ToolError),
                Some("tool_error"),
                false,
            ),
            Ok(_) => (reported.unwrap_or(CallOutcome::Ok), None, false),
            Err(e) => {
                let outcome = reported.unwrap_or(if cancelled.is_cancelled() {
                    CallOutcome::Cancelled
                } else {
                    CallOutcome::JsonRpcError
                });
                let kind = match outcome {
                    CallOutcome::JsonRpcError => Some(error_type(e.code)),
                    _ => None,
                };
                (outcome, kind, e.code == ErrorCode::INTERNAL_ERROR)
            }
        };
        // An unknown tool that nevertheless succeeded is a tool the handler did not list.
        if !known && matches!(outcome, CallOutcome::Ok) {
            guard.tool = name;
        }
        guard.finish(outcome, error_type, breaker_failure.unwrap_or(failure));
        guard.input_round = matches!(result, Ok(CallToolResponse::InputRequired(_)));
        drop(guard);
        result
    }
}

impl<H: ServerHandler> ServerHandler for Instrumented<H> {
    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        self.instrumented_call(request, context)
    }

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    #[allow(deprecated)]
    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_prompt(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.read_resource(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: rmcp::service::SubscriptionContext,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    #[allow(deprecated)]
    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.subscribe(request, context)
    }

    #[allow(deprecated)]
    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_tools(request, context)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_skill(request, context)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.read_resource_directory(request, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::handler::server::router::tool::ToolRouter;
    use rmcp::{tool, tool_handler, tool_router, ServiceExt};
    use serde_json::{json, Value};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[derive(Clone)]
    struct Echo {
        tool_router: ToolRouter<Self>,
    }

    #[tool_router]
    impl Echo {
        fn new() -> Self {
            Echo {
                tool_router: Self::tool_router(),
            }
        }

        #[tool(description = "Answers pong.")]
        async fn ping(&self) -> String {
            "pong".into()
        }
    }

    #[tool_handler(router = self.tool_router)]
    impl ServerHandler for Echo {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }
    }

    /// Serves `vitals.instrument(Echo)` over an in-memory pipe, speaking newline-delimited
    /// JSON-RPC as a stdio client would; returns the response to each `tools/call ping`.
    async fn call_ping(vitals: &Vitals, calls: u64) -> Vec<Value> {
        let (client, server) = tokio::io::duplex(1 << 16);
        let handler = vitals.instrument(Echo::new());
        let serving = tokio::spawn(async move {
            let running = handler.serve(tokio::io::split(server)).await?;
            let _ = running.waiting().await;
            Ok::<_, rmcp::service::ServerInitializeError>(())
        });
        let (read, mut write) = tokio::io::split(client);
        let mut lines = BufReader::new(read).lines();
        let mut exchange = async |msg: Value, id: Option<u64>| {
            let mut line = msg.to_string();
            line.push('\n');
            write.write_all(line.as_bytes()).await.unwrap();
            let id = id?;
            loop {
                let l = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
                    .await
                    .expect("response within 10 s")
                    .unwrap()
                    .expect("server closed the pipe");
                let v: Value = serde_json::from_str(&l).unwrap();
                if v["id"] == json!(id) {
                    return Some(v);
                }
            }
        };
        exchange(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"}}}),
            Some(0),
        )
        .await
        .unwrap();
        exchange(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await;
        let mut out = Vec::new();
        for id in 1..=calls {
            let r = exchange(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "ping", "arguments": {}}}),
                Some(id),
            )
            .await
            .unwrap();
            out.push(r);
        }
        serving.abort();
        out
    }

    #[tokio::test]
    async fn exhausted_quota_is_a_tool_error_with_retry_after() {
        let vitals = Vitals::builder()
            .daily_tool_quota(2)
            // A slow refill (one token per 36 s), so the token gauge read below cannot move
            // while a loaded machine runs the test.
            .tool_rate_limit("100/1h".parse().unwrap())
            .build()
            .unwrap();
        let r = call_ping(&vitals, 3).await;
        for ok in &r[..2] {
            assert_eq!(ok["result"]["isError"], json!(false), "{ok}");
        }
        let refused = &r[2]["result"];
        assert_eq!(refused["isError"], json!(true), "{refused}");
        assert_eq!(refused["_meta"]["io.vitals/reason"], "quota_exhausted");
        let retry = refused["_meta"]["io.vitals/retryAfterSeconds"]
            .as_u64()
            .expect("retry-after");
        assert!((1..=86_400).contains(&retry), "{retry}");
        assert!(refused["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("quota `daily_tool_calls` exhausted: retry after"));

        let text = vitals.render(vitals_core::Format::Prometheus);
        for needle in [
            "quota_used{quota=\"daily_tool_calls\"} 2\n",
            "quota_limit{quota=\"daily_tool_calls\"} 2\n",
            "quota_rejected_total{quota=\"daily_tool_calls\"} 1\n",
            "mcp_tool_calls_total{upstream=\"ping\",tool=\"ping\",status=\"ok\"} 2\n",
            "mcp_tool_calls_total{upstream=\"ping\",tool=\"ping\",status=\"quota_exhausted\"} 1\n",
            "mcp_tool_duration_seconds_count{upstream=\"ping\",tool=\"ping\"} 2\n",
            // The call the quota refused spent no rate budget.
            "rate_limit_available_tokens{tool=\"ping\"} 98\n",
            "rate_limit_burst_tokens{scope=\"tool\"} 100\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // The breaker saw only the calls that ran; the quota is a degraded, non-critical component.
        let breaker = vitals.upstreams().for_tool("ping");
        assert_eq!(breaker.breaker().window_counts(), (2, 0));
        let h = vitals.health();
        assert_eq!(h.status, "degraded");
        let q = h
            .components
            .iter()
            .find(|c| c.name == "quota:daily_tool_calls")
            .expect("quota component");
        assert_eq!((q.status.as_str(), q.critical), ("degraded", false));
        assert!(vitals.is_ready());
        let s = vitals.rate_limit_status().tool_quota.expect("quota status");
        assert_eq!(
            (s.used, s.limit, s.remaining, s.rejected_total),
            (2, 2, 0, 1)
        );
    }

    #[tokio::test]
    async fn without_a_quota_calls_are_not_counted() {
        let vitals = Vitals::builder().daily_tool_quota(0).build().unwrap();
        let r = call_ping(&vitals, 3).await;
        assert!(r.iter().all(|v| v["result"]["isError"] == json!(false)));
        assert!(vitals.tool_quota().is_none());
        assert!(vitals.rate_limit_status().tool_quota.is_none());
        let text = vitals.render(vitals_core::Format::Prometheus);
        assert!(text.contains("# TYPE quota_used gauge\n"), "{text}");
        assert!(!text.contains("quota_used{"), "{text}");
        assert_eq!(vitals.health().status, "healthy");
    }

    /// A breaker that is open refuses through `instrument` before any budget is spent: a tool
    /// error with reason `circuit_open` and a retry-after, counted under that status, the handler
    /// never runs, and no rate or quota budget is spent.
    #[tokio::test]
    async fn an_open_breaker_refuses_with_circuit_open() {
        let vitals = Vitals::builder()
            .daily_tool_quota(5)
            .tool_rate_limit("100/1h".parse().unwrap())
            .build()
            .unwrap();
        vitals.upstreams().for_tool("ping").breaker().force_open();
        let r = call_ping(&vitals, 1).await;
        let refused = &r[0]["result"];
        assert_eq!(refused["isError"], json!(true), "{refused}");
        assert_eq!(refused["_meta"]["io.vitals/reason"], "circuit_open");
        assert!(
            refused["_meta"]["io.vitals/retryAfterSeconds"]
                .as_u64()
                .is_some_and(|s| s >= 1),
            "{refused}"
        );
        assert!(refused["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("upstream `ping` unavailable (circuit"));
        let text = vitals.render(vitals_core::Format::Prometheus);
        for needle in [
            "mcp_tool_calls_total{upstream=\"ping\",tool=\"ping\",status=\"circuit_open\"} 1\n",
            "quota_used{quota=\"daily_tool_calls\"} 0\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("status=\"ok\"}"), "the handler ran:\n{text}");
        // The tool's limiter was never charged (its gauge is absent or still full).
        let tokens = text
            .lines()
            .find_map(|l| l.strip_prefix("rate_limit_available_tokens{tool=\"ping\"} "));
        assert!(matches!(tokens, None | Some("100")), "{tokens:?}");
    }
}
