#!/usr/bin/env bash
# vitals-core on emulated microcontrollers (embedded/, a cargo workspace of its own): the on-target
# tests under QEMU on thumbv6m (microbit, Cortex-M0), thumbv7em (mps2-an386, Cortex-M4F) and
# riscv32imc (virt), with the single-core atomic strategy of embedded/.cargo/config.toml and again
# with the alternatives (critical-section on the chips without CAS, unsafe-assume-privileged on
# the M4); the worked example, its output checked by promtool; and the footprint table.
# QEMU comes from scripts/setup: missing QEMU fails this step, it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
for q in qemu-system-arm qemu-system-riscv32; do
  command -v "$q" >/dev/null || { echo "60-embedded: $q not found (scripts/setup apt installs it)" >&2; exit 1; }
done
command -v timeout >/dev/null || { echo "60-embedded: timeout (coreutils) not found" >&2; exit 1; }
ROOT=$PWD
cd embedded
TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf)

echo "== format and lints (every target)"
# Not `--all`: that would also reformat the core (a path dependency) that this step does not own.
cargo fmt -- --check
for t in "${TARGETS[@]}"; do
  cargo clippy -q --target "$t" --workspace --all-targets -- -D warnings
done

for t in "${TARGETS[@]}"; do
  echo "== on-target tests: $t (single-core cfg)"
  cargo test -p vitals-ontarget --target "$t"
done

# The alternative strategies: `RUSTFLAGS=` drops the single-core cfg of .cargo/config.toml (link
# arguments come from build.rs); each in its own target directory so the default build stays warm.
for t in thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
  echo "== on-target tests: $t (critical-section)"
  RUSTFLAGS= CARGO_TARGET_DIR=target/critical-section cargo test -p vitals-ontarget --target "$t" --features critical-section
done
echo "== on-target tests: thumbv7em-none-eabihf (unsafe-assume-privileged)"
RUSTFLAGS= CARGO_TARGET_DIR=target/privileged cargo test -p vitals-ontarget --target thumbv7em-none-eabihf --features privileged

echo "== worked example (examples/uart.rs) on every target, exposition checked by promtool"
for t in "${TARGETS[@]}"; do
  out=target/uart-$t.prom
  cargo run -q -p vitals-ontarget --example uart --target "$t" >"$out" 2>target/uart-$t.stderr \
    || { cat target/uart-$t.stderr >&2; exit 1; }
  grep -q '^timer_ticks_total 200$' "$out" || { echo "60-embedded: unexpected example output on $t:" >&2; cat "$out" >&2; exit 1; }
  grep -q '"status":"healthy"' target/uart-$t.stderr || { echo "60-embedded: no health JSON on $t" >&2; exit 1; }
  if command -v promtool >/dev/null; then promtool check metrics <"$out"; else echo "60-embedded: promtool missing (scripts/setup)" >&2; exit 1; fi
done

echo "== footprint"
"$ROOT/scripts/footprint"
