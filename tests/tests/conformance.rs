//! The official MCP conformance suite at both revisions the server speaks (`--requirements
//! 2025-11-25` and `--requirements 2026-07-28`), against `vitals-server --conformance-fixtures`,
//! against the gateway fronting `vitals-server --stdio --conformance-fixtures`, and against the
//! default server (no fixtures).
//!
//! The suite's exit code counts only FAILURE checks of scored scenarios, so it is not enough:
//! every check's result is read from the suite's per-check output (`-o DIR`, one `checks.json`
//! per scenario), and every check that is not SUCCESS or INFO (a FAILURE, a WARNING, or a
//! SKIPPED that could hide a missing feature) must be listed, with its status, in
//! `tests/conformance-baseline.txt`. A listed check that now passes fails the test too, so the
//! list never hides a regression behind a stale line.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vitals_tests::*;

/// The protocol revisions the suite is run at.
const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

/// One check: (scenario, check id, status).
type Check = (String, String, String);

/// What one run of the suite produced.
struct Run {
    /// The suite's exit code was 0 (no scored FAILURE).
    exit_ok: bool,
    /// Its stdout and stderr.
    output: String,
    /// Every check of every scenario, as read from `-o DIR`.
    checks: Vec<Check>,
    /// The error messages of the non-success checks, for the assertion text.
    messages: Vec<String>,
}

/// The scenario name of an output directory `server-<scenario>-<ISO time with dashes>Z`.
fn scenario_of(dir: &str) -> String {
    let s = dir.strip_prefix("server-").unwrap_or(dir);
    // The timestamp is `YYYY-MM-DDTHH-MM-SS-mmmZ` (24 characters) after a dash.
    match s.len().checked_sub(25) {
        Some(cut) if s.ends_with('Z') && s.as_bytes()[cut] == b'-' => s[..cut].to_owned(),
        _ => s.to_owned(),
    }
}

fn run_suite(url: &str, revision: &str) -> Run {
    let work = std::env::temp_dir().join(format!(
        "vitals-conf-{}-{}-{revision}",
        std::process::id(),
        free_port()
    ));
    let results = work.join("results");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new(require_program("node"));
    cmd.arg(require_program("conformance"))
        .args(["server", "--url", &format!("{url}/mcp")])
        .args(["--requirements", revision])
        .arg("-o")
        .arg(&results)
        .current_dir(&work)
        .stdin(Stdio::null());
    let done = run_to_end(cmd, Duration::from_secs(300), "conformance suite");
    let output = format!("{}{}", done.stdout, done.stderr);
    let mut checks = Vec::new();
    let mut messages = Vec::new();
    let dirs = std::fs::read_dir(&results).unwrap_or_else(|e| {
        panic!(
            "no per-check results in {}: {e}\n{output}",
            results.display()
        )
    });
    for entry in dirs {
        let entry = entry.unwrap();
        let scenario = scenario_of(&entry.file_name().to_string_lossy());
        let file = entry.path().join("checks.json");
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let list: Vec<Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for c in list {
            let id = c["id"].as_str().unwrap_or("?").to_owned();
            let status = c["status"].as_str().unwrap_or("?").to_owned();
            if !matches!(status.as_str(), "SUCCESS" | "INFO") {
                messages.push(format!(
                    "{scenario} {id} {status}: {}",
                    c["errorMessage"].as_str().unwrap_or("")
                ));
            }
            checks.push((scenario.clone(), id, status));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Run {
        exit_ok: done.status.success(),
        output,
        checks,
        messages,
    }
}

/// The non-success checks `tests/conformance-baseline.txt` allows for `target` at `revision`.
fn baseline(target: &str, revision: &str) -> BTreeSet<Check> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance-baseline.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "{}: bad line `{l}`", path.display());
            (f[0] == revision && f[1] == target)
                .then(|| (f[2].to_owned(), f[3].to_owned(), f[4].to_owned()))
        })
        .collect()
}

