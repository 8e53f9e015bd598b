//! What one hostile client can do to the server (issue 17), each case read back from the
//! outside: status codes, the server's `/proc/<pid>/status` for memory, `/metrics`, log lines.
//! Clients that misbehave speak raw HTTP over sockets. Waits are bounded and generous; nothing
//! asserts that something happens faster than "within N seconds" with a large N.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vitals_tests::*;

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------- helpers

/// An `initialize` request declaring `capabilities`.
fn init_body(capabilities: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "security-tests", "version": "0"}}})
    .to_string()
}

/// Opens a session with `extra` headers on every request (e.g. `X-Forwarded-For`); its id.
fn open_session(addr: SocketAddr, extra: &[(&str, &str)], capabilities: Value) -> String {
    let mut h = vec![MCP_POST[0], MCP_POST[1]];
    h.extend_from_slice(extra);
    let r = request(addr, "POST", "/mcp", &h, init_body(capabilities).as_bytes());
    assert_eq!(r.status, 200, "initialize: {}", r.text());
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    let n = post_in(
        addr,
        &id,
        extra,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(n.status, 202, "initialized: {}", n.text());
    id
}

/// POSTs `message` in session `id` with `extra` headers.
fn post_in(addr: SocketAddr, id: &str, extra: &[(&str, &str)], message: &Value) -> HttpResponse {
    post_raw(addr, id, extra, message.to_string().as_bytes())
}

fn post_raw(addr: SocketAddr, id: &str, extra: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut h = vec![
        MCP_POST[0],
        MCP_POST[1],
        ("Mcp-Session-Id", id),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    h.extend_from_slice(extra);
    request(addr, "POST", "/mcp", &h, body)
}

/// Connects and writes `data`; reads time out after 30 s.
fn raw(addr: SocketAddr, data: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(data).expect("write");
    s
}

/// Reads until EOF (or error, or the 30 s read timeout).
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

/// The status code of a raw response.
fn status_of(raw: &[u8]) -> Option<u16> {
    std::str::from_utf8(raw.get(..12)?)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// A JSON-RPC error code from a response body.
fn error_code(r: &HttpResponse) -> Value {
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("JSON body expected: {} {}", r.status, r.text()));
    v["error"]["code"].clone()
}

/// `(VmHWM, VmRSS)` of `pid` in bytes.
fn memory(pid: u32) -> (u64, u64) {
    (
        proc_status_bytes(pid, "VmHWM:"),
        proc_status_bytes(pid, "VmRSS:"),
    )
}

/// How far the resident set of `server` peaks above its current size while `f` runs: the
/// high-water mark is reset first (`/proc/<pid>/clear_refs`, value 5).
fn peak_growth(server: &Server, f: impl FnOnce()) -> u64 {
    let pid = server.child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let (_, before) = memory(pid);
    f();
    let (peak, _) = memory(pid);
    peak.saturating_sub(before)
}

/// The value of the first `/metrics` line starting with `prefix`.
fn metric(server: &Server, prefix: &str) -> Option<f64> {
    let text = server.request("GET", "/metrics", &[], b"").text();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits (≤ 10 s) until the log lines stop arriving; returns them all.
fn settle_logs(server: &Server) -> Vec<String> {
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(l) = server.logs.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
        if Instant::now() > deadline {
            break;
        }
    }
    lines
}

/// A TCP connection to `addr` from the local address `from` (another loopback address: another
/// client).
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into())
        .expect("bind another loopback address");
    s.connect(&addr.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// `GET path` over `s` with `Connection: close`; the parsed response.
fn get_over(mut s: TcpStream, path: &str) -> Option<HttpResponse> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).ok()?;
    parse_response(&read_all(&mut s))
}

// ---------------------------------------------------------------- high

