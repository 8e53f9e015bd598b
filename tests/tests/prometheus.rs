//! A real Prometheus server scrapes vitals-server; the values are read back through its HTTP API.

use std::time::Duration;

use serde_json::{json, Value};
use vitals_tests::*;

fn query(prom: std::net::SocketAddr, q: &str) -> Option<Vec<Value>> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = try_request(prom, "GET", &format!("/api/v1/query?query={enc}"), &[], b"").ok()?;
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned().unwrap_or_default())
}

#[test]
fn prometheus_scrapes_and_counts_exactly_the_calls_made() {
    require_program("prometheus"); // fail before the calls, not after
    let server = Server::start(&[]);
    let mut s = McpSession::open(server.addr);
    let calls = [
        ("server_health", 3),
        ("rate_limit_status", 2),
        ("circuit_breaker_status", 1),
    ];
    for (tool, n) in calls {
        for _ in 0..n {
            let r = s.call_tool(tool, json!({}));
            assert_eq!(r["result"]["isError"], json!(false), "{r}");
        }
    }

    let prometheus = Prometheus::scraping(server.addr, &[]);
    let prom_addr = prometheus.addr;

    let up = wait_for(Duration::from_secs(60), || {
        let r = query(prom_addr, "up{job=\"vitals\"}")?;
        let v = r.first()?["value"][1].as_str()?.to_owned();
        (v == "1").then_some(v)
    });
    assert_eq!(up.as_deref(), Some("1"), "target never up");

    for (tool, n) in calls {
        let q = format!("mcp_tool_calls_total{{job=\"vitals\",tool=\"{tool}\",status=\"ok\"}}");
        let got = wait_for(Duration::from_secs(20), || {
            let r = query(prom_addr, &q)?;
            r.first()?["value"][1].as_str().map(str::to_owned)
        });
        assert_eq!(got.as_deref(), Some(n.to_string().as_str()), "{q}");
    }
}
