#!/usr/bin/env bash
# Every crate's own tests (the end-to-end crate and the benches have their own steps).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --workspace --exclude vitals-tests --exclude vitals-benches
