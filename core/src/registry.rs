//! The registry: a view over a slice of described metrics, declared without allocation.
//!
//! ```
//! use vitals_core::{Counter, Gauge, Registry, Entry};
//! static BOOTS: Counter = Counter::new();
//! static TEMP: Gauge = Gauge::new();
//! static REGISTRY: Registry = Registry::new(&[
//!     Entry::new("boots", "Times the device booted.", &BOOTS),
//!     Entry::new("board_temperature_millicelsius", "Board temperature.", &TEMP),
//! ]);
//! assert_eq!(REGISTRY.entries().len(), 2);
//! ```
//!
//! Invariants: every name and label name was validated when the entry was declared (a compile error
//! in a `static`); no two entries share a name. Rendering never validates.

use crate::histogram::{HistogramCells, Scale, Tally};
use crate::labels::Labels;
use crate::name;
use crate::sync::AtomicU64;
use crate::{Counter, Gauge, NameError};

/// The metric type of a family, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count (`_total`).
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Bucketed observations (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// Constant labels with value 1 (`_info`), e.g. build version.
    Info,
}

/// A metric's value for rendering, read lazily so a render sees the latest value of each line.
///
/// Some variants exist only with a feature (`float`), so a `match` outside this crate needs a
/// wildcard arm: turning a feature on elsewhere in the build never breaks it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Value<'a> {
    /// A counter.
    Counter(&'a Counter),
    /// An integer gauge.
    Gauge(&'a Gauge),
    /// A float gauge.
    #[cfg(feature = "float")]
    FloatGauge(&'a crate::FloatGauge),
    /// A raw integer sample read by the collector (for computed values such as process metrics).
    Int(i64),
    /// A raw unsigned sample.
    Uint(u64),
    /// A raw float sample.
    #[cfg(feature = "float")]
    Float(f64),
    /// A histogram series.
    Histogram(HistogramView<'a>),
    /// An info metric (value 1).
    Info,
}

/// A histogram series with its size erased, for rendering.
#[derive(Debug, Clone, Copy)]
pub struct HistogramView<'a> {
    pub(crate) le: &'a [u64],
    pub(crate) scale: Scale,
    pub(crate) counts: &'a [Tally],
    pub(crate) inf: &'a Tally,
    pub(crate) sum: &'a AtomicU64,
    #[cfg(feature = "exemplars")]
    pub(crate) exemplars: (
        &'a [crate::exemplar::ExemplarCell],
        &'a crate::exemplar::ExemplarCell,
    ),
}

impl<'a> HistogramView<'a> {
    /// A view of `cells` over bounds `le` in `scale`.
    pub fn new<const N: usize>(
        le: &'a [u64; N],
        scale: Scale,
        cells: &'a HistogramCells<N>,
    ) -> Self {
        HistogramView {
            le,
            scale,
            counts: &cells.counts,
            inf: &cells.inf,
            sum: &cells.sum,
            #[cfg(feature = "exemplars")]
            exemplars: (&cells.exemplars.buckets, &cells.exemplars.inf),
        }
    }

    /// Bucket `i`'s tally (`le.len()` is `+Inf`).
    #[inline]
    pub(crate) fn tally(&self, i: usize) -> &'a Tally {
        self.counts.get(i).unwrap_or(self.inf)
    }

    /// Bucket `i`'s exemplar (`le.len()` is `+Inf`) and its value.
    #[cfg(feature = "exemplars")]
    pub(crate) fn exemplar(&self, i: usize) -> Option<(crate::Exemplar, u64)> {
        match self.exemplars.0.get(i) {
            Some(c) => c.get(),
            None => self.exemplars.1.get(),
        }
    }
}

/// One series of a family: its labels and its value.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The series' labels (without `le`).
    pub labels: Labels<'a>,
    /// The series' value.
    pub value: Value<'a>,
}

/// Something the renderer can walk: a metric or a family of series.
///
/// Series are addressed by index `0..series_len()`; an index may be empty (`None`), and indices
/// never change meaning once a series exists, so a render can stop and resume between series.
pub trait Collect: Sync {
    /// Upper bound (exclusive) of series indices.
    fn series_len(&self) -> usize;
    /// Series `index`, or `None` when that slot holds no series.
    fn series(&self, index: usize) -> Option<Series<'_>>;
    /// For families that route new label sets to an overflow series once full: how many updates
    /// went there. `None` for metrics that cannot overflow.
    fn overflow(&self) -> Option<u64> {
        None
    }
}

/// Metric types whose kind is known at compile time (lets [`Entry::new`] be `const`).
pub trait Instrument: Collect {
    /// The metric type.
    const KIND: Kind;
}

