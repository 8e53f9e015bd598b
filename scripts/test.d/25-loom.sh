#!/usr/bin/env bash
# loom model checks of every CAS loop in the core, in one build and one target directory (the
# `--cfg loom` flag must not invalidate the normal build): the string-label slot claim, the float
# gauge add and the histogram tally's epochs, read whole while writers carry (loom_core); the exemplar seqlock, never read torn (loom_exemplars); the token bucket,
# quota, keyed limiter insertion and eviction, and the circuit breaker's probes and trips
# (loom_resilience).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p vitals-core --release --features exemplars --test loom_core --test loom_exemplars --test loom_resilience