/// Runs the suite at every revision against `url` and checks each check against the baseline;
/// with `scored_must_pass`, the suite's own verdict (exit 0, no expected-failures file) too.
fn check_target(target: &str, url: &str, scored_must_pass: bool) {
    let mut problems = Vec::new();
    for revision in REVISIONS {
        let run = run_suite(url, revision);
        assert!(
            run.output.contains("Total:") && run.checks.len() > 20,
            "{target} {revision}: the suite did not run its scenarios:\n{}",
            run.output
        );
        if scored_must_pass && !run.exit_ok {
            problems.push(format!("{revision}: the suite failed (scored checks)"));
        }
        let actual: BTreeSet<Check> = run
            .checks
            .iter()
            .filter(|(_, _, status)| !matches!(status.as_str(), "SUCCESS" | "INFO"))
            .cloned()
            .collect();
        let allowed = baseline(target, revision);
        for (scenario, id, status) in actual.difference(&allowed) {
            problems.push(format!("{revision}: unexpected {status} {scenario} {id}"));
        }
        for (scenario, id, status) in allowed.difference(&actual) {
            problems.push(format!(
                "{revision}: baseline lists {status} {scenario} {id}, which did not happen: remove the line"
            ));
        }
        if !problems.is_empty() {
            problems.push(format!(
                "{revision} details:\n  {}",
                run.messages.join("\n  ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "conformance ({target}) deviates from tests/conformance-baseline.txt:\n{}",
        problems.join("\n")
    );
}

/// A session ended with DELETE is gone: 2xx for the DELETE, then 404 for the ended session.
fn assert_delete_ends_session(addr: std::net::SocketAddr) {
    let mut s = McpSession::open(addr);
    let listed = s.call("tools/list", serde_json::json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let headers = [
        ("Mcp-Session-Id", s.id.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let d = request(addr, "DELETE", "/mcp", &headers, b"");
    assert!(
        (200..300).contains(&d.status),
        "DELETE: {} {}",
        d.status,
        d.text()
    );
    let after = s.post(&serde_json::json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}));
    assert_eq!(
        after.status,
        404,
        "the ended session still answers: {}",
        after.text()
    );
}

/// The value of the one series of `family` whose labels include `tool="TOOL"`.
fn tool_series(text: &str, family: &str, tool: &str, status: Option<&str>) -> Option<f64> {
    let tool = format!("tool=\"{tool}\"");
    let status = status.map(|s| format!("status=\"{s}\""));
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&tool))
        .filter(|l| status.as_ref().is_none_or(|s| l.contains(s.as_str())))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap_or("")
                .parse::<f64>()
                .unwrap_or(f64::NAN)
        })
        .reduce(|a, b| a + b)
}

#[test]
fn fixtures_server_passes_both_revisions() {
    let server = Server::start(&["--conformance-fixtures", "--log-level", "warn"]);
    check_target("fixtures", &server.url(), true);
    // The suite's three-round call (two input-required rounds, then the answer; only the
    // 2026-07-28 run uses this tool) is one call in the metrics, its rounds counted apart.
    let text = server.metrics();
    let tool = "test_input_required_result_multi_round";
    assert_eq!(
        tool_series(&text, "mcp_tool_calls_total", tool, None),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        tool_series(&text, "mcp_tool_calls_total", tool, Some("ok")),
        Some(1.0)
    );
    assert_eq!(
        tool_series(&text, "mcp_tool_input_rounds_total", tool, None),
        Some(2.0),
        "{text}"
    );
    assert_delete_ends_session(server.addr);
}

#[test]
fn gateway_in_front_of_the_fixtures_server_passes_both_revisions() {
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
    check_target("gateway", &server.url(), true);
    assert_delete_ends_session(server.addr);
}

#[test]
fn default_server_fails_only_the_listed_checks() {
    let server = Server::start(&["--log-level", "warn"]);
    check_target("default", &server.url(), false);
}

#[test]
fn scenario_names_are_read_from_result_directories() {
    assert_eq!(
        scenario_of("server-tools-list-2026-12-02T07-31-48-649Z"),
        "tools-list"
    );
    assert_eq!(
        scenario_of("server-server-stateless-2026-12-02T07-31-48-295Z"),
        "server-stateless"
    );
}
