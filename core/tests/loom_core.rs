//! loom model checks of the core's CAS loops and carries: the string-label slot claim, the float gauge
//! add, and the histogram tally's epochs.
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p vitals-core --release --test loom_core`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use vitals_core::{Counter, FloatGauge, StrFamily};

#[test]
fn same_label_set_claims_one_slot() {
    loom::model(|| {
        let f: Arc<StrFamily<Counter, 1, 2, 2>> = Arc::new(StrFamily::new(["k"]));
        let f2 = f.clone();
        let t = thread::spawn(move || f2.labels(["a"]).inc());
        f.labels(["a"]).inc();
        t.join().unwrap();
        // Never two series for one label set; nothing lost: the losing thread may be routed to
        // the overflow series when it gave up waiting, and then it is counted.
        assert_eq!(f.len(), 1);
        let own = f.get(["a"]).map_or(0, |c| c.get());
        assert_eq!(own + f.overflow_series().get(), 2);
        assert_eq!(f.dropped(), f.overflow_series().get());
    });
}

#[test]
fn different_label_sets_in_a_full_table() {
    loom::model(|| {
        let f: Arc<StrFamily<Counter, 1, 1, 2>> = Arc::new(StrFamily::new(["k"]));
        let f2 = f.clone();
        let t = thread::spawn(move || f2.labels(["a"]).inc());
        f.labels(["b"]).inc();
        t.join().unwrap();
        assert_eq!(f.len(), 1);
        let a = f.get(["a"]).map_or(0, |c| c.get());
        let b = f.get(["b"]).map_or(0, |c| c.get());
        assert_eq!(a + b, 1);
        assert_eq!(f.dropped(), 1);
        assert_eq!(f.overflow_series().get(), 1);
    });
}

#[test]
fn two_slots_two_keys_both_get_their_own() {
    loom::model(|| {
        let f: Arc<StrFamily<Counter, 1, 2, 1>> = Arc::new(StrFamily::new(["k"]));
        let f2 = f.clone();
        let t = thread::spawn(move || f2.labels(["a"]).inc());
        f.labels(["b"]).inc();
        t.join().unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.get(["a"]).map(|c| c.get()), Some(1));
        assert_eq!(f.get(["b"]).map(|c| c.get()), Some(1));
        assert_eq!(f.dropped(), 0);
    });
}

#[test]
fn float_gauge_adds_are_not_lost() {
    loom::model(|| {
        let g = Arc::new(FloatGauge::new());
        let g2 = g.clone();
        let t = thread::spawn(move || g2.add(1.5));
        g.add(2.25);
        t.join().unwrap();
        assert_eq!(g.get(), 3.75);
    });
}

/// Two writers record into one bucket tally (every other observation carries the count epoch, most
/// carry the accumulator epoch) while a third thread reads twice: each read is the count and sum of
/// a prefix of each writer's observations (one atomic add each, never half of one), the second
/// read is not behind the first, and once both writers are done the read is exact.
#[test]
fn histogram_tally_reads_whole_prefixes_while_writers_carry() {
    use vitals_core::__loom::SmallTally;
    const A: [u64; 3] = [3, 7, 5];
    const B: [u64; 2] = [6, 2];
    fn prefixes(values: &[u64]) -> Vec<u64> {
        let mut sums = vec![0];
        for v in values {
            sums.push(sums.last().unwrap() + v);
        }
        sums
    }
    loom::model(|| {
        let t = Arc::new(SmallTally::new());
        let (ta, tb) = (t.clone(), t.clone());
        let a = thread::spawn(move || A.iter().map(|&v| ta.record(v)).sum::<u64>());
        let b = thread::spawn(move || B.iter().map(|&v| tb.record(v)).sum::<u64>());
        let (pa, pb) = (prefixes(&A), prefixes(&B));
        let whole_prefixes = |(n, s): (u64, u64)| {
            (0..pa.len()).any(|i| (0..pb.len()).any(|j| (i + j) as u64 == n && pa[i] + pb[j] == s))
        };
        let first = t.read();
        assert!(whole_prefixes(first), "{first:?}");
        let second = t.read();
        assert!(whole_prefixes(second), "{second:?}");
        assert!(second.0 >= first.0 && second.1 >= first.1);
        assert_eq!(a.join().unwrap() + b.join().unwrap(), 0);
        assert_eq!(t.read(), (5, 23));
    });
}
