//! Families of series keyed by typed labels: a dense array, no lookup.

use crate::histogram::{Bounds, HistogramCells, HistogramRef};
use crate::labels::{LabelSet, Labels};
use crate::registry::{Collect, HistogramView, Instrument, Kind, Series, Value};
use crate::{Counter, Gauge};
use core::marker::PhantomData;

/// What a family holds per series: a counter, a gauge, or histogram cells.
pub trait Cell: Sync + Sized {
    /// State shared by every series of a family (histogram bounds; `()` otherwise).
    type Shared: Sync + Copy;
    /// What an update goes through: `&Counter`, or a histogram series with its bounds.
    type Handle<'a>
    where
        Self: 'a;
    /// The family's metric type.
    const KIND: Kind;
    /// An empty cell, for building arrays in constants.
    #[cfg(not(loom))]
    const INIT: Self;
    /// An empty cell built at run time.
    fn fresh() -> Self;
    /// The handle for this cell.
    fn handle<'a>(&'a self, shared: &'a Self::Shared) -> Self::Handle<'a>;
    /// The value for rendering.
    fn value<'a>(&'a self, shared: &'a Self::Shared) -> Value<'a>;
}

macro_rules! simple_cell {
    ($t:ty, $kind:expr, $variant:ident) => {
        impl Cell for $t {
            type Shared = ();
            type Handle<'a> = &'a $t;
            const KIND: Kind = $kind;
            #[cfg(not(loom))]
            const INIT: Self = <$t>::new();
            fn fresh() -> Self {
                <$t>::new()
            }
            #[inline]
            fn handle<'a>(&'a self, _: &'a ()) -> &'a $t {
                self
            }
            fn value<'a>(&'a self, _: &'a ()) -> Value<'a> {
                Value::$variant(self)
            }
        }
    };
}

simple_cell!(Counter, Kind::Counter, Counter);
simple_cell!(Gauge, Kind::Gauge, Gauge);
#[cfg(feature = "float")]
simple_cell!(crate::FloatGauge, Kind::Gauge, FloatGauge);

impl<const N: usize> Cell for HistogramCells<N> {
    type Shared = Bounds<N>;
    type Handle<'a> = HistogramRef<'a, N>;
    const KIND: Kind = Kind::Histogram;
    #[cfg(not(loom))]
    const INIT: Self = HistogramCells::new();
    fn fresh() -> Self {
        HistogramCells::new()
    }
    #[inline]
    fn handle<'a>(&'a self, bounds: &'a Bounds<N>) -> HistogramRef<'a, N> {
        HistogramRef {
            bounds,
            cells: self,
        }
    }
    fn value<'a>(&'a self, bounds: &'a Bounds<N>) -> Value<'a> {
        Value::Histogram(HistogramView::new(bounds.le(), bounds.scale(), self))
    }
}

#[cfg(all(not(loom), feature = "string-labels"))]
pub(crate) const fn cell<C: Cell>() -> C {
    C::INIT
}

#[cfg(all(loom, feature = "string-labels"))]
pub(crate) fn cell<C: Cell>() -> C {
    C::fresh()
}

#[cfg(not(loom))]
pub(crate) const fn cells<C: Cell, const N: usize>() -> [C; N] {
    [const { C::INIT }; N]
}

#[cfg(loom)]
pub(crate) fn cells<C: Cell, const N: usize>() -> [C; N] {
    core::array::from_fn(|_| C::fresh())
}

/// A family of `N` series, one per value of the typed label set `L` (`N` must equal
/// `L::CARDINALITY`, checked at compile time). Every series is rendered, zeros included, so rates
/// and alerts never see a series appear from nothing.
///
/// ```
/// use vitals_core::{label_enum, Counter, Family, Registry, Entry};
/// label_enum! { pub enum Outcome: "outcome" { Ok = "ok", Error = "error" } }
/// static CALLS: Family<Outcome, Counter, 2> = Family::new();
/// CALLS.labels(Outcome::Error).inc();
/// assert_eq!(CALLS.labels(Outcome::Error).get(), 1);
/// ```
pub struct Family<L: LabelSet, C: Cell, const N: usize> {
    shared: C::Shared,
    cells: [C; N],
    labels: PhantomData<fn(L)>,
}

impl<L: LabelSet, C: Cell<Shared = ()>, const N: usize> Family<L, C, N> {
    const_fn! {
        /// A family of counters or gauges, all at zero.
        pub const fn new() -> Self {
            Self::with_shared(())
        }
    }
}

impl<L: LabelSet, C: Cell<Shared = ()>, const N: usize> Default for Family<L, C, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: LabelSet, const B: usize, const N: usize> Family<L, HistogramCells<B>, N> {
    const_fn! {
        /// A family of histograms sharing `bounds`.
        pub const fn histogram(bounds: Bounds<B>) -> Self {
            Self::with_shared(bounds)
        }
    }
}

impl<L: LabelSet, C: Cell, const N: usize> Family<L, C, N> {
    const_fn! {
        /// A family whose series share `shared`.
        pub const fn with_shared(shared: C::Shared) -> Self {
            const { assert!(N == L::CARDINALITY && N > 0, "a typed family's size N must equal its label set's CARDINALITY") };
            Family { shared, cells: cells::<C, N>(), labels: PhantomData }
        }
    }

    /// The series for `labels`: an array index, no lookup.
    #[inline]
    pub fn labels(&self, labels: L) -> C::Handle<'_> {
        let i = labels.index().min(N - 1);
        // `N > 0` is checked at compile time, so `i` is in range; `get` keeps this panic-free.
        match self.cells.get(i) {
            Some(c) => c.handle(&self.shared),
            None => self.cells[0].handle(&self.shared),
        }
    }
}

impl<L: LabelSet, C: Cell, const N: usize> core::fmt::Debug for Family<L, C, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Family")
            .field("labels", &L::LABELS)
            .field("series", &N)
            .finish_non_exhaustive()
    }
}

impl<L: LabelSet, C: Cell, const N: usize> Collect for Family<L, C, N> {
    fn series_len(&self) -> usize {
        N
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        let cell = self.cells.get(index)?;
        Some(Series {
            labels: Labels::Typed {
                count: L::LABELS,
                index,
                name: L::name,
                value: L::value,
            },
            value: cell.value(&self.shared),
        })
    }
}

impl<L: LabelSet, C: Cell, const N: usize> Instrument for Family<L, C, N> {
    const KIND: Kind = C::KIND;
}
