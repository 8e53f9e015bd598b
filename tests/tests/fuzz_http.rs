//! Random and adversarial input on every HTTP and MCP input path (issue 16): request lines,
//! headers, bodies, JSON-RPC shapes, `_meta`, session ids, `Accept` values for `/metrics`.
//! Every case must get a well-formed HTTP answer that is not a server error (5xx other than a
//! 503 refusal), the server must stay up and answer `/livez` after each batch, no call may stay
//! in flight, and memory must stay bounded. A fixed seed makes a failure reproducible;
//! `VITALS_FUZZ_CASES` (default 600, a few seconds) and `VITALS_FUZZ_SEED` run more or others.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use vitals_tests::*;

/// xorshift64*: small, seedable, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const WEIRD_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\u{202e}evil",
    "../../etc/passwd",
    "%00",
    "a\r\nInjected: 1",
    "😀",
    "\\ud800",
    "9999999999999999999999999",
    "-1",
    "null",
    "{}",
    "[]",
];

/// A JSON value of random shape, at most `depth` deep.
fn value(r: &mut Rng, depth: u32) -> Value {
    match r.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(r.below(2) == 0),
        2 => json!(r.next() as i64),
        3 => json!((r.next() as f64) / 7.0),
        4 => json!(r.pick(WEIRD_STRINGS)),
        5 => json!("x".repeat(r.below(300))),
        6 => Value::Array((0..r.below(5)).map(|_| value(r, depth - 1)).collect()),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..r.below(5) {
                let k = r.pick(&[
                    "_meta",
                    "id",
                    "method",
                    "params",
                    "name",
                    "arguments",
                    "progressToken",
                    "jsonrpc",
                    "x",
                ]);
                m.insert((*k).to_owned(), value(r, depth - 1));
            }
            Value::Object(m)
        }
    }
}

const METHODS: &[&str] = &[
    "initialize",
    "tools/call",
    "tools/list",
    "ping",
    "resources/read",
    "resources/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/cancelled",
    "notifications/initialized",
    "notifications/progress",
    "nope/nope",
    "",
];

/// A JSON-RPC-ish message: mostly well-formed envelopes with hostile parts.
fn message(r: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    if r.below(8) != 0 {
        m.insert("jsonrpc".into(), json!("2.0"));
    } else {
        m.insert("jsonrpc".into(), value(r, 1));
    }
    if r.below(4) != 0 {
        m.insert("method".into(), json!(r.pick(METHODS)));
    }
    match r.below(5) {
        0 => {}
        1 => {
            m.insert("id".into(), value(r, 1));
        }
        _ => {
            m.insert("id".into(), json!(r.below(1000)));
        }
    }
    let params = match r.below(6) {
        0 => value(r, 3),
        1 => {
            json!({"name": r.pick(&["server_health", "test_sampling", "test_simple_text", "nope"]),
                    "arguments": value(r, 2), "_meta": value(r, 2)})
        }
        2 => json!({"requestId": value(r, 1), "reason": value(r, 1)}),
        3 => json!({"_meta": {"progressToken": value(r, 1), "io.vitals/x": value(r, 2)}}),
        4 => json!({"protocolVersion": r.pick(&["2025-11-25", "2024-11-05", "1999-01-01", ""]),
                    "capabilities": value(r, 2), "clientInfo": value(r, 1)}),
        _ => json!({"uri": r.pick(WEIRD_STRINGS), "level": r.pick(WEIRD_STRINGS)}),
    };
    m.insert("params".into(), params);
    if r.below(10) == 0 {
        m.insert("result".into(), value(r, 2));
    }
    Value::Object(m)
}

const ACCEPTS: &[&str] = &[
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;q=0.1",
    "text/plain; version=0.0.4",
    "*/*",
    "text/*;q=0",
    "application/json",
    ";;;,,,",
    "application/openmetrics-text; q=abc",
    "text/event-stream",
    "",
];

/// Ids of every JSON type, and numbers no integer type holds (raw JSON text).
const IDS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1.5",
    "-1",
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "9007199254740993",
    "\"\"",
    "\"1\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "[]",
    "[1]",
    "{}",
    "{\"id\": 1}",
];

/// Numbers at and beyond the edges (progress values, limits, versions).
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1e308",
    "1e999",
    "-1e999",
    "4.9e-324",
    "1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "0.1e1",
    "1E+2",
];

