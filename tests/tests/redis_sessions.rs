//! MCP sessions shared across replicas (`--redis`): two or three `vitals-server` processes on
//! one real `redis-server`. A session initialized through one replica is used through another;
//! a DELETE through either ends it for both; another token cannot use it; the record expires
//! with the idle timeout and each use pushes that back; the store killed, every replica keeps
//! serving the sessions it holds; `rediss://` with a CA of the test's own; the MCP Python SDK
//! behind a round-robin transport; gateway replicas, each with its own upstream.

use std::time::Duration;

use serde_json::{json, Value};
use vitals_tests::{metric_value, wait_for, McpSession, Server};

mod redis_support;
use redis_support::RedisServer;

fn replica(url: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--redis",
        url,
        "--redis-timeout",
        "2000",
        "--mcp-token",
        "alpha",
        "--mcp-token",
        "beta",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn active(s: &Server) -> f64 {
    s.metric("mcp_sessions_active")
        .expect("mcp_sessions_active")
}

fn health_ok(r: &Value) -> bool {
    r["result"]["isError"] == json!(false)
}

fn record_key(id: &str) -> String {
    format!("{{vitals}}:session:{id}")
}

#[test]
fn a_session_initialized_on_one_replica_is_used_through_another() {
    let store = RedisServer::start();
    let url = store.url();
    let a = replica(&url, &[]);
    let b = replica(&url, &[]);
    let c = replica(&url, &[]);

    let on_a = McpSession::open_with_token(a.addr, Some("alpha"));
    let key = record_key(&on_a.id);
    assert_eq!(store.cli(&["EXISTS", &key]).trim(), "1", "record written");
    let ttl: i64 = store.cli(&["TTL", &key]).trim().parse().unwrap();
    assert!(
        (1..=300).contains(&ttl),
        "expires with the idle timeout: {ttl}"
    );
    let record: Value = serde_json::from_str(store.cli(&["GET", &key]).trim()).unwrap();
    assert_eq!(record["owner"], "token:0", "{record}");
    assert_eq!(record["init"]["protocolVersion"], "2025-11-25", "{record}");

    // Through B, which never saw the initialize.
    let mut on_b = on_a.via(b.addr);
    let r = on_b.call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");
    let tools = on_b.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "server_health")),
        "{tools}"
    );
    assert_eq!(active(&a), 1.0);
    assert_eq!(active(&b), 1.0, "B holds a copy, counted once");
    assert_eq!(b.metric("mcp_sessions_restored_total"), Some(1.0));
    assert_eq!(a.metric("mcp_sessions_restored_total"), Some(0.0));

    // Another token gets 404 everywhere: on A and B (copies owned by alpha) and on C (the
    // record says alpha), and C restores nothing.
    for s in [&a, &b, &c] {
        let r = on_a
            .via(s.addr)
            .with_token(Some("beta"))
            .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}));
        assert_eq!(r.status, 404, "{}", r.text());
    }
    assert_eq!(active(&c), 0.0, "nothing restored for another token");
    // The same token through C works.
    let r = on_a.via(c.addr).call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");

    // DELETE through B ends it everywhere: the record is gone, A and C answer 404 and let
    // their copies go.
    let d = on_b.delete();
    assert!(
        d.status == 200 || d.status == 202,
        "{} {}",
        d.status,
        d.text()
    );
    assert_eq!(store.cli(&["EXISTS", &key]).trim(), "0", "record deleted");
    for s in [&a, &c, &b] {
        let r = on_a
            .via(s.addr)
            .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}));
        assert_eq!(r.status, 404, "after DELETE via B: {}", r.text());
    }
    for s in [&a, &b, &c] {
        assert_eq!(active(s), 0.0, "every copy ended");
    }
}