/// A described metric: name, help, unit, type and the metric itself.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    name: &'a str,
    help: &'a str,
    metric: &'a dyn Collect,
    /// The unit's length: the unit is the name's last `unit` bytes (0: no unit). A length, not a
    /// second string: a registry is 15 entries of 28 bytes on a 32-bit MCU instead of 36.
    unit: u16,
    kind: Kind,
}

impl core::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("help", &self.help)
            .field("unit", &self.unit)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<'a> Entry<'a> {
    /// Describes `metric`. Counter names may be given with or without `_total`, info names with or
    /// without `_info`: the renderer adds the suffix. An invalid name is a compile error in a
    /// `static` (use [`Entry::try_new`] for names chosen at run time).
    ///
    /// ```
    /// # use vitals_core::{Counter, Entry, Registry};
    /// static REQUESTS: Counter = Counter::new();
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("http_requests", "Requests served.", &REQUESTS),
    /// ]);
    /// # assert_eq!(REGISTRY.entries()[0].name(), "http_requests");
    /// ```
    ///
    /// The same declaration with a hyphen in the name does not compile (E0080: the constant's
    /// evaluation panics with "name has a character outside [a-zA-Z0-9_] or starts with a digit"):
    ///
    /// ```compile_fail,E0080
    /// # use vitals_core::{Counter, Entry, Registry};
    /// static REQUESTS: Counter = Counter::new();
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("http-requests", "Requests served.", &REQUESTS),
    /// ]);
    /// ```
    pub const fn new<M: Instrument>(name: &'a str, help: &'a str, metric: &'a M) -> Self {
        match Self::try_new(name, help, metric) {
            Ok(e) => e,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// Describes `metric`, validating the name.
    pub const fn try_new<M: Instrument>(
        name: &'a str,
        help: &'a str,
        metric: &'a M,
    ) -> Result<Self, NameError> {
        Self::try_dyn(name, help, M::KIND, metric)
    }

    /// Describes a metric whose type is known only at run time.
    pub const fn try_dyn(
        name: &'a str,
        help: &'a str,
        kind: Kind,
        metric: &'a dyn Collect,
    ) -> Result<Self, NameError> {
        let name = match kind {
            Kind::Counter => name::strip_suffix(name, "_total"),
            Kind::Info => name::strip_suffix(name, "_info"),
            _ => name,
        };
        if let Err(e) = name::check_metric_name(name) {
            return Err(e);
        }
        Ok(Entry {
            name,
            help,
            metric,
            unit: 0,
            kind,
        })
    }

    /// Sets the unit (OpenMetrics `# UNIT`); the name must end with `_<unit>`. A mismatch is a
    /// compile error in a `static` (use [`Entry::try_unit`] at run time).
    ///
    /// ```
    /// # use vitals_core::{Bounds, Entry, Histogram, Registry};
    /// static LATENCY: Histogram<2> = Histogram::new(Bounds::micros([1_000, 5_000]));
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("request_duration_seconds", "Time to serve.", &LATENCY).unit("seconds"),
    /// ]);
    /// # assert_eq!(REGISTRY.entries()[0].unit_name(), Some("seconds"));
    /// ```
    ///
    /// The same declaration with a unit the name does not end with does not compile (E0080: the
    /// constant's evaluation panics with "the unit must be a suffix of the metric name (`_<unit>`)"):
    ///
    /// ```compile_fail,E0080
    /// # use vitals_core::{Bounds, Entry, Histogram, Registry};
    /// static LATENCY: Histogram<2> = Histogram::new(Bounds::micros([1_000, 5_000]));
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("request_duration_seconds", "Time to serve.", &LATENCY).unit("milliseconds"),
    /// ]);
    /// ```
    pub const fn unit(self, unit: &'a str) -> Self {
        match self.try_unit(unit) {
            Ok(e) => e,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// Sets the unit, validating it against the name.
    pub const fn try_unit(mut self, unit: &'a str) -> Result<Self, NameError> {
        if let Err(e) = name::check_unit(self.name, unit) {
            return Err(e);
        }
        if unit.len() > u16::MAX as usize {
            return Err(NameError::UnitTooLong);
        }
        self.unit = unit.len() as u16;
        Ok(self)
    }

    /// The family name (counters without `_total`, info without `_info`).
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The help text.
    pub const fn help(&self) -> &'a str {
        self.help
    }

    /// The unit, if any.
    pub const fn unit_name(&self) -> Option<&'a str> {
        if self.unit == 0 {
            return None;
        }
        // The name ends with `_<unit>` (checked by `try_unit`) and is ASCII: always `Some`.
        match self
            .name
            .split_at_checked(self.name.len().saturating_sub(self.unit as usize))
        {
            Some((_, unit)) => Some(unit),
            None => None,
        }
    }

    /// The metric type.
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// The metric.
    pub const fn metric(&self) -> &'a dyn Collect {
        self.metric
    }
}

/// A set of described metrics with unique names, rendered in declaration order.
#[derive(Debug, Clone, Copy)]
pub struct Registry<'a> {
    entries: &'a [Entry<'a>],
}

