#!/usr/bin/env bash
# End-to-end: the reference server against real outside programs (installed by scripts/setup):
# promtool, a Prometheus server, the MCP conformance suite, the MCP Python SDK over HTTP and stdio,
# server-everything behind the gateway; plus every bad-input case. A missing program fails.
# (vitals-std's and vitals-server's own tests ran in step 40, the e2e crate's lints in step 10.)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p vitals-server
cargo test -p vitals-tests --features e2e --no-fail-fast
# The documentation names only flags, environment variables and paths that exist, and documents
# every flag the server has.
scripts/check-docs target/debug/vitals-server
