//! Every way a tool call ends updates the same bookkeeping exactly once (issue 16): the call is
//! counted under its outcome, its duration observed, and `mcp_active_requests` is back at 0.
//! Each exit path is driven from the outside and read back from `/metrics` (or, for shutdown,
//! from the log line written as the call is dropped). The call that waits on the client is the
//! conformance fixture `test_sampling`: it asks the client a question no one answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vitals_tests::*;

const SAMPLING: &str = "test_sampling";

/// Opens a session declaring the sampling capability; its id.
fn open(addr: SocketAddr) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "cancellation-tests", "version": "0"}}});
    let r = request(addr, "POST", "/mcp", &MCP_POST, init.to_string().as_bytes());
    assert_eq!(r.status, 200, "initialize: {}", r.text());
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    let n = post(
        addr,
        &id,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(n.status, 202, "initialized: {}", n.text());
    id
}

fn post(addr: SocketAddr, session: &str, message: &Value) -> HttpResponse {
    request(
        addr,
        "POST",
        "/mcp",
        &[
            MCP_POST[0],
            MCP_POST[1],
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        message.to_string().as_bytes(),
    )
}

/// `mcp_tool_calls_total` of `tool` with `status`.
fn calls(text: &str, tool: &str, status: &str) -> f64 {
    metric_value(
        text,
        &format!("mcp_tool_calls_total{{upstream=\"{tool}\",tool=\"{tool}\",status=\"{status}\"}}"),
    )
    .unwrap_or(0.0)
}

fn durations(text: &str, tool: &str) -> f64 {
    metric_value(
        text,
        &format!("mcp_tool_duration_seconds_count{{upstream=\"{tool}\",tool=\"{tool}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Waits (≤ 30 s) until the exposition shows no call in flight and `tool` counted once with
/// `status` (and once timed); returns the exposition. Panics with what it saw otherwise.
fn settles_counted(server: &Server, tool: &str, status: &str) -> String {
    let mut last = String::new();
    let ok = wait_for(Duration::from_secs(30), || {
        last = server.metrics();
        (metric_value(&last, "mcp_active_requests") == Some(0.0)
            && calls(&last, tool, status) == 1.0)
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "expected mcp_active_requests 0 and one {status} call of {tool}:\n{}",
        relevant(&last)
    );
    assert_eq!(durations(&last, tool), 1.0, "{}", relevant(&last));
    last
}

fn relevant(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("mcp_") && !l.contains("_bucket"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_completed_call_is_counted_once() {
    let server = Server::start(&["--conformance-fixtures"]);
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("test_simple_text", json!({}));
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
    settles_counted(&server, "test_simple_text", "ok");
}

#[test]
fn a_failed_call_is_counted_once() {
    let server = Server::start(&["--conformance-fixtures"]);
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("test_error_handling", json!({}));
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    let text = settles_counted(&server, "test_error_handling", "tool_error");
    assert_eq!(
        metric_value(
            &text,
            "mcp_tool_errors_total{upstream=\"test_error_handling\",tool=\"test_error_handling\",error_type=\"tool_error\"}"
        ),
        Some(1.0),
        "{}",
        relevant(&text)
    );
}

/// The bug of issue 16: `notifications/cancelled` for a call that waits on the client left the
/// call in flight for ever, uncounted.
#[test]
fn a_call_cancelled_by_the_client_is_counted_as_cancelled() {
    let server = Server::start(&["--conformance-fixtures"]);
    let session = open(server.addr);
    let mut stream = start_sampling_call(server.addr, &session, 5);
    assert_eq!(server.metric("mcp_active_requests"), Some(1.0));
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 5, "reason": "user pressed stop"}});
    assert_eq!(post(server.addr, &session, &cancel).status, 202);
    settles_counted(&server, SAMPLING, "cancelled");
    // The stream carries no answer to a cancelled request (the spec: the receiver "SHOULD NOT
    // send a response"); it ends.
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let rest = read_until(&mut stream, b"LLM response", Duration::from_secs(2));
    assert!(
        !String::from_utf8_lossy(&rest).contains("LLM response"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // The session still serves.
    let mut again = McpSession::resume(server.addr, session);
    let r = again.call_tool("test_simple_text", json!({}));
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

/// A client that closes the connection its answer would come on has gone away: the call is
/// cancelled, not left waiting for the session's idle timeout.
#[test]
fn a_call_whose_connection_drops_is_counted_as_cancelled() {
    let server = Server::start(&["--conformance-fixtures"]);
    let session = open(server.addr);
    let stream = start_sampling_call(server.addr, &session, 9);
    assert_eq!(server.metric("mcp_active_requests"), Some(1.0));
    drop(stream);
    settles_counted(&server, SAMPLING, "cancelled");
    // The id is free again and the session serves.
    let r = post(
        server.addr,
        &session,
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Closing the session (DELETE) ends the calls in it.
#[test]
fn a_call_in_a_deleted_session_is_counted_as_cancelled() {
    let server = Server::start(&["--conformance-fixtures"]);
    let session = open(server.addr);
    let _stream = start_sampling_call(server.addr, &session, 3);
    let r = request(
        server.addr,
        "DELETE",
        "/mcp",
        &[
            ("Mcp-Session-Id", session.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        b"",
    );
    assert!(
        r.status == 200 || r.status == 202,
        "{} {}",
        r.status,
        r.text()
    );
    settles_counted(&server, SAMPLING, "cancelled");
}

/// On SIGTERM a call still waiting when the drain ends is dropped and logged as cancelled.
#[test]
fn a_call_in_flight_at_shutdown_is_counted_as_cancelled() {
    let mut server = Server::start(&[
        "--conformance-fixtures",
        "--log-format",
        "json",
        "--drain-timeout",
        "1",
    ]);
    let session = open(server.addr);
    let _stream = start_sampling_call(server.addr, &session, 4);
    let pid = server.pid();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited = false;
    while Instant::now() < deadline {
        if server.child.try_wait().expect("wait").is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(exited, "did not exit within 30 s of SIGTERM");
    let logs: Vec<String> = server.logs.try_iter().collect();
    let counted: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"tool call\"") && l.contains(SAMPLING))
        .collect();
    assert_eq!(counted.len(), 1, "{logs:#?}");
    assert!(
        counted[0].contains("\"status\":\"cancelled\""),
        "{counted:?}"
    );
}

/// A call that outlives `--call-timeout` is stopped and counted once as a timeout: the client
/// gets a JSON-RPC error saying so, `mcp_active_requests` is back at 0, the call is timed, its
/// error typed `timeout`, and its breaker ticket comes back recorded as a failure (the breaker's
/// window holds exactly that one failed call, nothing in flight).
#[test]
fn a_call_that_outlives_the_call_timeout_is_counted_as_a_timeout() {
    let server = Server::start(&["--conformance-fixtures", "--call-timeout", "1"]);
    let session = open(server.addr);
    let mut stream = start_sampling_call(server.addr, &session, 6);
    let got = read_until(
        &mut stream,
        b"\"reason\":\"timeout\"",
        Duration::from_secs(30),
    );
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.contains("\"id\":6") && got.contains("\"code\":-32603") && got.contains("within 1 s"),
        "no timeout error on the call's stream: {got}"
    );
    let text = settles_counted(&server, SAMPLING, "timeout");
    assert_eq!(
        metric_value(
            &text,
            "mcp_tool_errors_total{upstream=\"test_sampling\",tool=\"test_sampling\",error_type=\"timeout\"}"
        ),
        Some(1.0),
        "{}",
        relevant(&text)
    );
    // Nothing else was counted for the call.
    for status in ["cancelled", "ok", "tool_error", "jsonrpc_error"] {
        assert_eq!(calls(&text, SAMPLING, status), 0.0, "{status}");
    }
    assert_eq!(
        metric_value(&text, "circuit_breaker_state{upstream=\"test_sampling\"}"),
        Some(0.0),
        "{}",
        relevant(&text)
    );
    let mut s = McpSession::resume(server.addr, session);
    let r = s.call_tool("circuit_breaker_status", json!({}));
    let breakers = &r["result"]["structuredContent"]["breakers"];
    let sampling = breakers
        .as_array()
        .and_then(|b| b.iter().find(|b| b["upstream"] == json!(SAMPLING)))
        .unwrap_or_else(|| panic!("no test_sampling breaker: {r}"));
    assert_eq!(sampling["window_calls"], json!(1), "{sampling}");
    assert_eq!(sampling["window_failures"], json!(1), "{sampling}");
    // The session still serves, and a quick call is not affected by the timeout.
    let r = s.call_tool("test_simple_text", json!({}));
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

/// The timeout is refused where it would not apply, and when it is not a duration.
#[test]
fn call_timeout_is_validated() {
    for (args, says) in [
        (
            &["--call-timeout", "0"][..],
            "expected a number of seconds > 0",
        ),
        (
            &["--call-timeout=-1"][..],
            "expected a number of seconds > 0",
        ),
        (
            &["--call-timeout", "inf"][..],
            "expected a number of seconds > 0",
        ),
        (
            &["--call-timeout", "5", "--", "true"][..],
            "--upstream-timeout",
        ),
    ] {
        let out = std::process::Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run vitals-server");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
