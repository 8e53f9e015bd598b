//! # vitals-core
//!
//! Production instruments for a service or a microcontroller, with no heap, no lock and no panic:
//! counters, gauges, fixed-bucket histograms, labelled families and info metrics, rendered as
//! Prometheus text 0.0.4 or OpenMetrics 1.0 into buffers the caller lends; a health report
//! serialised as JSON; and the resilience primitives (token bucket, keyed limiter, quota, circuit
//! breaker, backoff).
//!
//! Everything is `const`-constructible, so it lives in a `static`:
//!
//! ```
//! use vitals_core::{Counter, Histogram, Bounds, Registry, Entry, Cursor, Format};
//!
//! static REQUESTS: Counter = Counter::new();
//! static LATENCY: Histogram<4> = Histogram::new(Bounds::micros([1_000, 5_000, 25_000, 100_000]));
//! static REGISTRY: Registry = Registry::new(&[
//!     Entry::new("http_requests", "Requests served.", &REQUESTS),
//!     Entry::new("http_request_duration_seconds", "Time to serve a request.", &LATENCY).unit("seconds"),
//! ]);
//!
//! REQUESTS.inc();
//! LATENCY.observe(3_200); // microseconds, no float maths on the hot path
//!
//! let mut buf = [0u8; 64]; // a UART-sized buffer: the render resumes where it stopped
//! let mut cursor = Cursor::new(Format::Prometheus);
//! let mut out = Vec::new();
//! while let n @ 1.. = REGISTRY.render(&mut cursor, &mut buf).unwrap() {
//!     out.extend_from_slice(&buf[..n]);
//! }
//! assert!(String::from_utf8(out).unwrap().contains("http_requests_total 1\n"));
//! ```
//!
//! Time never comes from a clock: the caller passes `now` as monotonic ticks. Memory never comes
//! from an allocator: the caller passes `&mut [u8]`.
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
pub mod sync;

mod error;
pub mod name;
pub mod number;

mod counter;
mod gauge;
mod histogram;
mod info;

mod family;
pub mod labels;
#[cfg(feature = "string-labels")]
mod str_family;

mod registry;
pub mod render;

pub mod health;

pub mod resilience;

pub use counter::Counter;
pub use error::{NameError, RenderError};
pub use family::Cell;
pub use family::Family;
#[cfg(feature = "float")]
pub use gauge::FloatGauge;
pub use gauge::Gauge;
pub use health::{Check, Component, Health, HealthError, HealthReport, Status, StatusCell};
pub use histogram::{Bounds, BoundsError, Histogram, HistogramCells, HistogramRef, Scale};
pub use info::Info;
pub use labels::LabelSet;
pub use registry::{Collect, Entry, HistogramView, Instrument, Kind, Registry, Series, Value};
pub use render::{Cursor, Format};
#[cfg(feature = "string-labels")]
pub use str_family::{LabelError, StrFamily};
