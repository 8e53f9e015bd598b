//! loom model checks of the core's CAS loops: the string-label slot claim and the float gauge add.
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
