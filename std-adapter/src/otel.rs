//! OpenTelemetry traces (cargo feature `otel`): one SERVER span per MCP request, one CLIENT span
//! per request the gateway forwards upstream, exported over OTLP/HTTP (protobuf) in batches — and
//! only when an endpoint is configured.
//!
//! [`from_env`] starts the exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither `OTEL_SDK_DISABLED=true` nor
//! `OTEL_TRACES_EXPORTER=none`); the SDK reads the rest of the standard variables
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`). Unlike the OpenTelemetry default (export to
//! `http://localhost:4318`), nothing is exported without an endpoint, on purpose: a server that
//! nobody pointed at a collector sends nothing anywhere.
//!
//! Invariants:
//! - Off (no endpoint, or built without the feature), a request pays one relaxed atomic load.
//! - A span's parent is the W3C trace context the client put in the request's `_meta`
//!   (`traceparent`, `tracestate`: SEP-414), else the HTTP request's `traceparent` header.
//! - While a request is handled, its SERVER span is the current OpenTelemetry context (attached on
//!   every poll of the handler's future): log lines carry its `trace_id` and `span_id`
//!   ([`current_ids`]), and a request the gateway forwards gets a CLIENT span, its child.
//! - A forwarded request carries the CLIENT span's trace context in `params._meta` (`traceparent`,
//!   `tracestate`), replacing the client's: the client's context is the parent of our SERVER
//!   span, ours the parent of the upstream's. With tracing off, `_meta` is forwarded as the
//!   client sent it.
//! - Export never blocks a request: spans go to a bounded queue (2048 spans by default,
//!   `OTEL_BSP_MAX_QUEUE_SIZE`), exported in batches from the SDK's own thread. Every span that
//!   is not exported is counted: `otel_sdk_processor_span_processed_total{error_type="queue_full"}`
//!   (dropped at a full queue) plus `otel_sdk_exporter_span_exported_total{error_type!=""}`
//!   (the export failed or timed out); see [`register`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanId, SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use rmcp::model::RequestMetaObject;
use vitals_core::{label_enum, Counter, Family};

use crate::registry::{RegistryBuilder, RegistryError};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Name of the instrumentation scope and the default `service.name`.
const SCOPE: &str = "vitals";

/// Why the exporter could not start.
#[derive(Debug)]
pub struct OtelError(String);

impl std::fmt::Display for OtelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenTelemetry trace exporter: {}", self.0)
    }
}

impl std::error::Error for OtelError {}

/// The running exporter: [`Traces::shutdown`] exports what is queued (call it at shutdown).
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Flushes the queued spans and stops the exporter thread.
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the environment asks for trace export (see the [module docs](self)).
pub fn configured() -> bool {
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        && !std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none")
}

