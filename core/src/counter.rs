//! A monotonically increasing count.

use crate::labels::Labels;
use crate::registry::{Collect, Instrument, Kind, Series, Value};
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

impl Collect for Counter {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then_some(Series {
            labels: Labels::None,
            value: Value::Counter(self),
        })
    }
}

impl Instrument for Counter {
    const KIND: Kind = Kind::Counter;
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
