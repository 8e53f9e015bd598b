#!/usr/bin/env bash
# Every other crate's own tests, doc tests included: vitals-core's ran in step 20, the end-to-end
# crate and the benches have steps of their own.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --workspace --exclude vitals-core --exclude vitals-tests --exclude vitals-benches
