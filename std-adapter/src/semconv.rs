//! The OpenTelemetry MCP semantic conventions, as Prometheus series: every MCP request and
//! notification a server handles is timed in `mcp_server_operation_duration_seconds`, every
//! request a gateway forwards in `mcp_client_operation_duration_seconds` (the OTel metrics
//! `mcp.server.operation.duration` / `mcp.client.operation.duration`, translated to Prometheus
//! names the way the OTel Prometheus exporter does by default).
//!
//! Labels (OTel attribute `.` → `_`): `mcp_method_name`; `gen_ai_tool_name` and
//! `gen_ai_operation_name="execute_tool"` for `tools/call`; `gen_ai_prompt_name` for
//! `prompts/get`; `error_type` only when the operation failed; `rpc_response_status_code` when
//! the answer carried a JSON-RPC error code; `mcp_protocol_version`; `network_transport` (`tcp`
//! over HTTP, `pipe` over stdio). A label that does not apply is empty, which Prometheus treats as
//! absent.
//!
//! Invariants:
//! - Every label is bounded: methods outside the MCP method list are `_OTHER`, tool names the
//!   handler does not list are [`UNKNOWN_TOOL`], prompt names are kept
//!   only for prompts that were found, error codes outside the JSON-RPC and MCP codes are
//!   `_OTHER`, protocol versions outside the known list are `_OTHER`; the table is fixed-size
//!   and overflows into one counted series.
//! - Every operation is observed exactly once, whichever way it ends: a drop guard observes a
//!   request whose future is dropped (the client cancelled or went away) with
//!   `error_type="cancelled"`.
//! - `error_type` follows the server rule of the conventions: `-32700`, `-32600`, `-32601`,
//!   `-32602` and `-32002` are the client's mistakes, answered correctly, so they set
//!   `rpc_response_status_code` and no `error_type`; every other code sets both;
//!   `isError: true` tool results set `error_type="tool_error"`.

use crate::series::Exact as _;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use rmcp::model::*;
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use vitals_core::{Bounds, HistogramCells, StrFamily};

use crate::mcp::UNKNOWN_TOOL;

/// Prometheus name of `mcp.server.operation.duration`.
pub const SERVER_OPERATION_DURATION: &str = "mcp_server_operation_duration_seconds";
/// Prometheus name of `mcp.client.operation.duration`.
pub const CLIENT_OPERATION_DURATION: &str = "mcp_client_operation_duration_seconds";

/// The conventions' bucket boundaries for the MCP operation durations, in microseconds
/// (`[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]` seconds).
pub const OPERATION_DURATION_BOUNDS: Bounds<14> = Bounds::micros([
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
]);

/// Label names of [`ServerOperations`], in order.
pub const SERVER_LABELS: [&str; 8] = [
    "mcp_method_name",
    "gen_ai_tool_name",
    "gen_ai_prompt_name",
    "gen_ai_operation_name",
    "error_type",
    "rpc_response_status_code",
    "mcp_protocol_version",
    "network_transport",
];

/// Label names of [`ClientOperations`], in order: the upstream (from the gateway's
/// configuration) first.
pub const CLIENT_LABELS: [&str; 6] = [
    "upstream",
    "mcp_method_name",
    "gen_ai_tool_name",
    "gen_ai_operation_name",
    "error_type",
    "rpc_response_status_code",
];

/// `mcp_server_operation_duration_seconds`.
pub type ServerOperations = StrFamily<HistogramCells<14>, 8, 512, 224>;
/// `mcp_client_operation_duration_seconds{upstream,...}`.
pub type ClientOperations = StrFamily<HistogramCells<14>, 6, 512, 224>;

/// An empty `mcp_server_operation_duration_seconds` family.
pub fn server_operations() -> ServerOperations {
    StrFamily::with_shared(SERVER_LABELS, OPERATION_DURATION_BOUNDS)
}

/// An empty `mcp_client_operation_duration_seconds` family.
pub fn client_operations() -> ClientOperations {
    StrFamily::with_shared(CLIENT_LABELS, OPERATION_DURATION_BOUNDS)
}

/// Value of a label that does not fit the bounded set (the conventions' fallback).
pub const OTHER: &str = "_OTHER";

