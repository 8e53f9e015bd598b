//! Families keyed by string label values known only at run time, in a fixed table.
//!
//! Invariants:
//! - A slot is claimed once, lock free: `EMPTY → WRITING` by one CAS, the key bytes are written,
//!   then `READY` is published with release ordering; a slot never changes key afterwards, so a
//!   rendered series never changes labels and no two slots hold the same key.
//! - Nobody waits unboundedly: a lookup that finds its key being written by another thread (or by
//!   the code an interrupt handler preempted) spins a bounded number of times, then routes its update
//!   to the overflow series instead of waiting.
//! - A full table (or a key too long for a slot) routes updates to one overflow series whose labels
//!   are all [`crate::labels::OVERFLOW_VALUE`], and counts each such update; the registry renders
//!   that count as `vitals_label_overflow_total{family="..."}`. Nothing is dropped silently.

use crate::family::{cell, cells, Cell};
use crate::labels::{Labels, SEPARATOR};
use crate::name;
use crate::registry::{Collect, Instrument, Kind, Series};
use crate::sync::{spin_hint, AtomicU32, AtomicU64, AtomicU8, Ordering};
use crate::NameError;
use core::fmt;

const EMPTY: u32 = 0;
const WRITING: u32 = 1 << 30;
const READY: u32 = 2 << 30;
const STATE_MASK: u32 = 3 << 30;
const LEN_SHIFT: u32 = 16;
const LEN_MASK: u32 = 0x3FFF;
const TAG_MASK: u32 = 0xFFFF;
/// Longest key a slot can hold (14 bits of length in the state word).
pub(crate) const MAX_KEY_BYTES: usize = LEN_MASK as usize;
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 256;
#[cfg(loom)]
const SPIN_LIMIT: u32 = 2;

/// Why a label set got no series of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelError {
    /// Every slot holds another label set.
    Full,
    /// The values, joined, exceed the slot size (`needed` bytes).
    TooLong {
        /// Bytes the joined values need.
        needed: usize,
    },
    /// Another thread (or preempted code) is inserting a label set with the same hash right now.
    Contended,
}

impl core::error::Error for LabelError {}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Full => f.write_str("label table full: the update went to the overflow series"),
            LabelError::TooLong { needed } => write!(
                f,
                "label values need {needed} bytes, more than a slot holds: the update went to the overflow series"
            ),
            LabelError::Contended => f.write_str(
                "label set being inserted concurrently: the update went to the overflow series",
            ),
        }
    }
}

struct Slot<const B: usize> {
    state: AtomicU32,
    key: [AtomicU8; B],
}

impl<const B: usize> Slot<B> {
    const_fn! {
        const fn new() -> Self {
            Slot { state: AtomicU32::new(EMPTY), key: key_bytes::<B>() }
        }
    }
}

#[cfg(not(loom))]
const fn key_bytes<const B: usize>() -> [AtomicU8; B] {
    [const { AtomicU8::new(0) }; B]
}

#[cfg(loom)]
fn key_bytes<const B: usize>() -> [AtomicU8; B] {
    core::array::from_fn(|_| AtomicU8::new(0))
}

#[cfg(not(loom))]
const fn slots<const B: usize, const CAP: usize>() -> [Slot<B>; CAP] {
    [const { Slot::new() }; CAP]
}

#[cfg(loom)]
fn slots<const B: usize, const CAP: usize>() -> [Slot<B>; CAP] {
    core::array::from_fn(|_| Slot::new())
}

