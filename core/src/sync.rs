//! The atomics every core type is built on.
//!
//! Invariant: every atomic here is interrupt safe and lock free on the target it was built for.
//! 64-bit atomics come from `portable-atomic` without its spin-lock `fallback`; on a target without
//! native 64-bit atomics the build script refuses to build unless the firmware chose
//! `unsafe-assume-single-core` (cfg or feature) or `critical-section`. Under `--cfg loom` the
//! types are loom's, so the model checker explores every interleaving of our CAS loops.

#[cfg(all(not(loom), feature = "string-labels"))]
pub(crate) use portable_atomic::AtomicU32;
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

#[cfg(all(loom, feature = "string-labels"))]
pub(crate) use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

/// Spin-loop hint for bounded waits (never an unbounded spin).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
