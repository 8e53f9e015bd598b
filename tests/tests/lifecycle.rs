//! Rate limits (HTTP 429 and tool-level), JSON logs, and graceful drain on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vitals_tests::*;

#[test]
fn per_client_http_limit_answers_429_with_retry_after() {
    let server = Server::start(&["--rate-limit", "3/1m"]);
    for _ in 0..3 {
        assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    }
    let r = server.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // A new MCP session is the same client: still limited.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    assert_eq!(
        server
            .request("POST", "/mcp", &MCP_POST, init.to_string().as_bytes())
            .status,
        429
    );
    // Liveness and readiness are never limited.
    for _ in 0..5 {
        assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
        assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
    }
}

#[test]
fn per_tool_limit_is_a_tool_error_with_retry_after() {
    let server = Server::start(&["--tool-rate-limit", "2/1m"]);
    let mut s = McpSession::open(server.addr);
    for _ in 0..2 {
        assert_eq!(
            s.call_tool("server_health", json!({}))["result"]["isError"],
            json!(false)
        );
    }
    let r = s.call_tool("server_health", json!({}));
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    let retry = &r["result"]["_meta"]["io.vitals/retryAfterSeconds"];
    assert!(retry.as_u64().is_some_and(|s| (1..=60).contains(&s)), "{r}");
    assert!(r["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("retry after"));
    // Another tool has its own budget.
    assert_eq!(
        s.call_tool("rate_limit_status", json!({}))["result"]["isError"],
        json!(false)
    );
    let st = s.call_tool("rate_limit_status", json!({}));
    assert_eq!(
        st["result"]["structuredContent"]["tool"]["rejected_total"],
        json!(1),
        "{st}"
    );
    let m = server.request("GET", "/metrics", &[], b"").text();
    assert!(
        m.contains("mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"rate_limited\"} 1\n"),
        "{m}"
    );
}

#[test]
fn json_logs_have_one_line_per_request() {
    let server = Server::start(&["--log-format", "json"]);
    let mut s = McpSession::open(server.addr);
    s.call_tool("server_health", json!({}));
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    let lines = wait_for(Duration::from_secs(5), || {
        let l = server.drain_logs();
        l.iter()
            .any(|l| l.contains("\"tool\":\"server_health\""))
            .then_some(l)
    })
    .expect("no tool-call log line");
    let tool_line: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["tool"] == "server_health")
        .expect("tool log line is JSON");
    assert_eq!(tool_line["method"], "tools/call");
    assert_eq!(tool_line["status"], "ok");
    assert!(tool_line["duration_ms"].is_number(), "{tool_line}");
    let http_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "http request")
        .collect();
    assert!(
        http_lines
            .iter()
            .any(|v| v["path"] == "/mcp" && v["method"] == "POST" && v["status"] == 200),
        "{lines:?}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let mut server = Server::start(&["--conformance-fixtures", "--drain-timeout", "10"]);
    let s = McpSession::open(server.addr);
    let addr = server.addr;
    let id = s.id.clone();
    // test_tool_with_logging takes ~100 ms; SIGTERM arrives while it runs.
    let call = std::thread::spawn(move || {
        let s2 = McpSession::resume(addr, id);
        s2.post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "test_tool_with_logging", "arguments": {}}}))
    });
    std::thread::sleep(Duration::from_millis(40));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let r = call.join().expect("call thread");
    let done = r.messages().into_iter().find(|m| m["id"] == json!(7));
    assert!(
        done.is_some_and(|m| m["result"]["isError"] == json!(false)),
        "in-flight call lost: {}",
        r.text()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}
