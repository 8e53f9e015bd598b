//! Exemplars (cargo feature `exemplars`): per histogram bucket, the trace and span of the most
//! recent observation recorded with one, rendered in OpenMetrics as
//! `… # {trace_id="…",span_id="…"} value timestamp` on that bucket's line.
//!
//! ```
//! use vitals_core::{Bounds, Exemplar, Histogram};
//! static LATENCY: Histogram<2> = Histogram::new(Bounds::micros([1_000, 5_000]));
//! let trace = Exemplar::new([0x4b; 16], [0x0f; 8]).at_millis(1_764_640_000_123);
//! LATENCY.observe_with_exemplar(3_200, &trace);
//! assert_eq!(LATENCY.cells().exemplar(1), Some((trace, 3_200)));
//! assert_eq!(LATENCY.cells().exemplar(0), None);
//! ```
//!
//! Each bucket holds one `ExemplarCell`: a seqlock made of atomics only. The version word is
//! even when the cell is stable and odd while a writer fills it; 0 means never written.
//!
//! Invariants:
//! - A reader never returns a torn exemplar (ids of one observation, value or timestamp of
//!   another): it reads the version (acquire), the five data words (acquire), the version again,
//!   and keeps the words only if both versions are the same even number. A data word written by
//!   a writer that started after the first version read synchronises with that read of the data
//!   word, so the second version read sees that writer's odd version (or later) and differs.
//! - Recording never waits: a writer takes the version from even to odd with one CAS; a writer
//!   that finds the cell odd or loses the CAS records nothing (an exemplar is a sample, and the
//!   winner's is as recent). A reader retries `READ_TRIES` (4) times, then reports no exemplar.
//! - Off (the default), none of this is compiled: no byte of flash or RAM.

use crate::sync::{spin_hint, AtomicU32, AtomicU64, Ordering};

/// How many times a reader retries a cell that a writer is filling before it gives up and
/// reports no exemplar for this render.
pub(crate) const READ_TRIES: usize = 4;

/// The trace context of one observation: a W3C trace id and span id, and when it was made.
///
/// ```
/// use vitals_core::Exemplar;
/// let e = Exemplar::new([1; 16], [2; 8]).at_millis(1_700_000_000_000);
/// assert_eq!(e.trace_id(), [1; 16]);
/// assert_eq!(e.span_id(), [2; 8]);
/// assert_eq!(e.timestamp_millis(), Some(1_700_000_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exemplar {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// Milliseconds since the Unix epoch; 0 = not known.
    millis: u64,
}

impl Exemplar {
    /// An exemplar of the span `span_id` in the trace `trace_id` (big-endian bytes, as in the
    /// W3C `traceparent`), without a timestamp.
    pub const fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        Exemplar {
            trace_id,
            span_id,
            millis: 0,
        }
    }

    /// The same exemplar observed at `unix_millis` milliseconds since the Unix epoch (rendered
    /// as the exemplar's timestamp in seconds; 0 means no timestamp).
    pub const fn at_millis(self, unix_millis: u64) -> Self {
        Exemplar {
            millis: unix_millis,
            ..self
        }
    }

    /// The trace id.
    pub const fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id.
    pub const fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// When it was observed, in milliseconds since the Unix epoch, if known.
    pub const fn timestamp_millis(&self) -> Option<u64> {
        if self.millis == 0 {
            None
        } else {
            Some(self.millis)
        }
    }
}

/// One bucket's exemplar slot: a seqlock of atomics (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct ExemplarCell {
    /// 0: never written; even: stable; odd: a writer is filling the words.
    version: AtomicU32,
    /// Trace id (high, low half), span id, observed value, timestamp in milliseconds.
    words: [AtomicU64; 5],
}

impl ExemplarCell {
    const_fn! {
        /// An empty slot.
        pub(crate) const fn new() -> Self {
            ExemplarCell {
                version: AtomicU32::new(0),
                words: crate::macros::atomic_array(),
            }
        }
    }

