//! The official MCP conformance suite (`--requirements 2025-11-25`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vitals_tests::*;

fn run_suite(server: &Server, baseline: Option<&std::path::Path>) -> (bool, String) {
    let work = std::env::temp_dir().join(format!(
        "vitals-conf-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new(require_program("node"));
    cmd.arg(require_program("conformance"))
        .args([
            "server",
            "--url",
            &format!("{}/mcp", server.url()),
            "--requirements",
            "2025-11-25",
        ])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(b) = baseline {
        cmd.arg("--expected-failures").arg(b);
    }
    let mut child = ChildGuard(cmd.spawn().expect("spawn conformance"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "conformance suite did not finish in 300 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut o) = child.0.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    let _ = std::fs::remove_dir_all(&work);
    (status.success(), out)
}

#[test]
fn fixtures_server_passes_with_no_expected_failures() {
    let server = Server::start(&["--conformance-fixtures", "--log-level", "warn"]);
    let (ok, out) = run_suite(&server, None);
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('✗') || l.starts_with("Total"))
        .collect();
    assert!(ok, "conformance failed:\n{}\n{out}", summary.join("\n"));
    assert!(out.contains("Total:"), "{out}");
}

#[test]
fn default_server_fails_only_fixture_scenarios() {
    let server = Server::start(&["--log-level", "warn"]);
    let baseline = repo_root().join("tests/conformance-baseline.yml");
    let (ok, out) = run_suite(&server, Some(&baseline));
    assert!(
        ok,
        "conformance against the default server deviates from {}:\n{out}",
        baseline.display()
    );
}

#[test]
fn gateway_in_front_of_the_fixtures_server_is_transparent() {
    // vitals-server as a gateway, fronting `vitals-server --stdio --conformance-fixtures`.
    let bin = server_bin().display().to_string();
    let server = Server::start(&[
        "--log-level",
        "warn",
        "--",
        &bin,
        "--stdio",
        "--conformance-fixtures",
        "--log-level",
        "warn",
    ]);
    server.wait_ready(Duration::from_secs(30));
    let (ok, out) = run_suite(&server, None);
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('✗') || l.starts_with("Total"))
        .collect();
    assert!(
        ok,
        "conformance through the gateway failed:\n{}\n{out}",
        summary.join("\n")
    );
    assert!(out.contains("Total:"), "{out}");
}