/// The MCP request and notification methods a client sends; anything else is [`OTHER`].
const CLIENT_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/directory/read",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "tasks/list",
    "tasks/result",
    "skills/list",
    "skills/get",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// `method` if it is an MCP method a client sends, else [`OTHER`].
pub fn method_name(method: &str) -> &'static str {
    CLIENT_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER)
}

/// A JSON-RPC error code as the label value the conventions use (`"-32603"`); codes outside
/// JSON-RPC's and MCP's own are [`OTHER`].
pub fn error_code(code: ErrorCode) -> &'static str {
    match code.0 {
        -32700 => "-32700",
        -32600 => "-32600",
        -32601 => "-32601",
        -32602 => "-32602",
        -32603 => "-32603",
        -32000 => "-32000",
        -32001 => "-32001",
        -32002 => "-32002",
        -32020 => "-32020",
        -32021 => "-32021",
        -32022 => "-32022",
        -32042 => "-32042",
        _ => OTHER,
    }
}

/// Whether a server answering with `code` failed (the conventions' server rule): parse errors,
/// invalid requests, unknown methods, invalid params and unknown resources are the client's
/// mistakes, correctly answered.
pub fn server_failed(code: ErrorCode) -> bool {
    !matches!(code.0, -32700 | -32600 | -32601 | -32602 | -32002)
}

/// `network_transport` of a request: `tcp` when it came over HTTP, `pipe` otherwise (stdio).
fn transport(extensions: &rmcp::model::Extensions) -> &'static str {
    if extensions.get::<http::request::Parts>().is_some() {
        "tcp"
    } else {
        "pipe"
    }
}

/// `version` if rmcp knows it, else [`OTHER`]; empty when there is none.
fn protocol_version(version: Option<&ProtocolVersion>) -> &'static str {
    match version {
        None => "",
        Some(v) => ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .find(|k| *k == v)
            .map_or(OTHER, |k| k.as_str()),
    }
}

/// How an operation ended, as the `error_type` and `rpc_response_status_code` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ending {
    /// `error_type`: set only when the operation failed.
    pub error_type: Option<&'static str>,
    /// `rpc_response_status_code`: set when the answer carried a JSON-RPC error code.
    pub status_code: Option<&'static str>,
}

impl Ending {
    /// A successful operation.
    pub const OK: Ending = Ending {
        error_type: None,
        status_code: None,
    };

    /// An operation that ended without an answer for a reason named by `error_type`
    /// (`cancelled`, `timeout`, `transport`, `unavailable`).
    pub const fn without_answer(error_type: &'static str) -> Ending {
        Ending {
            error_type: Some(error_type),
            status_code: None,
        }
    }

    /// The ending of a request answered with `answer`: a tool result with `isError: true` is a
    /// `tool_error`, anything else a success.
    pub fn of_answer(answer: &ServerResult) -> Ending {
        match answer {
            ServerResult::CallToolResult(r) if r.is_error == Some(true) => {
                Ending::without_answer("tool_error")
            }
            _ => Ending::OK,
        }
    }

    /// The ending of a request a server answered with `result` (the server rule: see the
    /// [module docs](self)).
    pub fn of_server_result(result: &Result<ServerResult, McpError>) -> Ending {
        match result {
            Ok(answer) => Ending::of_answer(answer),
            Err(e) => {
                let code = error_code(e.code);
                Ending {
                    error_type: server_failed(e.code).then_some(code),
                    status_code: Some(code),
                }
            }
        }
    }

    /// The ending of a request the gateway forwarded upstream.
    #[cfg(feature = "gateway")]
    pub(crate) fn of_forward(
        result: &Result<ServerResult, crate::gateway::ForwardError>,
    ) -> Ending {
        use crate::gateway::ForwardError;
        match result {
            Ok(answer) => Ending::of_answer(answer),
            Err(ForwardError::Upstream(e)) => Ending::of_client_error(e.code),
            Err(e) => Ending::without_answer(e.outcome().as_str()),
        }
    }

    /// The ending of a request sent to a server and answered with the JSON-RPC error `code`:
    /// from the client's side every error is a failure.
    pub fn of_client_error(code: ErrorCode) -> Ending {
        let code = error_code(code);
        Ending {
            error_type: Some(code),
            status_code: Some(code),
        }
    }
}

