//! A monotonically increasing count.

use crate::sync::{AtomicU64, Ordering};

/// A counter: one atomic `u64` that only goes up (wrapping at `u64::MAX`, which takes centuries
/// at any realistic rate).
///
/// Hot path: one relaxed `fetch_add`. Rendered as `<name>_total`.
#[derive(Debug)]
pub struct Counter {
    value: AtomicU64,
}

impl Counter {
    const_fn! {
        /// A counter at zero.
        pub const fn new() -> Self {
            Counter { value: AtomicU64::new(0) }
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        static C: Counter = Counter::new();
        C.inc();
        C.inc_by(41);
        assert_eq!(C.get(), 42);
    }
}
