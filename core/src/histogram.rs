//! Fixed-bucket histograms with integer observations.
//!
//! Bounds are integers in a decimal unit (`Scale::MICRO`: observations and bounds in microseconds,
//! rendered as seconds), so the hot path never touches floating point: find the bucket (linear
//! search for small N, binary above), then record it in that bucket's tally
//! (`histogram/tally.rs`): one atomic add on a 64-bit server (count and sum share a word), two on
//! a 32-bit chip (count, then the series' sum). Counts are kept per bucket (not cumulative); `_count` is derived as their sum, so
//! `le="+Inf"` always equals `_count`.

mod tally;

#[cfg(feature = "exemplars")]
use crate::exemplar::Exemplar;
use crate::labels::Labels;
use crate::registry::{Collect, HistogramView, Instrument, Kind, Series, Value};
use crate::sync::{AtomicU64, Ordering};
use core::fmt;
pub(crate) use tally::{Carry, Tally};

/// The decimal unit of a histogram's integer bounds and observations: the value rendered is
/// `integer / 10^decimals`, written exactly (no float rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    decimals: u8,
}

impl Scale {
    /// Whole units (bounds rendered as written).
    pub const ONE: Scale = Scale { decimals: 0 };
    /// Thousandths (milliseconds → seconds).
    pub const MILLI: Scale = Scale { decimals: 3 };
    /// Millionths (microseconds → seconds).
    pub const MICRO: Scale = Scale { decimals: 6 };
    /// Billionths (nanoseconds → seconds).
    pub const NANO: Scale = Scale { decimals: 9 };

    /// A scale of `10^-decimals`, at most 19 decimals (a `u64` has 20 digits). More is a
    /// compile error in a `static` or `const` (use [`Scale::try_decimals`] at run time).
    ///
    /// ```compile_fail,E0080
    /// use vitals_core::Scale;
    /// const FINER_THAN_A_U64: Scale = Scale::decimals(20);
    /// # let _ = FINER_THAN_A_U64;
    /// ```
    pub const fn decimals(decimals: u8) -> Scale {
        match Self::try_decimals(decimals) {
            Ok(s) => s,
            Err(_) => panic!("a histogram scale has at most 19 decimals"),
        }
    }

    /// A scale of `10^-decimals`, or [`BoundsError::TooManyDecimals`] above 19.
    pub const fn try_decimals(decimals: u8) -> Result<Scale, BoundsError> {
        if decimals > 19 {
            return Err(BoundsError::TooManyDecimals { decimals });
        }
        Ok(Scale { decimals })
    }

    /// Number of decimal places.
    pub const fn get(self) -> u8 {
        self.decimals
    }

    /// Converts a duration to this scale's integer unit (saturating; scales finer than
    /// nanoseconds count whole nanoseconds).
    pub const fn from_duration(self, d: core::time::Duration) -> u64 {
        let nanos = d.as_nanos();
        let v = if self.decimals >= 9 {
            nanos
        } else {
            nanos / 10u128.pow(9 - self.decimals as u32)
        };
        if v > u64::MAX as u128 {
            u64::MAX
        } else {
            v as u64
        }
    }
}

/// Why a set of bucket bounds was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoundsError {
    /// Bounds must be strictly increasing; `at` is the first index that is not.
    NotIncreasing {
        /// Index of the offending bound.
        at: usize,
    },
    /// A scale has at most 19 decimals (a `u64` has 20 digits).
    TooManyDecimals {
        /// The decimals asked for.
        decimals: u8,
    },
}

impl core::error::Error for BoundsError {}

impl fmt::Display for BoundsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundsError::NotIncreasing { at } => {
                write!(
                    f,
                    "histogram bounds must increase strictly (bound {at} does not)"
                )
            }
            BoundsError::TooManyDecimals { decimals } => {
                write!(
                    f,
                    "a histogram scale has at most 19 decimals, not {decimals}"
                )
            }
        }
    }
}

/// `N` strictly increasing upper bounds (the `+Inf` bucket is implicit) and their scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds<const N: usize> {
    le: [u64; N],
    scale: Scale,
}

impl<const N: usize> Bounds<N> {
    /// Bounds in the given scale; fails unless strictly increasing.
    pub const fn try_new(le: [u64; N], scale: Scale) -> Result<Self, BoundsError> {
        let mut i = 1;
        while i < N {
            if le[i] <= le[i - 1] {
                return Err(BoundsError::NotIncreasing { at: i });
            }
            i += 1;
        }
        Ok(Bounds { le, scale })
    }

