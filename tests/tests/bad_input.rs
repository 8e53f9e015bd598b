//! Every bad input gets a clear, spec-conformant error, and the server keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vitals_tests::*;

fn still_serving(server: &Server) {
    assert_eq!(
        server.request("GET", "/livez", &[], b"").status,
        200,
        "server stopped serving"
    );
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("server_health", json!({}));
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

#[test]
fn oversized_body_is_413() {
    let server = Server::start(&["--max-body-bytes", "1024"]);
    let big = vec![b' '; 4096];
    let r = server.request("POST", "/mcp", &MCP_POST, &big);
    assert_eq!(r.status, 413, "{}", r.text());
    still_serving(&server);
}

#[test]
fn malformed_json_is_parse_error() {
    let server = Server::start(&[]);
    let r = server.request(
        "POST",
        "/mcp",
        &MCP_POST,
        b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("JSON-RPC error body");
    assert_eq!(v["error"]["code"], json!(-32700), "{v}");
    assert_eq!(v["id"], Value::Null);
    still_serving(&server);
}

#[test]
fn wrong_content_type_is_415() {
    let server = Server::start(&[]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let r = server.request(
        "POST",
        "/mcp",
        &[
            ("Content-Type", "text/plain"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    still_serving(&server);
}

#[test]
fn hostile_origin_is_403_and_no_origin_is_served() {
    let server = Server::start(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let hostile = [MCP_POST[0], MCP_POST[1], ("Origin", "http://evil.example")];
    let r = server.request("POST", "/mcp", &hostile, init.to_string().as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    let local = format!("http://127.0.0.1:{}", server.addr.port());
    let friendly = [MCP_POST[0], MCP_POST[1], ("Origin", local.as_str())];
    assert_eq!(
        server
            .request("POST", "/mcp", &friendly, init.to_string().as_bytes())
            .status,
        200
    );
    // No Origin at all (a non-browser client): served.
    assert_eq!(
        server
            .request("POST", "/mcp", &MCP_POST, init.to_string().as_bytes())
            .status,
        200
    );
    still_serving(&server);
}

#[test]
fn hostile_host_is_4xx() {
    let server = Server::start(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let headers = [MCP_POST[0], MCP_POST[1], ("Host", "evil.example:80")];
    let r = server.request("POST", "/mcp", &headers, init.to_string().as_bytes());
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    let port = server.addr.port().to_string();
    let localhost = format!("localhost:{port}");
    let ok = [MCP_POST[0], MCP_POST[1], ("Host", localhost.as_str())];
    assert_eq!(
        server
            .request("POST", "/mcp", &ok, init.to_string().as_bytes())
            .status,
        200
    );
    still_serving(&server);
}

#[test]
fn unknown_session_is_404() {
    let server = Server::start(&[]);
    let headers = [
        MCP_POST[0],
        MCP_POST[1],
        ("Mcp-Session-Id", "no-such-session"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let r = server.request("POST", "/mcp", &headers, body.as_bytes());
    assert_eq!(r.status, 404, "{}", r.text());
    still_serving(&server);
}

#[test]
fn bad_protocol_version_is_400() {
    let server = Server::start(&[]);
    let s = McpSession::open(server.addr);
    let headers = [
        MCP_POST[0],
        MCP_POST[1],
        ("Mcp-Session-Id", s.id.as_str()),
        ("MCP-Protocol-Version", "1999-01-01"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let r = server.request("POST", "/mcp", &headers, body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    still_serving(&server);
}

#[test]
fn unknown_tool_and_bad_params_are_32602() {
    let server = Server::start(&[]);
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("no_such_tool", json!({}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    let r = s.call_tool("server_metrics", json!({"format": 42}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    let r = s.call_tool("server_metrics", json!({"format": "xml"}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    still_serving(&server);
}

#[test]
fn slow_client_is_disconnected_after_header_timeout() {
    let server = Server::start(&["--header-timeout", "1"]);
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finishes its headers
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf); // returns when the server closes
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(9),
        "connection not closed after the header timeout"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "closed before the timeout: {waited:?}"
    );
    still_serving(&server);
}

#[test]
fn concurrent_connections_are_bounded() {
    let server = Server::start(&["--max-connections", "4", "--header-timeout", "30"]);
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Let the server accept them. (Not a /livez probe: probes are answered even over the limit,
    // see security.rs.)
    let refused = wait_for(Duration::from_secs(10), || {
        let mut c = TcpStream::connect(server.addr).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let r = parse_response(&buf)?;
        (r.status == 503).then_some(r)
    })
    .expect("a connection over the limit was not refused with 503");
    assert_eq!(refused.header("retry-after"), Some("1"));
    drop(idle);
    let back = wait_for(Duration::from_secs(10), || {
        let r = std::panic::catch_unwind(|| server.request("GET", "/livez", &[], b"")).ok()?;
        (r.status == 200).then_some(())
    });
    assert!(
        back.is_some(),
        "server did not recover after connections closed"
    );
    let m = server.request("GET", "/metrics", &[], b"").text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("http_connections_rejected_total ") && !l.ends_with(" 0")),
        "{m}"
    );
}

/// Custom lists replace the loopback defaults: `--allowed-hosts` (an entry without a port allows
/// every port) on /mcp, /metrics and /healthz, and `--allowed-origins` on /mcp.
#[test]
fn custom_allowed_hosts_and_origins_replace_the_loopback_defaults() {
    let server = Server::start(&[
        "--allowed-hosts",
        "vitals.internal,other.internal:9000",
        "--allowed-origins",
        "https://console.internal",
    ]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    .to_string();
    let post = |extra: &[(&str, &str)]| {
        let mut h = MCP_POST.to_vec();
        h.extend_from_slice(extra);
        server.request("POST", "/mcp", &h, init.as_bytes()).status
    };
    let get = |path: &str, host: &str| server.request("GET", path, &[("Host", host)], b"").status;
    let loopback = format!("127.0.0.1:{}", server.addr.port());
    assert_eq!(post(&[("Host", "vitals.internal:1234")]), 200);
    assert_eq!(post(&[("Host", "other.internal:9000")]), 200);
    for host in ["other.internal:9001", "evil.example", loopback.as_str()] {
        let s = post(&[("Host", host)]);
        assert!((400..500).contains(&s), "/mcp with Host {host}: {s}");
        assert_eq!(get("/metrics", host), 403, "/metrics with Host {host}");
        assert_eq!(get("/healthz", host), 403, "/healthz with Host {host}");
    }
    assert_eq!(get("/metrics", "vitals.internal"), 200);
    assert_eq!(get("/healthz", "other.internal:9000"), 200);
    let host = ("Host", "vitals.internal");
    assert_eq!(post(&[host, ("Origin", "https://console.internal")]), 200);
    let local_origin = format!("http://{loopback}");
    for origin in [local_origin.as_str(), "https://evil.example"] {
        assert_eq!(post(&[host, ("Origin", origin)]), 403, "Origin {origin}");
    }
}