/// Bytes that are not UTF-8 (lone continuation, overlong, truncated, surrogate, out of range).
const NOT_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\x80",
];

/// A string literal whose inside is `s` bytes (possibly not UTF-8).
fn raw_string(r: &mut Rng) -> Vec<u8> {
    let mut out = b"\"x".to_vec();
    match r.below(4) {
        0 => out.extend_from_slice(r.pick::<&[u8]>(NOT_UTF8)),
        1 => out.extend_from_slice(r.pick::<&[u8]>(&[
            b"\\ud800",
            b"\\udfff\\ud800",
            b"\\u00",
            b"\\x41",
        ])),
        2 => out.extend_from_slice("é😀\u{202e}".as_bytes()),
        _ => out.extend(std::iter::repeat_n(b'y', r.below(2000))),
    }
    out.push(b'"');
    out
}

/// A `_meta` value of some shape: wrong types, odd progress tokens, deep or wide objects.
fn raw_meta(r: &mut Rng) -> Vec<u8> {
    match r.below(7) {
        0 => r
            .pick(&["null", "1", "\"meta\"", "[]", "[{}]", "true"])
            .as_bytes()
            .to_vec(),
        1 => format!("{{\"progressToken\": {}}}", r.pick(IDS)).into_bytes(),
        2 => {
            let d = r.below(100);
            format!("{{\"a\":{}1{}}}", "{\"a\":".repeat(d), "}".repeat(d)).into_bytes()
        }
        3 => {
            let n = r.below(300);
            let fields: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        }
        4 => {
            let mut m = b"{\"traceparent\": ".to_vec();
            m.extend(raw_string(r));
            m.extend_from_slice(b", \"io.vitals/x\": ");
            m.extend_from_slice(r.pick(NUMBERS).as_bytes());
            m.push(b'}');
            m
        }
        5 => b"{\"progressToken\": 1, \"progressToken\": \"dup\"}".to_vec(),
        _ => format!("{{\"{}\": 1}}", "k".repeat(r.below(5000))).into_bytes(),
    }
}

/// One JSON-RPC message as raw JSON text, built from the protocol's structure with hostile
/// parts: ids of every type, `_meta` shapes, huge numbers, deep nesting, strings that are not
/// UTF-8.
fn raw_message(r: &mut Rng) -> Vec<u8> {
    let method = *r.pick(METHODS);
    let mut m = format!("{{\"jsonrpc\": \"2.0\", \"method\": \"{method}\"").into_bytes();
    if r.below(4) != 0 {
        m.extend_from_slice(format!(", \"id\": {}", r.pick(IDS)).as_bytes());
    }
    m.extend_from_slice(b", \"params\": ");
    match r.below(6) {
        0 => {
            m.extend_from_slice(b"{\"name\": ");
            if r.below(3) == 0 {
                m.extend(raw_string(r));
            } else {
                m.extend_from_slice(
                    r.pick(&[
                        "\"server_health\"",
                        "\"test_simple_text\"",
                        "\"test_sampling\"",
                    ])
                    .as_bytes(),
                );
            }
            m.extend_from_slice(b", \"arguments\": {\"prompt\": ");
            m.extend(raw_string(r));
            m.extend_from_slice(b"}, \"_meta\": ");
            m.extend(raw_meta(r));
            m.push(b'}');
        }
        1 => {
            m.extend_from_slice(b"{\"progressToken\": ");
            m.extend_from_slice(r.pick(IDS).as_bytes());
            m.extend_from_slice(
                format!(
                    ", \"progress\": {}, \"total\": {}}}",
                    r.pick(NUMBERS),
                    r.pick(NUMBERS)
                )
                .as_bytes(),
            );
        }
        2 => m.extend_from_slice(
            format!("{{\"requestId\": {}, \"reason\": null}}", r.pick(IDS)).as_bytes(),
        ),
        3 => {
            let d = 40 + r.below(100);
            m.extend_from_slice(format!("{}{}", "[".repeat(d), "]".repeat(d)).as_bytes());
        }
        4 => {
            m.extend_from_slice(b"{\"_meta\": ");
            m.extend(raw_meta(r));
            m.push(b'}');
        }
        _ => m.extend_from_slice(
            r.pick(&["null", "[]", "1e999", "\"params\"", "{\"cursor\": 1e999}"])
                .as_bytes(),
        ),
    }
    m.push(b'}');
    m
}

