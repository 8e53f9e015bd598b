//! Trace context end to end with the official Python SDKs: the MCP Python SDK's client,
//! instrumented with the OpenTelemetry Python SDK (`tests/python/traced_client.py`), calls a tool
//! with tracing on, and every span goes to one OTLP receiver inside the test.
//! - Direct: vitals' SERVER span has the client's trace id, and its parent is the client's
//!   CLIENT span (`MCP send tools/call ...`, the one whose context the SDK put in `_meta`).
//! - Through the gateway: vitals' CLIENT span for the upstream call is a child of its SERVER
//!   span, and a FastMCP stdio upstream instrumented the same way
//!   (`tests/python/traced_upstream.py`) exports a SERVER span of the same trace whose parent is
//!   that CLIENT span: the gateway replaced the client's `_meta` context with its own.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use vitals_tests::*;

mod otlp_support;
use otlp_support::{attr, drain, hex, receiver, Answer, Export, Received};

/// Runs `traced_client.py URL TOOL ARGS` exporting to `endpoint`; its JSON line.
fn traced_client(endpoint: &str, url: &str, tool: &str, args: &str) -> Value {
    let mut cmd = Command::new(require_program("python"));
    cmd.arg(repo_root().join("tests/python/traced_client.py"))
        .args([url, tool, args])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    let done = run_to_end(cmd, Duration::from_secs(90), "traced_client.py");
    assert!(
        done.status.success(),
        "traced_client.py failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    let line = done.stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", done.stdout))
}

/// Waits (≤ 60 s) until every span `wanted` names (service, kind, name) has arrived.
fn wait_spans(
    exports: &mpsc::Receiver<Export>,
    trace_id: &str,
    wanted: &[(&str, SpanKind, &str)],
) -> Vec<Received> {
    let mut seen = Vec::new();
    let find = |seen: &[Received], (service, kind, name): (&str, SpanKind, &str)| {
        seen.iter()
            .find(|r| {
                r.service == service
                    && r.span.kind == kind as i32
                    && r.span.name == name
                    && hex(&r.span.trace_id) == trace_id
            })
            .cloned()
    };
    let found = wait_for(Duration::from_secs(60), || {
        drain(exports, &mut seen);
        wanted
            .iter()
            .map(|w| find(&seen, *w))
            .collect::<Option<Vec<_>>>()
    });
    found.unwrap_or_else(|| {
        panic!(
            "not every span of trace {trace_id} arrived within 60 s: wanted {wanted:?}, got {:#?}",
            seen.iter()
                .map(|r| (&r.service, r.span.kind, &r.span.name, hex(&r.span.trace_id)))
                .collect::<Vec<_>>()
        )
    })
}

#[test]
fn python_sdk_client_context_is_the_parent_of_the_server_span() {
    let (port, exports) = receiver(Answer::After(Duration::ZERO));
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let out = traced_client(
        &endpoint,
        &format!("{}/mcp", server.url()),
        "server_health",
        "{}",
    );
    assert_eq!(out["is_error"], false, "{out}");
    let trace_id = out["trace_id"].as_str().unwrap();
    let spans = wait_spans(
        &exports,
        trace_id,
        &[
            (
                "py-client",
                SpanKind::Client,
                "MCP send tools/call server_health",
            ),
            (
                "vitals-server",
                SpanKind::Server,
                "tools/call server_health",
            ),
        ],
    );
    let (client, server_span) = (&spans[0].span, &spans[1].span);
    assert_eq!(
        hex(&client.parent_span_id),
        out["root_span_id"].as_str().unwrap(),
        "the SDK's CLIENT span is under the test's root span"
    );
    assert_eq!(hex(&server_span.trace_id), trace_id);
    assert_eq!(
        hex(&server_span.parent_span_id),
        hex(&client.span_id),
        "vitals' SERVER span is the child of the client's CLIENT span"
    );
    assert_eq!(
        attr(server_span, "jsonrpc.request.id"),
        attr(client, "jsonrpc.request.id")
    );
}

#[test]
fn through_the_gateway_the_upstreams_span_is_the_child_of_the_gateways_client_span() {
    let (port, exports) = receiver(Answer::After(Duration::ZERO));
    let endpoint = format!("http://127.0.0.1:{port}");
    let python = require_program("python").display().to_string();
    let upstream = repo_root()
        .join("tests/python/traced_upstream.py")
        .display()
        .to_string();
    // The upstream inherits the environment: it exports to the same receiver.
    let server = Server::start_with_env(
        &["--upstream-name", "weather", "--", &python, &upstream],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    server.wait_ready(Duration::from_secs(30));
    let out = traced_client(
        &endpoint,
        &format!("{}/mcp", server.url()),
        "forecast",
        r#"{"city": "Oslo"}"#,
    );
    assert_eq!(out["is_error"], false, "{out}");
    let trace_id = out["trace_id"].as_str().unwrap();
    let spans = wait_spans(
        &exports,
        trace_id,
        &[
            (
                "py-client",
                SpanKind::Client,
                "MCP send tools/call forecast",
            ),
            ("vitals-server", SpanKind::Server, "tools/call forecast"),
            ("vitals-server", SpanKind::Client, "tools/call forecast"),
            ("py-upstream", SpanKind::Server, "tools/call forecast"),
        ],
    );
    let [client, ours, forward, theirs] = [0, 1, 2, 3].map(|i| &spans[i].span);
    assert_eq!(hex(&ours.parent_span_id), hex(&client.span_id));
    assert_eq!(
        hex(&forward.parent_span_id),
        hex(&ours.span_id),
        "the CLIENT span is the child of the SERVER span"
    );
    assert_eq!(
        hex(&theirs.parent_span_id),
        hex(&forward.span_id),
        "the upstream's SERVER span is the child of the gateway's CLIENT span, not of the client's"
    );
    // What the upstream received in `_meta`: our CLIENT span's context, once.
    let text = out["text"].as_str().unwrap();
    assert_eq!(
        text,
        format!(
            "sunny in Oslo; traceparent=00-{trace_id}-{}-01",
            hex(&forward.span_id)
        )
    );
    for (k, v) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "forecast"),
        ("gen_ai.operation.name", "execute_tool"),
        ("network.transport", "pipe"),
        ("vitals.upstream", "weather"),
    ] {
        assert_eq!(attr(forward, k), v, "{k}");
    }
    assert!(!attr(forward, "jsonrpc.request.id").is_empty());
    assert_eq!(attr(forward, "error.type"), "");
}