/// Connections that send headers and then one body byte used to hold every slot for ever; now
/// the body deadline closes them with 408, and /livez, /readyz are answered meanwhile.
#[test]
fn stalled_bodies_get_408_and_probes_are_answered_while_slots_are_full() {
    let server = Server::start(&[
        "--max-connections",
        "20",
        "--max-connections-per-client",
        "0",
        "--header-timeout",
        "2",
        "--body-timeout",
        "8",
    ]);
    let head = "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{";
    let mut stalled: Vec<TcpStream> = (0..20).map(|_| raw(server.addr, head.as_bytes())).collect();
    let full = wait_for(Duration::from_secs(6), || {
        let r = try_request(
            server.addr,
            "GET",
            "/healthz",
            &[("Host", "localhost")],
            b"",
        )
        .ok()?;
        (r.status == 503).then_some(r)
    });
    assert!(full.is_some(), "the stalled bodies did not hold the slots");
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    let ready = server.request("GET", "/readyz", &[], b"");
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (200, "{\"status\":\"ready\"}")
    );
    let started = Instant::now();
    for s in &mut stalled {
        let answer = read_all(s);
        assert_eq!(
            status_of(&answer),
            Some(408),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stalled bodies were not cut by the body timeout"
    );
    let back = wait_for(Duration::from_secs(10), || {
        let r = try_request(
            server.addr,
            "GET",
            "/healthz",
            &[("Host", "localhost")],
            b"",
        )
        .ok()?;
        (r.status == 200).then_some(())
    });
    assert!(back.is_some(), "slots not given back after the 408s");
    // Probes over the limit are counted as requests, refusals as rejected connections.
    assert!(metric(&server, "http_connections_rejected_total ").unwrap_or(0.0) >= 1.0);
    assert!(
        metric(
            &server,
            "http_requests_total{method=\"GET\",path=\"/livez\",status=\"200\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
}

/// One client (address) may hold only its share of the connection slots; another client and
/// the probes are still served.
#[test]
fn one_client_cannot_take_every_connection() {
    let server = Server::start(&[
        "--max-connections",
        "50",
        "--max-connections-per-client",
        "5",
        "--header-timeout",
        "30",
    ]);
    let idle: Vec<TcpStream> = (0..5).map(|_| raw(server.addr, b"")).collect();
    let refused = wait_for(Duration::from_secs(10), || {
        let r = try_request(
            server.addr,
            "GET",
            "/healthz",
            &[("Host", "localhost")],
            b"",
        )
        .ok()?;
        (r.status == 503).then_some(r)
    })
    .expect("a sixth connection from the same client was not refused");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Another client is served.
    let other = get_over(connect_from("127.0.0.2", server.addr), "/healthz").expect("response");
    assert_eq!(other.status, 200, "{}", other.text());
    // The capped client's probes are still answered.
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    drop(idle);
    let back = wait_for(Duration::from_secs(10), || {
        let r = try_request(
            server.addr,
            "GET",
            "/healthz",
            &[("Host", "localhost")],
            b"",
        )
        .ok()?;
        (r.status == 200).then_some(())
    });
    assert!(back.is_some(), "the client's share was not given back");
}

/// Opens a GET SSE stream in session `id` as forwarded client `xff`: the status, and the stream
/// (kept open while it lives).
fn sse(addr: SocketAddr, id: &str, xff: &str) -> (u16, TcpStream) {
    let head = format!(
        "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
         Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-11-25\r\nX-Forwarded-For: {xff}\r\n\r\n"
    );
    let mut s = raw(addr, head.as_bytes());
    let got = read_until(&mut s, b"\r\n\r\n", Duration::from_secs(20));
    let status = status_of(&got).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&got)));
    (status, s)
}