/// A family with `K` string labels and room for `CAP` label sets of at most `BYTES` bytes each
/// (values joined by a one-byte separator), plus one overflow series.
///
/// ```
/// use vitals_core::{Counter, StrFamily};
/// static CALLS: StrFamily<Counter, 1, 16, 32> = StrFamily::new(["tool"]);
/// CALLS.labels(["search"]).inc();
/// CALLS.labels(["search"]).inc();
/// assert_eq!(CALLS.labels(["search"]).get(), 2);
/// assert_eq!(CALLS.len(), 1);
/// ```
pub struct StrFamily<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> {
    names: [&'static str; K],
    shared: C::Shared,
    slots: [Slot<BYTES>; CAP],
    cells: [C; CAP],
    overflow: C,
    dropped: AtomicU64,
}

impl<C: Cell<Shared = ()>, const K: usize, const CAP: usize, const BYTES: usize>
    StrFamily<C, K, CAP, BYTES>
{
    const_fn! {
        /// A family of counters or gauges with label names `names`. Invalid or duplicate names are a
        /// compile error in a `static` (use [`StrFamily::try_new`] for names chosen at run time).
        ///
        /// The same label name twice does not compile (E0080: the constant's evaluation panics
        /// with "two labels have the same name"):
        ///
        /// ```compile_fail,E0080
        /// use vitals_core::{Counter, StrFamily};
        /// static CALLS: StrFamily<Counter, 2, 16, 32> = StrFamily::new(["tool", "tool"]);
        /// ```
        pub const fn new(names: [&'static str; K]) -> Self {
            Self::with_shared(names, ())
        }
    }

    const_fn! {
        /// A family of counters or gauges with label names `names`, validating them.
        pub const fn try_new(names: [&'static str; K]) -> Result<Self, NameError> {
            Self::try_with_shared(names, ())
        }
    }
}

impl<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> StrFamily<C, K, CAP, BYTES> {
    const_fn! {
        /// A family whose series share `shared` (histogram bounds). Panics (a compile error in a
        /// `static`) on invalid label names.
        pub const fn with_shared(names: [&'static str; K], shared: C::Shared) -> Self {
            if let Err(e) = name::check_label_names(&names) {
                panic!("{}", e.as_str());
            }
            Self::build(names, shared)
        }
    }

    const_fn! {
        /// A family whose series share `shared`, validating the label names.
        pub const fn try_with_shared(names: [&'static str; K], shared: C::Shared) -> Result<Self, NameError> {
            if let Err(e) = name::check_label_names(&names) {
                return Err(e);
            }
            Ok(Self::build(names, shared))
        }
    }

    const_fn! {
        const fn build(names: [&'static str; K], shared: C::Shared) -> Self {
            const { assert!(BYTES <= MAX_KEY_BYTES, "a slot holds at most 16383 bytes") };
            StrFamily {
                names,
                shared,
                slots: slots::<BYTES, CAP>(),
                cells: cells::<C, CAP>(),
                overflow: cell::<C>(),
                dropped: AtomicU64::new(0),
            }
        }
    }

    /// The series for `values`, or the overflow series when the family is full, the values are too
    /// long, or the same label set is being inserted concurrently (each counted as dropped).
    #[inline]
    pub fn labels(&self, values: [&str; K]) -> C::Handle<'_> {
        match self.try_labels(values) {
            Ok(h) => h,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.overflow.handle(&self.shared)
            }
        }
    }

    /// The series for `values`, claiming a slot for a new label set; an error says why it got none
    /// (nothing is counted: the caller decides).
    pub fn try_labels(&self, values: [&str; K]) -> Result<C::Handle<'_>, LabelError> {
        let i = self.find_or_claim(&values)?;
        match self.cells.get(i) {
            Some(c) => Ok(c.handle(&self.shared)),
            None => Err(LabelError::Full),
        }
    }

    /// The series for `values` if it exists; never claims a slot.
    pub fn get(&self, values: [&str; K]) -> Option<C::Handle<'_>> {
        let (len, hash) = key_shape(&values)?;
        let tag = (hash ^ (hash >> 16)) & TAG_MASK;
        if len > BYTES || CAP == 0 {
            return None;
        }
        // The probe starts from the full hash: a 16-bit tag would cluster tables above 65,536.
        let start = hash as usize % CAP;
        for probe in 0..CAP {
            let i = (start + probe) % CAP;
            let slot = self.slots.get(i)?;
            let s = slot.state.load(Ordering::Acquire);
            if s == EMPTY {
                return None;
            }
            if s & STATE_MASK == READY && shape(s) == (len, tag) && key_eq(&slot.key, &values) {
                return self.cells.get(i).map(|c| c.handle(&self.shared));
            }
        }
        None
    }

    /// Number of label sets with a series of their own.
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) & STATE_MASK == READY)
            .count()
    }

    /// Whether no label set has a series yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Updates routed to the overflow series so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The overflow series.
    pub fn overflow_series(&self) -> C::Handle<'_> {
        self.overflow.handle(&self.shared)
    }

    fn find_or_claim(&self, values: &[&str; K]) -> Result<usize, LabelError> {
        let (len, hash) = key_shape(values).ok_or(LabelError::TooLong { needed: usize::MAX })?;
        let tag = (hash ^ (hash >> 16)) & TAG_MASK;
        if len > BYTES {
            return Err(LabelError::TooLong { needed: len });
        }
        if CAP == 0 {
            return Err(LabelError::Full);
        }
        let want = ((len as u32) << LEN_SHIFT) | tag;
        // The probe starts from the full hash: a 16-bit tag would cluster tables above 65,536.
        let start = hash as usize % CAP;
        let mut probe = 0;
        while probe < CAP {
            let i = (start + probe) % CAP;
            let Some(slot) = self.slots.get(i) else {
                return Err(LabelError::Full);
            };
            let mut s = slot.state.load(Ordering::Acquire);
            if s == EMPTY {
                match slot.state.compare_exchange(
                    EMPTY,
                    WRITING | want,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        write_key(&slot.key, values);
                        slot.state.store(READY | want, Ordering::Release);
                        return Ok(i);
                    }
                    Err(seen) => s = seen,
                }
            }
            if s & !STATE_MASK == want {
                let mut spins = 0;
                while s & STATE_MASK == WRITING {
                    if spins == SPIN_LIMIT {
                        return Err(LabelError::Contended);
                    }
                    spins += 1;
                    spin_hint();
                    s = slot.state.load(Ordering::Acquire);
                }
                if key_eq(&slot.key, values) {
                    return Ok(i);
                }
            }
            probe += 1;
        }
        Err(LabelError::Full)
    }
}

