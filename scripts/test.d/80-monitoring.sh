#!/usr/bin/env bash
# monitoring/: promtool checks of the Prometheus config (as shipped and with its bearer-token
# variant uncommented), the rules and their unit tests; the Grafana dashboard is what its generator
# writes; then monitoring/tests/live_test.py runs a real vitals-server and a real Prometheus and
# sends every rule and dashboard expression to it (see the script). Fails if promtool/prometheus
# are missing: scripts/setup installs them.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in promtool prometheus python3; do
  command -v "$tool" >/dev/null || { echo "80-monitoring: $tool not found (run scripts/setup)" >&2; exit 1; }
done

promtool check config monitoring/prometheus.yml
promtool check rules monitoring/rules/recording.yml monitoring/rules/alerts.yml
promtool test rules monitoring/tests/rules.test.yml

echo "promtool check config: the bearer-token variant"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r monitoring/rules "$tmp/"
printf 'not-a-real-token\n' > "$tmp/vitals-metrics.token"
# Drop the default job, uncomment the variant, point it at a token file that exists.
awk -v tok="$tmp/vitals-metrics.token" '
  /^  - job_name: vitals$/ && !seen { skip = 1; seen = 1; next }
  skip && /^  # / { skip = 0 }
  skip { next }
  /^  # BEGIN bearer-token variant/ { inside = 1; next }
  /^  # END bearer-token variant/ { inside = 0; next }
  inside && /^  #/ { sub(/^  # ?/, "  "); sub(/\/etc\/prometheus\/vitals-metrics.token/, tok) }
  { print }
' monitoring/prometheus.yml > "$tmp/prometheus.yml"
grep -q 'type: Bearer' "$tmp/prometheus.yml" || { echo "bearer variant not found in prometheus.yml" >&2; exit 1; }
[ "$(grep -c 'job_name: vitals' "$tmp/prometheus.yml")" = 1 ] || { echo "expected exactly one vitals job" >&2; exit 1; }
promtool check config "$tmp/prometheus.yml"

echo "dashboard JSON is up to date with its generator"
python3 monitoring/grafana/build_dashboard.py --check

# The debug build of step 50 (fresh when that step ran): a release build would compile the whole
# async stack once more, and the live test measures nothing.
cargo build -p vitals-server
target_dir=${CARGO_TARGET_DIR:-target}
python3 monitoring/tests/live_test.py --server-bin "$target_dir/debug/vitals-server" \
  --bearer-variant "$tmp/prometheus.yml"
