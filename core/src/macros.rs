//! Internal macros.

/// Declares a `const fn`, except under `--cfg loom` where loom's atomics cannot be built in a
/// constant and the function is an ordinary `fn` (loom tests build values at run time).
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis const fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}

/// An array of zeroed atomics, built in a constant (or at run time under loom).
#[cfg(all(feature = "exemplars", not(loom)))]
pub(crate) const fn atomic_array<const N: usize>() -> [crate::sync::AtomicU64; N] {
    [const { crate::sync::AtomicU64::new(0) }; N]
}

/// An array of zeroed atomics, built at run time (loom's atomics are not `const`).
#[cfg(all(feature = "exemplars", loom))]
pub(crate) fn atomic_array<const N: usize>() -> [crate::sync::AtomicU64; N] {
    core::array::from_fn(|_| crate::sync::AtomicU64::new(0))
}
