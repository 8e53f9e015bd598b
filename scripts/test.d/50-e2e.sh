#!/usr/bin/env bash
# End-to-end: the vitals-std and vitals-server tests, then the reference server against real outside
# programs (installed by scripts/setup): promtool, a Prometheus server, the MCP conformance suite,
# and the MCP Python SDK over HTTP and stdio; plus every bad-input case. A missing program fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vitals-std -p vitals-server
cargo clippy --no-deps -p vitals-std -p vitals-server -p vitals-tests --features vitals-tests/e2e --all-targets -- -D warnings
cargo build -p vitals-server
cargo test -p vitals-tests --features e2e --no-fail-fast
