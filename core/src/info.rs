//! Info metrics: constant labels with the value 1 (build version, firmware revision, board).

use crate::labels::Labels;
use crate::name;
use crate::registry::{Collect, Instrument, Kind, Series, Value};
use crate::NameError;

/// An info metric: `K` constant label pairs, always rendered with the value 1 as `<name>_info`.
///
/// ```
/// use vitals_core::Info;
/// static BUILD: Info<2> = Info::new(["version", "revision"], ["1.2.0", "abc123"]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Info<const K: usize> {
    names: [&'static str; K],
    values: [&'static str; K],
}

impl<const K: usize> Info<K> {
    /// Label names and values. Invalid names are a compile error in a `static` (use
    /// [`Info::try_new`] for names chosen at run time).
    ///
    /// The same declaration with a label name Prometheus reserves does not compile (E0080: the
    /// constant's evaluation panics with "label names starting with `__` are reserved"):
    ///
    /// ```compile_fail,E0080
    /// use vitals_core::Info;
    /// static BUILD: Info<2> = Info::new(["version", "__revision"], ["1.2.0", "abc123"]);
    /// ```
    pub const fn new(names: [&'static str; K], values: [&'static str; K]) -> Self {
        match Self::try_new(names, values) {
            Ok(i) => i,
            Err(e) => panic!("{}", e.as_str()),
        }
    }

    /// Label names and values, validating the names.
    pub const fn try_new(
        names: [&'static str; K],
        values: [&'static str; K],
    ) -> Result<Self, NameError> {
        if let Err(e) = name::check_label_names(&names) {
            return Err(e);
        }
        Ok(Info { names, values })
    }
}

impl<const K: usize> Collect for Info<K> {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then_some(Series {
            labels: Labels::Static {
                names: &self.names,
                values: &self.values,
            },
            value: Value::Info,
        })
    }
}

impl<const K: usize> Instrument for Info<K> {
    const KIND: Kind = Kind::Info;
}
