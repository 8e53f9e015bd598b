//! The gateway in front of the MCP reference server (`@modelcontextprotocol/server-everything`,
//! over stdio), driven by the official Python SDK (`tests/python/gateway_client.py`): every tool,
//! progress, sampling, elicitation, a cancelled call, resources, prompts, completion and logging
//! give the same summary through the gateway, over HTTP and over stdio, as when the client talks
//! to the reference server directly. Then composition with a second upstream written with the
//! Python SDK over Streamable HTTP: prefixes, a deliberate name conflict, routing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use vitals_tests::*;

fn everything() -> Vec<String> {
    vec![
        require_program("node").display().to_string(),
        require_program("everything").display().to_string(),
        "stdio".into(),
    ]
}

/// Runs gateway_client.py with `args`; returns its summary line (fails on a non-zero exit).
fn client(args: &[String]) -> Value {
    let mut cmd = Command::new(require_program("python"));
    cmd.arg(repo_root().join("tests/python/gateway_client.py"))
        .args(args);
    let done = run_to_end(cmd, Duration::from_secs(180), "gateway_client.py");
    assert!(
        done.status.success(),
        "gateway_client.py {args:?} failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    serde_json::from_str(done.stdout.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {}", done.stdout))
}

/// The gateway's own tools, which the reference server does not have.
const OPERATOR_TOOLS: &str =
    "server_health,server_metrics,rate_limit_status,circuit_breaker_status";

fn direct_summary() -> Value {
    let mut args = vec!["stdio".to_owned()];
    args.extend(everything());
    client(&args)
}

