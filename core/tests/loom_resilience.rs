//! loom model checks of every CAS loop in the resilience primitives.
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p vitals-core --release --test loom_resilience`
//! (scripts/test.d/25-loom.sh).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use vitals_core::resilience::*;

const MS: u64 = 1_000;

/// A model checker with a preemption bound: the keyed limiter's retry loops otherwise give an
/// exponential number of schedules (3 preemptions find the classic races).
fn bounded() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

fn bucket(burst: u32) -> TokenBucket {
    TokenBucket::new(TokenBucketConfig::new(MS, Rate::per_second(1), burst))
}

/// Runs `f` on two spawned threads and the model's main thread; returns how many returned true.
fn three<T: Send + Sync + 'static>(shared: Arc<T>, f: fn(&T) -> bool) -> usize {
    let a = shared.clone();
    let b = shared.clone();
    let ta = thread::spawn(move || f(&a));
    let tb = thread::spawn(move || f(&b));
    let mine = f(&shared);
    [ta.join().unwrap(), tb.join().unwrap(), mine]
        .iter()
        .filter(|x| **x)
        .count()
}

#[test]
fn token_bucket_never_admits_more_than_the_burst() {
    loom::model(|| {
        let b = Arc::new(bucket(2));
        let admitted = three(b.clone(), |b| b.try_acquire(0).is_ok());
        assert_eq!(admitted, 2);
        assert_eq!(b.available(0), 0);
    });
}

/// A bucket of burst 3 (one token a second) after two racing admissions, at t = 2000 on a
/// spawned thread and at t = 1000 on the model's main thread; both are admitted in every
/// interleaving.
fn admitted_at_2000_and_racing_1000() -> Arc<TokenBucket> {
    let b = Arc::new(bucket(3));
    let b2 = b.clone();
    let t = thread::spawn(move || b2.try_acquire(2_000).is_ok());
    assert!(b.try_acquire(1_000).is_ok());
    assert!(t.join().unwrap());
    b
}

/// The high-water mark is derived from the TAT (no second word): a thread whose `now` is earlier
/// than one another thread already admitted at, whatever the interleaving, gets no refill.
#[test]
fn token_bucket_now_before_an_admission_counts_as_no_time_passed() {
    loom::model(|| {
        let b = admitted_at_2000_and_racing_1000();
        // Earlier than the latest admission: never more than at t = 2000, never less than at t = 0.
        assert!(b.available(0) <= b.available(2_000));
        assert!(b.available(2_000) >= 1);
        let at_latest = b.peek(2_000, 1).is_ok();
        assert!(b.try_acquire(0).is_err() || at_latest);
    });
}

/// Three threads, two at t = 1000 and one that read the clock at t = 0: at most the burst (1)
/// plus the one token earned by t = 1000, in every interleaving.
#[test]
fn token_bucket_racing_an_earlier_now_never_over_admits() {
    loom::model(|| {
        let b = Arc::new(bucket(1));
        let (b1, b2) = (b.clone(), b.clone());
        let t1 = thread::spawn(move || b1.try_acquire(1_000).is_ok());
        let t2 = thread::spawn(move || b2.try_acquire(1_000).is_ok());
        let early = b.try_acquire(0).is_ok();
        let admitted = [t1.join().unwrap(), t2.join().unwrap(), early]
            .iter()
            .filter(|x| **x)
            .count();
        assert!((1..=2).contains(&admitted), "admitted {admitted}");
        assert_eq!(b.available(1_000), 0);
    });
}

/// The exported gauge (`available_latest`) after two racing admissions, one from a full bucket
/// at t = 2000 and one at an earlier t = 1000 (burst 3, one token a second). The note is a plain
/// load and store (no read-modify-write on the allow path), so a race can leave it one
/// admission's view of time against the other's TAT: the gauge then reads the final bucket at
/// t = 1000, 2000 or 3000 (0, 1 or 2 tokens; sequential orders give 1 or 2), never more than the
/// burst. The next admission at or after the TAT minus one interval (here t = 5000, from full)
/// makes it exact again, in every interleaving.
#[test]
fn token_bucket_gauge_is_exact_again_after_racing_admissions() {
    loom::model(|| {
        let b = admitted_at_2000_and_racing_1000();
        let racing = b.available_latest();
        let at = |t| b.available(t);
        assert!(
            [at(1_000), at(2_000), at(3_000)].contains(&racing),
            "gauge {racing}"
        );
        assert!(b.try_acquire(5_000).is_ok());
        assert_eq!(b.available_latest(), b.available(5_000));
        assert_eq!(b.available_latest(), 2);
    });
}

#[test]
fn quota_never_exceeds_its_limit_across_a_window_change() {
    loom::model(|| {
        let q = Arc::new(Quota::new(QuotaConfig::new(1, 10, 1)));
        q.try_acquire(5).unwrap(); // window 0 used up
        let admitted = three(q.clone(), |q| q.try_acquire(15).is_ok()); // all in window 1
        assert_eq!(admitted, 1);
        assert_eq!(q.used(15), 1);
    });
}

#[test]
fn keyed_concurrent_insertion_of_one_key_claims_one_slot() {
    loom::model(|| {
        let l: Arc<KeyedLimiter<4>> = Arc::new(KeyedLimiter::new(TokenBucketConfig::new(
            MS,
            Rate::per_second(1),
            1,
        )));
        let l2 = l.clone();
        let t = thread::spawn(move || l2.try_acquire(7, 0).is_ok());
        let mine = l.try_acquire(7, 0).is_ok();
        let theirs = t.join().unwrap();
        let admitted = usize::from(mine) + usize::from(theirs);
        // One slot for the key (never a duplicate bucket); only the counted overflow bucket may
        // admit beyond the key's own burst: each admission past the first is one overflow. (In
        // this model's schedules the set never overflows, so this is `admitted == 1` in practice.)
        assert_eq!(l.active(0), 1);
        assert!(l.overflowed() <= 1, "{} overflows", l.overflowed());
        assert_eq!(admitted as u64, 1 + l.overflowed());
    });
}

#[test]
fn keyed_concurrent_insertion_of_different_keys_in_a_full_set() {
    loom::model(|| {
        let l: Arc<KeyedLimiter<1>> = Arc::new(KeyedLimiter::new(TokenBucketConfig::new(
            MS,
            Rate::per_second(1),
            1,
        )));
        let l2 = l.clone();
        let t = thread::spawn(move || l2.try_acquire(1, 0).is_ok());
        let mine = l.try_acquire(2, 0).is_ok();
        let theirs = t.join().unwrap();
        // One gets the slot, the other the overflow bucket (burst 1): both admitted, one counted.
        assert!(mine && theirs);
        assert_eq!(l.overflowed(), 1);
        assert_eq!(l.active(0), 1);
    });
}

#[test]
fn keyed_eviction_racing_with_consumption_loses_nothing() {
    bounded().check(|| {
        let l: Arc<KeyedLimiter<1>> = Arc::new(KeyedLimiter::new(TokenBucketConfig::new(
            MS,
            Rate::per_second(1),
            1,
        )));
        l.try_acquire(1, 0).unwrap(); // key 1 has the slot; full again after t = 1000
        let l2 = l.clone();
        let t = thread::spawn(move || l2.try_acquire(1, 2_000).is_ok());
        let b = l.try_acquire(2, 2_000).is_ok();
        let a = t.join().unwrap();
        assert!(a && b);
        // Whatever the interleaving, neither key gets a second token at the same instant.
        assert!(l.try_acquire(1, 2_000).is_err());
        assert!(l.try_acquire(2, 2_000).is_err());
    });
}

fn breaker(probes: u8) -> CircuitBreaker {
    CircuitBreaker::new(
        BreakerConfig::new(MS)
            .window(2, 2)
            .failure_rate(100)
            .consecutive_failures(1)
            .open_wait(1, 1)
            .half_open(probes, 1_000),
    )
}

#[test]
fn concurrent_half_open_probes_never_exceed_the_limit() {
    bounded().check(|| {
        let b = Arc::new(breaker(2));
        b.try_acquire(0).unwrap().failure(0); // open until 1
        let admitted = three(b.clone(), |b| b.try_acquire_ticket(1).map(drop).is_ok());
        assert_eq!(admitted, 2);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.transitions(), 2);
    });
}

#[test]
fn concurrent_failures_trip_once_and_both_are_counted() {
    loom::model(|| {
        let b = Arc::new(CircuitBreaker::new(
            BreakerConfig::new(MS).window(2, 2).failure_rate(100),
        ));
        let p1 = b.try_acquire_ticket(0).unwrap();
        let p2 = b.try_acquire_ticket(0).unwrap();
        let b2 = b.clone();
        let t = thread::spawn(move || b2.record(p1, 0, Outcome::Failure));
        b.record(p2, 0, Outcome::Failure);
        t.join().unwrap();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.transitions(), 1);
        assert_eq!(b.generation(), 1);
    });
}

#[test]
fn stale_probe_outcome_races_with_an_operator() {
    loom::model(|| {
        let b = Arc::new(breaker(1));
        b.try_acquire(0).unwrap().failure(0);
        let probe = b.try_acquire_ticket(1).unwrap();
        let b2 = b.clone();
        let t = thread::spawn(move || b2.record(probe, 2, Outcome::Success));
        b.force_open();
        t.join().unwrap();
        assert_eq!(b.state(), BreakerState::ForcedOpen);
    });
}

#[test]
fn dropped_probe_returns_its_slot_concurrently() {
    loom::model(|| {
        let b = Arc::new(breaker(1));
        b.try_acquire(0).unwrap().failure(0);
        let probe = b.try_acquire_ticket(1).unwrap();
        let b2 = b.clone();
        let t = thread::spawn(move || b2.release(probe));
        let got = b.try_acquire_ticket(1);
        t.join().unwrap();
        // Either the new probe came after the release, or the slot is free now.
        match got {
            Ok(p) => drop(p),
            Err(_) => assert!(b.try_acquire_ticket(1).map(drop).is_ok()),
        }
        assert!(b.try_acquire_ticket(1).is_err());
    });
}