    /// Records `exemplar` with the observed `value` (in the histogram's unit), unless another
    /// writer holds the slot. Returns whether it was recorded.
    #[inline]
    pub(crate) fn record(&self, exemplar: &Exemplar, value: u64) -> bool {
        let v = self.version.load(Ordering::Relaxed);
        if v & 1 == 1
            || self
                .version
                .compare_exchange(v, v.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let trace = u128::from_be_bytes(exemplar.trace_id);
        let words = [
            (trace >> 64) as u64,
            trace as u64,
            u64::from_be_bytes(exemplar.span_id),
            value,
            exemplar.millis,
        ];
        for (w, x) in self.words.iter().zip(words) {
            w.store(x, Ordering::Release);
        }
        // Even again; never 0 (which means "never written") after a wrap.
        let next = v.wrapping_add(2);
        self.version
            .store(if next == 0 { 2 } else { next }, Ordering::Release);
        true
    }

    /// The exemplar last recorded and its observed value, or `None` when there is none or a
    /// writer kept the slot busy through [`READ_TRIES`] attempts.
    pub(crate) fn get(&self) -> Option<(Exemplar, u64)> {
        for _ in 0..READ_TRIES {
            let before = self.version.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 0 {
                let [hi, lo, span, value, millis] =
                    self.words.each_ref().map(|w| w.load(Ordering::Acquire));
                if self.version.load(Ordering::Relaxed) == before {
                    let exemplar = Exemplar {
                        trace_id: (u128::from(hi) << 64 | u128::from(lo)).to_be_bytes(),
                        span_id: span.to_be_bytes(),
                        millis,
                    };
                    return Some((exemplar, value));
                }
            }
            spin_hint();
        }
        None
    }
}

/// The exemplar slots of one histogram series: one per bucket and one for `+Inf`.
#[derive(Debug)]
pub(crate) struct Exemplars<const N: usize> {
    pub(crate) buckets: [ExemplarCell; N],
    pub(crate) inf: ExemplarCell,
}

impl<const N: usize> Exemplars<N> {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Exemplars {
            buckets: [const { ExemplarCell::new() }; N],
            inf: ExemplarCell::new(),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Exemplars {
            buckets: core::array::from_fn(|_| ExemplarCell::new()),
            inf: ExemplarCell::new(),
        }
    }

    /// The slot of bucket `i` (`N` is `+Inf`).
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &ExemplarCell {
        self.buckets.get(i).unwrap_or(&self.inf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_then_latest_wins() {
        let c = ExemplarCell::new();
        assert_eq!(c.get(), None);
        let a = Exemplar::new([0xab; 16], [0xcd; 8]).at_millis(5);
        assert!(c.record(&a, 42));
        assert_eq!(c.get(), Some((a, 42)));
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = i as u8;
        }
        let b = Exemplar::new(id, [9, 8, 7, 6, 5, 4, 3, 2]);
        assert!(c.record(&b, 7));
        assert_eq!(c.get(), Some((b, 7)));
        assert_eq!(b.timestamp_millis(), None);
    }

    #[test]
    fn a_busy_slot_skips_the_writer_and_the_reader_gives_up() {
        let c = ExemplarCell::new();
        let a = Exemplar::new([1; 16], [1; 8]);
        assert!(c.record(&a, 1));
        // A writer in the middle of filling the slot (odd version).
        c.version.fetch_add(1, Ordering::Relaxed);
        assert!(!c.record(&Exemplar::new([2; 16], [2; 8]), 2));
        assert_eq!(c.get(), None);
        c.version.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.get(), Some((a, 1)));
    }

    #[test]
    fn the_version_skips_zero_when_it_wraps() {
        let c = ExemplarCell::new();
        c.version.store(u32::MAX - 1, Ordering::Relaxed);
        let a = Exemplar::new([3; 16], [4; 8]);
        assert!(c.record(&a, 3));
        assert_eq!(c.version.load(Ordering::Relaxed), 2);
        assert_eq!(c.get(), Some((a, 3)));
    }
}
