#!/usr/bin/env bash
# The benchmarks in quick mode: every bench, the allocation counts and a short load test run
# (their figures are not checked: no timed assertion); fails if any vitals hot path or warm render
# allocates. Full runs: scripts/bench-report (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/bench-report --quick
