//! The gateway in front of upstreams that misbehave on purpose (`tests/python/bad_upstream.py`):
//! killed mid-call, crash-looping, hung, writing garbage to stdout or floods to stderr, leaving
//! grandchildren behind. Each fault is read back from the gateway's answers, `/metrics`,
//! `/healthz` and `/proc`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vitals_tests::*;

const READY: Duration = Duration::from_secs(30);

fn bad_upstream(mode: &str) -> Vec<String> {
    vec![
        require_program("python").display().to_string(),
        repo_root()
            .join("tests/python/bad_upstream.py")
            .display()
            .to_string(),
        mode.to_owned(),
    ]
}

/// A gateway named `bad` in front of `bad_upstream.py MODE`, ready.
fn gateway(mode: &str, flags: &[&str], env: &[(&str, &str)]) -> Server {
    let upstream = bad_upstream(mode);
    let mut args: Vec<&str> = vec!["--log-level", "info", "--upstream-name", "bad"];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend(upstream.iter().map(String::as_str));
    let server = Server::start_with_env(&args, env);
    server.wait_ready(READY);
    server
}

/// An `mcpServers` config file in a temporary folder, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(servers: Value) -> Self {
        let dir =
            std::env::temp_dir().join(format!("vitals-gw-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mcp.json");
        std::fs::write(&path, json!({ "mcpServers": servers }).to_string()).unwrap();
        ConfigFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn is_ok(r: &Value) -> bool {
    r["result"]["isError"] == json!(false) && r["result"]["content"][0]["text"] == json!("ok")
}

fn health_component(server: &Server, name: &str) -> Value {
    let h: Value = serde_json::from_slice(&server.request("GET", "/healthz", &[], b"").body)
        .expect("health JSON");
    h["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == json!(name)).cloned())
        .unwrap_or_else(|| panic!("no component {name} in {h}"))
}

fn wait_metric(server: &Server, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    let mut last = None;
    let got = wait_for(Duration::from_secs(30), || {
        last = server.metric(series);
        last.filter(|v| want(*v))
    });
    got.unwrap_or_else(|| panic!("{series} never reached the expected value (last {last:?})"))
}

/// The supervised child of the gateway (the one running `bad_upstream.py`).
fn upstream_pid(server: &Server) -> u32 {
    descendants(server.pid())
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("bad_upstream.py"))
        })
        .expect("the upstream process")
}

#[test]
fn killed_upstream_fails_the_call_at_once_and_is_restarted() {
    let server = gateway("slow-then-ok", &[], &[]);
    let mut s = McpSession::open(server.addr);
    assert!(is_ok(&s.call_tool("ok", json!({}))));
    let first = upstream_pid(&server);

    let addr = server.addr;
    let call = std::thread::spawn(move || {
        let mut s = McpSession::open(addr);
        let r = s.call_tool("ok", json!({"delay": 60}));
        (r, Instant::now())
    });
    wait_metric(&server, "mcp_upstream_in_flight{upstream=\"bad\"}", |v| {
        v == 1.0
    });
    let killed = Instant::now();
    assert!(Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap()
        .success());
    let (r, answered) = call.join().unwrap();
    let waited = answered.duration_since(killed);
    assert!(
        waited < Duration::from_secs(3),
        "answered {waited:?} after the kill"
    );
    assert_eq!(r["error"]["data"]["reason"], json!("transport"), "{r}");
    // Between the crash and the restart the upstream is degraded, never unhealthy.
    let status = health_component(&server, "upstream:bad")["status"].clone();
    assert_ne!(status, json!("unhealthy"), "right after the crash");

    wait_metric(
        &server,
        "mcp_upstream_restarts_total{upstream=\"bad\"}",
        |v| v >= 1.0,
    );
    wait_metric(&server, "mcp_upstream_up{upstream=\"bad\"}", |v| v == 1.0);
    let text = server.metrics();
    for (series, want) in [
        (
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"transport\"}",
            1.0,
        ),
        (
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"ok\"}",
            1.0,
        ),
        (
            "mcp_upstream_exits_total{upstream=\"bad\",reason=\"killed\"}",
            1.0,
        ),
        ("mcp_upstream_in_flight{upstream=\"bad\"}", 0.0),
        ("mcp_active_requests", 0.0),
        (
            "mcp_upstream_starts_total{upstream=\"bad\",result=\"ok\"}",
            2.0,
        ),
    ] {
        assert_eq!(metric_value(&text, series), Some(want), "{series}\n{text}");
    }
    let c = health_component(&server, "upstream:bad");
    assert_eq!(c["status"], json!("healthy"), "{c}");
    assert!(c["detail"].as_str().unwrap().contains("restarts 1"), "{c}");
    assert!(c["detail"].as_str().unwrap().contains("signal 9"), "{c}");
    assert_ne!(upstream_pid(&server), first);
    assert!(is_ok(&s.call_tool("ok", json!({}))), "served after restart");
}