fn shape(state: u32) -> (usize, u32) {
    (((state >> LEN_SHIFT) & LEN_MASK) as usize, state & TAG_MASK)
}

/// Joined length and the 32-bit FNV-1a hash of the values (its low 16 bits, folded, are the tag
/// kept in the slot's state word); `None` if the length overflows.
fn key_shape(values: &[&str]) -> Option<(usize, u32)> {
    let mut len: usize = values.len().saturating_sub(1);
    let mut h: u32 = 0x811c_9dc5;
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            h = (h ^ SEPARATOR as u32).wrapping_mul(0x0100_0193);
        }
        for &b in v.as_bytes() {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
        len = len.checked_add(v.len())?;
    }
    Some((len, h))
}

fn joined<'a>(values: &'a [&'a str]) -> impl Iterator<Item = u8> + 'a {
    values.iter().enumerate().flat_map(|(n, v)| {
        let sep: &[u8] = if n > 0 { &[SEPARATOR] } else { &[] };
        sep.iter().chain(v.as_bytes()).copied()
    })
}

fn write_key(key: &[AtomicU8], values: &[&str]) {
    for (slot, b) in key.iter().zip(joined(values)) {
        slot.store(b, Ordering::Relaxed);
    }
}

fn key_eq(key: &[AtomicU8], values: &[&str]) -> bool {
    let mut k = key.iter();
    joined(values).all(|b| k.next().is_some_and(|s| s.load(Ordering::Relaxed) == b))
}

impl<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> core::fmt::Debug
    for StrFamily<C, K, CAP, BYTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StrFamily")
            .field("names", &self.names)
            .field("series", &self.len())
            .field("capacity", &CAP)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> Collect
    for StrFamily<C, K, CAP, BYTES>
{
    fn series_len(&self) -> usize {
        CAP + 1
    }

    fn series(&self, index: usize) -> Option<Series<'_>> {
        if index == CAP {
            return (self.dropped() > 0).then(|| Series {
                labels: Labels::Overflow { names: &self.names },
                value: self.overflow.value(&self.shared),
            });
        }
        let slot = self.slots.get(index)?;
        let s = slot.state.load(Ordering::Acquire);
        if s & STATE_MASK != READY {
            return None;
        }
        Some(Series {
            labels: Labels::Packed {
                names: &self.names,
                key: &slot.key,
                len: shape(s).0,
            },
            value: self.cells.get(index)?.value(&self.shared),
        })
    }

    fn overflow(&self) -> Option<u64> {
        Some(self.dropped())
    }
}

impl<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> Instrument
    for StrFamily<C, K, CAP, BYTES>
{
    const KIND: Kind = C::KIND;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Counter;

    #[test]
    fn claims_once_and_overflows() {
        let f: StrFamily<Counter, 2, 3, 16> = StrFamily::new(["a", "b"]);
        f.labels(["x", "y"]).inc();
        f.labels(["x", "y"]).inc();
        f.labels(["xy", ""]).inc();
        f.labels(["", "xy"]).inc();
        assert_eq!(f.len(), 3);
        assert_eq!(f.get(["x", "y"]).map(|c| c.get()), Some(2));
        assert_eq!(f.get(["xy", ""]).map(|c| c.get()), Some(1));
        assert_eq!(f.try_labels(["new", "one"]).err(), Some(LabelError::Full));
        f.labels(["new", "one"]).inc_by(5);
        assert_eq!(f.dropped(), 1);
        assert_eq!(f.overflow_series().get(), 5);
        assert_eq!(
            f.try_labels(["0123456789", "0123456789"]).err(),
            Some(LabelError::TooLong { needed: 21 })
        );
        assert!(f.get(["zz", "zz"]).is_none());
    }

    #[test]
    fn bad_names_are_errors() {
        let r: Result<StrFamily<Counter, 2, 1, 8>, _> = StrFamily::try_with_shared(["a", "a"], ());
        assert_eq!(r.err(), Some(NameError::DuplicateLabel));
        let r: Result<StrFamily<Counter, 1, 1, 8>, _> = StrFamily::try_with_shared(["__x"], ());
        assert_eq!(r.err(), Some(NameError::ReservedLabel));
    }

    #[test]
    fn zero_capacity_routes_everything_to_overflow() {
        let f: StrFamily<Counter, 1, 0, 8> = StrFamily::new(["a"]);
        f.labels(["x"]).inc();
        assert_eq!(f.dropped(), 1);
        assert_eq!(f.overflow_series().get(), 1);
    }
}