/// A gateway in front of server-everything, ready.
fn gateway(extra: &[&str]) -> Server {
    let upstream = everything();
    let mut args: Vec<&str> = vec!["--log-level", "warn", "--upstream-name", "everything"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend(upstream.iter().map(String::as_str));
    let server = Server::start(&args);
    server.wait_ready(Duration::from_secs(60));
    server
}

fn assert_same(direct: &Value, through: &Value, how: &str) {
    if direct != through {
        let (d, t) = (direct.as_object().unwrap(), through.as_object().unwrap());
        let differing: Vec<&String> = d
            .keys()
            .chain(t.keys())
            .filter(|k| d.get(*k) != t.get(*k))
            .collect();
        panic!("through the gateway ({how}) differs in {differing:?}:\ndirect:  {direct}\nthrough: {through}");
    }
}

#[test]
fn everything_through_the_gateway_over_http_equals_direct() {
    let direct = direct_summary();
    let server = gateway(&[]);
    let through = client(&[
        "--ignore-tools".into(),
        OPERATOR_TOOLS.into(),
        "http".into(),
        format!("{}/mcp", server.url()),
    ]);
    assert_same(&direct, &through, "HTTP");

    // The client cancelled one call: it reached the upstream as a cancellation, and every
    // gauge is back to zero.
    let text = server.metrics();
    let series = |s: &str| metric_value(&text, s);
    assert_eq!(series("mcp_active_requests"), Some(0.0), "{text}");
    assert_eq!(
        series("mcp_upstream_in_flight{upstream=\"everything\"}"),
        Some(0.0)
    );
    assert_eq!(
        series("mcp_tool_calls_total{upstream=\"everything\",tool=\"trigger-long-running-operation\",status=\"cancelled\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series("mcp_upstream_requests_total{upstream=\"everything\",method=\"tools/call\",outcome=\"cancelled\"}"),
        Some(1.0)
    );
    for method in ["resources/read", "prompts/get", "completion/complete"] {
        let s = format!("mcp_upstream_requests_total{{upstream=\"everything\",method=\"{method}\",outcome=\"ok\"}}");
        assert!(series(&s).unwrap_or(0.0) >= 1.0, "{s}\n{text}");
    }
    assert!(
        series("mcp_upstream_notifications_total{upstream=\"everything\",method=\"notifications/progress\"}")
            .unwrap_or(0.0)
            >= 5.0
    );
    assert!(
        series("mcp_tool_calls_total{upstream=\"everything\",tool=\"echo\",status=\"ok\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool: {out}");
    assert!(strict_exposition_problems(&text).is_empty());
}

#[test]
fn everything_through_the_gateway_over_stdio_equals_direct() {
    let direct = direct_summary();
    let mut args = vec![
        "--ignore-tools".to_owned(),
        OPERATOR_TOOLS.into(),
        "stdio".into(),
        server_bin().display().to_string(),
        "--stdio".into(),
        "--log-level".into(),
        "warn".into(),
        "--upstream-name".into(),
        "everything".into(),
        "--".into(),
    ];
    args.extend(everything());
    let through = client(&args);
    assert_same(&direct, &through, "stdio");
}

#[test]
fn two_upstreams_are_composed_with_prefixes_and_conflicts_are_resolved() {
    // The second upstream: a server written with the official Python SDK, over Streamable HTTP.
    let mut py = ChildGuard(
        Command::new(require_program("python"))
            .arg(repo_root().join("tests/python/upstream_http_server.py"))
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn upstream_http_server.py"),
    );
    let mut line = String::new();
    BufReader::new(py.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();

    // Two upstreams: names are prefixed, and the reference server passes the whole suite with
    // its prefix.
    let server = gateway(&["--upstream", &format!("py={url}")]);
    let direct = direct_summary();
    let through = client(&[
        "--prefix".into(),
        "everything__".into(),
        "http".into(),
        format!("{}/mcp", server.url()),
    ]);
    assert_same(&direct, &through, "HTTP, prefixed");
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("py__add", json!({"a": 2, "b": 3}));
    assert_eq!(r["result"]["structuredContent"]["sum"], json!(5), "{r}");
    let r = s.call_tool("py__echo", json!({"message": "x"}));
    assert_eq!(r["result"]["content"][0]["text"], json!("py:x"), "{r}");
    let r = s.call_tool("everything__echo", json!({"message": "x"}));
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains('x'),
        "{r}"
    );
    assert!(
        !r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("py:"),
        "{r}"
    );
    let r = s.call_tool("py__fail", json!({}));
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    let r = s.call(
        "prompts/get",
        json!({"name": "py__greet", "arguments": {"name": "Ada"}}),
    );
    assert!(r["result"]["messages"].is_array(), "{r}");
    let r = s.call("resources/read", json!({"uri": "py://info"}));
    assert!(r["result"]["contents"].is_array(), "{r}");
    assert_eq!(server.metric("mcp_gateway_name_conflicts"), Some(0.0));
    assert_eq!(
        server.metric(
            "mcp_tool_calls_total{upstream=\"py\",tool=\"py__fail\",status=\"tool_error\"}"
        ),
        Some(1.0)
    );
    drop(server);

    // Without prefixes, `echo` is listed by both: the first upstream in configuration order
    // (the file's order) serves it, the other is hidden and counted.
    let dir =
        std::env::temp_dir().join(format!("vitals-gwc-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let upstream = everything();
    let config = dir.join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {
            "a-everything": {"command": upstream[0], "args": [upstream[1], upstream[2]], "vitals": {"prefix": "never"}},
            "b-py": {"url": url, "vitals": {"prefix": "never"}}
        }})
        .to_string(),
    )
    .unwrap();
    let args = ["--log-level", "warn", "--config", config.to_str().unwrap()];
    let server = Server::start(&args);
    server.wait_ready(Duration::from_secs(60));
    let conflicts = wait_for(Duration::from_secs(20), || {
        server
            .metric("mcp_gateway_name_conflicts")
            .filter(|v| *v >= 1.0)
    });
    assert_eq!(conflicts, Some(1.0), "{}", server.metrics());
    let mut s = McpSession::open(server.addr);
    let r = s.call_tool("echo", json!({"message": "x"}));
    assert!(
        !r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("py:"),
        "the first upstream serves `echo`: {r}"
    );
    let r = s.call_tool("add", json!({"a": 1, "b": 1}));
    assert_eq!(r["result"]["structuredContent"]["sum"], json!(2), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The official Python SDK in its 2026-07-28 modes (`auto`, which discovers, and `2026-07-28`)
/// in front of the legacy-only server-everything, over HTTP and stdio: the gateway speaks
/// 2026-07-28 to the client and 2025-11-25 to the upstream. Every tool, resource, prompt and
/// completion answer the client checks equals the legacy client's direct one.
#[test]
fn modern_clients_reach_a_legacy_upstream_through_the_gateway() {
    let direct = direct_summary();
    let server = gateway(&[]);
    for mode in ["auto", "2026-07-28"] {
        let http = client(&[
            "--mode".into(),
            mode.into(),
            "--ignore-tools".into(),
            OPERATOR_TOOLS.into(),
            "http".into(),
            format!("{}/mcp", server.url()),
        ]);
        let mut args = vec![
            "--mode".to_owned(),
            mode.into(),
            "--ignore-tools".into(),
            OPERATOR_TOOLS.into(),
            "stdio".into(),
            server_bin().display().to_string(),
            "--stdio".into(),
            "--log-level".into(),
            "warn".into(),
            "--upstream-name".into(),
            "everything".into(),
            // Under load, node may take long to start: the first list waits for it (bounded).
            "--upstream-start-wait".into(),
            "120".into(),
            "--".into(),
        ];
        args.extend(everything());
        let stdio = client(&args);
        for (through, how) in [(http, "HTTP"), (stdio, "stdio")] {
            let how = format!("{mode} over {how}");
            let t = through.as_object().unwrap();
            assert!(
                t["calls"].as_object().unwrap().len() >= 10,
                "{how}: {through}"
            );
            // The same answers as the legacy client's, for everything the modern run covers.
            let mut expected = serde_json::Map::new();
            for (k, v) in t {
                let d = &direct[k.as_str()];
                expected.insert(
                    k.clone(),
                    match (k.as_str(), d) {
                        ("calls", Value::Object(calls)) => Value::Object(
                            calls
                                .iter()
                                .filter(|(c, _)| v.get(c.as_str()).is_some())
                                .map(|(c, x)| (c.clone(), x.clone()))
                                .collect(),
                        ),
                        _ => d.clone(),
                    },
                );
            }
            assert_same(&Value::Object(expected), &through, &how);
        }
    }
    // Each of the four runs called echo once (2026-07-28 requests counted as legacy ones).
    let text = server.metrics();
    let echo = metric_value(
        &text,
        "mcp_tool_calls_total{upstream=\"everything\",tool=\"echo\",status=\"ok\"}",
    );
    assert_eq!(
        echo,
        Some(2.0),
        "two HTTP runs through this gateway:\n{text}"
    );
}