/// Long-lived SSE streams have a budget of their own (per session, per client, total), so they
/// cannot hold every slot; tool calls still work while it is spent.
#[test]
fn sse_streams_have_their_own_budget() {
    let server = Server::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--max-connections",
        "32",
        "--max-sse-streams",
        "4",
        "--max-sse-streams-per-client",
        "3",
        "--max-sse-streams-per-session",
        "2",
    ]);
    let addr = server.addr;
    let c1 = [("X-Forwarded-For", "10.0.0.1")];
    let a = open_session(addr, &c1, json!({}));
    let b = open_session(addr, &c1, json!({}));
    let c = open_session(addr, &[("X-Forwarded-For", "10.0.0.2")], json!({}));
    let d = open_session(addr, &[("X-Forwarded-For", "10.0.0.3")], json!({}));
    let (s, a1) = sse(addr, &a, "10.0.0.1");
    assert_eq!(s, 200);
    let (s, _a2) = sse(addr, &a, "10.0.0.1");
    assert_eq!(s, 200);
    assert_eq!(sse(addr, &a, "10.0.0.1").0, 429, "per-session cap");
    let (s, _b1) = sse(addr, &b, "10.0.0.1");
    assert_eq!(s, 200);
    assert_eq!(sse(addr, &b, "10.0.0.1").0, 429, "per-client cap");
    let (s, _c1) = sse(addr, &c, "10.0.0.2");
    assert_eq!(s, 200);
    assert_eq!(sse(addr, &d, "10.0.0.3").0, 503, "total budget");
    // Everything else still works.
    let call = post_in(
        addr,
        &d,
        &[("X-Forwarded-For", "10.0.0.3")],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "server_health", "arguments": {}}}),
    );
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    // A closed stream gives its share back.
    drop(a1);
    let reopened = wait_for(Duration::from_secs(10), || {
        let (s, stream) = sse(addr, &d, "10.0.0.3");
        (s == 200).then_some(stream)
    });
    assert!(
        reopened.is_some(),
        "a closed stream's share was not given back"
    );
}

/// A body trickled in one-byte chunks is copied into one buffer and cut after a bounded number
/// of frames: memory stays flat, the connection is refused.
#[test]
fn one_byte_chunks_cost_neither_memory_nor_a_slot_for_long() {
    let server = Server::start(&["--body-timeout", "60"]);
    let head = "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunks = 1_000_000usize; // 1 MB of body in 1-byte chunks (6 MB on the wire)
    let batch = "1\r\n \r\n".repeat(10_000);
    let mut sent = 0;
    let mut waited = Duration::ZERO;
    let growth = peak_growth(&server, || {
        let mut s = raw(server.addr, head.as_bytes());
        while sent < chunks {
            if s.write_all(batch.as_bytes()).is_err() {
                break; // the server gave up on this body
            }
            sent += 10_000;
        }
        // The body is never finished: only the server can end this exchange before the 30 s
        // read timeout (its body timeout is 60 s).
        let started = Instant::now();
        let answer = read_all(&mut s);
        waited = started.elapsed();
        if let Some(status) = status_of(&answer) {
            assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
        }
    });
    eprintln!(
        "one-byte chunks: {sent} chunks written, peak RSS growth {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert!(
        waited < Duration::from_secs(25),
        "the server kept reading one-byte chunks without bound"
    );
    assert!(growth < 16 * MIB, "peak grew {growth} bytes");
    let refused = wait_for(Duration::from_secs(10), || {
        metric(
            &server,
            "http_requests_total{method=\"POST\",path=\"/mcp\",status=\"400\"}",
        )
    });
    assert_eq!(refused, Some(1.0));
}

