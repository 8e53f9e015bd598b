//! `/metrics` after tool calls: promtool accepts it, our strict checks pass, content negotiation,
//! gzip and the bearer token work.

use std::io::Read;

use serde_json::json;
use vitals_tests::*;

#[test]
fn promtool_accepts_live_metrics_after_tool_calls() {
    let server = Server::start(&[]);
    let mut s = McpSession::open(server.addr);
    for tool in [
        "server_health",
        "rate_limit_status",
        "circuit_breaker_status",
    ] {
        let r = s.call_tool(tool, json!({}));
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
    }
    let r = s.call_tool("server_metrics", json!({"format": "prometheus"}));
    assert!(r["result"]["structuredContent"]["text"]
        .as_str()
        .unwrap()
        .contains("mcp_tool_calls_total"));
    // A protocol error (bad params) and an unknown tool are counted too.
    let bad = s.call_tool("server_metrics", json!({"format": "xml"}));
    assert_eq!(bad["error"]["code"], json!(-32602), "{bad}");
    let unknown = s.call_tool("no_such_tool", json!({}));
    assert_eq!(unknown["error"]["code"], json!(-32602), "{unknown}");

    let m = server.request("GET", "/metrics", &[], b"");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = m.text();
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}");
    assert_eq!(strict_exposition_problems(&text), Vec::<String>::new());
    for needle in [
        "mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"ok\"} 1\n",
        "mcp_tool_calls_total{upstream=\"server_metrics\",tool=\"server_metrics\",status=\"jsonrpc_error\"} 1\n",
        "mcp_tool_errors_total{upstream=\"server_metrics\",tool=\"server_metrics\",error_type=\"-32602\"} 1\n",
        "mcp_tool_calls_total{upstream=\"\",tool=\"__unknown__\",status=\"jsonrpc_error\"} 1\n",
        "mcp_tool_duration_seconds_bucket{upstream=\"server_health\",tool=\"server_health\",le=\"+Inf\"} 1\n",
        "mcp_active_requests 0\n",
        // The OpenTelemetry MCP semantic-convention histogram, over HTTP: bad params are the
        // client's mistake (a status code, no error_type).
        "mcp_server_operation_duration_seconds_count{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"server_metrics\",gen_ai_prompt_name=\"\",gen_ai_operation_name=\"execute_tool\",error_type=\"\",rpc_response_status_code=\"-32602\",mcp_protocol_version=\"2025-11-25\",network_transport=\"tcp\"} 1\n",
        "mcp_server_operation_duration_seconds_count{mcp_method_name=\"initialize\",gen_ai_tool_name=\"\",gen_ai_prompt_name=\"\",gen_ai_operation_name=\"\",error_type=\"\",rpc_response_status_code=\"\",mcp_protocol_version=\"2025-11-25\",network_transport=\"tcp\"} 1\n",
        "mcp_server_operation_duration_seconds_bucket{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"server_health\",gen_ai_prompt_name=\"\",gen_ai_operation_name=\"execute_tool\",error_type=\"\",rpc_response_status_code=\"\",mcp_protocol_version=\"2025-11-25\",network_transport=\"tcp\",le=\"300\"} 1\n",
        "http_requests_total{method=\"POST\",path=\"/mcp\",status=\"200\"}",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "circuit_breaker_state{upstream=\"server_health\"} 0\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn openmetrics_only_when_asked_and_gzip_when_accepted() {
    let server = Server::start(&[]);
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = server.request("GET", "/metrics", &[("Accept", prom)], b"");
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));
    assert_eq!(
        strict_openmetrics_problems(&om.text()),
        Vec::<String>::new()
    );
    let text = server.request("GET", "/metrics", &[("Accept", "text/plain")], b"");
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("# EOF"));

    let gz = server.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut plain)
        .expect("valid gzip");
    assert!(
        plain.contains("# TYPE mcp_tool_calls_total counter"),
        "{plain}"
    );
    let (ok, out) = promtool_check(&plain);
    assert!(ok, "{out}");
    assert_eq!(strict_exposition_problems(&plain), Vec::<String>::new());
}

#[test]
fn metrics_token_is_required_when_set() {
    let server = Server::start(&["--metrics-token", "s3cret-token"]);
    let none = server.request("GET", "/metrics", &[], b"");
    assert_eq!(none.status, 401);
    assert!(none
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("Bearer"));
    let wrong = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret-tokem")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let short = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(short.status, 401);
    let ok = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret-token")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert!(
        ok.text()
            .contains("http_requests_total{method=\"GET\",path=\"/metrics\",status=\"401\"} 3\n"),
        "{}",
        ok.text()
    );
    // Health endpoints are not behind the token.
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}
