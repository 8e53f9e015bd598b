#!/usr/bin/env bash
# Undefined-behaviour check of the core's tests under miri, in its own target directory (its flags
# must not invalidate the normal build). Property tests run 4 cases under miri (core/tests/common).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Isolation off: proptest reads the working directory for its regression files. The number
# tests compare with format! over fewer values under miri (about 15 s instead of 960 s).
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p vitals-core --lib --tests
# The exemplar seqlock and its rendering (feature `exemplars`): its unit tests, the threaded and
# property tests of core/tests/exemplars.rs and the checker's exemplar cases.
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p vitals-core \
  --features exemplars --lib --test exemplars --test golden -- exemplar
