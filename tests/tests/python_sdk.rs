//! The official MCP Python SDK as a client, over Streamable HTTP and over stdio.

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

#[test]
fn python_sdk_over_http() {
    let server = Server::start(&[]);
    let out = run_client(&["http", &format!("{}/mcp", server.url())]);
    assert!(out.contains("\"ok\": true"), "{out}");
}

#[test]
fn python_sdk_over_stdio() {
    let bin = server_bin();
    let out = run_client(&[
        "stdio",
        bin.to_str().unwrap(),
        "--stdio",
        "--log-level",
        "warn",
    ]);
    assert!(out.contains("\"ok\": true"), "{out}");
}
