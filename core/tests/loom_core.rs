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

/// Two writers record into one bucket tally (two of the three adds carry an epoch) while a third
/// thread reads: the read is the count and sum of a prefix of each writer's observations (one
/// atomic add each, never half of one), and once both writers are done the read is exact.
#[test]
fn histogram_tally_reads_whole_prefixes_while_writers_carry() {
    // Three count bits, a count epoch of 2 observations, an accumulator epoch of 64: a read is
    // exact while at most 2 threads record.
    type SmallTally = vitals_core::__loom::Tally<3, 1, 6>;
    // Each add is v·8 + 1: 25 and 57 from one writer, 49 from the other; the accumulator epoch's
    // unit is 64.
    const A: [u64; 2] = [3, 7];
    const B: u64 = 6;
    // Three preemptions reach every order of the three adds and the reader's loads between
    // them; the unbounded model takes 390 s for the same verdict.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let t = Arc::new(SmallTally::new());
        let (ta, tb) = (t.clone(), t.clone());
        let a = thread::spawn(move || A.iter().map(|&v| ta.record(v)).sum::<u64>());
        let b = thread::spawn(move || tb.record(B));
        let (n, s) = t.read();
        let whole_prefixes = (0..=A.len()).any(|i| {
            let a: u64 = A[..i].iter().sum();
            (i as u64 == n && a == s) || (i as u64 + 1 == n && a + B == s)
        });
        assert!(whole_prefixes, "{:?}", (n, s));
        assert_eq!(a.join().unwrap() + b.join().unwrap(), 0);
        assert_eq!(t.read(), (3, 16));
    });
}

/// One writer, a tally exact only while its epochs lag by at most one carry (one count bit above
/// the count epoch's), and every add carries the accumulator epoch: a reader preempted between its
/// loads sees the writer carry twice, and only its second load of the epochs tells it to load
/// again. Every read is the count and sum of a prefix of the observations. Dropping that second
/// load, or the release of the word's add, fails this test.
#[test]
fn histogram_tally_reader_loads_again_when_an_epoch_moved() {
    // Two count bits, a count epoch of 2 observations, an accumulator epoch of 32; each add is
    // 7·4 + 1 = 29.
    type TinyTally = vitals_core::__loom::Tally<2, 1, 5>;
    const N: u64 = 4;
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let t = Arc::new(TinyTally::new());
        let tw = t.clone();
        let w = thread::spawn(move || (0..N).map(|_| tw.record(7)).sum::<u64>());
        let first = t.read();
        let second = t.read();
        for (n, s) in [first, second] {
            assert!(n <= N && s == 7 * n, "{:?}", (n, s));
        }
        assert!(second.0 >= first.0);
        assert_eq!(w.join().unwrap(), 0);
        assert_eq!(t.read(), (N, 7 * N));
    });
}

/// One writer, residues one bit wide and a count epoch of one observation: every add carries, so a
/// reader that misses one published step reads wrong. The whole model, without a preemption bound.
#[test]
fn histogram_tally_reads_see_every_published_step() {
    type OneBit = vitals_core::__loom::Tally<1, 0, 2>;
    loom::model(|| {
        let t = Arc::new(OneBit::new());
        let tw = t.clone();
        let w = thread::spawn(move || (0..2).map(|_| tw.record(1)).sum::<u64>());
        let (n, s) = t.read();
        assert!(n <= 2 && n == s, "{:?}", (n, s));
        assert_eq!(w.join().unwrap(), 0);
        assert_eq!(t.read(), (2, 2));
    });
}