impl<'a> Registry<'a> {
    /// A registry over `entries`. Duplicate names are a compile error in a `static` (use
    /// [`Registry::try_new`] for entries built at run time).
    ///
    /// ```
    /// # use vitals_core::{Counter, Entry, Registry};
    /// static SENT: Counter = Counter::new();
    /// static RECEIVED: Counter = Counter::new();
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("bytes_sent", "Bytes sent.", &SENT),
    ///     Entry::new("bytes_received", "Bytes received.", &RECEIVED),
    /// ]);
    /// # assert_eq!(REGISTRY.entries().len(), 2);
    /// ```
    ///
    /// The same registry with both entries named alike does not compile (E0080: the constant's
    /// evaluation panics with "two metrics of the registry have the same name"). Counter names
    /// are compared without `_total`, so `bytes_sent` and `bytes_sent_total` collide:
    ///
    /// ```compile_fail,E0080
    /// # use vitals_core::{Counter, Entry, Registry};
    /// static SENT: Counter = Counter::new();
    /// static RECEIVED: Counter = Counter::new();
    /// static REGISTRY: Registry = Registry::new(&[
    ///     Entry::new("bytes_sent", "Bytes sent.", &SENT),
    ///     Entry::new("bytes_sent_total", "Bytes received.", &RECEIVED),
    /// ]);
    /// ```
    pub const fn new(entries: &'a [Entry<'a>]) -> Self {
        match Self::try_new(entries) {
            Ok(r) => r,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// A registry over `entries`, refusing duplicate names.
    pub const fn try_new(entries: &'a [Entry<'a>]) -> Result<Self, NameError> {
        let mut i = 0;
        while i < entries.len() {
            let mut j = 0;
            while j < i {
                if name::bytes_eq(entries[i].name.as_bytes(), entries[j].name.as_bytes()) {
                    return Err(NameError::DuplicateMetric);
                }
                j += 1;
            }
            i += 1;
        }
        Ok(Registry { entries })
    }

    /// A registry over entries whose names the caller has already checked to be unique (e.g. a
    /// run-time registry that refused duplicates at registration), skipping the quadratic check.
    /// Duplicate names here would render an invalid exposition, never a panic.
    pub const fn from_unique(entries: &'a [Entry<'a>]) -> Self {
        Registry { entries }
    }

    /// The entries, in render order.
    pub const fn entries(&self) -> &'a [Entry<'a>] {
        self.entries
    }

    /// Renders the next whole lines into `buf`; see [`crate::render::render`].
    pub fn render(
        &self,
        cursor: &mut crate::Cursor,
        buf: &mut [u8],
    ) -> Result<usize, crate::RenderError> {
        crate::render::render(self, cursor, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let c = Counter::new();
        assert_eq!(
            Entry::try_new("a b", "", &c).err(),
            Some(NameError::InvalidChar { at: 1 })
        );
        assert_eq!(Entry::try_new("x_total", "", &c).unwrap().name(), "x");
        let g = Gauge::new();
        assert_eq!(Entry::try_new("x_total", "", &g).unwrap().name(), "x_total");
        assert_eq!(
            Entry::try_new("x", "", &g).unwrap().try_unit("bytes").err(),
            Some(NameError::UnitNotSuffix)
        );
        let e = Entry::try_new("x_bytes", "", &g).unwrap();
        assert_eq!(e.unit_name(), None);
        assert_eq!(e.try_unit("bytes").unwrap().unit_name(), Some("bytes"));
        // The unit is kept as a length (u16): a longer one is refused, not cut. `x_` and
        // 65,536 `b`s: the longest unit that fits is one `b` shorter.
        const MAX: usize = u16::MAX as usize;
        static NAME: [u8; 2 + MAX + 1] = {
            let mut a = [b'b'; 2 + MAX + 1];
            a[0] = b'x';
            a[1] = b'_';
            a
        };
        let text = core::str::from_utf8(&NAME).unwrap();
        let (name, unit) = (&text[..2 + MAX], &text[2..2 + MAX]);
        let e = Entry::try_new(name, "", &g).unwrap();
        assert_eq!(e.try_unit(unit).unwrap().unit_name(), Some(unit));
        let e = Entry::try_new(text, "", &g).unwrap();
        assert_eq!(e.try_unit(&text[2..]).err(), Some(NameError::UnitTooLong));
        let e = [Entry::new("a", "", &c), Entry::new("a_total", "", &c)];
        assert_eq!(
            Registry::try_new(&e).err(),
            Some(NameError::DuplicateMetric)
        );
    }
}