/// Observes one operation when dropped: [`Observation::end`] sets how it ended; dropped without
/// it (the future was dropped: the client cancelled or went away), it counts as cancelled.
struct Observation {
    family: &'static ServerOperations,
    method: &'static str,
    tool: Option<String>,
    prompt: Option<String>,
    version: &'static str,
    transport: &'static str,
    started: Instant,
    ending: Ending,
    /// The request's SERVER span, when traces are exported, and the error message for its status.
    #[cfg(feature = "otel")]
    span: Option<(crate::otel::ServerSpan, Option<String>)>,
}

impl Observation {
    fn end<T>(&mut self, result: &Result<T, McpError>, answer: fn(&T) -> Ending) {
        self.ending = match result {
            Ok(r) => answer(r),
            Err(e) => {
                #[cfg(feature = "otel")]
                if let Some((_, message)) = &mut self.span {
                    *message = Some(e.message.to_string());
                }
                let code = error_code(e.code);
                Ending {
                    error_type: server_failed(e.code).then_some(code),
                    status_code: Some(code),
                }
            }
        };
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        let ids = self.span.as_ref().and_then(|(span, _)| span.ids());
        #[cfg(feature = "otel")]
        if let Some((mut span, message)) = self.span.take() {
            span.ended(self.ending.error_type, self.ending.status_code, message);
        }
        let tool = self.tool.as_deref().unwrap_or("");
        let operation = if self.method == "tools/call" {
            "execute_tool"
        } else {
            ""
        };
        let series = self.family.exact_labels([
            self.method,
            tool,
            self.prompt.as_deref().unwrap_or(""),
            operation,
            self.ending.error_type.unwrap_or(""),
            self.ending.status_code.unwrap_or(""),
            self.version,
            self.transport,
        ]);
        let elapsed = self.started.elapsed();
        #[cfg(feature = "otel")]
        if let Some(ids) = ids {
            series.observe_duration_with_exemplar(elapsed, &ids.exemplar());
            return;
        }
        series.observe_duration(elapsed);
    }
}

fn observe<'a, T: 'a>(
    observation: Observation,
    operation: impl Future<Output = Result<T, McpError>> + 'a,
) -> impl Future<Output = Result<T, McpError>> + 'a {
    observe_with(observation, operation, |_| Ending::OK)
}

/// Awaits `operation` (boxed: see [`boxed`]) and ends `observation` with its result.
fn observe_with<'a, T: 'a>(
    mut observation: Observation,
    operation: impl Future<Output = Result<T, McpError>> + 'a,
    answer: fn(&T) -> Ending,
) -> impl Future<Output = Result<T, McpError>> + 'a {
    let operation = in_span(&observation, operation);
    async move {
        let result = operation.await;
        observation.end(&result, answer);
        result
    }
}

/// The handler's future on the heap. A handler's futures are large (a gateway's forwarding, the
/// instrumentation's bookkeeping), and rmcp awaits the `initialize` one inline in the task that
/// lives as long as the session: unboxed, every idle session kept room for the largest request
/// future of the handler. Boxed, a session keeps a pointer and a request costs one allocation.
fn boxed<'a, F: Future + 'a>(operation: F) -> Pin<Box<F>> {
    Box::pin(operation)
}

/// `operation`, [`boxed`], polled in the context of `observation`'s span when it has one: log
/// lines written meanwhile carry the span's ids, and the gateway's upstream calls become its
/// children. Without a span (tracing off), nothing is attached.
fn in_span<'a, F: Future + 'a>(observation: &Observation, operation: F) -> InSpan<F> {
    #[cfg(not(feature = "otel"))]
    let _ = observation;
    InSpan {
        operation: boxed(operation),
        #[cfg(feature = "otel")]
        cx: observation.span.as_ref().map(|(s, _)| s.context().clone()),
    }
}

/// See [`in_span`].
struct InSpan<F> {
    operation: Pin<Box<F>>,
    #[cfg(feature = "otel")]
    cx: Option<opentelemetry::Context>,
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        #[cfg(feature = "otel")]
        let _current = this.cx.as_ref().map(|c| c.clone().attach());
        this.operation.as_mut().poll(cx)
    }
}

async fn observe_notification(mut observation: Observation, operation: impl Future<Output = ()>) {
    operation.await;
    observation.ending = Ending::OK;
}

