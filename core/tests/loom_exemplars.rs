//! loom model checks of the exemplar seqlock (feature `exemplars`): a reader never sees a torn
//! exemplar, and of two writers racing for one bucket at least one records.
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p vitals-core --release
//! --features exemplars --test loom_exemplars` (scripts/test.d/25-loom.sh).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use vitals_core::{Bounds, Exemplar, Histogram};

/// Every word of exemplar `k` is derived from `k`, so a mix of two writers' words shows.
fn exemplar(k: u8) -> Exemplar {
    Exemplar::new([k; 16], [k.wrapping_mul(3); 8]).at_millis(1_000 + u64::from(k))
}

/// The exemplar read is one that was written, whole: ids, value and timestamp of one writer.
fn assert_whole(read: Option<(Exemplar, u64)>) {
    if let Some((e, value)) = read {
        let k = u8::try_from(value).expect("a value some writer observed");
        assert!((1..=3).contains(&k), "value {value}");
        assert_eq!(e, exemplar(k), "torn exemplar: value {value} with {e:?}");
    }
}

/// A model checker with a preemption bound: writers of five words each and a retrying reader
/// give minutes of schedules otherwise (3 preemptions find the classic seqlock races).
fn bounded() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

#[test]
fn a_reader_racing_a_writer_never_sees_a_torn_exemplar() {
    bounded().check(|| {
        let h = Arc::new(Histogram::new(Bounds::units([10])));
        h.observe_with_exemplar(1, &exemplar(1));
        let w = h.clone();
        let t = thread::spawn(move || w.observe_with_exemplar(2, &exemplar(2)));
        assert_whole(h.cells().exemplar(0));
        assert_whole(h.cells().exemplar(0));
        t.join().unwrap();
        // Alone, the writer always records, and the reader then sees its exemplar.
        assert_eq!(h.cells().exemplar(0), Some((exemplar(2), 2)));
    });
}

#[test]
fn two_writers_and_a_reader_on_one_bucket() {
    bounded().check(|| {
        let h = Arc::new(Histogram::new(Bounds::units([10])));
        let writers: Vec<_> = [2u8, 3]
            .into_iter()
            .map(|k| {
                let w = h.clone();
                thread::spawn(move || w.observe_with_exemplar(u64::from(k), &exemplar(k)))
            })
            .collect();
        assert_whole(h.cells().exemplar(0));
        for t in writers {
            t.join().unwrap();
        }
        // Both observations are counted; a writer that lost the race recorded no exemplar, but
        // the one that won did.
        assert_eq!(h.count(), 2);
        assert_eq!(h.sum(), 5);
        let last = h.cells().exemplar(0);
        assert!(last.is_some());
        assert_whole(last);
    });
}