/// A ~1 MiB `[0,0,0,…]` body used to cost ~100 bytes of memory per byte in rmcp's parse; the
/// pre-pass refuses it first, the default body limit is 1 MiB, a legitimate large body costs a
/// small multiple of its size, and concurrent large parses are bounded.
#[test]
fn big_requests_cost_a_small_multiple_of_their_size() {
    fn element_bomb(bytes: usize) -> Vec<u8> {
        let head = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"server_health","arguments":{"x":["#;
        let mut b = head.to_vec();
        while b.len() + 6 < bytes {
            b.extend_from_slice(b"0,");
        }
        b.extend_from_slice(b"0]}}}");
        b
    }
    let mib = (MIB - 1024) as usize;

    // Over the default limit: 413 from the declared length, nothing read (only the head and a
    // few bytes are sent: the server answers without reading the rest).
    let server = Server::start(&[]);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{{",
        4 * MIB
    );
    let answer = read_until(
        &mut raw(server.addr, head.as_bytes()),
        b"\r\n\r\n",
        Duration::from_secs(20),
    );
    assert_eq!(
        status_of(&answer),
        Some(413),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Just under it: the pre-pass answers -32600 before rmcp parses.
    let bomb = element_bomb(mib);
    let growth = peak_growth(&server, || {
        let r = server.request("POST", "/mcp", &MCP_POST, &bomb);
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(error_code(&r), json!(-32600));
    });
    eprintln!(
        "1 MiB element bomb: peak RSS growth {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert!(
        growth < 8 * MIB,
        "peak grew {growth} bytes for a 1 MiB body"
    );

    // Eight at once.
    let growth = peak_growth(&server, || {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (addr, bomb) = (server.addr, bomb.clone());
                std::thread::spawn(move || request(addr, "POST", "/mcp", &MCP_POST, &bomb).status)
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 400);
        }
    });
    eprintln!(
        "8 concurrent 1 MiB element bombs: peak RSS growth {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert!(
        growth < 48 * MIB,
        "peak grew {growth} bytes for 8 MiB of bodies"
    );

    // Deep nesting: refused the same way.
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let r = server.request("POST", "/mcp", &MCP_POST, deep.as_bytes());
    assert_eq!(
        (r.status, error_code(&r)),
        (400, json!(-32600)),
        "{}",
        r.text()
    );

    // A legitimate 1 MiB request (a large string argument) is served, at a small multiple of
    // its size.
    let id = open_session(server.addr, &[], json!({}));
    let pad = "a".repeat(mib - 200);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "server_health", "arguments": {"pad": pad}}})
    .to_string();
    assert!(call.len() < MIB as usize);
    let growth = peak_growth(&server, || {
        let r = post_raw(server.addr, &id, &[], call.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    });
    eprintln!(
        "1 MiB legitimate tools/call: peak RSS growth {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert!(
        growth < 16 * MIB,
        "peak grew {growth} bytes for a 1 MiB body"
    );

    // With the old 4 MiB limit configured, the 4 MiB bomb is still refused cheaply.
    let big = Server::start(&["--max-body-bytes", "4194304"]);
    let bomb4 = element_bomb(4 * mib);
    let growth = peak_growth(&big, || {
        let r = big.request("POST", "/mcp", &MCP_POST, &bomb4);
        assert_eq!((r.status, error_code(&r)), (400, json!(-32600)));
    });
    eprintln!(
        "4 MiB element bomb (--max-body-bytes 4 MiB): peak RSS growth {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert!(
        growth < 24 * MIB,
        "peak grew {growth} bytes for a 4 MiB body"
    );
}

// ---------------------------------------------------------------- medium

/// With `--metrics-token`, `server_metrics` over /mcp needs the same bearer token.
#[test]
fn server_metrics_tool_needs_the_metrics_token() {
    let server = Server::start(&["--metrics-token", "s3cret"]);
    let id = open_session(server.addr, &[], json!({}));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "server_metrics", "arguments": {}}});
    let r = post_in(server.addr, &id, &[], &call);
    let m = r.messages().into_iter().find(|m| m["id"] == json!(1));
    let m = m.unwrap_or_else(|| panic!("no response: {}", r.text()));
    assert_eq!(m["error"]["code"], json!(-32600), "{m}");
    assert!(!r.text().contains("http_requests_total"), "{}", r.text());
    let r = post_in(
        server.addr,
        &id,
        &[("Authorization", "Bearer wrong")],
        &call,
    );
    assert!(!r.text().contains("http_requests_total"), "{}", r.text());
    let r = post_in(
        server.addr,
        &id,
        &[("Authorization", "Bearer s3cret")],
        &call,
    );
    assert!(r.text().contains("http_requests_total"), "{}", r.text());
    // Without a token configured the tool works as before.
    let open = Server::start(&[]);
    let mut s = McpSession::open(open.addr);
    let m = s.call_tool("server_metrics", json!({}));
    assert_eq!(m["result"]["isError"], json!(false), "{m}");
}

