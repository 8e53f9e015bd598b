//! The daily tool-call quota: once spent, a tool call is a tool error with retry-after; the quota
//! shows in /metrics (`quota_used`, `quota_limit`, `quota_rejected_total`), in the health report
//! (degraded, non-critical) and in `rate_limit_status`; the limiter gauges are exported too.

use serde_json::json;
use vitals_tests::*;

#[test]
fn exhausted_daily_quota_is_a_tool_error_with_retry_after() {
    // 50 a day: one token per 28.8 minutes, so the exact token gauges below cannot refill while
    // the test runs, however loaded the machine (with 50/1m, 1.2 s between a call and the scrape
    // made them 50).
    let server = Server::start(&["--daily-quota", "3", "--tool-rate-limit", "50/1d"]);
    let mut s = McpSession::open(server.addr);
    let health = s.call_tool("server_health", json!({}));
    assert_eq!(health["result"]["isError"], json!(false), "{health}");
    let st = s.call_tool("rate_limit_status", json!({}));
    assert_eq!(st["result"]["isError"], json!(false), "{st}");
    let quota = &st["result"]["structuredContent"]["tool_quota"];
    assert_eq!(quota["name"], "daily_tool_calls", "{st}");
    assert_eq!(
        (&quota["limit"], &quota["used"], &quota["remaining"]),
        (&json!(3), &json!(2), &json!(1)),
        "{st}"
    );
    assert_eq!(quota["window_seconds"], json!(86_400), "{st}");
    let b = s.call_tool("circuit_breaker_status", json!({}));
    assert_eq!(b["result"]["isError"], json!(false), "{b}");

    // The 4th call of the day is refused: a tool error (not a protocol error) with retry-after.
    let r = s.call_tool("server_health", json!({}));
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    assert_eq!(
        r["result"]["_meta"]["io.vitals/reason"], "quota_exhausted",
        "{r}"
    );
    let retry = &r["result"]["_meta"]["io.vitals/retryAfterSeconds"];
    assert!(
        retry.as_u64().is_some_and(|s| (1..=86_400).contains(&s)),
        "{r}"
    );
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("quota `daily_tool_calls` exhausted: retry after"),
        "{text}"
    );

    let m = server.request("GET", "/metrics", &[], b"");
    assert_eq!(m.status, 200);
    let text = m.text();
    for needle in [
        "# TYPE quota_used gauge\n",
        "quota_used{quota=\"daily_tool_calls\"} 3\n",
        "# TYPE quota_limit gauge\n",
        "quota_limit{quota=\"daily_tool_calls\"} 3\n",
        "# TYPE quota_rejected_total counter\n",
        "quota_rejected_total{quota=\"daily_tool_calls\"} 1\n",
        "mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"ok\"} 1\n",
        "mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"quota_exhausted\"} 1\n",
        "# TYPE rate_limit_available_tokens gauge\n",
        // The call the quota refused spent no rate budget.
        "rate_limit_available_tokens{tool=\"server_health\"} 49\n",
        "rate_limit_available_tokens{tool=\"rate_limit_status\"} 49\n",
        "# TYPE rate_limit_burst_tokens gauge\n",
        "rate_limit_burst_tokens{scope=\"http_client\"} 1200\n",
        "rate_limit_burst_tokens{scope=\"tool_client\"} 600\n",
        "rate_limit_burst_tokens{scope=\"tool\"} 50\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}");
    assert_eq!(strict_exposition_problems(&text), Vec::<String>::new());

    // Health: the spent quota is a degraded, non-critical component; the server stays ready.
    let h = server.request("GET", "/healthz", &[], b"");
    assert_eq!(h.status, 200, "{}", h.text());
    let report: serde_json::Value = serde_json::from_slice(&h.body).expect("health JSON");
    assert_eq!(report["status"], "degraded", "{report}");
    let component = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "quota:daily_tool_calls")
        .unwrap_or_else(|| panic!("no quota component in {report}"));
    assert_eq!(component["status"], "degraded", "{report}");
    assert_eq!(component["critical"], json!(false), "{report}");
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn daily_quota_zero_is_off() {
    let server = Server::start(&["--daily-quota", "0"]);
    let mut s = McpSession::open(server.addr);
    for _ in 0..4 {
        let r = s.call_tool("server_health", json!({}));
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
    }
    let st = s.call_tool("rate_limit_status", json!({}));
    assert_eq!(
        st["result"]["structuredContent"]["tool_quota"],
        json!(null),
        "{st}"
    );
    let text = server.request("GET", "/metrics", &[], b"").text();
    assert!(!text.contains("quota_used{"), "{text}");
    let h = server.request("GET", "/healthz", &[], b"").text();
    assert!(!h.contains("quota:"), "{h}");
}
