//! Mixed load for a while (issue 16): tool calls, scrapes, sessions opened and abandoned, calls
//! cancelled by the client, connections dropped under a waiting call, slow readers of
//! `/metrics`. At the end every gauge is back at its idle value, the counters equal what the
//! generator sent, and resident memory plateaus (the second half grows far less than a stated
//! bound). `VITALS_SOAK_SECS` sets the length (default 20 s; the long mode is minutes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vitals_tests::*;

fn open(addr: SocketAddr) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "soak", "version": "0"}}});
    let r = request(addr, "POST", "/mcp", &MCP_POST, init.to_string().as_bytes());
    assert_eq!(r.status, 200, "initialize: {}", r.text());
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    McpSession::resume(addr, id.clone())
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    id
}

#[derive(Default)]
struct Sent {
    ok_calls: AtomicU64,
    cancelled: AtomicU64,
    sessions: AtomicU64,
    scrapes: AtomicU64,
}

#[test]
fn mixed_load_leaves_no_trace_but_its_counts() {
    let secs: u64 = env_number("VITALS_SOAK_SECS", 20);
    let server = Server::start(&[
        "--conformance-fixtures",
        "--rate-limit",
        "1000000/1s",
        "--tool-rate-limit",
        "1000000/1s",
        "--client-tool-rate-limit",
        "1000000/1s",
        "--max-sessions-per-client",
        "100000",
        "--max-sessions",
        "100000",
        "--session-idle-timeout",
        "3",
        "--log-level",
        "error",
    ]);
    let addr = server.addr;
    let sent = Arc::new(Sent::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();

    // Tool calls in long-lived sessions.
    for _ in 0..2 {
        let (sent, stop) = (sent.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut s = McpSession::resume(addr, open(addr));
            while !stop.load(Ordering::Relaxed) {
                let r = s.call_tool("test_simple_text", json!({}));
                assert_eq!(r["result"]["isError"], json!(false), "{r}");
                sent.ok_calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Sessions opened and abandoned; calls cancelled; connections dropped under a call.
    {
        let (sent, stop) = (sent.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let session = open(addr);
                sent.sessions.fetch_add(1, Ordering::Relaxed);
                n += 1;
                let stream = start_sampling_call(addr, &session, 1);
                if n.is_multiple_of(2) {
                    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 1, "reason": "soak"}});
                    let r = McpSession::resume(addr, session).post(&cancel);
                    assert_eq!(r.status, 202);
                }
                drop(stream);
                sent.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Scrapes, half of them read slowly.
    {
        let (sent, stop) = (sent.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut slow = false;
            while !stop.load(Ordering::Relaxed) {
                if slow {
                    let mut s = TcpStream::connect(addr).expect("connect");
                    s.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                    let mut b = [0u8; 256];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                } else {
                    assert_eq!(request(addr, "GET", "/metrics", &[], b"").status, 200);
                }
                slow = !slow;
                sent.scrapes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let half = Instant::now() + Duration::from_secs(secs / 2);
    while Instant::now() < half {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mid = rss(server.pid());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("load worker");
    }
    let end = rss(server.pid());

    // Idle again: nothing in flight, every session expired; counts equal what was sent.
    let ok = sent.ok_calls.load(Ordering::Relaxed) as f64;
    let cancelled = sent.cancelled.load(Ordering::Relaxed) as f64;
    let sessions = sent.sessions.load(Ordering::Relaxed) as f64 + 2.0;
    let mut last = String::new();
    let idle = wait_for(Duration::from_secs(60), || {
        last = server.metrics();
        let v = |s: &str| metric_value(&last, s);
        (v("mcp_active_requests") == Some(0.0)
            && v("mcp_sessions_active") == Some(0.0)
            && v("mcp_tool_calls_total{upstream=\"test_sampling\",tool=\"test_sampling\",status=\"cancelled\"}")
                == Some(cancelled))
        .then_some(())
    });
    let summary: Vec<&str> = last
        .lines()
        .filter(|l| {
            (l.starts_with("mcp_") || l.starts_with("http_requests")) && !l.contains("_bucket")
        })
        .collect();
    assert!(
        idle.is_some(),
        "not idle, or counts differ (sent {ok} ok, {cancelled} cancelled, {sessions} sessions):\n{}",
        summary.join("\n")
    );
    let v = |s: &str| metric_value(&last, s);
    assert_eq!(
        v("mcp_tool_calls_total{upstream=\"test_simple_text\",tool=\"test_simple_text\",status=\"ok\"}"),
        Some(ok)
    );
    assert_eq!(
        v("mcp_tool_duration_seconds_count{upstream=\"test_sampling\",tool=\"test_sampling\"}"),
        Some(cancelled)
    );
    assert_eq!(
        v("mcp_server_session_duration_seconds_count"),
        Some(sessions)
    );
    // Memory plateaus: the second half adds far less than the load touched.
    let growth = end.saturating_sub(mid);
    assert!(
        growth < 16 * 1024 * 1024,
        "RSS grew {growth} bytes in the second half"
    );
    eprintln!(
        "soak: {secs} s, {ok} calls, {cancelled} cancelled, {sessions} sessions, {} scrapes; \
         RSS mid {} KiB, end {} KiB",
        sent.scrapes.load(Ordering::Relaxed),
        mid / 1024,
        end / 1024
    );
}