    /// Bounds in the given scale. Not increasing strictly is a compile error when evaluated in a
    /// `static` or `const` (use [`Bounds::try_new`] for bounds chosen at run time).
    ///
    /// ```compile_fail,E0080
    /// use vitals_core::{Bounds, Histogram};
    /// static LATENCY: Histogram<3> = Histogram::new(Bounds::micros([1_000, 5_000, 5_000]));
    /// ```
    pub const fn new(le: [u64; N], scale: Scale) -> Self {
        match Self::try_new(le, scale) {
            Ok(b) => b,
            Err(_) => panic!("histogram bounds must increase strictly"),
        }
    }

    /// Bounds in whole units.
    pub const fn units(le: [u64; N]) -> Self {
        Self::new(le, Scale::ONE)
    }

    /// Bounds in milliseconds, rendered as seconds.
    pub const fn millis(le: [u64; N]) -> Self {
        Self::new(le, Scale::MILLI)
    }

    /// Bounds in microseconds, rendered as seconds.
    pub const fn micros(le: [u64; N]) -> Self {
        Self::new(le, Scale::MICRO)
    }

    /// Bounds in nanoseconds, rendered as seconds.
    pub const fn nanos(le: [u64; N]) -> Self {
        Self::new(le, Scale::NANO)
    }

    /// `start, start + width, start + 2·width, ...` (`width` ≥ 1; saturating).
    pub const fn linear(start: u64, width: u64, scale: Scale) -> Self {
        let mut le = [0u64; N];
        let mut i = 0;
        while i < N {
            le[i] = start.saturating_add(width.saturating_mul(i as u64));
            i += 1;
        }
        Self::new(le, scale)
    }

    /// `start, start·factor, start·factor², ...` (`start` ≥ 1, `factor` ≥ 2; saturating).
    pub const fn exponential(start: u64, factor: u64, scale: Scale) -> Self {
        let mut le = [0u64; N];
        let mut v = start;
        let mut i = 0;
        while i < N {
            le[i] = v;
            v = v.saturating_mul(factor);
            i += 1;
        }
        Self::new(le, scale)
    }

    /// The upper bounds, in the scale's unit.
    pub const fn le(&self) -> &[u64; N] {
        &self.le
    }

    /// The scale.
    pub const fn scale(&self) -> Scale {
        self.scale
    }

    /// Index of the bucket `v` falls in (`N` is the `+Inf` bucket).
    ///
    /// As the bounds increase strictly, the index is the number of bounds below `v`. Up to 32
    /// bounds that count is taken over all of them without a branch (the compiler vectorises it),
    /// so an observation costs the same wherever it falls and a spread of values never
    /// mispredicts; above 32, a binary search.
    #[inline]
    pub fn bucket(&self, v: u64) -> usize {
        if N <= 32 {
            self.le.iter().fold(0, |n, &b| n + usize::from(b < v))
        } else {
            self.le.partition_point(|&b| b < v)
        }
    }
}

/// The counters of one histogram series: a tally per bucket (the `+Inf` overflow bucket
/// included) and a sum word for the observations the tallies leave out (on a 32-bit chip, all of
/// them), in the bounds' unit. Families share one [`Bounds`] across many cells.
#[derive(Debug)]
pub struct HistogramCells<const N: usize> {
    pub(crate) counts: [Tally; N],
    pub(crate) inf: Tally,
    pub(crate) sum: AtomicU64,
    /// The latest exemplar per bucket (`+Inf` included).
    #[cfg(feature = "exemplars")]
    pub(crate) exemplars: crate::exemplar::Exemplars<N>,
}

impl<const N: usize> HistogramCells<N> {
    const_fn! {
        /// Empty cells.
        pub const fn new() -> Self {
            HistogramCells {
                counts: tally::tallies(),
                inf: Tally::new(),
                sum: AtomicU64::new(0),
                #[cfg(feature = "exemplars")]
                exemplars: crate::exemplar::Exemplars::new(),
            }
        }
    }

    /// Records `v` against `bounds`: one atomic add on a 64-bit server for values below 2^24, two
    /// otherwise (see the crate README, "One atomic add per observation"). The sum wraps at
    /// `u64::MAX`.
    #[inline]
    pub fn observe(&self, bounds: &Bounds<N>, v: u64) {
        self.record(bounds.bucket(v), v);
    }

    /// Records `v` in bucket `i` (`N` and above: `+Inf`).
    #[inline]
    fn record(&self, i: usize, v: u64) {
        let rest = self.tally(i).record(v);
        if rest != 0 {
            self.sum.fetch_add(rest, Ordering::Relaxed);
        }
    }

