//! The official MCP Python SDK as a client, over Streamable HTTP and over stdio, in each of its
//! connection modes: `legacy` (2025-11-25 handshake), `auto` (discovers, then 2026-07-28) and
//! `2026-07-28`.

use std::process::Command;
use std::time::Duration;

use vitals_tests::*;

fn run_client(args: &[&str]) -> String {
    let mut cmd = Command::new(require_program("python"));
    cmd.arg(repo_root().join("tests/python/operator_client.py"))
        .args(args);
    let done = run_to_end(cmd, Duration::from_secs(90), "the python client");
    assert!(
        done.status.success(),
        "python client failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    done.stdout
}

const MODES: [&str; 3] = ["legacy", "auto", "2026-07-28"];

#[test]
fn python_sdk_over_http() {
    let server = Server::start(&[]);
    let url = format!("{}/mcp", server.url());
    for mode in MODES {
        let out = run_client(&["--mode", mode, "http", &url]);
        assert!(out.contains("\"ok\": true"), "{mode}: {out}");
    }
    // Every mode's four operator calls (and one refused) counted alike: 2026-07-28 requests
    // have no session, and are instrumented as legacy ones.
    let health = server.metric(
        "mcp_tool_calls_total{upstream=\"server_health\",tool=\"server_health\",status=\"ok\"}",
    );
    assert_eq!(health, Some(3.0), "{}", server.metrics());
}

#[test]
fn python_sdk_over_stdio() {
    let bin = server_bin();
    for mode in MODES {
        let out = run_client(&[
            "--mode",
            mode,
            "stdio",
            bin.to_str().unwrap(),
            "--stdio",
            "--log-level",
            "warn",
        ]);
        assert!(out.contains("\"ok\": true"), "{mode}: {out}");
    }
}