/// An rmcp handler with every request and notification observed in
/// `mcp_server_operation_duration_seconds`; see the [module docs](self). Returned by
/// [`Vitals::instrument`](crate::Vitals::instrument) around [`Instrumented`](crate::Instrumented).
///
/// It sees what reaches the handler: requests rmcp refuses before dispatching them (an
/// unsupported protocol version, missing 2026-07-28 request metadata) are not observed.
#[derive(Clone)]
pub struct Observed<H> {
    inner: H,
    family: &'static ServerOperations,
}

impl<H> std::fmt::Debug for Observed<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed").finish_non_exhaustive()
    }
}

impl<H> Observed<H> {
    /// Wraps `inner`, observing into `family`.
    pub fn new(inner: H, family: &'static ServerOperations) -> Self {
        Observed { inner, family }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    fn start(&self, method: &'static str, context: &RequestContext<RoleServer>) -> Observation {
        self.start_for(method, None, context)
    }

    /// Starts observing a request about `target` (a tool or prompt name).
    fn start_for(
        &self,
        method: &'static str,
        target: Option<&str>,
        context: &RequestContext<RoleServer>,
    ) -> Observation {
        let version = if method == "initialize" {
            None
        } else {
            context.protocol_version()
        };
        let version = protocol_version(version.as_ref());
        let transport = transport(&context.extensions);
        #[cfg(not(feature = "otel"))]
        let _ = target;
        Observation {
            family: self.family,
            method,
            tool: None,
            prompt: None,
            version,
            transport,
            started: Instant::now(),
            ending: Ending::without_answer("cancelled"),
            #[cfg(feature = "otel")]
            span: crate::otel::ServerSpan::start(|| {
                use opentelemetry::KeyValue;
                let parts = context.extensions.get::<http::request::Parts>();
                let mut attributes = vec![KeyValue::new("network.transport", transport)];
                if !version.is_empty() {
                    attributes.push(KeyValue::new("mcp.protocol.version", version));
                }
                crate::otel::target_attributes(method, target, &mut attributes);
                crate::otel::Request {
                    method,
                    target,
                    request_id: match &context.id {
                        NumberOrString::Number(n) => n.to_string(),
                        NumberOrString::String(s) => s.to_string(),
                    },
                    meta: &context.meta,
                    headers: parts.map(|p| &p.headers),
                    client: parts
                        .and_then(|p| p.extensions.get::<crate::http::ClientAddr>())
                        .map(|a| a.0),
                    attributes,
                }
            })
            .map(|span| (span, None)),
        }
    }

    fn start_notification(
        &self,
        method: &'static str,
        context: &NotificationContext<RoleServer>,
    ) -> Observation {
        let version = context.peer.peer_info().map(|i| i.protocol_version.clone());
        Observation {
            family: self.family,
            method,
            tool: None,
            prompt: None,
            version: protocol_version(version.as_ref()),
            transport: transport(&context.extensions),
            started: Instant::now(),
            ending: Ending::without_answer("cancelled"),
            #[cfg(feature = "otel")]
            span: None,
        }
    }
}

impl<H: ServerHandler> ServerHandler for Observed<H> {
    fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        // Bounded before the call: a tool the handler does not list is `__unknown__`. The answer
        // travels with the request, so the instrumentation below does not look the tool up again.
        let listed = self.inner.get_tool(&request.name).is_some();
        context.extensions.insert(crate::mcp::ToolListed(listed));
        let tool = if listed {
            request.name.to_string()
        } else {
            UNKNOWN_TOOL.to_owned()
        };
        let mut observation = self.start_for("tools/call", Some(&tool), &context);
        observation.tool = Some(tool);
        // The span's ids travel with the request, for the tool-duration exemplar.
        #[cfg(feature = "otel")]
        if let Some(ids) = observation.span.as_ref().and_then(|(span, _)| span.ids()) {
            context.extensions.insert(ids);
        }
        observe_with(
            observation,
            self.inner.call_tool(request, context),
            |r| match r {
                CallToolResponse::Complete(r) if r.is_error == Some(true) => {
                    Ending::without_answer("tool_error")
                }
                _ => Ending::OK,
            },
        )
    }

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("ping", &context);
        observe(observation, self.inner.ping(context))
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("initialize", &context);
        let operation = in_span(&observation, self.inner.initialize(request, context));
        async move {
            let mut observation = observation;
            let result = operation.await;
            if let Ok(r) = &result {
                observation.version = protocol_version(Some(&r.protocol_version));
            }
            observation.end(&result, |_| Ending::OK);
            result
        }
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
        let observation = self.start("server/discover", &context);
        observe(observation, self.inner.discover(context))
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("completion/complete", &context);
        observe(observation, self.inner.complete(request, context))
    }

    #[allow(deprecated)]
    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("logging/setLevel", &context);
        observe(observation, self.inner.set_level(request, context))
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start_for("prompts/get", Some(&request.name), &context);
        let name = request.name.clone();
        let operation = in_span(&observation, self.inner.get_prompt(request, context));
        async move {
            let mut observation = observation;
            let result = operation.await;
            // A prompt name is kept only for a prompt that exists (bounded by the server's).
            observation.prompt = Some(if result.is_ok() {
                name
            } else {
                UNKNOWN_TOOL.to_owned()
            });
            observation.end(&result, |_| Ending::OK);
            result
        }
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("prompts/list", &context);
        observe(observation, self.inner.list_prompts(request, context))
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("resources/list", &context);
        observe(observation, self.inner.list_resources(request, context))
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        let observation = self.start("resources/templates/list", &context);
        observe(
            observation,
            self.inner.list_resource_templates(request, context),
        )
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("resources/read", &context);
        observe(observation, self.inner.read_resource(request, context))
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
        let observation = self.start("resources/subscribe", &context);
        observe(observation, self.inner.subscribe(request, context))
    }

    #[allow(deprecated)]
    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("resources/unsubscribe", &context);
        observe(observation, self.inner.unsubscribe(request, context))
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("tools/list", &context);
        observe(observation, self.inner.list_tools(request, context))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start(method_name(&request.method), &context);
        observe(observation, self.inner.on_custom_request(request, context))
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let observation = self.start_notification("notifications/cancelled", &context);
        observe_notification(observation, self.inner.on_cancelled(notification, context))
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let observation = self.start_notification("notifications/progress", &context);
        observe_notification(observation, self.inner.on_progress(notification, context))
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let observation = self.start_notification("notifications/initialized", &context);
        observe_notification(observation, self.inner.on_initialized(context))
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let observation = self.start_notification("notifications/roots/list_changed", &context);
        observe_notification(observation, self.inner.on_roots_list_changed(context))
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let observation = self.start_notification(method_name(&notification.method), &context);
        observe_notification(
            observation,
            self.inner.on_custom_notification(notification, context),
        )
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("tasks/get", &context);
        observe(observation, self.inner.get_task(request, context))
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("tasks/update", &context);
        observe(observation, self.inner.update_task(request, context))
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("tasks/cancel", &context);
        observe(observation, self.inner.cancel_task(request, context))
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("skills/list", &context);
        observe(observation, self.inner.list_skills(request, context))
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        let observation = self.start("skills/get", &context);
        observe(observation, self.inner.get_skill(request, context))
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_
    {
        let observation = self.start("resources/directory/read", &context);
        observe(
            observation,
            self.inner.read_resource_directory(request, context),
        )
    }
}