    /// Bucket `i`'s tally (`N` and above: `+Inf`).
    #[inline]
    fn tally(&self, i: usize) -> &Tally {
        self.counts.get(i).unwrap_or(&self.inf)
    }

    /// Records `v` against `bounds` and keeps `exemplar` as its bucket's latest (unless another
    /// thread is writing that bucket's exemplar at this instant: then only `v` is recorded).
    #[cfg(feature = "exemplars")]
    #[inline]
    pub fn observe_with_exemplar(&self, bounds: &Bounds<N>, v: u64, exemplar: &Exemplar) {
        let i = bounds.bucket(v);
        self.record(i, v);
        self.exemplars.slot(i).record(exemplar, v);
    }

    /// Bucket `i`'s latest exemplar (`N` is `+Inf`) and the value observed with it, in the
    /// bounds' unit; `None` when it has none (or a writer kept it busy through a few reads).
    #[cfg(feature = "exemplars")]
    pub fn exemplar(&self, i: usize) -> Option<(Exemplar, u64)> {
        if i > N {
            return None;
        }
        self.exemplars.slot(i).get()
    }

    /// Number of observations (sum of all buckets).
    pub fn count(&self) -> u64 {
        self.tallies().fold(0, |a, t| a.wrapping_add(t.read().0))
    }

    /// Sum of observations, in the bounds' unit.
    pub fn sum(&self) -> u64 {
        self.tallies()
            .fold(self.sum.load(Ordering::Relaxed), |a, t| {
                a.wrapping_add(t.read().1)
            })
    }

    /// Per-bucket (non-cumulative) counts and the `+Inf` bucket's count: `(buckets, inf)`.
    pub fn buckets(&self) -> ([u64; N], u64) {
        let mut out = [0u64; N];
        for (o, t) in out.iter_mut().zip(self.counts.iter()) {
            *o = t.read().0;
        }
        (out, self.inf.read().0)
    }

    /// Every bucket's tally, `+Inf` last.
    fn tallies(&self) -> impl Iterator<Item = &Tally> {
        self.counts.iter().chain(core::iter::once(&self.inf))
    }
}

impl<const N: usize> Default for HistogramCells<N> {
    fn default() -> Self {
        HistogramCells::new()
    }
}

/// A histogram: bounds plus one series of cells.
///
/// ```
/// use vitals_core::{Bounds, Histogram};
/// static LATENCY: Histogram<3> = Histogram::new(Bounds::micros([500, 1_000, 5_000]));
/// LATENCY.observe(750);
/// assert_eq!(LATENCY.count(), 1);
/// ```
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    pub(crate) bounds: Bounds<N>,
    pub(crate) cells: HistogramCells<N>,
}

impl<const N: usize> Histogram<N> {
    const_fn! {
        /// An empty histogram over `bounds`.
        pub const fn new(bounds: Bounds<N>) -> Self {
            Histogram { bounds, cells: HistogramCells::new() }
        }
    }

    /// Records an observation in the bounds' unit.
    #[inline]
    pub fn observe(&self, v: u64) {
        self.cells.observe(&self.bounds, v);
    }

    /// Records a duration, converted to the bounds' unit.
    #[inline]
    pub fn observe_duration(&self, d: core::time::Duration) {
        self.observe(self.bounds.scale.from_duration(d));
    }

    /// Records an observation with the trace it belongs to (see
    /// [`HistogramCells::observe_with_exemplar`]).
    #[cfg(feature = "exemplars")]
    #[inline]
    pub fn observe_with_exemplar(&self, v: u64, exemplar: &Exemplar) {
        self.cells.observe_with_exemplar(&self.bounds, v, exemplar);
    }

    /// Records a duration with the trace it belongs to.
    #[cfg(feature = "exemplars")]
    #[inline]
    pub fn observe_duration_with_exemplar(&self, d: core::time::Duration, exemplar: &Exemplar) {
        self.observe_with_exemplar(self.bounds.scale.from_duration(d), exemplar);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.cells.count()
    }

    /// Sum of observations in the bounds' unit.
    pub fn sum(&self) -> u64 {
        self.cells.sum()
    }

    /// The bounds.
    pub fn bounds(&self) -> &Bounds<N> {
        &self.bounds
    }

    /// The cells (per-bucket counts and sum).
    pub fn cells(&self) -> &HistogramCells<N> {
        &self.cells
    }
}

