//! The official MCP Python SDK as a client, over Streamable HTTP and over stdio.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vitals_tests::*;

fn run_client(args: &[&str]) -> String {
    let script = repo_root().join("tests/python/operator_client.py");
    let mut child = ChildGuard(
        Command::new(require_program("python"))
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python"),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "python client did not finish in 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    use std::io::Read;
    let (mut out, mut err) = (String::new(), String::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "python client failed:\n{out}\n{err}");
    out
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
