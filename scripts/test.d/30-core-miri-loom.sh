#!/usr/bin/env bash
# Undefined-behaviour check of the core's tests under miri, and loom model checks of its CAS loops
# (each in its own target directory: their flags must not invalidate the normal build).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Isolation off: proptest reads the working directory for its regression files.
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p vitals-core --lib --tests
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p vitals-core --release --test loom_core