/// Starts the OTLP/HTTP exporter if the environment configures one; `None` when it does not.
/// Spans are recorded from then on, for the life of the process. Call it before building
/// [`Vitals`](crate::Vitals): the span pipeline's counters ([`register`]) are exposed by a
/// `Vitals` built while tracing is on.
pub fn from_env(service_name: &'static str) -> Result<Option<Traces>, OtelError> {
    if !configured() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| OtelError(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder();
    let resource = if set("OTEL_SERVICE_NAME") {
        resource
    } else {
        resource.with_service_name(service_name)
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Bounded::new(exporter, queue_capacity()))
        .with_resource(resource.build())
        .build();
    install(&provider)?;
    Ok(Some(Traces { provider }))
}

/// The export queue's capacity: `OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default (the SDK's rule).
fn queue_capacity() -> usize {
    std::env::var("OTEL_BSP_MAX_QUEUE_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2048)
}

label_enum! {
    /// How a span left the export queue (`otel.sdk.processor.span.processed`'s `error.type`).
    pub enum Processed: "error_type" {
        /// Handed to the exporter.
        Exporter = "",
        /// Dropped: the queue was full.
        QueueFull = "queue_full",
    }
}

label_enum! {
    /// How the export of a span ended (`otel.sdk.exporter.span.exported`'s `error.type`).
    pub enum Exported: "error_type" {
        /// The collector accepted it.
        Ok = "",
        /// The SDK's own export deadline passed.
        Timeout = "timeout",
        /// The exporter was already shut down.
        AlreadyShutdown = "already_shutdown",
        /// Refused, unreachable, no answer within `OTEL_EXPORTER_OTLP_TIMEOUT` (retries
        /// included), or failed otherwise.
        Other = "_OTHER",
    }
}

/// `otel_sdk_processor_span_processed_total{error_type}`: spans that left the export queue,
/// handed to the exporter (`""`) or dropped because the queue was full (`queue_full`).
pub static SPANS_PROCESSED: Family<Processed, Counter, 2> = Family::new();
/// `otel_sdk_exporter_span_exported_total{error_type}`: spans whose export ended, accepted
/// (`""`) or not (`timeout`, `already_shutdown`, `_OTHER`).
pub static SPANS_EXPORTED: Family<Exported, Counter, 4> = Family::new();

/// Registers the span pipeline's counters under their OpenTelemetry SDK semantic-convention
/// names (`otel.sdk.processor.span.processed`, `otel.sdk.exporter.span.exported`). Spans not
/// exported = `processed{error_type="queue_full"}` + `exported{error_type!=""}`; spans waiting
/// in the queue = spans ended − `processed` (both values), and once none waits,
/// `processed{error_type=""}` = `exported` (all values).
pub fn register(b: &mut RegistryBuilder) -> Result<(), RegistryError> {
    b.register(
        "otel_sdk_processor_span_processed_total",
        "Spans that left the trace export queue: handed to the exporter, or dropped because the queue was full (error_type=\"queue_full\") (OpenTelemetry otel.sdk.processor.span.processed).",
        None,
        &SPANS_PROCESSED,
    )?;
    b.register(
        "otel_sdk_exporter_span_exported_total",
        "Spans whose export to the collector ended: accepted, or not (error_type set) (OpenTelemetry otel.sdk.exporter.span.exported).",
        None,
        &SPANS_EXPORTED,
    )?;
    Ok(())
}

/// The span pipeline: the SDK's batch processor behind a gate that admits a span only while
/// fewer than `capacity` wait (the batch processor's own queue has the same capacity, so it
/// never drops one itself), counting every span that is dropped or whose export fails.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    /// Spans admitted and not yet handed to the exporter.
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl Bounded {
    fn new<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> Self {
        let waiting = Arc::new(AtomicUsize::new(0));
        let exporter = Counted {
            inner: exporter,
            waiting: waiting.clone(),
        };
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(capacity)
            .build();
        Bounded {
            inner: BatchSpanProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
            waiting,
            capacity,
        }
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Spans the sampler recorded but did not sample are not for export.
        if !span.span_context.is_sampled() {
            return;
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            SPANS_PROCESSED.labels(Processed::QueueFull).inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, counting each batch out of the queue and how its export ended.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    waiting: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.waiting.fetch_sub(n, Ordering::AcqRel);
        SPANS_PROCESSED.labels(Processed::Exporter).inc_by(n as u64);
        let result = self.inner.export(batch).await;
        let how = match &result {
            Ok(()) => Exported::Ok,
            Err(OTelSdkError::Timeout(_)) => Exported::Timeout,
            Err(OTelSdkError::AlreadyShutdown) => Exported::AlreadyShutdown,
            Err(_) => Exported::Other,
        };
        SPANS_EXPORTED.labels(how).inc_by(n as u64);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Whether spans are recorded ([`from_env`] started an exporter, or [`install`] ran).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Records spans with `provider` from now on (once per process).
pub fn install(provider: &SdkTracerProvider) -> Result<(), OtelError> {
    TRACER
        .set(provider.tracer(SCOPE))
        .map_err(|_| OtelError("already installed".into()))?;
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// Reads `_meta` keys as a propagation carrier (string values only).
struct Meta<'a>(&'a RequestMetaObject);

impl Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Reads HTTP headers as a propagation carrier.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The parent of a request's span: `_meta`'s trace context, else the HTTP `traceparent`.
fn parent(meta: &RequestMetaObject, headers: Option<&http::HeaderMap>) -> Context {
    let propagator = TraceContextPropagator::new();
    if meta.get("traceparent").is_some() {
        return propagator.extract(&Meta(meta));
    }
    match headers {
        Some(h) if h.contains_key("traceparent") => propagator.extract(&Headers(h)),
        _ => Context::new(),
    }
}

/// The trace and span id of the span current on this thread (the SERVER span of the request
/// being handled), when tracing is on and one is.
pub fn current_ids() -> Option<(TraceId, SpanId)> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
    })
}

/// The SERVER span of one MCP request, ended when dropped; [`ServerSpan::context`] is what the
/// handler runs in.
pub(crate) struct ServerSpan(Context);

/// What a request's span is made of.
pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub target: Option<&'a str>,
    pub request_id: String,
    pub meta: &'a RequestMetaObject,
    pub headers: Option<&'a http::HeaderMap>,
    pub client: Option<std::net::SocketAddr>,
    pub attributes: Vec<KeyValue>,
}

/// `{method} {target}`, or the method alone.
fn span_name(method: &'static str, target: Option<&str>) -> Cow<'static, str> {
    match target {
        Some(t) => format!("{method} {t}").into(),
        None => method.into(),
    }
}

/// The attributes naming what an operation is about: the tool (and `gen_ai.operation.name`
/// `execute_tool`) of a `tools/call`, the prompt of a `prompts/get`.
pub(crate) fn target_attributes(
    method: &str,
    target: Option<&str>,
    attributes: &mut Vec<KeyValue>,
) {
    match (method, target) {
        ("tools/call", Some(t)) => {
            attributes.push(KeyValue::new("gen_ai.tool.name", t.to_owned()));
            attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        ("prompts/get", Some(p)) => {
            attributes.push(KeyValue::new("gen_ai.prompt.name", p.to_owned()));
        }
        _ => {}
    }
}

/// Records how an operation ended on `cx`'s span: `error.type` and ERROR status with `message`
/// on failure, `rpc.response.status_code` when the answer was a JSON-RPC error.
fn record_end(
    cx: &Context,
    error_type: Option<&'static str>,
    status_code: Option<&'static str>,
    message: Option<String>,
) {
    let span = cx.span();
    if let Some(code) = status_code {
        span.set_attribute(KeyValue::new("rpc.response.status_code", code));
    }
    if let Some(t) = error_type {
        span.set_attribute(KeyValue::new("error.type", t));
        span.set_status(Status::error(message.unwrap_or_default()));
    }
}

impl ServerSpan {
    /// Starts the span of `request` when tracing is on (`request` is built only then).
    pub(crate) fn start<'a>(request: impl FnOnce() -> Request<'a>) -> Option<ServerSpan> {
        if !ENABLED.load(Ordering::Acquire) {
            return None;
        }
        let tracer = TRACER.get()?;
        let r = request();
        let mut attributes = r.attributes;
        attributes.push(KeyValue::new("mcp.method.name", r.method));
        attributes.push(KeyValue::new("jsonrpc.request.id", r.request_id));
        if let Some(h) = r.headers {
            if let Some(id) = h.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                attributes.push(KeyValue::new("mcp.session.id", id.to_owned()));
            }
        }
        if let Some(a) = r.client {
            attributes.push(KeyValue::new("client.address", a.ip().to_string()));
            attributes.push(KeyValue::new("client.port", i64::from(a.port())));
        }
        let builder = tracer
            .span_builder(span_name(r.method, r.target))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let parent = parent(r.meta, r.headers);
        let span = tracer.build_with_context(builder, &parent);
        Some(ServerSpan(parent.with_span(span)))
    }

    /// The context with this span current: the handler's future runs in it.
    pub(crate) fn context(&self) -> &Context {
        &self.0
    }

    /// Records how the request ended: `error.type` and ERROR status with `message` on failure,
    /// `rpc.response.status_code` when the answer was a JSON-RPC error.
    pub(crate) fn ended(
        &mut self,
        error_type: Option<&'static str>,
        status_code: Option<&'static str>,
        message: Option<String>,
    ) {
        record_end(&self.0, error_type, status_code, message);
    }
}

impl ServerSpan {
    /// The span's trace and span id, when it is sampled (for exemplars).
    pub(crate) fn ids(&self) -> Option<SpanIds> {
        let span = self.0.span();
        let c = span.span_context();
        (c.is_sampled() && c.is_valid()).then(|| SpanIds {
            trace_id: c.trace_id().to_bytes(),
            span_id: c.span_id().to_bytes(),
        })
    }
}

/// The ids of a sampled SERVER span, carried to the duration histograms (and, in a request's
/// extensions, to the tool-call instrumentation) as exemplars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanIds {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl SpanIds {
    /// The exemplar of an observation made now.
    pub(crate) fn exemplar(&self) -> vitals_core::Exemplar {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        vitals_core::Exemplar::new(self.trace_id, self.span_id).at_millis(now)
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

#[cfg(feature = "gateway")]
/// Writes `_meta` keys as a propagation carrier.
struct MetaMut<'a>(&'a mut RequestMetaObject);

#[cfg(feature = "gateway")]
impl opentelemetry::propagation::Injector for MetaMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value.into());
    }
}

