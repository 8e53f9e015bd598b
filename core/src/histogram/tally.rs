//! One histogram bucket's tally: how many observations fell in it and, on servers, their sum.
//!
//! # On a 64-bit machine with native 64-bit atomics (cfg `vitals_packed_tally`)
//!
//! An observation is one atomic add on the bucket's word, plus, once per 256 observations of the
//! bucket and once per `2^24` units of its sum, a second add that steps an epoch. The word holds
//! `T mod 2^64`, where `T = sum·2^C + count` grows by `v·2^C + 1` per observation of `v`
//! (`C` = 24): its low `C` bits are the count modulo `2^C`, the bits above are the sum plus the
//! count's carries. Two epoch words keep what the word loses: `count_hi`, the count divided by `2^J`
//! (`J` = 8), and `acc_hi`, `T` divided by `2^U` (`U` = 48). The add that carries the count past a
//! multiple of `2^J`, or `T` past a multiple of `2^U`, steps that epoch by one, exactly once.
//!
//! A reader loads the epochs, the word, then the epochs again. The first loads are never ahead of
//! the word: a step is published (release) after its carry, and the reader acquires the epochs
//! before it loads the word. The word gives each quantity modulo `2^M` (`M` = 16: bits `J..C` for
//! the count, bits `U..U+M` for `T`), so the truth is the first epoch plus the difference of the
//! residues modulo `2^M`, provided the epoch lags the word by less than `2^M`.
//!
//! **Invariant:** a read is exact while fewer than 32,768 threads record into the same bucket. A
//! writer's step is published at the latest by its next add to the word (a release, and every change
//! of the word is an add, so whoever acquires a later word sees the step): an epoch lags by at most
//! one carry per thread. (In the language's memory model that counts every thread whose last add to
//! the bucket carried; on real hardware, only those caught between their add and their step.) A
//! read is accepted when each epoch moved by less than `2^(M-1)` between its two loads, so the lag
//! stays below `2^(M-1) + 2^(M-1)`; it loads again only after 32,768 steps during its five loads.
//! An observation of `2^24` units or more (16.7 s in microseconds, 16.7 ms in nanoseconds) adds only
//! its count here, and [`Tally::record`] returns its value for the caller's sum word: two atomic
//! adds.
//!
//! # Elsewhere
//!
//! A tally is a count and the series' sum word takes every value: two atomic adds per observation
//! (on a chip without 64-bit atomics, two short critical sections), and a bucket costs one word of
//! RAM instead of three.

use crate::sync::AtomicU64;
use crate::sync::Ordering::Relaxed;
#[cfg(vitals_packed_tally)]
use crate::sync::Ordering::{Acquire, Release};

/// One bucket's count and sum of observations, in one word plus two epochs (see the module
/// documentation). `C`, `J` and `U` are the layout: count bits in the word, the count epoch's unit
/// (`2^J` observations) and the accumulator epoch's unit (`2^U`); tests shrink them to reach every
/// carry in a few observations.
#[cfg(vitals_packed_tally)]
#[derive(Debug)]
pub(crate) struct Tally<const C: u32 = 24, const J: u32 = 8, const U: u32 = 48> {
    /// `T mod 2^64`, `T = sum·2^C + count`.
    word: AtomicU64,
    /// `count >> J`, as far as writers have stepped it (never ahead of the word).
    count_hi: AtomicU64,
    /// `T >> U`, as far as writers have stepped it (never ahead of the word).
    acc_hi: AtomicU64,
}

#[cfg(vitals_packed_tally)]
impl<const C: u32, const J: u32, const U: u32> Tally<C, J, U> {
    /// Residue bits of both epochs: a read is exact while at most `2^(M-1)` threads record.
    const M: u32 = C - J;
    const RESIDUE: u64 = (1 << Self::M) - 1;
    /// A read whose epochs moved by this much between their two loads loads again.
    const MOVED: u64 = 1 << (Self::M - 1);
    const LOW_J: u64 = (1 << J) - 1;
    const LOW_U: u64 = (1 << U) - 1;
    /// Values below this go into the word whole; their add crosses at most one multiple of `2^U`.
    const FAST: u64 = 1 << (U - C);
    const LAYOUT: () = assert!(J < C && C < U && U + (C - J) <= 64);

    const_fn! {
        /// An empty tally.
        pub(crate) const fn new() -> Self {
            #[allow(clippy::let_unit_value)]
            let () = Self::LAYOUT;
            Tally {
                word: AtomicU64::new(0),
                count_hi: AtomicU64::new(0),
                acc_hi: AtomicU64::new(0),
            }
        }
    }

    /// Records one observation of `v` and returns what the caller must add to its own sum word:
    /// 0, or `v` itself when it is too large for the word.
    #[inline]
    pub(crate) fn record(&self, v: u64) -> u64 {
        let (delta, rest) = if v < Self::FAST {
            ((v << C) | 1, 0)
        } else {
            (1, v)
        };
        // Release: whoever reads a later word also sees this thread's earlier epoch steps.
        let prev = self.word.fetch_add(delta, Release);
        // The add that carries the count past a multiple of 2^J steps its epoch, once; so does
        // the one that carries T past a multiple of 2^U (delta ≤ 2^U: at most one per add).
        if prev & Self::LOW_J == Self::LOW_J {
            self.count_hi.fetch_add(1, Release);
        }
        if (prev ^ prev.wrapping_add(delta)) >> U != 0 {
            self.acc_hi.fetch_add(1, Release);
        }
        rest
    }