/// The tool a forwarded request calls (bounded by the upstream's catalogue, which routed it).
#[cfg(feature = "gateway")]
pub(crate) fn tool_of(request: &ClientRequest) -> Option<String> {
    match request {
        ClientRequest::CallToolRequest(r) => Some(r.params.name.to_string()),
        _ => None,
    }
}

/// Observes one request the gateway forwarded to `upstream` and the upstream had (answered,
/// refused, timed out or lost with the connection) in `mcp_client_operation_duration_seconds`.
#[cfg(feature = "gateway")]
pub(crate) fn observe_forward(
    metrics: &crate::gateway::GatewayMetrics,
    upstream: &str,
    method: &'static str,
    tool: Option<String>,
    result: &Result<ServerResult, crate::gateway::ForwardError>,
    started: Instant,
    exemplar: Option<ClientSpanIds>,
) {
    let ending = Ending::of_forward(result);
    let tool = tool.as_deref().unwrap_or("");
    let operation = if tool.is_empty() { "" } else { "execute_tool" };
    let series = metrics.client_operations.exact_labels([
        upstream,
        method_name(method),
        tool,
        operation,
        ending.error_type.unwrap_or(""),
        ending.status_code.unwrap_or(""),
    ]);
    match exemplar {
        #[cfg(feature = "otel")]
        Some(ids) => series.observe_duration_with_exemplar(started.elapsed(), &ids.exemplar()),
        _ => series.observe_duration(started.elapsed()),
    }
}