/// A JSON-RPC id with a newline and ESC codes cannot forge or colour a text log line.
#[test]
fn text_logs_escape_control_characters() {
    let server = Server::start(&[]);
    let id = open_session(server.addr, &[], json!({}));
    let evil = "x\n2030-01-01T00:00:00.000000Z  INFO forged: admin logged in\u{1b}[31m";
    let r = post_in(
        server.addr,
        &id,
        &[],
        &json!({"jsonrpc": "2.0", "id": evil, "method": "tools/call",
            "params": {"name": format!("no_such_tool{evil}"), "arguments": {}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = settle_logs(&server);
    assert!(
        lines.iter().any(|l| l.contains("response error")),
        "rmcp's error line is gone: {lines:?}"
    );
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "raw ESC in a log line: {l:?}");
        assert!(!l.starts_with("2030-01-01"), "forged log line: {l:?}");
    }
    assert!(
        lines.iter().any(|l| l.contains("x\\n2030-01-01")),
        "the id is not shown escaped: {lines:?}"
    );
}

/// Logs stay bounded: a 900 KB notification and a huge clientInfo do not reach the log, no field
/// is longer than its bound, /livez is not logged at info, and floods of 429s and refused
/// connections are sampled.
#[test]
fn log_volume_is_bounded() {
    let server = Server::start(&["--rate-limit", "40/1m", "--max-connections", "4"]);
    let addr = server.addr;
    let big = "B".repeat(900_000);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": big, "version": "0"}}});
    let r = request(addr, "POST", "/mcp", &MCP_POST, init.to_string().as_bytes());
    assert_eq!(r.status, 200);
    let id = open_session(addr, &[], json!({}));
    let n = post_in(
        addr,
        &id,
        &[],
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 99, "reason": big}}),
    );
    assert_eq!(n.status, 202, "{}", n.text());
    for _ in 0..10 {
        assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
    }
    let lines = settle_logs(&server);
    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 8 * 1024, "a log line of {longest} bytes");
    assert!(
        !lines.iter().any(|l| l.contains("path=\"/livez\"")),
        "/livez logged at info"
    );

    // 429 flood: sampled to about one line per second.
    let started = Instant::now();
    let mut limited = 0;
    for _ in 0..300 {
        if server
            .request("GET", "/healthz", &[("Host", "localhost")], b"")
            .status
            == 429
        {
            limited += 1;
        }
    }
    let secs = started.elapsed().as_secs() + 2;
    assert!(limited > 200, "{limited} requests limited");
    let lines = settle_logs(&server);
    let logged = lines.iter().filter(|l| l.contains("status=429")).count() as u64;
    assert!(
        (1..=secs).contains(&logged),
        "{logged} lines for {limited} 429s in {secs} s"
    );

    // Refused-connection flood: sampled the same way.
    let idle: Vec<TcpStream> = (0..4).map(|_| raw(addr, b"")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    for _ in 0..100 {
        let mut s = raw(addr, b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let _ = read_all(&mut s);
    }
    let secs = started.elapsed().as_secs() + 2;
    drop(idle);
    let lines = settle_logs(&server);
    let logged = lines
        .iter()
        .filter(|l| l.contains("connection refused"))
        .count() as u64;
    assert!(
        (1..=secs).contains(&logged),
        "{logged} lines for 100 refused connections in {secs} s"
    );
}

/// Junk HTTP methods fold into `OTHER` instead of filling `http_requests_total`.
#[test]
fn junk_methods_fold_into_other() {
    let server = Server::start(&["--metrics-token", "t0ken"]);
    for i in 0..300 {
        let _ = try_request(server.addr, &format!("JUNK{i}"), "/livez", &[], b"");
    }
    // A real series created after the flood has its own line, not the overflow.
    assert_eq!(server.request("GET", "/metrics", &[], b"").status, 401);
    let m = server
        .request("GET", "/metrics", &[("Authorization", "Bearer t0ken")], b"")
        .text();
    assert!(!m.contains("JUNK"), "{m}");
    assert!(
        m.contains("http_requests_total{method=\"OTHER\",path=\"/livez\",status=\"200\"} 300"),
        "{m}"
    );
    assert!(
        m.contains("http_requests_total{method=\"GET\",path=\"/metrics\",status=\"401\"} 1"),
        "{m}"
    );
    assert!(
        !m.lines()
            .any(|l| l.starts_with("vitals_label_overflow_total") && !l.ends_with(" 0")),
        "{m}"
    );
}

// ---------------------------------------------------------------- low

/// An empty metrics token (flag or environment) refuses to start instead of disabling auth.
#[test]
fn empty_metrics_token_refuses_to_start() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        let done = run_to_end(cmd, Duration::from_secs(20), "vitals-server");
        (done.status, done.stderr)
    };
    let (status, err) = run(&["--metrics-token", ""], &[]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("metrics token must not be empty"), "{err}");
    // The variable is VITALS_METRICS_TOKEN (METRICS_TOKEN before the VITALS_ prefix).
    let (status, err) = run(&[], &[("METRICS_TOKEN", ""), ("VITALS_METRICS_TOKEN", "")]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("metrics token must not be empty"), "{err}");
    let (status, err) = run(
        &[],
        &[("METRICS_TOKEN", " "), ("VITALS_METRICS_TOKEN", " ")],
    );
    assert!(!status.success(), "{err}");
}

