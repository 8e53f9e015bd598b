#!/usr/bin/env bash
# The no_std core: host tests (with and without the `float` feature), promtool on a rendered
# registry, builds for the three MCU targets with each interrupt-safe atomic strategy, and proof
# that the unsafe configurations refuse to build with a message that names the choices.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p vitals-core
cargo test -p vitals-core --no-default-features --lib --tests

echo "promtool check metrics on the example registry"
cargo run -q -p vitals-core --example uart 2>/dev/null > target/core-example.prom
promtool check metrics < target/core-example.prom

MCU_DIR=target/mcu
for t in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  echo "build $t (single-core cfg)"
  RUSTFLAGS="--cfg portable_atomic_unsafe_assume_single_core" CARGO_TARGET_DIR=$MCU_DIR/single-core \
    cargo build -q -p vitals-core --target "$t" --no-default-features
  RUSTFLAGS="--cfg portable_atomic_unsafe_assume_single_core" CARGO_TARGET_DIR=$MCU_DIR/single-core \
    cargo build -q -p vitals-core --target "$t"
done
for t in thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
  echo "build $t (critical-section)"
  CARGO_TARGET_DIR=$MCU_DIR/cs cargo build -q -p vitals-core --target "$t" --features critical-section
done
echo "build thumbv7em-none-eabihf (unsafe-assume-privileged)"
CARGO_TARGET_DIR=$MCU_DIR/privileged cargo build -q -p vitals-core --target thumbv7em-none-eabihf --features unsafe-assume-privileged

must_refuse() { # target features expected-text
  local out
  if out=$(CARGO_TARGET_DIR=$MCU_DIR/refuse cargo build -q -p vitals-core --target "$1" $2 2>&1); then
    echo "FAIL: $1 $2 built, but must be refused" >&2; exit 1
  fi
  grep -q "$3" <<<"$out" || { echo "FAIL: $1 $2 refused without naming the choices:" >&2; echo "$out" >&2; exit 1; }
  echo "refused as expected: $1 $2"
}
must_refuse thumbv7em-none-eabihf "" "unsafe-assume-single-core"
must_refuse thumbv6m-none-eabi "" "critical-section"
must_refuse thumbv7em-none-eabihf "--features critical-section" "unsafe-assume-privileged"