#[test]
fn per_client_session_caps_count_tokens_not_addresses() {
    let store = RedisServer::start();
    let a = replica(&store.url(), &["--max-sessions-per-client", "2"]);
    let _s1 = McpSession::open_with_token(a.addr, Some("alpha"));
    let s2 = McpSession::open_with_token(a.addr, Some("alpha"));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    let r = a.request(
        "POST",
        "/mcp",
        &[
            vitals_tests::MCP_POST[0],
            vitals_tests::MCP_POST[1],
            ("Authorization", "Bearer alpha"),
        ],
        init.to_string().as_bytes(),
    );
    assert_eq!(r.status, 503, "alpha holds 2: {}", r.text());
    assert!(
        r.text().contains("--max-sessions-per-client"),
        "{}",
        r.text()
    );
    // Same address, another token: its own count.
    let _t1 = McpSession::open_with_token(a.addr, Some("beta"));
    // A restore on another replica counts there, under the same cap.
    let b = replica(&store.url(), &["--max-sessions-per-client", "1"]);
    let _b1 = McpSession::open_with_token(b.addr, Some("alpha"));
    let r = s2
        .via(b.addr)
        .post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}));
    assert_eq!(r.status, 503, "alpha holds 1 on B already: {}", r.text());
    assert_eq!(active(&b), 1.0);
}

#[test]
fn records_expire_with_the_idle_timeout_and_each_use_pushes_it_back() {
    let store = RedisServer::start();
    let url = store.url();
    let idle = ["--session-idle-timeout", "4"];
    let a = replica(&url, &idle);
    let b = replica(&url, &idle);
    let on_a = McpSession::open_with_token(a.addr, Some("alpha"));
    let ttl: i64 = store
        .cli(&["TTL", &record_key(&on_a.id)])
        .trim()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&ttl), "{ttl}");

    // Used through B for twice the idle timeout: alive all along, although A sees nothing.
    let mut on_b = on_a.via(b.addr);
    for _ in 0..16 {
        let r = on_b.call_tool("server_health", json!({}));
        assert!(health_ok(&r), "{r}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // A's copy idled out meanwhile; through A the session comes back from the record.
    assert!(
        wait_for(Duration::from_secs(20), || (active(&a) == 0.0)
            .then_some(()))
        .is_some(),
        "A's idle copy ended"
    );
    let r = on_a.via(a.addr).call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");

    // Unused everywhere: gone everywhere.
    let gone = wait_for(Duration::from_secs(30), || {
        (store.cli(&["EXISTS", &record_key(&on_a.id)]).trim() == "0").then_some(())
    });
    assert!(gone.is_some(), "the record expired");
    for s in [&a, &b] {
        let r = on_a
            .via(s.addr)
            .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}));
        assert_eq!(r.status, 404, "{}", r.text());
    }
}