#[test]
fn crash_loop_is_capped_and_the_other_upstreams_keep_serving() {
    let crashy = bad_upstream("exit-now");
    let good = server_bin().display().to_string();
    let config = ConfigFile::new(json!({
        "crashy": {"command": crashy[0], "args": [crashy[1], crashy[2]],
                   "vitals": {"required": false, "restart": {"max_restarts": 2, "window_seconds": 60,
                              "initial_delay_seconds": 0.05, "max_delay_seconds": 0.2}}},
        "good": {"command": good, "args": ["--stdio", "--log-level", "warn"]}
    }));
    let server = Server::start(&["--log-level", "warn", "--config", config.path()]);
    server.wait_ready(READY);
    wait_metric(&server, "mcp_upstream_failed{upstream=\"crashy\"}", |v| {
        v == 1.0
    });
    let text = server.metrics();
    assert_eq!(
        metric_value(
            &text,
            "mcp_upstream_starts_total{upstream=\"crashy\",result=\"failed\"}"
        ),
        Some(3.0),
        "one start and two restarts: {text}"
    );
    assert_eq!(
        metric_value(&text, "mcp_upstream_up{upstream=\"good\"}"),
        Some(1.0)
    );
    let c = health_component(&server, "upstream:crashy");
    assert_eq!(c["status"], json!("unhealthy"), "{c}");
    assert_eq!(c["critical"], json!(false), "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("failed") && detail.contains("status 3"),
        "{c}"
    );
    // The healthy upstream's tools are served, prefixed (two upstreams); the failed one's are not.
    let mut s = McpSession::open(server.addr);
    let tools = s.call("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"good__rate_limit_status"), "{names:?}");
    assert!(
        names.contains(&"server_health"),
        "the gateway's own tools: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("crashy__")),
        "{names:?}"
    );
    let r = s.call_tool("good__rate_limit_status", json!({}));
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn a_hung_upstream_times_out_opens_the_breaker_and_a_probe_closes_it() {
    let server = gateway("slow-then-ok", &["--upstream-timeout", "1"], &[]);
    let addr = server.addr;
    // Ten calls that outlast the timeout, at once: the breaker's minimum window.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || McpSession::open(addr).call_tool("ok", json!({"delay": 8})))
        })
        .collect();
    for c in calls {
        let r = c.join().unwrap();
        assert_eq!(r["error"]["data"]["reason"], json!("timeout"), "{r}");
    }
    wait_metric(&server, "circuit_breaker_state{upstream=\"bad\"}", |v| {
        v == 1.0
    });
    let mut s = McpSession::open(addr);
    let started = Instant::now();
    let r = s.call_tool("ok", json!({"delay": 0}));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refusal is fast"
    );
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    assert_eq!(
        r["result"]["_meta"]["io.vitals/reason"],
        json!("circuit_open"),
        "{r}"
    );
    assert!(
        r["result"]["_meta"]["io.vitals/retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Once the open period ends, probes reach the upstream, which now answers: closed again.
    let closed = wait_for(Duration::from_secs(40), || {
        let r = s.call_tool("ok", json!({"delay": 0}));
        (is_ok(&r) && server.metric("circuit_breaker_state{upstream=\"bad\"}") == Some(0.0))
            .then_some(())
    });
    assert!(closed.is_some(), "{}", server.metrics());
    let text = server.metrics();
    assert_eq!(
        metric_value(
            &text,
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"timeout\"}"
        ),
        Some(10.0),
        "{text}"
    );
    assert!(
        metric_value(
            &text,
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"circuit_open\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(metric_value(&text, "mcp_active_requests"), Some(0.0));
    assert_eq!(
        metric_value(&text, "mcp_upstream_in_flight{upstream=\"bad\"}"),
        Some(0.0)
    );
}

#[test]
fn garbage_on_the_upstreams_stdout_is_skipped() {
    let server = gateway("garbage", &[], &[]);
    let mut s = McpSession::open(server.addr);
    for _ in 0..5 {
        let r = s.call_tool("ok", json!({}));
        assert!(is_ok(&r), "{r}");
    }
    assert_eq!(
        server.metric("mcp_upstream_restarts_total{upstream=\"bad\"}"),
        Some(0.0)
    );
}

#[test]
fn a_flood_on_the_upstreams_stderr_stalls_nothing_and_is_logged_within_bounds() {
    let server = gateway("stderr-flood", &[], &[]);
    let mut s = McpSession::open(server.addr);
    for _ in 0..3 {
        let started = Instant::now();
        let r = s.call_tool("ok", json!({}));
        assert!(is_ok(&r), "{r}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // 4 MiB of stderr in 1 KiB lines: logged at a bounded rate, the rest counted (the count is
    // said at the end of each one-second window).
    let mut logs = Vec::new();
    let summary = wait_for(Duration::from_secs(10), || {
        logs.extend(server.drain_logs());
        logs.iter()
            .any(|l| l.contains("not logged (rate limit)"))
            .then_some(())
    });
    assert!(
        summary.is_some(),
        "no line says how many stderr lines were dropped"
    );
    let flood_lines = logs.iter().filter(|l| l.contains("stderr-flood")).count();
    assert!(flood_lines > 0, "stderr is logged with the upstream's name");
    assert!(
        flood_lines < 1000,
        "{flood_lines} lines logged for 4096 written"
    );
    assert!(logs.iter().all(|l| l.len() < 4096), "long lines are cut");
}

#[test]
fn shutdown_leaves_no_process_of_the_upstream_tree() {
    let pidfile: PathBuf =
        std::env::temp_dir().join(format!("vitals-gc-{}-{}", std::process::id(), free_port()));
    let mut server = gateway(
        "spawn-grandchild",
        &[],
        &[("BAD_UPSTREAM_PIDFILE", pidfile.to_str().unwrap())],
    );
    let grandchild: u32 = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .expect("grandchild pid");
    let tree = descendants(server.pid());
    assert!(tree.contains(&grandchild), "{tree:?}");
    assert!(tree.len() >= 2, "{tree:?}");
    assert!(Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let exited = wait_for(Duration::from_secs(20), || {
        server.child.try_wait().ok().flatten()
    });
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    let alive: Vec<u32> = tree.into_iter().filter(|p| process_alive(*p)).collect();
    assert!(alive.is_empty(), "left behind: {alive:?}");
    let _ = std::fs::remove_file(&pidfile);
}

#[test]
fn a_killed_upstream_takes_its_grandchildren_with_it() {
    let pidfile: PathBuf =
        std::env::temp_dir().join(format!("vitals-gk-{}-{}", std::process::id(), free_port()));
    let server = gateway(
        "spawn-grandchild",
        &[],
        &[("BAD_UPSTREAM_PIDFILE", pidfile.to_str().unwrap())],
    );
    let grandchild: u32 = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .expect("grandchild pid");
    let child = upstream_pid(&server);
    assert!(Command::new("kill")
        .args(["-9", &child.to_string()])
        .status()
        .unwrap()
        .success());
    let gone = wait_for(Duration::from_secs(10), || {
        (!process_alive(grandchild)).then_some(())
    });
    assert!(
        gone.is_some(),
        "grandchild {grandchild} outlived its parent"
    );
    wait_metric(&server, "mcp_upstream_up{upstream=\"bad\"}", |v| v == 1.0);
    let _ = std::fs::remove_file(&pidfile);
}

#[test]
fn a_cancelled_call_is_cancelled_upstream_and_counted_once() {
    let server = gateway("slow-then-ok", &[], &[]);
    let s = McpSession::open(server.addr);
    let (addr, id) = (server.addr, s.id.clone());
    let call = std::thread::spawn(move || {
        McpSession::resume(addr, id)
            .post(&json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
            "params": {"name": "ok", "arguments": {"delay": 60}}}))
    });
    wait_metric(&server, "mcp_upstream_in_flight{upstream=\"bad\"}", |v| {
        v == 1.0
    });
    let r = s.post(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 77, "reason": "user pressed stop"}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let logged = wait_for(Duration::from_secs(10), || {
        server
            .drain_logs()
            .into_iter()
            .find(|l| l.contains("bad_upstream: cancelled request"))
    });
    assert!(
        logged.is_some(),
        "the cancellation never reached the upstream"
    );
    wait_metric(&server, "mcp_upstream_in_flight{upstream=\"bad\"}", |v| {
        v == 0.0
    });
    wait_metric(&server, "mcp_active_requests", |v| v == 0.0);
    let text = server.metrics();
    assert_eq!(
        metric_value(
            &text,
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"cancelled\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "mcp_upstream_requests_total{upstream=\"bad\",method=\"tools/call\",outcome=\"cancelled\"}"),
        Some(1.0)
    );
    // The breaker saw neither a success nor a failure.
    let _ = call.join();
    let mut s = McpSession::open(server.addr);
    assert!(is_ok(&s.call_tool("ok", json!({}))));
}

#[test]
fn a_failed_upstreams_tools_leave_the_list_and_calls_to_them_are_unavailable() {
    let bad = bad_upstream("slow-then-ok");
    let config = ConfigFile::new(json!({"bad": {"command": bad[0], "args": [bad[1], bad[2]],
            "vitals": {"required": false, "restart": {"max_restarts": 0}}}}));
    let server = Server::start(&["--log-level", "warn", "--config", config.path()]);
    // Not required: ready at once; wait for the upstream itself.
    wait_metric(&server, "mcp_upstream_up{upstream=\"bad\"}", |v| v == 1.0);
    let mut s = McpSession::open(server.addr);
    assert!(is_ok(&s.call_tool("ok", json!({}))));
    let pid = upstream_pid(&server);
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_metric(&server, "mcp_upstream_failed{upstream=\"bad\"}", |v| {
        v == 1.0
    });
    let tools = s.call("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"ok"),
        "a failed upstream's tools are not listed: {names:?}"
    );
    let r = s.call_tool("ok", json!({}));
    assert_eq!(r["error"]["data"]["reason"], json!("unavailable"), "{r}");
    let text = server.metrics();
    assert_eq!(
        metric_value(
            &text,
            "mcp_tool_calls_total{upstream=\"bad\",tool=\"ok\",status=\"unavailable\"}"
        ),
        Some(1.0),
        "counted under the tool's name, not as unknown: {text}"
    );
}

#[test]
fn per_session_upstreams_give_each_client_its_own_process_up_to_a_cap() {
    let bad = bad_upstream("slow-then-ok");
    let config = ConfigFile::new(json!({"bad": {"command": bad[0], "args": [bad[1], bad[2]],
            "vitals": {"sessions": "per_session", "max_sessions": 2}}}));
    let mut server = Server::start(&["--log-level", "warn", "--config", config.path()]);
    server.wait_ready(READY);
    let gateway_pid = server.pid();
    let children = || {
        descendants(gateway_pid)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("bad_upstream.py"))
            })
            .collect::<Vec<u32>>()
    };
    let shared = children();
    assert_eq!(
        shared.len(),
        1,
        "one shared child lists the tools: {shared:?}"
    );
    let pid_of = |s: &mut McpSession| -> u32 {
        let r = s.call_tool("pid", json!({}));
        r["result"]["content"][0]["text"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{r}"))
    };
    let mut a = McpSession::open(server.addr);
    let mut b = McpSession::open(server.addr);
    let (pa, pb) = (pid_of(&mut a), pid_of(&mut b));
    assert_ne!(pa, pb, "each session has its own process");
    assert!(!shared.contains(&pa) && !shared.contains(&pb));
    assert_eq!(pid_of(&mut a), pa, "a session keeps its process");
    assert_eq!(children().len(), 3);
    // The cap: a third session is refused at once, clearly.
    let mut c = McpSession::open(server.addr);
    let r = c.call_tool("pid", json!({}));
    assert_eq!(r["error"]["data"]["reason"], json!("busy"), "{r}");
    // A session that ends takes its process with it, and frees its place.
    let headers = [
        ("Mcp-Session-Id", a.id.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let r = server.request("DELETE", "/mcp", &headers, b"");
    assert!(r.status < 300, "DELETE: {} {}", r.status, r.text());
    let gone = wait_for(Duration::from_secs(15), || {
        (!process_alive(pa)).then_some(())
    });
    assert!(
        gone.is_some(),
        "session a's process {pa} outlived the session"
    );
    let pc = pid_of(&mut c);
    assert!(pc != pb && pc != pa);
    // Shutdown stops the shared child and every session's.
    let all = children();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let exited = wait_for(Duration::from_secs(20), || {
        server.child.try_wait().ok().flatten()
    });
    assert!(exited.is_some(), "the gateway exits");
    let alive: Vec<u32> = all.into_iter().filter(|p| process_alive(*p)).collect();
    assert!(alive.is_empty(), "left behind: {alive:?}");
}

/// `/healthz` answers 503 when the server is unhealthy (its one required upstream has failed:
/// a crash loop), `/readyz` says not ready, and `/livez` still answers 200.
#[test]
fn healthz_is_503_when_a_required_upstream_has_failed() {
    let crashy = bad_upstream("exit-now");
    let config = ConfigFile::new(json!({
        "crashy": {"command": crashy[0], "args": [crashy[1], crashy[2]],
                   "vitals": {"required": true, "restart": {"max_restarts": 1, "window_seconds": 60,
                              "initial_delay_seconds": 0.05, "max_delay_seconds": 0.1}}}
    }));
    let server = Server::start(&["--log-level", "warn", "--config", config.path()]);
    wait_metric(&server, "mcp_upstream_failed{upstream=\"crashy\"}", |v| {
        v == 1.0
    });
    let h = server.request("GET", "/healthz", &[], b"");
    assert_eq!(h.status, 503, "{}", h.text());
    let body: Value = serde_json::from_slice(&h.body).expect("health JSON");
    assert_eq!(body["status"], json!("unhealthy"), "{body}");
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 503);
    assert_eq!(server.request("GET", "/livez", &[], b"").status, 200);
}

/// One keep-alive `GET /readyz` on `c`, read to the end of its response.
fn readyz_over(c: &mut std::net::TcpStream) -> HttpResponse {
    use std::io::{Read, Write};
    c.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Ok(r) = parse_response_checked(&buf) {
            return r;
        }
        assert!(Instant::now() < deadline, "no whole response: {buf:?}");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        match c.read(&mut chunk) {
            Ok(0) => panic!("closed before a whole response: {buf:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// `/readyz` answers 503 while the server drains: asked over a keep-alive connection opened
/// before SIGTERM (new connections are no longer accepted) while a slow call is in flight; the
/// call still completes and the server exits 0.
#[test]
fn readyz_is_503_while_draining() {
    let mut server = gateway("slow-then-ok", &["--drain-timeout", "30"], &[]);
    let mut keep = std::net::TcpStream::connect(server.addr).unwrap();
    assert_eq!(readyz_over(&mut keep).status, 200);
    let addr = server.addr;
    let call = std::thread::spawn(move || {
        let mut s = McpSession::open(addr);
        s.call_tool("ok", json!({"delay": 3}))
    });
    wait_metric(&server, "mcp_active_requests", |v| v == 1.0);
    let pid = server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let draining = wait_for(Duration::from_secs(10), || {
        let r = readyz_over(&mut keep);
        (r.status == 503).then_some(r)
    })
    .expect("/readyz never answered 503 while draining");
    assert_eq!(draining.text(), "{\"status\":\"not ready\"}");
    assert!(
        is_ok(&call.join().expect("call thread")),
        "in-flight call lost"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}
