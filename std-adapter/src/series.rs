//! Exact series on a host, when two threads first use the same label set at once.
//!
//! The core's [`StrFamily`] never waits for a slot another thread is still writing (on a
//! microcontroller that writer may be the very code an interrupt preempted): after a bounded spin,
//! the update goes to the family's overflow series. On a host the writer is a thread the OS may
//! have descheduled, so under load the first updates of a new label set could be counted under the
//! overflow labels instead of their own. [`Exact::exact_labels`] yields to the OS and asks again, so the
//! update lands in its own series; it still never waits unboundedly (after [`YIELDS`] yields it
//! takes the core's answer, which counts the overflow).

use vitals_core::{Cell, LabelError, StrFamily};

/// Yields to the OS before giving up on a slot being written by another thread.
pub const YIELDS: u32 = 10_000;

/// [`StrFamily::labels`] that waits (by yielding, boundedly) for a label set another thread is
/// inserting, instead of sending the update to the overflow series.
pub trait Exact<const K: usize> {
    /// What an update goes through.
    type Handle<'a>
    where
        Self: 'a;
    /// The series for `values`.
    fn exact_labels(&self, values: [&str; K]) -> Self::Handle<'_>;
}

impl<C: Cell, const K: usize, const CAP: usize, const BYTES: usize> Exact<K>
    for StrFamily<C, K, CAP, BYTES>
{
    type Handle<'a>
        = C::Handle<'a>
    where
        Self: 'a;

    fn exact_labels(&self, values: [&str; K]) -> C::Handle<'_> {
        for _ in 0..YIELDS {
            match self.try_labels(values) {
                Ok(h) => return h,
                Err(LabelError::Contended) => std::thread::yield_now(),
                Err(_) => break, // full, or a key too long: the overflow series, counted
            }
        }
        self.labels(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use vitals_core::Counter;

    /// Many threads first use the same few label sets at the same instant: every update lands in
    /// its own series, none in the overflow.
    #[test]
    fn racing_first_updates_all_land_in_their_series() {
        for _ in 0..50 {
            let family: StrFamily<Counter, 1, 8, 16> = StrFamily::new(["k"]);
            let threads = 8;
            let barrier = Barrier::new(threads);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (family, barrier) = (&family, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        family.exact_labels([["a", "b"][t % 2]]).inc();
                    });
                }
            });
            assert_eq!(family.overflow_series().get(), 0);
            assert_eq!(
                family.exact_labels(["a"]).get() + family.exact_labels(["b"]).get(),
                8
            );
        }
    }
}