#[test]
fn with_the_store_killed_each_replica_keeps_serving_its_sessions() {
    let mut store = RedisServer::start();
    let url = store.url();
    let a = replica(&url, &[]);
    let b = replica(&url, &[]);
    let on_a = McpSession::open_with_token(a.addr, Some("alpha"));
    let r = on_a.via(b.addr).call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");

    store.kill();
    for s in [&a, &b] {
        for _ in 0..3 {
            let r = on_a.via(s.addr).call_tool("server_health", json!({}));
            assert!(health_ok(&r), "served from the copy it holds: {r}");
        }
    }
    // New sessions are local: created and used on A, unknown on B.
    let mut local = McpSession::open_with_token(a.addr, Some("alpha"));
    let r = local.call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");
    let r = local
        .via(b.addr)
        .post(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}));
    assert_eq!(r.status, 404, "{}", r.text());

    let m = a.metrics();
    let fallbacks = |op: &str| {
        metric_value(
            &m,
            &format!("shared_sessions_fallbacks_total{{op=\"{op}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(fallbacks("touch") >= 1.0, "{m}");
    assert_eq!(fallbacks("put"), 1.0, "{m}");
    let warned = a
        .drain_logs()
        .iter()
        .filter(|l| l.contains("shared sessions: store unavailable"))
        .count();
    assert_eq!(warned, 1, "logged once");
    assert_eq!(active(&a), 2.0);

    // Back, empty: the local session goes on; the shared one's record was lost with the
    // store's state, so it has ended (404: the client initializes again).
    store.restart();
    let back = wait_for(Duration::from_secs(30), || {
        let r = on_a
            .via(a.addr)
            .post(&json!({"jsonrpc": "2.0", "id": 11, "method": "tools/list"}));
        (r.status == 404).then_some(())
    });
    assert!(back.is_some(), "a shared session whose record is lost ends");
    let r = local.call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");
}

#[test]
fn rediss_with_the_tests_own_ca() {
    let store = RedisServer::start_tls();
    let url = store.tls_url();
    let ca = store.ca_file();
    let ca = ca.to_str().unwrap();
    let a = replica(&url, &["--redis-ca", ca]);
    let b = replica(&url, &["--redis-ca", ca]);
    let on_a = McpSession::open_with_token(a.addr, Some("alpha"));
    assert_eq!(
        store.cli(&["EXISTS", &record_key(&on_a.id)]).trim(),
        "1",
        "record written over TLS"
    );
    let r = on_a.via(b.addr).call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");
    let m = b.metrics();
    assert!(
        metric_value(
            &m,
            "shared_limits_decisions_total{source=\"store\",verdict=\"admitted\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "limits decided by the store over TLS: {m}"
    );

    // Without the CA the store's certificate is not trusted: nothing reaches it.
    let c = replica(&url, &[]);
    let mut on_c = McpSession::open_with_token(c.addr, Some("alpha"));
    let r = on_c.call_tool("server_health", json!({}));
    assert!(health_ok(&r), "{r}");
    let m = c.metrics();
    assert_eq!(
        metric_value(&m, "shared_sessions_fallbacks_total{op=\"put\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        store.cli(&["EXISTS", &record_key(&on_c.id)]).trim(),
        "0",
        "an untrusted store gets nothing"
    );
}

#[test]
fn the_python_sdk_keeps_one_session_across_round_robin_replicas() {
    let store = RedisServer::start();
    let url = store.url();
    let a = replica(&url, &[]);
    let b = replica(&url, &[]);
    let mut cmd = std::process::Command::new(vitals_tests::require_program("python"));
    cmd.arg(vitals_tests::repo_root().join("tests/python/replicas_client.py"))
        .arg("alpha")
        .arg(format!("{}/mcp", a.url()))
        .arg(format!("{}/mcp", b.url()));
    let done = vitals_tests::run_to_end(cmd, Duration::from_secs(90), "the python client");
    assert!(
        done.status.success(),
        "python client failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    let out: Value = serde_json::from_str(done.stdout.trim()).expect("one JSON line");
    assert_eq!(out["ok"], true, "{out}");
    let requests = out["requests"].as_array().unwrap();
    let session = requests
        .iter()
        .find_map(|r| r["session"].as_str())
        .expect("a session id");
    // Requests in that one session reached both replicas.
    for s in [&a, &b] {
        let port = s.addr.port();
        assert!(
            requests
                .iter()
                .any(|r| r["port"] == port && r["session"] == session && r["method"] == "POST"),
            "no request of the session on {port}: {out}"
        );
        let calls = s
            .metric("mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"ok\"}")
            .unwrap_or(0.0);
        assert!(calls >= 1.0, "{port} served no call");
    }
    assert!(
        requests.iter().all(|r| r["status"] != 404),
        "a replica did not know the session: {out}"
    );
    // The SDK's DELETE on exit ended it everywhere.
    let gone = wait_for(Duration::from_secs(10), || {
        (store.cli(&["EXISTS", &record_key(session)]).trim() == "0").then_some(())
    });
    assert!(gone.is_some(), "record deleted");
}

#[test]
fn gateway_replicas_restore_sessions_with_their_own_upstreams() {
    let store = RedisServer::start();
    let url = store.url();
    let python = vitals_tests::require_program("python");
    let upstream = vitals_tests::repo_root().join("tests/python/bad_upstream.py");
    let args = [
        "--redis",
        url.as_str(),
        "--mcp-token",
        "alpha",
        "--upstream-name",
        "up",
        "--",
        python.to_str().unwrap(),
        upstream.to_str().unwrap(),
        "slow-then-ok",
    ];
    let a = Server::start(&args);
    let b = Server::start(&args);
    a.wait_ready(Duration::from_secs(30));
    b.wait_ready(Duration::from_secs(30));
    let mut on_a = McpSession::open_with_token(a.addr, Some("alpha"));
    let mut on_b = on_a.via(b.addr);
    let pid = |r: Value| -> String {
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let through_a = pid(on_a.call_tool("pid", json!({})));
    let through_b = pid(on_b.call_tool("pid", json!({})));
    assert_ne!(through_a, through_b, "each replica calls its own upstream");
    assert_eq!(pid(on_a.call_tool("pid", json!({}))), through_a);
    let tools = on_b.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "pid")),
        "{tools}"
    );
}