    /// `(count >> J, T >> U, word)` of one moment: the epochs loaded before the word (never ahead
    /// of it) brought up to it, as long as they moved by less than `2^(M-1)` while it was loaded.
    fn snapshot(&self) -> (u64, u64, u64) {
        loop {
            let count_hi = self.count_hi.load(Acquire);
            let acc_hi = self.acc_hi.load(Acquire);
            let word = self.word.load(Acquire);
            // Relaxed suffices: loaded after the acquiring word load, these see every step that
            // happened before it.
            let count_moved = self.count_hi.load(Relaxed).wrapping_sub(count_hi);
            let acc_moved = self.acc_hi.load(Relaxed).wrapping_sub(acc_hi);
            if count_moved < Self::MOVED && acc_moved < Self::MOVED {
                let count_res = (word >> J) & Self::RESIDUE;
                let acc_res = word >> U;
                return (
                    count_hi.wrapping_add(count_res.wrapping_sub(count_hi) & Self::RESIDUE),
                    acc_hi.wrapping_add(acc_res.wrapping_sub(acc_hi) & Self::RESIDUE),
                    word,
                );
            }
            // 2^(M-1) steps while the word was loaded: writers made that much progress.
            crate::sync::spin_hint();
        }
    }

    /// `(count, sum)` of the observations recorded here (the sum without what
    /// [`Tally::record`] returned), both modulo `2^64`.
    pub(crate) fn read(&self) -> (u64, u64) {
        let (count_hi, acc_hi, word) = self.snapshot();
        let count = (count_hi << J) | (word & Self::LOW_J);
        // T >> C = sum + (count >> C).
        let acc = (acc_hi << (U - C)).wrapping_add((word & Self::LOW_U) >> C);
        (count, acc.wrapping_sub(count_hi >> Self::M))
    }
}

/// One bucket's count; the series' sum word takes every value (see the module documentation).
#[cfg(not(vitals_packed_tally))]
#[derive(Debug)]
pub(crate) struct Tally {
    count: AtomicU64,
}

#[cfg(not(vitals_packed_tally))]
impl Tally {
    const_fn! {
        /// An empty tally.
        pub(crate) const fn new() -> Self {
            Tally { count: AtomicU64::new(0) }
        }
    }

    /// Counts one observation and returns `v`, for the caller's sum word.
    #[inline]
    pub(crate) fn record(&self, v: u64) -> u64 {
        self.count.fetch_add(1, Relaxed);
        v
    }

    /// `(count, 0)`: the sum is all in the caller's word.
    pub(crate) fn read(&self) -> (u64, u64) {
        (self.count.load(Relaxed), 0)
    }
}

/// `N` empty tallies, built in a constant (or at run time under loom).
#[cfg(not(loom))]
pub(crate) const fn tallies<const N: usize>() -> [Tally; N] {
    [const { Tally::new() }; N]
}

/// `N` empty tallies, built at run time (loom's atomics are not `const`).
#[cfg(loom)]
pub(crate) fn tallies<const N: usize>() -> [Tally; N] {
    core::array::from_fn(|_| Tally::new())
}

/// The running totals of a histogram series being rendered: its cumulative count and, where
/// tallies keep sums, the sum of the buckets read so far (so `_sum` and the buckets come from the
/// same reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Carry {
    count: u64,
    #[cfg(vitals_packed_tally)]
    sum: u64,
}

impl Carry {
    /// Nothing read yet.
    pub(crate) const ZERO: Carry = Carry {
        count: 0,
        #[cfg(vitals_packed_tally)]
        sum: 0,
    };

    /// Reads one more bucket.
    #[inline]
    pub(crate) fn add(&mut self, tally: &Tally) {
        let (count, _sum) = tally.read();
        self.count = self.count.wrapping_add(count);
        #[cfg(vitals_packed_tally)]
        {
            self.sum = self.sum.wrapping_add(_sum);
        }
    }

    /// The cumulative count so far.
    #[inline]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The series' sum: its own word (`rest`) plus what the buckets read kept.
    #[inline]
    pub(crate) fn sum(&self, rest: &AtomicU64) -> u64 {
        let rest = rest.load(Relaxed);
        #[cfg(vitals_packed_tally)]
        let rest = rest.wrapping_add(self.sum);
        rest
    }
}

