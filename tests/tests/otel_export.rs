//! Trace export over OTLP/HTTP: an OTLP receiver inside the test (loopback, the protobuf decoded
//! with `opentelemetry-proto`) receives the server's SERVER spans, with the parent the client put
//! in `_meta.traceparent`, and the JSON log line of the call carries the span's ids; without an
//! endpoint, nothing arrives. A collector that is slow or never answers, with a small queue:
//! every tool call completes, and every span not received is counted as dropped.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{json, Value};
use vitals_tests::*;

mod otlp_support;
use otlp_support::{attr, drain, hex, receiver, Answer};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// Calls `server_health` with a trace context in `_meta`.
fn traced_call(server: &Server) {
    let mut s = McpSession::open(server.addr);
    let r = s.call(
        "tools/call",
        json!({"name": "server_health", "arguments": {},
            "_meta": {"traceparent": format!("00-{TRACE_ID}-{PARENT_ID}-01")}}),
    );
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

#[test]
fn server_spans_arrive_over_otlp_http_with_the_meta_parent() {
    let (port, exports) = receiver(Answer::After(Duration::ZERO));
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &["--log-format", "json", "--log-level", "info"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "vitals-under-test"),
        ],
    );
    traced_call(&server);
    let mut seen = Vec::new();
    let span = wait_for(Duration::from_secs(60), || {
        drain(&exports, &mut seen);
        seen.iter()
            .find(|r| r.span.name == "tools/call server_health")
            .cloned()
    });
    let received = span.unwrap_or_else(|| {
        panic!(
            "no `tools/call server_health` span within 60 s; got {:?}",
            seen.iter().map(|r| &r.span.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(received.service, "vitals-under-test");
    let span = received.span;
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    assert_eq!(attr(&span, "mcp.method.name"), "tools/call");
    assert_eq!(attr(&span, "gen_ai.tool.name"), "server_health");
    assert_eq!(attr(&span, "network.transport"), "tcp");
    assert!(
        attr(&span, "mcp.session.id").len() > 8,
        "{}",
        attr(&span, "mcp.session.id")
    );
    // initialize and tools/call at least, every one a SERVER span.
    assert!(seen.iter().all(|r| r.span.kind == SpanKind::Server as i32));

    // The call's JSON log line names the span it was logged in.
    let logs = server.drain_logs();
    let line: Value = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "tool call" && v["tool"] == "server_health")
        .unwrap_or_else(|| panic!("no `tool call` log line: {logs:#?}"));
    assert_eq!(line["trace_id"], TRACE_ID, "{line}");
    assert_eq!(line["span_id"], hex(&span.span_id).as_str(), "{line}");
    // Lines outside a request carry none.
    let startup: Vec<Value> = server
        .startup_logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        startup.iter().all(|v| v.get("trace_id").is_none()),
        "{startup:?}"
    );
}

#[test]
fn disabled_or_none_exports_nothing() {
    // The endpoint names the receiver, but the SDK is disabled or the exporter is `none`.
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let (port, exports) = receiver(Answer::After(Duration::ZERO));
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = Server::start_with_env(
            &["--log-format", "json"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                off,
            ],
        );
        traced_call(&server);
        let metrics = server.metrics();
        assert!(
            !metrics.contains("otel_sdk_"),
            "{off:?}: span pipeline metrics without tracing"
        );
        let logs = server.drain_logs();
        assert!(
            logs.iter().all(|l| !l.contains("trace_id")),
            "{off:?}: {logs:#?}"
        );
        drop(server);
        assert!(
            exports.recv_timeout(Duration::from_secs(2)).is_err(),
            "{off:?}: spans were exported"
        );
    }
}

/// The span pipeline's counters: (handed to the exporter, dropped at the full queue, export
/// accepted, export failed).
fn pipeline(server: &Server) -> (f64, f64, f64, f64) {
    let m = server.metrics();
    let v = |s: &str| metric_value(&m, s).unwrap_or_else(|| panic!("no {s} in\n{m}"));
    let failed: f64 = ["timeout", "already_shutdown", "_OTHER"]
        .iter()
        .map(|t| {
            v(&format!(
                "otel_sdk_exporter_span_exported_total{{error_type=\"{t}\"}}"
            ))
        })
        .sum();
    (
        v("otel_sdk_processor_span_processed_total{error_type=\"\"}"),
        v("otel_sdk_processor_span_processed_total{error_type=\"queue_full\"}"),
        v("otel_sdk_exporter_span_exported_total{error_type=\"\"}"),
        failed,
    )
}

/// With a small queue and a collector that answers late or never, `CALLS` tool calls all
/// complete and the pipeline accounts for every span: dropped at the queue or failed export =
/// ended − received by the collector.
fn calls_keep_going_and_every_drop_is_counted(answer: Answer) {
    const CALLS: usize = 150;
    let (port, exports) = receiver(answer);
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
        ],
    );
    let mut s = McpSession::open(server.addr);
    let started = std::time::Instant::now();
    for _ in 0..CALLS {
        let r = s.call_tool("server_health", json!({}));
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
    }
    eprintln!(
        "{answer:?}: {CALLS} calls in {:?} (informative, not asserted)",
        started.elapsed()
    );
    // initialize and the calls: one SERVER span each.
    let ended = (CALLS + 1) as f64;
    // Wait until no span waits in the queue and no export is in flight.
    let settled = wait_for(Duration::from_secs(60), || {
        let (handed, full, ok, failed) = pipeline(&server);
        (handed + full == ended && ok + failed == handed).then_some((handed, full, ok, failed))
    });
    let (handed, full, ok, failed) = settled.unwrap_or_else(|| {
        panic!(
            "{answer:?}: the pipeline did not settle: {:?} for {ended} spans ended",
            pipeline(&server)
        )
    });
    let mut seen = Vec::new();
    // Exports answered 200 are on the channel once the exporter counted them.
    let received = drain(&exports, &mut seen) as f64;
    eprintln!("{answer:?}: handed {handed}, queue_full {full}, exported ok {ok}, failed {failed}, received {received}");
    assert!(full > 0.0, "{answer:?}: the small queue never overflowed");
    assert_eq!(
        ok, received,
        "{answer:?}: accepted exports = spans received"
    );
    assert_eq!(
        full + failed,
        ended - received,
        "{answer:?}: drops = ended - received"
    );
    match answer {
        Answer::Never => assert_eq!(received, 0.0),
        Answer::After(_) => assert!(received > 0.0, "{answer:?}: nothing received"),
    }
}

#[test]
fn a_slow_collector_never_slows_tool_calls_and_drops_are_counted() {
    calls_keep_going_and_every_drop_is_counted(Answer::After(Duration::from_millis(100)));
}

#[test]
fn a_collector_that_never_answers_never_slows_tool_calls_and_drops_are_counted() {
    calls_keep_going_and_every_drop_is_counted(Answer::Never);
}
