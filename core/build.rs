//! Refuses to build the core for a target without native 64-bit atomics unless the firmware has
//! chosen an interrupt-safe strategy. portable-atomic's plain `fallback` gives `AtomicU64` through a
//! global spin-lock table, which deadlocks when an interrupt handler touches a value that the code
//! it preempted holds locked; each accepted strategy replaces those locks:
//! - `unsafe-assume-single-core` (feature or portable-atomic's cfg): interrupts disabled, no lock;
//! - `unsafe-assume-privileged` (feature or cfg): locks taken with interrupts disabled;
//! - `critical-section`: only on chips without atomic CAS, where portable-atomic routes every
//!   atomic through the critical section (with CAS present it would still use spin locks).
//!
//! It also sets `vitals_packed_tally` on 64-bit machines with native 64-bit atomics: there a
//! histogram bucket's count and sum share one word (see `src/histogram/tally.rs`).
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(vitals_no_atomic_strategy)");
    println!("cargo::rustc-check-cfg=cfg(vitals_critical_section_with_cas)");
    println!("cargo::rustc-check-cfg=cfg(vitals_packed_tally)");
    let has_atomic = env::var("CARGO_CFG_TARGET_HAS_ATOMIC").unwrap_or_default();
    let has = |w: &str| has_atomic.split(',').any(|x| x == w);
    let set = |v: &str| env::var_os(v).is_some();
    if has("64") {
        // A 64-bit machine with native 64-bit atomics (a server): a histogram bucket keeps its
        // count and sum in one word, one atomic add per observation (`histogram/tally.rs`).
        if env::var("CARGO_CFG_TARGET_POINTER_WIDTH").is_ok_and(|w| w == "64") {
            println!("cargo:rustc-cfg=vitals_packed_tally");
        }
        return;
    }
    if set("CARGO_CFG_PORTABLE_ATOMIC_UNSAFE_ASSUME_SINGLE_CORE")
        || set("CARGO_FEATURE_UNSAFE_ASSUME_SINGLE_CORE")
        || set("CARGO_CFG_PORTABLE_ATOMIC_UNSAFE_ASSUME_PRIVILEGED")
        || set("CARGO_FEATURE_UNSAFE_ASSUME_PRIVILEGED")
    {
        return;
    }
    if set("CARGO_FEATURE_CRITICAL_SECTION") {
        if has("ptr") {
            println!("cargo:rustc-cfg=vitals_critical_section_with_cas");
        }
        return;
    }
    println!("cargo:rustc-cfg=vitals_no_atomic_strategy");
}