/// The CLIENT span's ids an upstream call's observation carries as its exemplar (none without
/// the `otel` feature).
#[cfg(all(feature = "gateway", feature = "otel"))]
pub(crate) type ClientSpanIds = crate::otel::SpanIds;
/// The CLIENT span's ids an upstream call's observation carries as its exemplar (none without
/// the `otel` feature).
#[cfg(all(feature = "gateway", not(feature = "otel")))]
pub(crate) type ClientSpanIds = std::convert::Infallible;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vitals;
    use rmcp::handler::server::router::tool::ToolRouter;
    use rmcp::{tool, tool_handler, tool_router, ServiceExt};
    use serde_json::{json, Value};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// The OpenTelemetry → Prometheus translation of a metric name with unit `s`
    /// (opentelemetry-specification compatibility/prometheus_and_openmetrics.md: `.` → `_`,
    /// the unit word appended).
    fn prometheus_name(otel: &str) -> String {
        format!("{}_seconds", otel.replace('.', "_"))
    }

    #[test]
    fn names_and_buckets_are_the_conventions() {
        // semantic-conventions-genai model/mcp/metrics.yaml.
        assert_eq!(
            SERVER_OPERATION_DURATION,
            prometheus_name("mcp.server.operation.duration")
        );
        assert_eq!(
            CLIENT_OPERATION_DURATION,
            prometheus_name("mcp.client.operation.duration")
        );
        let semconv = [
            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ];
        let ours: Vec<f64> = OPERATION_DURATION_BOUNDS
            .le()
            .iter()
            .map(|us| *us as f64 / 1e6)
            .collect();
        assert_eq!(ours, semconv);
        for (label, attribute) in SERVER_LABELS.iter().zip([
            "mcp.method.name",
            "gen_ai.tool.name",
            "gen_ai.prompt.name",
            "gen_ai.operation.name",
            "error.type",
            "rpc.response.status_code",
            "mcp.protocol.version",
            "network.transport",
        ]) {
            assert_eq!(*label, attribute.replace('.', "_"));
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_name("tools/call"), "tools/call");
        assert_eq!(method_name("x/\u{1F600}"), OTHER);
        assert_eq!(error_code(ErrorCode::INTERNAL_ERROR), "-32603");
        assert_eq!(error_code(ErrorCode(12345)), OTHER);
        assert!(!server_failed(ErrorCode::INVALID_PARAMS));
        assert!(server_failed(ErrorCode::INTERNAL_ERROR));
        assert_eq!(
            protocol_version(Some(&ProtocolVersion::V_2025_11_25)),
            "2025-11-25"
        );
        assert_eq!(protocol_version(None), "");
    }

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

        #[tool(description = "Always fails.")]
        async fn fail(&self) -> Result<CallToolResult, McpError> {
            Ok(CallToolResult::error(vec![ContentBlock::text("no")]))
        }

        #[tool(description = "Internal error.")]
        async fn crash(&self) -> Result<String, McpError> {
            Err(McpError::internal_error("boom", None))
        }
    }

    #[tool_handler(router = self.tool_router)]
    impl ServerHandler for Echo {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }
    }

    /// Serves `vitals.instrument(Echo)` over an in-memory pipe (a stdio client's view) and
    /// sends `messages` (those with an id wait for their answer); returns the serving task and
    /// the client's pipe, which keep the session open until dropped.
    async fn exchange(vitals: &Vitals, messages: Vec<Value>) -> impl Drop {
        let (client, server) = tokio::io::duplex(1 << 16);
        let handler = vitals.instrument(Echo::new());
        let serving = tokio::spawn(async move {
            let running = handler.serve(tokio::io::split(server)).await?;
            let _ = running.waiting().await;
            Ok::<_, rmcp::service::ServerInitializeError>(())
        });
        let (read, mut write) = tokio::io::split(client);
        let mut lines = BufReader::new(read).lines();
        for msg in messages {
            let mut line = msg.to_string();
            line.push('\n');
            write.write_all(line.as_bytes()).await.unwrap();
            let Some(id) = msg.get("id") else {
                continue;
            };
            loop {
                let l = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
                    .await
                    .expect("response within 10 s")
                    .unwrap()
                    .expect("server closed the pipe");
                let v: Value = serde_json::from_str(&l).unwrap();
                if v["id"] == *id {
                    break;
                }
            }
        }
        Session(serving, write, lines)
    }

    /// An open test session: dropping it ends the serving task.
    struct Session<W, L>(
        tokio::task::JoinHandle<Result<(), rmcp::service::ServerInitializeError>>,
        W,
        L,
    );

    impl<W, L> Drop for Session<W, L> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    #[tokio::test]
    async fn every_operation_is_observed_with_the_convention_labels() {
        let vitals = Vitals::builder().build().unwrap();
        let call = |id: u64, name: &str| {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": name, "arguments": {}}})
        };
        exchange(
            &vitals,
            vec![
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"}}}),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                call(2, "ping"),
                call(3, "fail"),
                call(4, "crash"),
                call(5, "no-such-tool"),
                json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}),
            ],
        )
        .await;
        let text = vitals.render(vitals_core::Format::Prometheus);
        let series = |method: &str, tool: &str, op: &str, err: &str, code: &str| {
            format!(
                "mcp_server_operation_duration_seconds_count{{mcp_method_name=\"{method}\",\
                 gen_ai_tool_name=\"{tool}\",gen_ai_prompt_name=\"\",gen_ai_operation_name=\"{op}\",\
                 error_type=\"{err}\",rpc_response_status_code=\"{code}\",\
                 mcp_protocol_version=\"2025-11-25\",network_transport=\"pipe\"}} 1\n"
            )
        };
        for needle in [
            series("initialize", "", "", "", ""),
            series("notifications/initialized", "", "", "", ""),
            series("tools/list", "", "", "", ""),
            series("ping", "", "", "", ""),
            series("tools/call", "ping", "execute_tool", "", ""),
            series("tools/call", "fail", "execute_tool", "tool_error", ""),
            series("tools/call", "crash", "execute_tool", "-32603", "-32603"),
            // An unknown tool: invalid params, the client's mistake, not an error of the server.
            series("tools/call", UNKNOWN_TOOL, "execute_tool", "", "-32602"),
            "mcp_server_operation_duration_seconds_bucket{mcp_method_name=\"ping\",gen_ai_tool_name=\"\",gen_ai_prompt_name=\"\",gen_ai_operation_name=\"\",error_type=\"\",rpc_response_status_code=\"\",mcp_protocol_version=\"2025-11-25\",network_transport=\"pipe\",le=\"300\"} 1\n".to_owned(),
            // The tool families use the same error_type values.
            "mcp_tool_errors_total{upstream=\"crash\",tool=\"crash\",error_type=\"-32603\"} 1\n".to_owned(),
            "mcp_tool_errors_total{upstream=\"\",tool=\"__unknown__\",error_type=\"-32602\"} 1\n".to_owned(),
        ] {
            assert!(text.contains(&needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn an_operation_whose_future_is_dropped_is_observed_once_as_cancelled() {
        let family: &'static ServerOperations = crate::registry::leak_built(server_operations);
        let start = |method| Observation {
            family,
            method,
            tool: Some("hang".to_owned()),
            prompt: None,
            version: "2025-11-25",
            transport: "tcp",
            started: Instant::now(),
            ending: Ending::without_answer("cancelled"),
            #[cfg(feature = "otel")]
            span: None,
        };
        // A request future dropped before its answer (the client went away, shutdown).
        drop(start("tools/call"));
        // One that ended: observed with its ending only.
        let mut answered = start("tools/call");
        answered.end(&Ok::<_, McpError>(()), |_| Ending::OK);
        drop(answered);
        let count = |error_type| {
            family
                .get([
                    "tools/call",
                    "hang",
                    "",
                    "execute_tool",
                    error_type,
                    "",
                    "2025-11-25",
                    "tcp",
                ])
                .map(|h| h.count())
        };
        assert_eq!(count("cancelled"), Some(1));
        assert_eq!(count(""), Some(1));
        assert_eq!(family.len(), 2);
    }
}
