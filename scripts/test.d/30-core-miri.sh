#!/usr/bin/env bash
# Undefined-behaviour check of the core's tests under miri, in its own target directory (its flags
# must not invalidate the normal build). Property tests run 4 cases under miri (core/tests/common).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Isolation off: proptest reads the working directory for its regression files.
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p vitals-core --lib --tests
