//! Errors a caller can act on.

use core::fmt;

/// Why a render call could not make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderError {
    /// The next line is longer than the whole buffer; call again with at least `needed` bytes.
    /// The cursor has not moved, so nothing is lost.
    BufferTooSmall {
        /// Bytes the next line needs.
        needed: usize,
    },
}

impl core::error::Error for RenderError {}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "render buffer too small: the next line needs {needed} bytes"
                )
            }
        }
    }
}

/// What is wrong with a metric name, label name or unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The byte at `at` is not allowed here (metric names: `[a-zA-Z_][a-zA-Z0-9_]*`; label names
    /// the same, without a leading `__`).
    InvalidChar {
        /// Byte offset of the offending character.
        at: usize,
    },
    /// Label names starting with `__` are reserved by Prometheus.
    ReservedLabel,
    /// `le` is reserved for histogram buckets.
    ReservedLe,
    /// The unit is not a suffix of the metric name (OpenMetrics requires `name` to end in `_unit`).
    UnitNotSuffix,
    /// The unit is longer than 65,535 bytes.
    UnitTooLong,
    /// Two labels of one family have the same name.
    DuplicateLabel,
    /// Two families of one registry have the same name.
    DuplicateMetric,
}

impl NameError {
    /// A human sentence describing the error (usable in `const` panics).
    pub const fn as_str(&self) -> &'static str {
        match self {
            NameError::Empty => "name is empty",
            NameError::InvalidChar { .. } => {
                "name has a character outside [a-zA-Z0-9_] or starts with a digit"
            }
            NameError::ReservedLabel => "label names starting with `__` are reserved",
            NameError::ReservedLe => "label name `le` is reserved for histogram buckets",
            NameError::UnitNotSuffix => "the unit must be a suffix of the metric name (`_<unit>`)",
            NameError::UnitTooLong => "the unit is longer than 65,535 bytes",
            NameError::DuplicateLabel => "two labels have the same name",
            NameError::DuplicateMetric => "two metrics of the registry have the same name",
        }
    }
}

impl core::error::Error for NameError {}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::InvalidChar { at } => write!(f, "{} (at byte {at})", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}