/// A session belongs to the client that created it: another client gets 404 for it (DELETE
/// included); DELETE of an unknown session is 404; session ids are not logged at info.
#[test]
fn sessions_are_bound_to_their_creator() {
    let server = Server::start(&["--trusted-proxy", "127.0.0.1", "--log-level", "info"]);
    let addr = server.addr;
    let owner = [("X-Forwarded-For", "10.0.0.1")];
    let thief = [("X-Forwarded-For", "10.0.0.2")];
    let id = open_session(addr, &owner, json!({}));
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(post_in(addr, &id, &thief, &list).status, 404);
    let del = |extra: &[(&str, &str)], id: &str| {
        let mut h = vec![
            ("Mcp-Session-Id", id),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        h.extend_from_slice(extra);
        request(addr, "DELETE", "/mcp", &h, b"").status
    };
    assert_eq!(del(&thief, &id), 404);
    assert_eq!(
        post_in(addr, &id, &owner, &list).status,
        200,
        "session lost"
    );
    assert_eq!(del(&owner, "no-such-session"), 404);
    let d = del(&owner, &id);
    assert!((200..300).contains(&d), "{d}");
    assert_eq!(post_in(addr, &id, &owner, &list).status, 404);
    assert_eq!(del(&owner, &id), 404);
    // Without a proxy in front, the address itself is the identity: the thief's forged header
    // does not help.
    let direct = Server::start(&[]);
    let id2 = open_session(direct.addr, &[], json!({}));
    let r = post_in(direct.addr, &id2, &thief, &list);
    assert_eq!(r.status, 200, "same address, same client: {}", r.text());
    let lines = settle_logs(&server);
    assert!(
        !lines.iter().any(|l| l.contains(&id)),
        "session id in the logs: {lines:?}"
    );
}

/// A second request reusing the id of one in flight in the same session is refused (-32600);
/// once the first has been answered the id may be used again.
#[test]
fn duplicate_request_ids_are_refused_while_in_flight() {
    let server = Server::start(&["--conformance-fixtures"]);
    let addr = server.addr;
    let id = open_session(addr, &[], json!({"sampling": {}}));
    // test_sampling asks the client a question and waits: the call stays in flight.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "test_sampling", "arguments": {"prompt": "hi"}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {id}\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    );
    let mut first = raw(addr, head.as_bytes());
    let got = read_until(
        &mut first,
        b"sampling/createMessage",
        Duration::from_secs(20),
    );
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.contains("sampling/createMessage"), "{got}");
    let dup = post_raw(addr, &id, &[], call.as_bytes());
    assert_eq!(dup.status, 400, "{}", dup.text());
    let v: Value = serde_json::from_slice(&dup.body).unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32600), json!(7))
    );
    // Another id is fine meanwhile.
    let other = post_in(
        addr,
        &id,
        &[],
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
    );
    assert_eq!(other.status, 200, "{}", other.text());
    // Answer the question: the first call completes, and id 7 is free again.
    let question: Value = got
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["method"] == "sampling/createMessage")
        .expect("sampling request");
    let answer = json!({"jsonrpc": "2.0", "id": question["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "hello"}, "model": "m"}});
    assert_eq!(post_in(addr, &id, &[], &answer).status, 202);
    let rest = read_until(&mut first, b"LLM response", Duration::from_secs(20));
    assert!(
        String::from_utf8_lossy(&rest).contains("LLM response"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    drop(first);
    let again = wait_for(Duration::from_secs(10), || {
        let r = post_in(
            addr,
            &id,
            &[],
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
        );
        (r.status == 200).then_some(())
    });
    assert!(again.is_some(), "id 7 still marked in flight");
}

/// Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For address; IPv6
/// clients share one HTTP budget per /64. Without --trusted-proxy the header is ignored.
#[test]
fn clients_are_keyed_by_forwarded_address_and_ipv6_64() {
    let server = Server::start(&["--trusted-proxy", "127.0.0.1", "--rate-limit", "3/1m"]);
    let get = |xff: &str| {
        server
            .request(
                "GET",
                "/healthz",
                &[("Host", "localhost"), ("X-Forwarded-For", xff)],
                b"",
            )
            .status
    };
    // Spoofed entries left of the proxy's own entry do not change the key.
    assert_eq!(get("6.6.6.6, 10.0.0.1"), 200);
    assert_eq!(get("7.7.7.7, 10.0.0.1"), 200);
    assert_eq!(get("10.0.0.1"), 200);
    assert_eq!(get("8.8.8.8, 10.0.0.1"), 429);
    assert_eq!(get("10.0.0.2"), 200);
    // One /64 is one client.
    assert_eq!(get("2001:db8:0:1::1"), 200);
    assert_eq!(get("2001:db8:0:1::2"), 200);
    assert_eq!(get("2001:db8:0:1:ffff::3"), 200);
    assert_eq!(get("2001:db8:0:1::4"), 429);
    assert_eq!(get("2001:db8:0:2::1"), 200);
    // No trusted proxy: the header is the client's word, ignored.
    let direct = Server::start(&["--rate-limit", "2/1m"]);
    let get = |xff: &str| {
        direct
            .request(
                "GET",
                "/healthz",
                &[("Host", "localhost"), ("X-Forwarded-For", xff)],
                b"",
            )
            .status
    };
    assert_eq!(get("1.1.1.1"), 200);
    assert_eq!(get("2.2.2.2"), 200);
    assert_eq!(get("3.3.3.3"), 429);
}

/// /metrics and /healthz check Host like /mcp does (403, DNS rebinding); two Host headers are
/// 400; valid JSON that is not JSON-RPC is 400 with -32600, not 415.
#[test]
fn host_checks_and_malformed_messages() {
    let server = Server::start(&[]);
    let evil = [("Host", "evil.example:8000")];
    let init = init_body(json!({}));
    for path in ["/metrics", "/healthz"] {
        let r = server.request("GET", path, &evil, b"");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    let mut h = vec![MCP_POST[0], MCP_POST[1]];
    h.extend_from_slice(&evil);
    assert_eq!(
        server.request("POST", "/mcp", &h, init.as_bytes()).status,
        403,
        "rmcp's answer on /mcp, for consistency"
    );
    assert_eq!(server.request("GET", "/livez", &evil, b"").status, 200);
    assert_eq!(
        server
            .request("GET", "/metrics", &[("Host", "localhost")], b"")
            .status,
        200
    );
    // Two Host headers.
    let two = [("Host", "localhost"), ("Host", "evil.example")];
    assert_eq!(server.request("GET", "/metrics", &two, b"").status, 400);
    let mut h = vec![MCP_POST[0], MCP_POST[1]];
    h.extend_from_slice(&two);
    assert_eq!(
        server.request("POST", "/mcp", &h, init.as_bytes()).status,
        400
    );
    // Valid JSON, not JSON-RPC.
    for (body, id) in [
        (json!({"foo": 1}), Value::Null),
        (json!([1, 2]), Value::Null),
        (json!({"jsonrpc": "2.0", "id": 5}), json!(5)),
        (
            json!({"jsonrpc": "2.0", "id": 6, "method": "initialize", "params": "nope"}),
            json!(6),
        ),
    ] {
        let r = server.request("POST", "/mcp", &MCP_POST, body.to_string().as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], json!(-32600), "{body}: {v}");
        assert_eq!(v["id"], id, "{body}: {v}");
    }
    let s = McpSession::open(server.addr);
    let r = s.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": 3}));
    assert_eq!(
        (r.status, error_code(&r)),
        (400, json!(-32600)),
        "{}",
        r.text()
    );
}

/// --max-connections above the open-file limit: the soft limit is raised to fit, or (hard limit
/// too low) the connection limit is lowered with a warning, and clients over it get 503
/// instead of hanging.
#[test]
fn max_connections_fit_the_open_file_limit() {
    let shell = |limits: &str, max: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{limits} && exec \"$0\" \"$@\""))
            .arg(server_bin())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                max,
                "--max-connections-per-client",
                "0",
                "--header-timeout",
                "30",
            ]);
        Server::start_command(cmd)
    };
    let soft_limit = |server: &Server| -> u64 {
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .expect("soft limit")
    };
    // A hard limit that allows it: the soft limit is raised.
    let hard: u64 = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    if hard >= 1100 {
        let raised = shell("ulimit -Sn 128", "1000");
        assert!(soft_limit(&raised) >= 1000, "soft limit not raised");
    }
    // A hard limit of 128: lowered to 128 - 64 = 64 connections, with a warning.
    let clamped = shell("ulimit -n 128", "1000");
    assert!(
        clamped
            .startup_logs
            .iter()
            .any(|l| l.contains("exceeds the open-file limit")),
        "no warning about the lowered limit: {:?}",
        clamped.startup_logs
    );
    let idle: Vec<TcpStream> = (0..64).map(|_| raw(clamped.addr, b"")).collect();
    let refused = wait_for(Duration::from_secs(15), || {
        let r = try_request(
            clamped.addr,
            "GET",
            "/healthz",
            &[("Host", "localhost")],
            b"",
        )
        .ok()?;
        (r.status == 503).then_some(())
    });
    assert!(
        refused.is_some(),
        "a connection over the lowered limit got no 503"
    );
    drop(idle);
}

