//! Rate limits (HTTP 429 and tool-level), JSON logs, graceful drain on SIGTERM, protocol versions
//! and the per-session log level.

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
    // Six logged requests, one after the other: initialize, initialized and a tool call on /mcp,
    // /metrics, /healthz, and last an unknown path whose line says every other line is in.
    // (/livez and /readyz log at debug: an orchestrator polls them.)
    let mut s = McpSession::open(server.addr);
    s.call_tool("server_health", json!({}));
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    assert_eq!(server.request("GET", "/metrics", &[], b"").status, 200);
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(server.request("GET", "/last", &[], b"").status, 404);
    let mut lines = Vec::new();
    let last = wait_for(Duration::from_secs(10), || {
        lines.extend(server.drain_logs());
        lines
            .iter()
            .any(|l| l.contains("\"path\":\"unmatched\""))
            .then_some(())
    });
    assert!(
        last.is_some(),
        "no log line for the last request: {lines:?}"
    );
    let json: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let http: Vec<(String, String, u64)> = json
        .iter()
        .filter(|v| v["message"] == "http request")
        .map(|v| {
            assert!(v["duration_ms"].is_number(), "{v}");
            (
                v["method"].as_str().unwrap_or("?").to_owned(),
                v["path"].as_str().unwrap_or("?").to_owned(),
                v["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = [
        ("POST", "/mcp", 200),
        ("POST", "/mcp", 202),
        ("POST", "/mcp", 200),
        ("GET", "/metrics", 200),
        ("GET", "/healthz", 200),
        ("GET", "unmatched", 404),
    ]
    .iter()
    .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
    .collect();
    assert_eq!(http, want, "one line per request, in order: {lines:#?}");
    let tool: Vec<&Value> = json
        .iter()
        .filter(|v| v["method"] == "tools/call")
        .collect();
    assert_eq!(tool.len(), 1, "one line per tool call: {tool:#?}");
    assert_eq!(tool[0]["tool"], "server_health");
    assert_eq!(tool[0]["status"], "ok");
    assert!(tool[0]["duration_ms"].is_number(), "{}", tool[0]);
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

/// The older protocol revisions are negotiated: `initialize` asking for 2025-06-18 or 2025-03-26
/// gets that version back, and requests carrying it in `MCP-Protocol-Version` are served.
#[test]
fn older_protocol_versions_are_negotiated() {
    let server = Server::start(&[]);
    for version in ["2025-06-18", "2025-03-26"] {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "vitals-tests", "version": "0"}}});
        let r = server.request("POST", "/mcp", &MCP_POST, init.to_string().as_bytes());
        assert_eq!(r.status, 200, "{version}: {}", r.text());
        let answer = r.messages().into_iter().find(|m| m["id"] == json!(0));
        assert_eq!(
            answer.as_ref().map(|m| &m["result"]["protocolVersion"]),
            Some(&json!(version)),
            "{}",
            r.text()
        );
        let id = r.header("mcp-session-id").expect("session id").to_owned();
        let headers = [
            MCP_POST[0],
            MCP_POST[1],
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", version),
        ];
        let post = |m: Value| server.request("POST", "/mcp", &headers, m.to_string().as_bytes());
        let n = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(n.status, 202, "{version}: {}", n.text());
        let l = post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        assert_eq!(l.status, 200, "{version}: {}", l.text());
        let tools = l.messages().into_iter().find(|m| m["id"] == json!(1));
        assert!(
            tools.is_some_and(|m| m["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "server_health"))),
            "{version}: {}",
            l.text()
        );
    }
}

/// `logging/setLevel` is honoured per session: the fixture tool's three `info` log notifications
/// (sent on the session's standalone `GET` stream) arrive at the default level, none after the
/// level is raised to `error`, three again after it is lowered to `debug` (so none of the quiet
/// call's was merely late); another session keeps its own level.
#[test]
fn logging_set_level_filters_log_notifications_per_session() {
    use std::io::Write as _;
    let server = Server::start(&["--conformance-fixtures"]);
    let open_stream = |s: &McpSession| {
        let mut t = std::net::TcpStream::connect(s.addr).expect("connect");
        t.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        write!(
            t,
            "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
             Mcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
            s.id
        )
        .unwrap();
        let head = read_until(&mut t, b"\r\n\r\n", Duration::from_secs(10));
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        t
    };
    // One call; then the log notifications that reach the stream within `wait`.
    let logs_of_one_call = |s: &mut McpSession, stream: &mut std::net::TcpStream, wait: u64| {
        let r = s.call_tool("test_tool_with_logging", json!({}));
        assert!(r.get("result").is_some(), "{r}");
        let got = read_until(
            stream,
            b"Tool execution completed",
            Duration::from_millis(wait),
        );
        String::from_utf8_lossy(&got)
            .matches("notifications/message")
            .count()
    };
    let mut quiet = McpSession::open(server.addr);
    let mut loud = McpSession::open(server.addr);
    let (mut quiet_stream, mut loud_stream) = (open_stream(&quiet), open_stream(&loud));
    assert_eq!(logs_of_one_call(&mut quiet, &mut quiet_stream, 10_000), 3);
    let r = quiet.call("logging/setLevel", json!({"level": "error"}));
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(logs_of_one_call(&mut quiet, &mut quiet_stream, 1_500), 0);
    assert_eq!(logs_of_one_call(&mut loud, &mut loud_stream, 10_000), 3);
    let r = quiet.call("logging/setLevel", json!({"level": "debug"}));
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(logs_of_one_call(&mut quiet, &mut quiet_stream, 10_000), 3);
}