#[cfg(feature = "gateway")]
/// What the CLIENT span of a forwarded request is made of.
pub(crate) struct Call<'a> {
    /// The method (`tools/call`, ...).
    pub method: &'static str,
    /// The tool or prompt name the upstream knows.
    pub target: Option<&'a str>,
    /// The upstream's name (`vitals.upstream`).
    pub upstream: &'a str,
    /// `pipe` (stdio) or `tcp` (HTTP).
    pub transport: &'static str,
    /// An HTTP upstream's URL: `server.address` and `server.port`.
    pub url: Option<&'a str>,
    /// The revision the upstream speaks.
    pub protocol_version: Option<String>,
}

#[cfg(feature = "gateway")]
/// The CLIENT span of one request the gateway forwards upstream, a child of the current context
/// (the client's request's SERVER span); ended when dropped, as `cancelled` unless
/// [`ClientSpan::ended`] said how.
pub(crate) struct ClientSpan {
    cx: Context,
    ended: bool,
}

#[cfg(feature = "gateway")]
impl ClientSpan {
    /// Starts the span of `call` when tracing is on (`call` is built only then).
    pub(crate) fn start<'a>(call: impl FnOnce() -> Call<'a>) -> Option<ClientSpan> {
        if !ENABLED.load(Ordering::Acquire) {
            return None;
        }
        let tracer = TRACER.get()?;
        let c = call();
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", c.method),
            KeyValue::new("network.transport", c.transport),
            KeyValue::new("vitals.upstream", c.upstream.to_owned()),
        ];
        target_attributes(c.method, c.target, &mut attributes);
        if let Some(v) = c.protocol_version {
            attributes.push(KeyValue::new("mcp.protocol.version", v));
        }
        if let Some(uri) = c.url.and_then(|u| u.parse::<http::Uri>().ok()) {
            if let Some(host) = uri.host() {
                attributes.push(KeyValue::new(
                    "server.address",
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                ));
            }
            let port = uri.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            });
            if let Some(p) = port {
                attributes.push(KeyValue::new("server.port", i64::from(p)));
            }
        }
        let builder = tracer
            .span_builder(span_name(c.method, c.target))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        let parent = Context::current();
        let span = tracer.build_with_context(builder, &parent);
        Some(ClientSpan {
            cx: parent.with_span(span),
            ended: false,
        })
    }

    /// Writes this span's trace context into `meta` (`traceparent`, `tracestate`), replacing any
    /// the client sent.
    pub(crate) fn inject(&self, meta: &mut RequestMetaObject) {
        meta.remove("traceparent");
        meta.remove("tracestate");
        TraceContextPropagator::new().inject_context(&self.cx, &mut MetaMut(meta));
    }

    /// The span's trace and span id, when it is sampled (the exemplar of the upstream call's
    /// `mcp_client_operation_duration_seconds` observation).
    pub(crate) fn ids(&self) -> Option<SpanIds> {
        let span = self.cx.span();
        let c = span.span_context();
        (c.is_sampled() && c.is_valid()).then(|| SpanIds {
            trace_id: c.trace_id().to_bytes(),
            span_id: c.span_id().to_bytes(),
        })
    }

    /// Records the JSON-RPC id the request got upstream.
    pub(crate) fn request_id(&self, id: String) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("jsonrpc.request.id", id));
    }

    /// Records how the call ended (see [`ServerSpan::ended`]).
    pub(crate) fn ended(
        &mut self,
        error_type: Option<&'static str>,
        status_code: Option<&'static str>,
        message: Option<String>,
    ) {
        self.ended = true;
        record_end(&self.cx, error_type, status_code, message);
    }
}

