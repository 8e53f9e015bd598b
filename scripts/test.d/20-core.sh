#!/usr/bin/env bash
# The no_std core: host tests (with and without the `float` feature, and with `exemplars`), the
# worked example's output checked by content and by promtool, builds for the three MCU targets
# with each interrupt-safe atomic strategy (as cargo features, so all of them share one target
# directory; the cfg spelling of the single-core strategy is what embedded/ builds and tests in
# step 60), and proof that the unsafe configurations refuse to build with the message meant for
# them.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vitals-core
cargo test -p vitals-core --no-default-features --lib --tests
# Exemplars on: every golden still holds (nothing recorded, nothing rendered), the exemplar tests
# and doc examples.
cargo test -p vitals-core --features exemplars

echo "the example registry: content, health JSON, promtool check metrics"
out=target/core-example.prom err=target/core-example.stderr
cargo run -q -p vitals-core --example uart >"$out" 2>"$err" || { cat "$err" >&2; exit 1; }
# promtool exits 0 on empty input: the content is checked first.
for line in 'device_boots_total 1' 'radio_packets_total{radio="ble"} 66' \
  'adc_read_duration_seconds_bucket{le="+Inf"} 100' 'adc_read_duration_seconds_count 100' \
  'firmware_info{version="1.4.2",board="nrf52840-dk"} 1'; do
  grep -qxF "$line" "$out" || { echo "FAIL: example output lacks '$line':" >&2; cat "$out" >&2; exit 1; }
done
grep -qxF '{"status":"healthy","components":[{"name":"sensor","status":"healthy","critical":true}]}' "$err" \
  || { echo "FAIL: example health JSON missing or wrong:" >&2; cat "$err" >&2; exit 1; }
promtool check metrics <"$out"

MCU=(--target-dir target/mcu -q -p vitals-core)
for t in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  echo "build $t (unsafe-assume-single-core, with and without default features)"
  cargo build "${MCU[@]}" --target "$t" --no-default-features --features unsafe-assume-single-core
  cargo build "${MCU[@]}" --target "$t" --features unsafe-assume-single-core
done
for t in thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
  echo "build $t (critical-section)"
  cargo build "${MCU[@]}" --target "$t" --features critical-section
done
echo "build thumbv7em-none-eabihf (unsafe-assume-privileged)"
cargo build "${MCU[@]}" --target thumbv7em-none-eabihf --features unsafe-assume-privileged

# must_refuse TARGET FEATURES TEXT...: the build fails, and its error holds every TEXT (the phrase
# unique to the refusal meant for this case, then the choices it must name).
must_refuse() {
  local target=$1 features=$2 out
  shift 2
  if out=$(cargo build "${MCU[@]}" --target "$target" $features 2>&1); then
    echo "FAIL: $target $features built, but must be refused" >&2; exit 1
  fi
  for text in "$@"; do
    grep -qF "$text" <<<"$out" || { echo "FAIL: $target $features refused without '$text':" >&2; echo "$out" >&2; exit 1; }
  done
  echo "refused as expected: $target $features"
}
NO_STRATEGY="this target has no native 64-bit atomics"
must_refuse thumbv7em-none-eabihf "" "$NO_STRATEGY" unsafe-assume-single-core unsafe-assume-privileged critical-section
must_refuse thumbv6m-none-eabi "" "$NO_STRATEGY" unsafe-assume-single-core unsafe-assume-privileged critical-section
must_refuse thumbv7em-none-eabihf "--features critical-section" \
  "the \`critical-section\` feature does not cover 64-bit atomics on a chip that has" unsafe-assume-single-core unsafe-assume-privileged
