#!/usr/bin/env bash
# Formatting, lints (warnings are errors, missing docs included) on every crate and target, the
# end-to-end suites included.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features vitals-tests/e2e -- -D warnings
# The core without default features (no float) must lint clean too.
cargo clippy -p vitals-core --no-default-features --all-targets -- -D warnings
# Feature flags remove code: vitals-std without the gateway, the server without the fixtures.
cargo clippy -p vitals-std --no-default-features --all-targets -- -D warnings
cargo clippy -p vitals-std --no-default-features --features otel --all-targets -- -D warnings
cargo clippy -p vitals-server --no-default-features --all-targets -- -D warnings
# The crate docs (the core's and vitals-std's READMEs included) build without a warning: a broken
# intra-doc link fails.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q -p vitals-core -p vitals-std -p vitals-server
# The core as firmware takes it (no default features): links to items behind a feature fail there.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q -p vitals-core --no-default-features