/// A structure-aware body: one raw message, or a batch of them (empty, mixed, repeated ids).
fn raw_body(r: &mut Rng) -> Vec<u8> {
    match r.below(4) {
        0 => {
            let n = r.below(5);
            let items: Vec<Vec<u8>> = (0..n).map(|_| raw_message(r)).collect();
            let mut b = b"[".to_vec();
            b.extend(items.join(&b","[..]));
            b.push(b']');
            b
        }
        _ => raw_message(r),
    }
}

/// The session id, almost: one character changed, cut, lengthened, recased, padded, or another
/// well-formed id that is not a session.
fn almost_session(r: &mut Rng, session: &str) -> String {
    let mut s = session.to_owned();
    let n = s.len().max(1);
    match r.below(7) {
        0 => {
            let i = r.below(n);
            if let Some(c) = s.get(i..i + 1) {
                let swap = if c == "a" { "b" } else { "a" };
                s.replace_range(i..i + 1, swap);
            }
            s
        }
        1 => s[..s.len().saturating_sub(1)].to_owned(),
        2 => s + "0",
        3 => s.to_uppercase(),
        4 => format!(" {s}\t"),
        5 => "00000000-0000-4000-8000-000000000000".to_owned(),
        _ => format!("{s},{s}"),
    }
}

/// An `Accept` header for `/metrics` built from its grammar: media ranges, versions, q values
/// (valid, out of range, malformed), odd spacing and case, long lists.
fn accept(r: &mut Rng) -> String {
    let n = if r.below(10) == 0 {
        50 + r.below(100)
    } else {
        1 + r.below(4)
    };
    let ranges: Vec<String> = (0..n)
        .map(|_| {
            let mut m = (*r.pick(&[
                "application/openmetrics-text",
                "text/plain",
                "*/*",
                "text/*",
                "application/*",
                "APPLICATION/OpenMetrics-Text",
                "text/html",
                "*",
                "",
            ]))
            .to_owned();
            for _ in 0..r.below(3) {
                let p = match r.below(4) {
                    0 => format!(
                        "version={}",
                        r.pick(&["1.0.0", "0.0.1", "0.0.4", "2", "", "\"1.0.0\""])
                    ),
                    1 => format!(
                        "q={}",
                        r.pick(&["0", "1", "0.5", "1.0001", "-1", "abc", "", "0.0000001"])
                    ),
                    2 => format!("charset={}", r.pick(&["utf-8", "latin1", ""])),
                    _ => format!("escaping={}", r.pick(&["underscores", "allow-utf-8", "x"])),
                };
                m.push_str(r.pick::<&str>(&[";", " ; ", ";;"]));
                m.push_str(&p);
            }
            m
        })
        .collect();
    ranges.join(*r.pick(&[",", ", ", " ,", ",,"]))
}