#[cfg(feature = "gateway")]
impl Drop for ClientSpan {
    fn drop(&mut self) {
        if !self.ended {
            record_end(&self.cx, Some("cancelled"), None, None);
        }
        self.cx.span().end();
    }
}

/// What the crate's unit tests trace with: one provider per test binary, installed once.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::Mutex;

    /// Keeps every exported span (the SDK's own in-memory exporter needs its `testing` feature,
    /// which would compile the SDK a second time for the tests).
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    impl Collected {
        /// The spans of trace `trace` ended so far, in the order they ended.
        pub(crate) fn of_trace(&self, trace: TraceId) -> Vec<SpanData> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.span_context.trace_id() == trace)
                .cloned()
                .collect()
        }
    }

    /// Turns tracing on for this test binary (once), exporting every span as it ends.
    pub(crate) fn collected() -> &'static Collected {
        static COLLECTED: OnceLock<Collected> = OnceLock::new();
        COLLECTED.get_or_init(|| {
            let exporter = Collected::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            install(&provider).unwrap();
            exporter
        })
    }

    /// A `_meta` carrying `traceparent` = `00-{trace}-{parent}-01`.
    pub(crate) fn meta_with_parent(trace: &str, parent: &str) -> RequestMetaObject {
        let mut meta = RequestMetaObject::default();
        meta.insert(
            "traceparent".into(),
            format!("00-{trace}-{parent}-01").into(),
        );
        meta
    }

    /// The SERVER span of a `tools/call` of `tool` whose `_meta` is `meta`.
    pub(crate) fn server_span(meta: &RequestMetaObject, tool: &str) -> ServerSpan {
        ServerSpan::start(|| Request {
            method: "tools/call",
            target: Some(tool),
            request_id: "1".into(),
            meta,
            headers: None,
            client: None,
            attributes: vec![],
        })
        .expect("tracing is on")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use std::sync::{Condvar, Mutex};

    fn attr(s: &SpanData, k: &str) -> Option<String> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn server_span_has_the_convention_name_kind_attributes_and_meta_parent() {
        let exporter = collected();
        let mut meta = RequestMetaObject::default();
        meta.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        let mut headers = http::HeaderMap::new();
        // The `_meta` context wins over the HTTP header's.
        headers.insert(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01"
                .parse()
                .unwrap(),
        );
        headers.insert("mcp-session-id", "s-1".parse().unwrap());
        let mut span = ServerSpan::start(|| Request {
            method: "tools/call",
            target: Some("get-weather"),
            request_id: "7".into(),
            meta: &meta,
            headers: Some(&headers),
            client: Some("127.0.0.1:4242".parse().unwrap()),
            attributes: vec![KeyValue::new("gen_ai.tool.name", "get-weather")],
        })
        .expect("tracing is on");
        // Sampled: its ids are the exemplar of the observations made for it.
        let ids = span.ids().expect("a sampled span has ids");
        let exemplar = ids.exemplar();
        assert_eq!(
            exemplar.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")
                .unwrap()
                .to_bytes()
        );
        assert_eq!(
            exemplar.span_id(),
            span.0.span().span_context().span_id().to_bytes()
        );
        assert!(exemplar.timestamp_millis().is_some());
        span.ended(Some("-32603"), Some("-32603"), Some("boom".into()));
        drop(span);

        // Only the HTTP header: it is the parent.
        let empty = RequestMetaObject::default();
        drop(ServerSpan::start(|| Request {
            method: "tools/list",
            target: None,
            request_id: "8".into(),
            meta: &empty,
            headers: Some(&headers),
            client: None,
            attributes: vec![],
        }));

        // A parent that was not sampled: neither is the span (the default parent-based sampler),
        // and it gives no exemplar (nor is it exported).
        let mut unsampled = RequestMetaObject::default();
        unsampled.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".into(),
        );
        let span = ServerSpan::start(|| Request {
            method: "ping",
            target: None,
            request_id: "9".into(),
            meta: &unsampled,
            headers: None,
            client: None,
            attributes: vec![],
        })
        .expect("tracing is on");
        assert_eq!(span.ids(), None);
        drop(span);

        let spans =
            exporter.of_trace(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "tools/call get-weather");
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(
            s.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(s.status, Status::error("boom"));
        for (k, v) in [
            ("mcp.method.name", "tools/call"),
            ("gen_ai.tool.name", "get-weather"),
            ("jsonrpc.request.id", "7"),
            ("mcp.session.id", "s-1"),
            ("client.address", "127.0.0.1"),
            ("client.port", "4242"),
            ("error.type", "-32603"),
            ("rpc.response.status_code", "-32603"),
        ] {
            assert_eq!(attr(s, k).as_deref(), Some(v), "{k}");
        }
        let spans =
            exporter.of_trace(TraceId::from_hex("11111111111111111111111111111111").unwrap());
        assert_eq!(spans.len(), 1);
        let t = &spans[0];
        assert_eq!(t.name, "tools/list");
        assert_eq!(t.status, Status::Unset);
    }

    #[cfg(feature = "gateway")]
    #[test]
    fn client_span_is_the_server_spans_child_and_replaces_the_meta_context() {
        let exporter = collected();
        let trace = "5bf92f3577b34da6a3ce929d0e0e4736";
        let mut meta = meta_with_parent(trace, "00f067aa0ba902b7");
        meta.insert("tracestate".into(), "vendor=client".into());
        meta.insert("other".into(), "kept".into());
        let server = server_span(&meta, "weather_get");
        let server_id = server.context().span().span_context().span_id();
        // The gateway forwards inside the SERVER span's context.
        let mut forwarded = meta.clone();
        let mut client = {
            let _in_request = server.context().clone().attach();
            assert_eq!(
                current_ids(),
                Some((TraceId::from_hex(trace).unwrap(), server_id))
            );
            ClientSpan::start(|| Call {
                method: "tools/call",
                target: Some("get"),
                upstream: "weather",
                transport: "tcp",
                url: Some("http://127.0.0.1:9000/mcp"),
                protocol_version: Some("2025-11-25".into()),
            })
            .expect("tracing is on")
        };
        assert_eq!(current_ids(), None, "nothing is current outside a request");
        client.inject(&mut forwarded);
        client.request_id("3".into());
        client.ended(Some("tool_error"), None, None);
        let client_id = client.cx.span().span_context().span_id();
        drop(client);
        // Dropped without an ending: cancelled.
        let cancelled = {
            let _in_request = server.context().clone().attach();
            ClientSpan::start(|| Call {
                method: "resources/read",
                target: None,
                upstream: "files",
                transport: "pipe",
                url: None,
                protocol_version: None,
            })
        };
        drop(cancelled);
        drop(server);

        assert_eq!(
            forwarded["traceparent"],
            format!("00-{trace}-{client_id}-01").as_str(),
            "the upstream's parent is our CLIENT span"
        );
        assert_eq!(forwarded["tracestate"], "vendor=client");
        assert_eq!(forwarded["other"], "kept");
        let spans = exporter.of_trace(TraceId::from_hex(trace).unwrap());
        let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(
            names,
            ["tools/call get", "resources/read", "tools/call weather_get"]
        );
        let (c, r, s) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(s.span_context.span_id(), server_id);
        assert_eq!(c.span_kind, SpanKind::Client);
        assert_eq!(c.span_context.span_id(), client_id);
        assert_eq!(c.parent_span_id, server_id);
        assert_eq!(r.parent_span_id, server_id);
        for (k, v) in [
            ("mcp.method.name", "tools/call"),
            ("gen_ai.tool.name", "get"),
            ("gen_ai.operation.name", "execute_tool"),
            ("network.transport", "tcp"),
            ("server.address", "127.0.0.1"),
            ("server.port", "9000"),
            ("mcp.protocol.version", "2025-11-25"),
            ("jsonrpc.request.id", "3"),
            ("vitals.upstream", "weather"),
            ("error.type", "tool_error"),
        ] {
            assert_eq!(attr(c, k).as_deref(), Some(v), "{k}");
        }
        assert_eq!(c.status, Status::error(""));
        assert_eq!(attr(r, "error.type").as_deref(), Some("cancelled"));
        assert_eq!(attr(r, "network.transport").as_deref(), Some("pipe"));
        assert_eq!(attr(r, "server.address"), None);
    }

    /// An exporter that holds every export until released, then accepts or refuses it.
    #[derive(Debug, Clone, Default)]
    struct Held {
        open: Arc<(Mutex<bool>, Condvar)>,
        received: Arc<AtomicUsize>,
        refuse: bool,
    }

    impl Held {
        fn release(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
    }

    impl SpanExporter for Held {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            if self.refuse {
                return Err(OTelSdkError::InternalFailure("refused".into()));
            }
            self.received.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_stuck_collector_drops_spans_at_the_bounded_queue_and_every_drop_is_counted() {
        let counts = || {
            (
                SPANS_PROCESSED.labels(Processed::Exporter).get(),
                SPANS_PROCESSED.labels(Processed::QueueFull).get(),
                SPANS_EXPORTED.labels(Exported::Ok).get(),
                SPANS_EXPORTED.labels(Exported::Other).get(),
            )
        };
        for refuse in [false, true] {
            let before = counts();
            let exporter = Held {
                refuse,
                ..Held::default()
            };
            let provider = SdkTracerProvider::builder()
                .with_span_processor(Bounded::new(exporter.clone(), 4))
                .build();
            let tracer = provider.tracer("test");
            const ENDED: u64 = 200;
            for _ in 0..ENDED {
                // Never waits for the collector: the exporter is stuck until released.
                opentelemetry::trace::Span::end(&mut tracer.start("s"));
            }
            exporter.release();
            provider.shutdown().unwrap_or_else(|e| panic!("{e}"));
            let after = counts();
            let handed = after.0 - before.0;
            let full = after.1 - before.1;
            let (ok, failed) = (after.2 - before.2, after.3 - before.3);
            let received = exporter.received.load(Ordering::SeqCst) as u64;
            // At most the queue plus one batch in the exporter got through.
            assert!(full >= ENDED - 8, "{full}");
            assert_eq!(handed + full, ENDED, "every span left the queue once");
            assert_eq!(ok + failed, handed, "every export ended once");
            assert_eq!(full + failed, ENDED - received, "drops = ended - received");
            if refuse {
                assert_eq!((received, ok), (0, 0));
            } else {
                assert_eq!((ok, failed), (received, 0));
            }
        }
    }
}
