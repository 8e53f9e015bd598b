//! Values that go up and down.

use crate::labels::Labels;
use crate::registry::{Collect, Instrument, Kind, Series, Value};
use crate::sync::{AtomicI64, Ordering};

/// An integer gauge (one atomic `i64`): queue depths, connection counts, temperatures in
/// milli-degrees. Arithmetic wraps like the hardware does; use [`Gauge::set`] for absolute values.
#[derive(Debug)]
pub struct Gauge {
    value: AtomicI64,
}

impl Gauge {
    const_fn! {
        /// A gauge at zero.
        pub const fn new() -> Self {
            Gauge { value: AtomicI64::new(0) }
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Adds `n` (may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

/// A floating-point gauge: the `f64` bits in one atomic `u64`. `set` is one store; `add` is a
/// compare-and-swap loop that retries only when another writer raced it (lock free).
#[cfg(feature = "float")]
#[derive(Debug)]
pub struct FloatGauge {
    bits: crate::sync::AtomicU64,
}

#[cfg(feature = "float")]
impl FloatGauge {
    const_fn! {
        /// A gauge at `0.0`.
        pub const fn new() -> Self {
            FloatGauge { bits: crate::sync::AtomicU64::new(0) }
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` atomically.
    #[inline]
    pub fn add(&self, delta: f64) {
        let mut cur = self.bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + delta).to_bits();
            match self
                .bits
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

#[cfg(feature = "float")]
impl Default for FloatGauge {
    fn default() -> Self {
        FloatGauge::new()
    }
}

impl Collect for Gauge {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then_some(Series {
            labels: Labels::None,
            value: Value::Gauge(self),
        })
    }
}

impl Instrument for Gauge {
    const KIND: Kind = Kind::Gauge;
}

#[cfg(feature = "float")]
impl Collect for FloatGauge {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then_some(Series {
            labels: Labels::None,
            value: Value::FloatGauge(self),
        })
    }
}

#[cfg(feature = "float")]
impl Instrument for FloatGauge {
    const KIND: Kind = Kind::Gauge;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_gauge() {
        let g = Gauge::new();
        g.set(10);
        g.inc();
        g.dec();
        g.add(-15);
        assert_eq!(g.get(), -5);
    }

    #[cfg(feature = "float")]
    #[test]
    fn float_gauge() {
        let g = FloatGauge::new();
        g.set(1.5);
        g.add(0.25);
        assert_eq!(g.get(), 1.75);
        g.set(f64::NAN);
        assert!(g.get().is_nan());
    }
}
