//! A registry built at run time: metrics registered by name at start-up, validated, rendered with
//! the core's resumable renderer.
//!
//! The core's [`Registry`] is a view over a slice of [`Entry`]s; a [`RuntimeRegistry`] owns that
//! slice. Entries borrow their metrics for `'static`: metrics live in `static`s or are leaked once
//! at start-up ([`leak`]), which is what a process-wide metric is.

use std::fmt;
use vitals_core::{Collect, Cursor, Entry, Format, Instrument, Kind, NameError, Registry};

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The name, a label name or the unit is invalid.
    Name {
        /// The metric name as given.
        name: String,
        /// What is wrong with it.
        error: NameError,
    },
    /// A metric with this name is already registered.
    Duplicate {
        /// The family name.
        name: String,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Name { name, error } => write!(f, "metric `{name}`: {error}"),
            RegistryError::Duplicate { name } => {
                write!(f, "metric `{name}` is registered twice")
            }
        }
    }
}

impl std::error::Error for RegistryError {}

/// Moves `value` to the heap for the rest of the process and returns a `'static` reference: the
/// way to give a metric created at run time to a [`RuntimeRegistry`]. Call it once per metric at
/// start-up, never per request.
pub fn leak<T: Send + Sync + 'static>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// [`leak`] of the value `make` builds, built on a thread of its own with a 64 MiB stack (address
/// space only: pages are touched as used). vitals-core's fixed tables make some metric sets large
/// (with exemplars, a 512-series histogram family is about 0.5 MiB), and an unoptimised build
/// copies such a value several times on the stack on its way to the heap: more than the 2 MiB of
/// a test thread or a tokio worker. Without a thread to be had, it is built on the caller's.
pub(crate) fn leak_built<T: Send + Sync + 'static>(make: fn() -> T) -> &'static T {
    let built = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("vitals-build".into())
            .stack_size(64 << 20)
            .spawn_scoped(s, move || leak(make()))
            .map(|h| h.join())
    });
    match built {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => leak(make()),
    }
}

/// Collects entries; [`RegistryBuilder::build`] freezes them into a [`RuntimeRegistry`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    entries: Vec<Entry<'static>>,
}

impl RegistryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` as `name` (counters with or without `_total`), with `help` and an
    /// optional OpenMetrics `unit` (the name must end in `_<unit>`).
    pub fn register<M: Instrument>(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        metric: &'static M,
    ) -> Result<&mut Self, RegistryError> {
        self.register_dyn(name, help, unit, M::KIND, metric)
    }

    /// Registers a metric whose type is known only at run time (a custom [`Collect`]).
    pub fn register_dyn(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        kind: Kind,
        metric: &'static dyn Collect,
    ) -> Result<&mut Self, RegistryError> {
        let err = |error| RegistryError::Name {
            name: name.to_owned(),
            error,
        };
        let mut entry = Entry::try_dyn(name, help, kind, metric).map_err(err)?;
        if let Some(unit) = unit {
            entry = entry.try_unit(unit).map_err(err)?;
        }
        if self.entries.iter().any(|e| e.name() == entry.name()) {
            return Err(RegistryError::Duplicate {
                name: entry.name().to_owned(),
            });
        }
        self.entries.push(entry);
        Ok(self)
    }

    /// Freezes the entries.
    pub fn build(self) -> RuntimeRegistry {
        RuntimeRegistry {
            entries: self.entries.into_boxed_slice(),
        }
    }
}

/// A frozen set of entries with unique, valid names.
#[derive(Debug)]
pub struct RuntimeRegistry {
    entries: Box<[Entry<'static>]>,
}

impl RuntimeRegistry {
    /// The core registry over these entries (names were checked at registration).
    pub fn registry(&self) -> Registry<'_> {
        Registry::from_unique(&self.entries)
    }

    /// The entries, in render order.
    pub fn entries(&self) -> &[Entry<'static>] {
        &self.entries
    }

    /// Number of series currently present (every entry's non-empty series).
    pub fn series_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| {
                let m = e.metric();
                (0..m.series_len())
                    .filter(|&i| m.series(i).is_some())
                    .count()
            })
            .sum()
    }

    /// Renders the whole exposition into `out` (cleared first), reusing `scratch` as the render
    /// buffer. No allocation once `out` and `scratch` have grown to size.
    pub fn render_into(&self, format: Format, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        out.clear();
        if scratch.len() < 4096 {
            scratch.resize(4096, 0);
        }
        let registry = self.registry();
        let mut cursor = Cursor::new(format);
        loop {
            match registry.render(&mut cursor, scratch) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&scratch[..n]),
                Err(vitals_core::RenderError::BufferTooSmall { needed }) => {
                    scratch.resize(needed.max(scratch.len() * 2), 0)
                }
                // An error a later core adds: stop rather than retry forever.
                Err(_) => break,
            }
        }
    }

    /// Renders the whole exposition into a new string.
    pub fn render_to_string(&self, format: Format) -> String {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        self.render_into(format, &mut scratch, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals_core::Counter;

    #[test]
    fn rejects_bad_and_duplicate_names() {
        static C: Counter = Counter::new();
        let mut b = RegistryBuilder::new();
        b.register("jobs", "Jobs done.", None, &C).unwrap();
        assert_eq!(
            b.register("jobs_total", "Again.", None, &C).err(),
            Some(RegistryError::Duplicate {
                name: "jobs".into()
            })
        );
        assert!(matches!(
            b.register("bad name", "x", None, &C),
            Err(RegistryError::Name { .. })
        ));
        assert!(matches!(
            b.register("latency", "x", Some("seconds"), &C),
            Err(RegistryError::Name {
                error: NameError::UnitNotSuffix,
                ..
            })
        ));
        C.inc();
        let r = b.build();
        let text = r.render_to_string(Format::Prometheus);
        assert!(
            text.contains("# TYPE jobs_total counter\njobs_total 1\n"),
            "{text}"
        );
        assert_eq!(r.series_count(), 1);
    }
}