/// One raw request: method, path, headers, body.
fn case(r: &mut Rng, session: &str) -> Vec<u8> {
    let path = *r.pick(&[
        "/mcp", "/mcp", "/mcp", "/metrics", "/healthz", "/readyz", "/mcp?x=1", "//mcp", "/%2e%2e/",
    ]);
    let method = *r.pick(&[
        "POST", "POST", "POST", "GET", "DELETE", "PUT", "OPTIONS", "HEAD", "BREW",
    ]);
    let body: Vec<u8> = match r.below(13) {
        10..=12 => raw_body(r),
        0 => {
            let n = r.below(512);
            r.bytes(n)
        }
        1 => {
            // A batch, or deep nesting.
            if r.below(2) == 0 {
                serde_json::to_vec(&Value::Array((0..r.below(4)).map(|_| message(r)).collect()))
                    .unwrap()
            } else {
                let d = r.below(200);
                format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()
            }
        }
        2 => {
            let mut b = serde_json::to_vec(&message(r)).unwrap();
            b.truncate(r.below(b.len() + 1));
            b
        }
        _ => serde_json::to_vec(&message(r)).unwrap(),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
        r.pick(&["localhost", "localhost", "evil.example", "127.0.0.1:1", ""])
    );
    if r.below(4) != 0 {
        head.push_str(&format!(
            "Content-Type: {}\r\n",
            r.pick(&[
                "application/json",
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/jsonx",
                ""
            ])
        ));
    }
    if path == "/metrics" && r.below(2) == 0 {
        head.push_str(&format!("Accept: {}\r\n", accept(r)));
    } else {
        head.push_str(&format!("Accept: {}\r\n", r.pick(ACCEPTS)));
    }
    match r.below(6) {
        0 => {}
        5 => head.push_str(&format!(
            "Mcp-Session-Id: {}\r\n",
            almost_session(r, session)
        )),
        1 => head.push_str(&format!(
            "Mcp-Session-Id: {}\r\n",
            r.pick(WEIRD_STRINGS).replace(['\r', '\n'], "")
        )),
        _ => head.push_str(&format!("Mcp-Session-Id: {session}\r\n")),
    }
    if r.below(3) == 0 {
        head.push_str(&format!(
            "MCP-Protocol-Version: {}\r\n",
            r.pick(&["2025-11-25", "2025-06-18", "garbage", ""])
        ));
    }
    if r.below(8) == 0 {
        head.push_str(&format!(
            "Origin: {}\r\n",
            r.pick(&["http://evil.example", "null", "http://localhost:1"])
        ));
    }
    if r.below(8) == 0 {
        head.push_str(&format!(
            "Accept-Encoding: {}\r\n",
            r.pick(&["gzip", "br;q=1, gzip;q=0", "*", "identity;q=0"])
        ));
    }
    if r.below(10) == 0 {
        head.push_str(&format!("X-Junk: {}\r\n", "j".repeat(r.below(9000))));
    }
    match r.below(12) {
        // A lying Content-Length.
        0 => head.push_str(&format!(
            "Content-Length: {}\r\n",
            body.len() + 1 + r.below(100)
        )),
        1 => head.push_str("Transfer-Encoding: chunked\r\n"),
        _ => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    if out
        .windows(26)
        .any(|w| w.eq_ignore_ascii_case(b"transfer-encoding: chunked"))
    {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        out.extend_from_slice(&body);
    }
    out
}

/// Sends `raw`; the status code of the answer, or None when the connection closed without one
/// (allowed only for requests the server may drop: a lying Content-Length times out).
fn send(addr: SocketAddr, raw: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // Read the head only: an SSE stream may stay open (it is closed by dropping the socket).
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = std::str::from_utf8(&buf[..buf.len().min(16)]).ok()?;
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn random_and_adversarial_requests_get_clear_answers() {
    let cases: usize = env_number("VITALS_FUZZ_CASES", 600);
    let seed: u64 = env_number("VITALS_FUZZ_SEED", 0x5eed_1600);
    let server = Server::start(&[
        "--conformance-fixtures",
        "--rate-limit",
        "1000000/1s",
        "--body-timeout",
        "1",
        "--log-level",
        "error",
    ]);
    let session = McpSession::open(server.addr);
    let mut rng = Rng(seed | 1);
    let mut statuses = std::collections::BTreeMap::new();
    let mut peak = 0;
    for i in 0..cases {
        let raw = case(&mut rng, &session.id);
        let status = send(server.addr, &raw);
        if let Some(s) = status {
            assert!(
                s < 500 || s == 503,
                "case {i} (seed {seed}): {s} for\n{}",
                String::from_utf8_lossy(&raw)
            );
        }
        *statuses.entry(status).or_insert(0u32) += 1;
        if i % 100 == 99 {
            assert_eq!(
                server.request("GET", "/livez", &[], b"").status,
                200,
                "not live after case {i} (seed {seed})"
            );
            peak = peak.max(rss(server.pid()));
        }
    }
    // Most cases got an answer (a lying Content-Length may end in a closed connection).
    let unanswered = statuses.get(&None).copied().unwrap_or(0) as usize;
    assert!(unanswered * 5 < cases, "{statuses:?}");
    // Nothing stays in flight; memory is bounded.
    let idle = wait_for(Duration::from_secs(60), || {
        (server.metric("mcp_active_requests") == Some(0.0)).then_some(())
    });
    assert!(
        idle.is_some(),
        "calls left in flight: {:?}",
        server.metric("mcp_active_requests")
    );
    assert!(peak < 256 * 1024 * 1024, "peak RSS {peak}");
    let text = server.metrics();
    assert!(
        strict_exposition_problems(&text).is_empty(),
        "{:?}",
        strict_exposition_problems(&text)
    );
    eprintln!(
        "fuzz: {cases} cases, seed {seed}, statuses {statuses:?}, peak RSS {} KiB",
        peak / 1024
    );
}