/// A histogram series inside a family: shared bounds and this series' cells.
#[derive(Debug, Clone, Copy)]
pub struct HistogramRef<'a, const N: usize> {
    pub(crate) bounds: &'a Bounds<N>,
    pub(crate) cells: &'a HistogramCells<N>,
}

impl<'a, const N: usize> HistogramRef<'a, N> {
    /// Records an observation in the bounds' unit.
    #[inline]
    pub fn observe(&self, v: u64) {
        self.cells.observe(self.bounds, v);
    }

    /// Records a duration, converted to the bounds' unit.
    #[inline]
    pub fn observe_duration(&self, d: core::time::Duration) {
        self.observe(self.bounds.scale.from_duration(d));
    }

    /// Records an observation with the trace it belongs to (see
    /// [`HistogramCells::observe_with_exemplar`]).
    #[cfg(feature = "exemplars")]
    #[inline]
    pub fn observe_with_exemplar(&self, v: u64, exemplar: &Exemplar) {
        self.cells.observe_with_exemplar(self.bounds, v, exemplar);
    }

    /// Records a duration with the trace it belongs to.
    #[cfg(feature = "exemplars")]
    #[inline]
    pub fn observe_duration_with_exemplar(&self, d: core::time::Duration, exemplar: &Exemplar) {
        self.observe_with_exemplar(self.bounds.scale.from_duration(d), exemplar);
    }

    /// Number of observations in this series.
    pub fn count(&self) -> u64 {
        self.cells.count()
    }

    /// Sum of observations in this series.
    pub fn sum(&self) -> u64 {
        self.cells.sum()
    }

    /// The cells.
    pub fn cells(&self) -> &'a HistogramCells<N> {
        self.cells
    }
}

impl<const N: usize> Collect for Histogram<N> {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then(|| Series {
            labels: Labels::None,
            value: Value::Histogram(HistogramView::new(
                self.bounds.le(),
                self.bounds.scale(),
                &self.cells,
            )),
        })
    }
}

impl<const N: usize> Instrument for Histogram<N> {
    const KIND: Kind = Kind::Histogram;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_have_at_most_19_decimals() {
        assert_eq!(Scale::decimals(19).get(), 19);
        assert_eq!(Scale::try_decimals(9), Ok(Scale::NANO));
        assert_eq!(
            Scale::try_decimals(20),
            Err(BoundsError::TooManyDecimals { decimals: 20 })
        );
        assert_eq!(
            std::string::ToString::to_string(&BoundsError::TooManyDecimals { decimals: 20 }),
            "a histogram scale has at most 19 decimals, not 20"
        );
    }

    #[test]
    fn buckets_and_sum() {
        static H: Histogram<3> = Histogram::new(Bounds::units([1, 5, 10]));
        for v in [0, 1, 2, 5, 6, 10, 11, 1000] {
            H.observe(v);
        }
        assert_eq!(H.cells.buckets(), ([2, 2, 2], 2));
        assert_eq!(H.count(), 8);
        assert_eq!(H.sum(), 1035);
    }

    #[test]
    fn layouts() {
        assert_eq!(
            Bounds::<4>::linear(10, 5, Scale::ONE).le(),
            &[10, 15, 20, 25]
        );
        assert_eq!(
            Bounds::<4>::exponential(1, 10, Scale::ONE).le(),
            &[1, 10, 100, 1000]
        );
        assert_eq!(
            Bounds::try_new([1, 1], Scale::ONE),
            Err(BoundsError::NotIncreasing { at: 1 })
        );
        assert!(Bounds::<70>::try_new([u64::MAX; 70], Scale::ONE).is_err());
    }

    #[test]
    fn binary_search_matches_linear() {
        let b = Bounds::<40>::linear(10, 10, Scale::ONE);
        for v in 0..500u64 {
            let linear = b.le().iter().position(|&x| v <= x).unwrap_or(40);
            assert_eq!(b.bucket(v), linear, "v={v}");
        }
    }

    #[test]
    fn durations() {
        use core::time::Duration;
        assert_eq!(Scale::MICRO.from_duration(Duration::from_millis(3)), 3000);
        assert_eq!(
            Scale::NANO.from_duration(Duration::from_secs(1)),
            1_000_000_000
        );
        assert_eq!(Scale::ONE.from_duration(Duration::from_millis(2500)), 2);
        assert_eq!(Scale::NANO.from_duration(Duration::MAX), u64::MAX);
        let h = Histogram::new(Bounds::millis([1, 10]));
        h.observe_duration(Duration::from_micros(5500));
        assert_eq!(h.sum(), 5);
    }
}
