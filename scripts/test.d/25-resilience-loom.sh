#!/usr/bin/env bash
# loom model checks of the resilience primitives' CAS loops (token bucket, quota, keyed limiter
# insertion and eviction, circuit breaker probes and trips), in their own target directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target-loom cargo test -p vitals-core --release --test loom_resilience