#[test]
fn mcp_tokens_guard_mcp_and_key_per_client_limits() {
    let server = Server::start(&[
        "--mcp-token",
        "token-a",
        "--mcp-token",
        "token-b",
        "--client-tool-rate-limit",
        "2/1h",
    ]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}})
    .to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer token-"),
        Some("token-a"),
    ] {
        let mut headers = MCP_POST.to_vec();
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let r = server.request("POST", "/mcp", &headers, init.as_bytes());
        assert_eq!(r.status, 401, "{auth:?}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"mcp\""));
    }
    // Health and metrics are not behind the MCP token.
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
    // Two clients on one address, told apart by their tokens: each has its own budget.
    let mut a = McpSession::open_with_token(server.addr, Some("token-a"));
    let mut b = McpSession::open_with_token(server.addr, Some("token-b"));
    assert_eq!(
        a.call_tool("server_health", json!({}))["result"]["isError"],
        json!(false)
    );
    assert_eq!(
        a.call_tool("server_health", json!({}))["result"]["isError"],
        json!(false)
    );
    let refused = a.call_tool("server_health", json!({}));
    assert_eq!(
        refused["result"]["_meta"]["io.vitals/reason"],
        json!("rate_limited"),
        "{refused}"
    );
    let r = b.call_tool("server_health", json!({}));
    assert_eq!(
        r["result"]["isError"],
        json!(false),
        "token-b has its own budget: {r}"
    );
}