#[cfg(all(test, vitals_packed_tally, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    /// Three count bits, a count epoch of 2 observations, an accumulator epoch of 64: every few
    /// observations carry, and a read is exact while at most 2 threads record.
    type Small = Tally<3, 1, 6>;

    fn model(values: &[u64]) -> (u64, u64) {
        values
            .iter()
            .fold((0u64, 0u64), |(n, s), &v| (n + 1, s.wrapping_add(v)))
    }

    fn record_all<const C: u32, const J: u32, const U: u32>(
        t: &Tally<C, J, U>,
        values: &[u64],
    ) -> u64 {
        values
            .iter()
            .fold(0u64, |rest, &v| rest.wrapping_add(t.record(v)))
    }

    #[test]
    fn a_read_is_the_count_and_sum_of_what_was_recorded() {
        let t = Tally::<24, 8, 48>::new();
        let values = [0, 1, 999, (1 << 24) - 1, 1 << 24, u64::MAX, 7];
        let rest = record_all(&t, &values);
        let (n, s) = t.read();
        assert_eq!((n, s.wrapping_add(rest)), model(&values));
        // Only the two values of 2^24 units and more are left to the caller.
        assert_eq!(rest, (1u64 << 24).wrapping_add(u64::MAX));
    }

    impl Tally<24, 8, 48> {
        /// A tally that has already recorded `count` observations summing to `sum`.
        fn starting_at(count: u64, sum: u64) -> Self {
            let acc = (u128::from(sum) << 24) + u128::from(count);
            Tally {
                word: AtomicU64::new(acc as u64),
                count_hi: AtomicU64::new(count >> 8),
                acc_hi: AtomicU64::new((acc >> 48) as u64),
            }
        }
    }

    #[test]
    fn the_word_wraps_past_2_to_the_64() {
        // T = sum·2^24 + count is 2^64 - 2·2^24 - 5: the first observation wraps the word, and
        // the count's 24 bits wrap on the fifth.
        let (count, sum) = ((1 << 24) - 5, (1 << 40) - 3);
        let t = Tally::<24, 8, 48>::starting_at(count, sum);
        assert_eq!(t.read(), (count, sum));
        let values = [1_000u64; 10];
        assert_eq!(record_all(&t, &values), 0);
        assert_eq!(t.read(), (count + 10, sum + 10_000));
    }

    #[test]
    fn the_residues_wrap_many_times() {
        let t = Small::new();
        let values: std::vec::Vec<u64> = (0..5_000).map(|i| i % 8).collect();
        assert_eq!(record_all(&t, &values), 0);
        assert_eq!(t.read(), model(&values));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]
        #[test]
        fn matches_the_model_in_any_layout(values in proptest::collection::vec(0u64..20, 0..400)) {
            let small = Small::new();
            let rest = record_all(&small, &values);
            let (n, s) = small.read();
            prop_assert_eq!((n, s.wrapping_add(rest)), model(&values));
            let real = Tally::<24, 8, 48>::new();
            prop_assert_eq!(record_all(&real, &values), 0);
            prop_assert_eq!(real.read(), model(&values));
        }
    }

    /// A read is exact while each epoch lags the word by less than 2^M = 65,536 carries, and
    /// only then (what the thread bound of the module documentation leaves room for).
    #[test]
    fn a_read_is_exact_while_the_epochs_lag_by_less_than_2_to_the_16() {
        let cases = [
            (0u64, 0u64),
            (5 << 24, 123),
            (u64::MAX - 7, u64::MAX / 3),
            (1 << 40, 1 << 63),
        ];
        for (count, sum) in cases {
            let t = (u128::from(sum) << 24) + u128::from(count);
            let (count_hi, acc_hi) = (count >> 8, (t >> 48) as u64);
            let lagging = |lag_c: u64, lag_a: u64| Tally::<24, 8, 48> {
                word: AtomicU64::new(t as u64),
                count_hi: AtomicU64::new(count_hi - lag_c),
                acc_hi: AtomicU64::new(acc_hi - lag_a),
            };
            for (lag_c, lag_a) in [(0, 0), (1, 0), (0, 1), (65_535, 65_535), (65_535, 0)] {
                if lag_c <= count_hi && lag_a <= acc_hi {
                    assert_eq!(
                        lagging(lag_c, lag_a).read(),
                        (count, sum),
                        "lag {lag_c} {lag_a}"
                    );
                }
            }
            if count_hi >= 65_536 {
                assert_ne!(lagging(65_536, 0).read().0, count, "a lag of 2^16 aliases");
            }
        }
    }

    #[test]
    fn concurrent_reads_never_go_back_and_the_last_is_exact() {
        // One value, 5, from both writers: every read must have sum = 5 · count.
        let t = Small::new();
        let done = AtomicBool::new(false);
        let per_thread: u64 = if cfg!(miri) { 300 } else { 20_000 };
        std::thread::scope(|s| {
            let writers: std::vec::Vec<_> = (0..2)
                .map(|_| {
                    let t = &t;
                    s.spawn(move || (0..per_thread).map(|_| t.record(5)).sum::<u64>())
                })
                .collect();
            s.spawn(|| {
                let mut last = 0;
                while !done.load(Relaxed) {
                    let (n, sum) = t.read();
                    assert!(
                        sum == 5 * n && n >= last && n <= 2 * per_thread,
                        "{n} {sum}"
                    );
                    last = n;
                }
            });
            for w in writers {
                assert_eq!(w.join().unwrap(), 0);
            }
            done.store(true, Relaxed);
        });
        assert_eq!(t.read(), (2 * per_thread, 10 * per_thread));
    }
}
