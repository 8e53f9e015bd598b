#!/usr/bin/env bash
# Every other crate's own tests, doc tests included: vitals-core's ran in step 20, the end-to-end
# crate and the benches have steps of their own. First, a check that costs no build: the server
# binary of step 50 must reuse this step's dependencies (the same crates with the same features).
# A dev-dependency asking a shared crate for one more feature (tokio "full" did) compiles the
# whole async stack twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
TESTS=(--workspace --exclude vitals-core --exclude vitals-tests --exclude vitals-benches)
deps() { # the dependency units (not workspace crates) of a cargo command, with their features
  cargo +nightly "$@" --unit-graph -Z unstable-options | python3 -c '
import json, sys
for u in json.load(sys.stdin)["units"]:
    if "path+file" not in u["pkg_id"] and u["target"]["kind"] != ["custom-build"]:
        print(u["pkg_id"].split("#")[-1], u["target"]["name"], ",".join(u["features"]))' | sort -u
}
if ! diff <(deps test "${TESTS[@]}") <(deps build -p vitals-server) >target/dep-graph.diff; then
  echo "40-workspace: the server binary's dependencies differ from the test build's (a crate" >&2
  echo "would be compiled twice); < test build, > cargo build -p vitals-server:" >&2
  cat target/dep-graph.diff >&2
  exit 1
fi
cargo test "${TESTS[@]}"
