#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(vitals_no_atomic_strategy)]
compile_error!(
    "vitals-core: this target has no native 64-bit atomics, and portable-atomic's spin-lock fallback \
     deadlocks when an interrupt handler touches a metric. Choose an interrupt-safe strategy in the \
     final firmware: (1) single-core chip: RUSTFLAGS=\"--cfg portable_atomic_unsafe_assume_single_core\" \
     or vitals-core feature `unsafe-assume-single-core`; (2) multi-core chip with atomic CAS (e.g. \
     Cortex-M4/M7/M33) in privileged mode: feature `unsafe-assume-privileged`; (3) chip without atomic \
     CAS (Cortex-M0/M0+, RV32IMC): feature `critical-section` plus a critical-section implementation \
     (e.g. cortex-m's `critical-section-single-core`)."
);

#[cfg(vitals_critical_section_with_cas)]
compile_error!(
    "vitals-core: the `critical-section` feature does not cover 64-bit atomics on a chip that has \
     32-bit CAS (portable-atomic would fall back to spin locks, which deadlock under interrupts). \
     Use `unsafe-assume-single-core` on a single-core chip or `unsafe-assume-privileged` on a \
     multi-core one."
);

#[cfg(test)]
extern crate std;

#[macro_use]
mod macros;
mod sync;

mod error;
mod name;
mod number;

mod counter;
#[cfg(feature = "exemplars")]
mod exemplar;
mod gauge;
mod histogram;
mod info;

mod family;
pub mod labels;
#[cfg(feature = "string-labels")]
mod str_family;

pub mod format;
mod registry;
pub mod render;

pub mod health;

pub mod resilience;

pub use counter::Counter;
pub use error::{NameError, RenderError};
#[cfg(feature = "exemplars")]
pub use exemplar::Exemplar;
pub use family::Cell;
pub use family::Family;
pub use format::Format;
#[cfg(feature = "float")]
pub use gauge::FloatGauge;
pub use gauge::Gauge;
pub use health::{Check, Component, Health, HealthError, HealthReport, Status, StatusCell};
pub use histogram::{Bounds, BoundsError, Histogram, HistogramCells, HistogramRef, Scale};
pub use info::Info;
pub use labels::LabelSet;
pub use registry::{Collect, Entry, HistogramView, Instrument, Kind, Registry, Series, Value};
pub use render::Cursor;
#[cfg(feature = "string-labels")]
pub use str_family::{LabelError, StrFamily};

/// What [`label_enum!`] expands to needs from this crate; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::name::check_label_name;
}

/// Model-checking hooks, only under `--cfg loom`; not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    /// A histogram tally in a layout small enough for every carry to happen within a few
    /// observations: `C` count bits in the word, a count epoch of `2^J` observations, an
    /// accumulator epoch of `2^U`; an epoch may lag by up to `2^(C-J) - 1` carries.
    #[derive(Debug)]
    pub struct Tally<const C: u32, const J: u32, const U: u32>(crate::histogram::Tally<C, J, U>);

    impl<const C: u32, const J: u32, const U: u32> Tally<C, J, U> {
        /// An empty tally.
        pub fn new() -> Self {
            Tally(crate::histogram::Tally::new())
        }

        /// Records `v`; returns what a series' sum word would take (`v` when it is `2^(U-C)` or
        /// more).
        pub fn record(&self, v: u64) -> u64 {
            self.0.record(v)
        }

        /// `(count, sum)` of what was recorded (the sum without what `record` returned).
        pub fn read(&self) -> (u64, u64) {
            self.0.read()
        }
    }
}
