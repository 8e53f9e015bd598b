//! OpenTelemetry traces (cargo feature `otel`): one SERVER span per MCP request, exported over
//! OTLP/HTTP (protobuf) in batches — and only when an endpoint is configured.
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
//! - Export never blocks a request: spans go to the SDK's bounded batch queue (2048 spans by
//!   default, `OTEL_BSP_MAX_QUEUE_SIZE`), exported from its own thread; a full queue drops spans.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use rmcp::model::RequestMetaObject;

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
/// Spans are recorded from then on, for the life of the process.
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
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    install(&provider)?;
    Ok(Some(Traces { provider }))
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

/// The SERVER span of one MCP request, ended when dropped.
pub(crate) struct ServerSpan(opentelemetry_sdk::trace::Span);

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

impl ServerSpan {
    /// Starts the span of `request` when tracing is on (`request` is built only then).
    pub(crate) fn start<'a>(request: impl FnOnce() -> Request<'a>) -> Option<ServerSpan> {
        if !ENABLED.load(Ordering::Acquire) {
            return None;
        }
        let tracer = TRACER.get()?;
        let r = request();
        let name: Cow<'static, str> = match r.target {
            Some(t) => format!("{} {t}", r.method).into(),
            None => r.method.into(),
        };
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
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let span = tracer.build_with_context(builder, &parent(r.meta, r.headers));
        Some(ServerSpan(span))
    }

    /// Records how the request ended: `error.type` and ERROR status with `message` on failure,
    /// `rpc.response.status_code` when the answer was a JSON-RPC error.
    pub(crate) fn ended(
        &mut self,
        error_type: Option<&'static str>,
        status_code: Option<&'static str>,
        message: Option<String>,
    ) {
        if let Some(code) = status_code {
            self.0
                .set_attribute(KeyValue::new("rpc.response.status_code", code));
        }
        if let Some(t) = error_type {
            self.0.set_attribute(KeyValue::new("error.type", t));
            self.0
                .set_status(Status::error(message.unwrap_or_default()));
        }
    }
}

impl ServerSpan {
    /// The span's trace and span id, when it is sampled (for exemplars).
    pub(crate) fn ids(&self) -> Option<SpanIds> {
        let c = self.0.span_context();
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
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};

    /// Keeps every exported span (the SDK's own in-memory exporter needs its `testing` feature,
    /// which would compile the SDK a second time for the tests).
    #[derive(Clone, Debug, Default)]
    struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    impl Collected {
        fn get_finished_spans(&self) -> Result<Vec<SpanData>, std::convert::Infallible> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    #[test]
    fn server_span_has_the_convention_name_kind_attributes_and_meta_parent() {
        let exporter = Collected::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        install(&provider).unwrap();

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
            span.0.span_context().span_id().to_bytes()
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

        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s.name, "tools/call get-weather");
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(
            s.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            s.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(s.status, Status::error("boom"));
        let attr = |k: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
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
            assert_eq!(attr(k).as_deref(), Some(v), "{k}");
        }
        let t = &spans[1];
        assert_eq!(t.name, "tools/list");
        assert_eq!(
            t.span_context.trace_id(),
            TraceId::from_hex("11111111111111111111111111111111").unwrap()
        );
        assert_eq!(t.status, Status::Unset);
    }
}
