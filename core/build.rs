//! Refuses to build the core for a target without native 64-bit atomics unless the firmware has
//! chosen an interrupt-safe strategy. portable-atomic's default `fallback` would otherwise give
//! `AtomicU64` through a global spin-lock table, which deadlocks when an interrupt handler touches a
//! value that the code it preempted holds locked.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(vitals_no_atomic_strategy)");
    let has_atomic = env::var("CARGO_CFG_TARGET_HAS_ATOMIC").unwrap_or_default();
    let native_64 = has_atomic.split(',').any(|w| w == "64");
    let single_core_cfg = env::var_os("CARGO_CFG_PORTABLE_ATOMIC_UNSAFE_ASSUME_SINGLE_CORE").is_some();
    let single_core_feature = env::var_os("CARGO_FEATURE_UNSAFE_ASSUME_SINGLE_CORE").is_some();
    let critical_section = env::var_os("CARGO_FEATURE_CRITICAL_SECTION").is_some();
    if !(native_64 || single_core_cfg || single_core_feature || critical_section) {
        println!("cargo:rustc-cfg=vitals_no_atomic_strategy");
    }
}
