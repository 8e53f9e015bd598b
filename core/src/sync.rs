//! The atomics every core type is built on.
//!
//! Invariant: every atomic here is interrupt safe and lock free on the target it was built for.
//! 64-bit atomics come from `portable-atomic` without its spin-lock `fallback`; on a target without
//! native 64-bit atomics the build script refuses to build unless the firmware chose
//! `unsafe-assume-single-core` (cfg or feature) or `critical-section`. Under `--cfg loom` the
//! types are loom's, so the model checker explores every interleaving of our CAS loops.

#[cfg(not(loom))]
pub use portable_atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Spin-loop hint for bounded waits (never an unbounded spin).
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
