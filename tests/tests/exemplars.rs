//! Exemplars end to end: a traced tool call (the test chooses the trace id, in `_meta.traceparent`)
//! leaves its trace and span id on the OpenMetrics bucket lines of `mcp_tool_duration_seconds` and
//! `mcp_server_operation_duration_seconds` (never in Prometheus text, which promtool and the strict
//! checker still accept), and a real Prometheus (Debian's 2.42, `--enable-feature=exemplar-storage`)
//! scraping the server returns them from `/api/v1/query_exemplars`. Without an OTLP endpoint, none
//! is recorded.

mod otlp_support;
use otlp_support::{receiver, Answer};
use std::time::Duration;

use serde_json::{json, Value};
use vitals_tests::*;

const TRACE_ID: &str = "5af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
const OPENMETRICS: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// Calls `tool` in a new session with the test's trace context in `_meta`.
fn traced_call(server: &Server, tool: &str) {
    let mut s = McpSession::open(server.addr);
    let r = s.call(
        "tools/call",
        json!({"name": tool, "arguments": {},
            "_meta": {"traceparent": format!("00-{TRACE_ID}-{PARENT_ID}-01")}}),
    );
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

/// The server's OpenMetrics exposition.
fn openmetrics(server: &Server) -> String {
    server
        .request("GET", "/metrics", &[("Accept", OPENMETRICS)], b"")
        .text()
}

/// The span id on the exemplar of the first `family` bucket line carrying `TRACE_ID`.
fn exemplar_span_id(text: &str, family: &str) -> Option<String> {
    let needle = format!(" # {{trace_id=\"{TRACE_ID}\",span_id=\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}_bucket{{")))
        .find_map(|l| l.split_once(&needle))
        .map(|(_, rest)| rest.chars().take(16).collect())
}

fn url_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `(trace_id, span_id)` of every exemplar Prometheus holds for `query`.
fn query_exemplars(prom: std::net::SocketAddr, query: &str) -> Vec<(String, String)> {
    let path = format!(
        "/api/v1/query_exemplars?query={}&start=0&end=4102444800",
        url_encode(query)
    );
    let Ok(r) = try_request(prom, "GET", &path, &[], b"") else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
        return Vec::new();
    };
    v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let l = |k: &str| e["labels"][k].as_str().unwrap_or("").to_owned();
            (l("trace_id"), l("span_id"))
        })
        .collect()
}

#[test]
fn a_traced_call_is_found_through_prometheus_exemplars() {
    // The spans are not what these tests are about (`otel_export.rs` checks them).
    let (port, _spans) = receiver(Answer::After(Duration::ZERO));
    let sink = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &sink),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    traced_call(&server, "server_health");

    // The exposition itself: both histograms carry the call's trace, with one span id (the
    // server span's, a child of the client's), valid OpenMetrics.
    let om = server.request("GET", "/metrics", &[("Accept", OPENMETRICS)], b"");
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = om.text();
    assert_eq!(strict_openmetrics_problems(&om), Vec::<String>::new());
    let tool_span = exemplar_span_id(&om, "mcp_tool_duration_seconds");
    let op_span = exemplar_span_id(&om, "mcp_server_operation_duration_seconds");
    let span = tool_span
        .clone()
        .unwrap_or_else(|| panic!("no exemplar with trace {TRACE_ID} in\n{om}"));
    assert_eq!(op_span, tool_span, "{om}");
    assert_eq!(span.len(), 16);
    assert!(span.bytes().all(|b| b.is_ascii_hexdigit()), "{span}");
    assert_ne!(
        span, PARENT_ID,
        "the exemplar names the server span, not its parent"
    );
    // Prometheus text 0.0.4 never carries them, and promtool accepts it.
    let plain = server.metrics();
    assert!(!plain.contains(TRACE_ID), "{plain}");
    assert!(!plain.contains(" # {"), "{plain}");
    let (ok, out) = promtool_check(&plain);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{plain}");
    assert_eq!(strict_exposition_problems(&plain), Vec::<String>::new());

    // A real Prometheus stores them (it negotiates OpenMetrics) and gives them back.
    let prometheus = Prometheus::scraping(server.addr, &["--enable-feature=exemplar-storage"]);
    let prom_addr = prometheus.addr;
    for family in [
        "mcp_tool_duration_seconds_bucket",
        "mcp_server_operation_duration_seconds_bucket",
    ] {
        let query = format!("{family}{{job=\"vitals\"}}");
        let mut seen = Vec::new();
        let found = wait_for(Duration::from_secs(60), || {
            seen = query_exemplars(prom_addr, &query);
            seen.iter().find(|(t, _)| t == TRACE_ID).cloned()
        });
        assert_eq!(
            found,
            Some((TRACE_ID.to_owned(), span.clone())),
            "{family}: Prometheus returned {seen:?}"
        );
    }
}

#[test]
fn without_tracing_no_exemplar_is_recorded() {
    let server = Server::start(&[]);
    traced_call(&server, "server_health");
    let om = openmetrics(&server);
    assert!(om.contains("mcp_tool_duration_seconds_bucket{"), "{om}");
    assert!(!om.contains(" # {"), "{om}");
    assert_eq!(strict_openmetrics_problems(&om), Vec::<String>::new());
}

/// Through the gateway, the upstream call's `mcp_client_operation_duration_seconds` bucket
/// carries the same trace with the CLIENT span's id: a child of the SERVER span, so its span id
/// differs from the server histograms' one.
#[test]
fn the_gateway_client_histogram_carries_the_client_span() {
    // The spans are not what these tests are about (`otel_export.rs` checks them).
    let (port, _spans) = receiver(Answer::After(Duration::ZERO));
    let sink = format!("http://127.0.0.1:{port}");
    let upstream = server_bin();
    let server = Server::start_with_env(
        &[
            "--upstream-name",
            "fx",
            "--",
            upstream.to_str().unwrap(),
            "--stdio",
            "--conformance-fixtures",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &sink),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    server.wait_ready(Duration::from_secs(30));
    traced_call(&server, "test_simple_text");
    let om = openmetrics(&server);
    assert_eq!(strict_openmetrics_problems(&om), Vec::<String>::new());
    let server_span = exemplar_span_id(&om, "mcp_server_operation_duration_seconds")
        .unwrap_or_else(|| panic!("no server exemplar with trace {TRACE_ID} in\n{om}"));
    let client_span = exemplar_span_id(&om, "mcp_client_operation_duration_seconds")
        .unwrap_or_else(|| panic!("no client exemplar with trace {TRACE_ID} in\n{om}"));
    assert_eq!(client_span.len(), 16);
    assert_ne!(client_span, server_span, "{om}");
    assert_ne!(client_span, PARENT_ID, "{om}");
}
