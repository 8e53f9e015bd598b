//! The resilience primitives on the chip: token bucket (GCRA), keyed limiter, quota, circuit
//! breaker and backoff. Their state is 64-bit atomics, so on these 32-bit MCUs every decision goes
//! through the firmware's interrupt-safe atomic strategy.
#![no_std]
#![no_main]

use vitals_core::resilience::{
    hash_bytes, AcquireError, Backoff, BreakerConfig, BreakerState, CircuitBreaker, Jitter,
    KeyedLimiter, Outcome, Quota, QuotaConfig, QuotaError, Rate, RetriesExhausted, Rng,
    TokenBucket, TokenBucketConfig,
};
use vitals_ontarget::{check, check_eq, tests};

tests!(
    token_bucket_bursts_then_refills,
    token_bucket_n_tokens_and_clock_going_back,
    keyed_limiter_gives_each_client_a_bucket,
    quota_counts_per_window,
    breaker_trips_probes_and_closes,
    breaker_failure_rate_and_operator_actions,
    backoff_is_capped_and_deterministic,
);

fn token_bucket_bursts_then_refills() -> Result<(), ()> {
    // 10 per second, bursts of 5, clock in milliseconds.
    static LIMIT: TokenBucket =
        TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(10), 5));
    check_eq!(LIMIT.burst(), 5);
    check_eq!(LIMIT.available(0), 5);
    for _ in 0..5 {
        check!(LIMIT.try_acquire(0).is_ok());
    }
    let refused = LIMIT
        .try_acquire(0)
        .map(|_| 0)
        .unwrap_or_else(|e| e.retry_after);
    check_eq!(refused, 100); // one token every 100 ms
    check!(LIMIT.try_acquire(99).is_err());
    check!(LIMIT.try_acquire(100).is_ok());
    check_eq!(LIMIT.available(100), 0);
    check_eq!(LIMIT.available(10_000), 5); // never more than the burst
    LIMIT.reset();
    check_eq!(LIMIT.available(100), 5);
    Ok(())
}

fn token_bucket_n_tokens_and_clock_going_back() -> Result<(), ()> {
    static LIMIT: TokenBucket =
        TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(4), 4));
    check_eq!(
        LIMIT.try_acquire_n(0, 5),
        Err(AcquireError::ExceedsBurst {
            requested: 5,
            burst: 4
        })
    );
    check_eq!(LIMIT.try_acquire_n(1_000, 0), Ok(()));
    check_eq!(LIMIT.peek(1_000, 4), Ok(()));
    check_eq!(LIMIT.try_acquire_n(1_000, 3), Ok(()));
    check!(LIMIT.try_acquire_n(1_000, 2).is_err());
    // A `now` earlier than one already acted on counts as no time passed: no early refill.
    check!(LIMIT.try_acquire_n(0, 2).is_err());
    check_eq!(LIMIT.try_acquire_n(1_250, 2), Ok(()));
    // Near the end of time the arithmetic saturates: it refuses rather than over-admits (ten
    // calls at u64::MAX get at most one burst).
    let admitted = (0..10)
        .filter(|_| LIMIT.try_acquire(u64::MAX).is_ok())
        .count();
    check!(admitted <= 4);
    check!(TokenBucketConfig::try_new(0, Rate::per_second(1), 1).is_err());
    Ok(())
}

fn keyed_limiter_gives_each_client_a_bucket() -> Result<(), ()> {
    // Each client: 2 per second, bursts of 2; 8 clients tracked; clock in milliseconds.
    static PER_CLIENT: KeyedLimiter<8> =
        KeyedLimiter::new(TokenBucketConfig::new(1_000, Rate::per_second(2), 2));
    check!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_ok());
    check!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_ok());
    check!(PER_CLIENT.try_acquire_bytes(b"alice", 0).is_err());
    check!(PER_CLIENT.try_acquire_bytes(b"bob", 0).is_ok()); // bob has his own bucket
    check_eq!(PER_CLIENT.available(hash_bytes(b"alice"), 0), 0);
    check_eq!(PER_CLIENT.available(hash_bytes(b"carol"), 0), 2);
    check_eq!(PER_CLIENT.active(0), 2);
    check!(PER_CLIENT.try_acquire_bytes(b"alice", 500).is_ok());
    check_eq!(PER_CLIENT.active(10_000), 0); // refilled buckets can be evicted losslessly
    check_eq!(PER_CLIENT.capacity(), 8);
    // Many more clients than slots: every request is still decided, none panics.
    let mut admitted = 0;
    for client in 0..100u64 {
        if PER_CLIENT.try_acquire(client, 20_000).is_ok() {
            admitted += 1;
        }
    }
    check!(admitted >= 8);
    check!(PER_CLIENT.overflowed() > 0);
    Ok(())
}

fn quota_counts_per_window() -> Result<(), ()> {
    // 3 per 10-second window, clock in seconds.
    static Q: Quota = Quota::new(QuotaConfig::new(1, 10, 3));
    check_eq!(Q.try_acquire(1), Ok(2));
    check_eq!(Q.try_acquire_n(2, 2), Ok(0));
    check_eq!(Q.used(2), 3);
    check_eq!(
        Q.try_acquire(9),
        Err(QuotaError::Exhausted { retry_after: 1 })
    );
    check_eq!(
        Q.try_acquire_n(9, 4),
        Err(QuotaError::ExceedsLimit {
            requested: 4,
            limit: 3
        })
    );
    check_eq!(Q.try_acquire(10), Ok(2)); // a new window
    check_eq!(Q.try_acquire(5), Ok(1)); // an earlier `now` counts in the stored window
    Ok(())
}

fn breaker_trips_probes_and_closes() -> Result<(), ()> {
    // Clock in milliseconds: trip when 3 in a row fail, stay open 1 s.
    static UPSTREAM: CircuitBreaker = CircuitBreaker::new(
        BreakerConfig::new(1_000)
            .consecutive_failures(3)
            .open_wait(1_000, 30_000),
    );
    check_eq!(UPSTREAM.state(), BreakerState::Closed);
    for t in 0..3 {
        match UPSTREAM.try_acquire(t) {
            Ok(p) => p.failure(t),
            Err(_) => return Err(()),
        }
    }
    check_eq!(UPSTREAM.state(), BreakerState::Open);
    let g = UPSTREAM.generation();
    let refused = UPSTREAM.try_acquire(500).map(|_| ()).err();
    check_eq!(refused.map(|r| r.retry_after), Some(Some(502)));
    check_eq!(UPSTREAM.rejections(), 1);
    // Half-open: a bounded number of probes (3 by default), counted when admitted.
    let p1 = UPSTREAM.try_acquire(1_002).map_err(|_| ())?;
    check!(p1.is_probe());
    check_eq!(UPSTREAM.state(), BreakerState::HalfOpen);
    check!(UPSTREAM.generation() > g);
    let p2 = UPSTREAM.try_acquire(1_003).map_err(|_| ())?;
    let t3 = UPSTREAM.try_acquire_ticket(1_004).map_err(|_| ())?;
    check!(UPSTREAM.try_acquire(1_005).is_err()); // a fourth probe is refused
    p1.success(1_010);
    p2.success(1_011);
    UPSTREAM.record(t3, 1_012, Outcome::Success);
    check_eq!(UPSTREAM.state(), BreakerState::Closed);
    check!(UPSTREAM.transitions() >= 3);
    check_eq!(BreakerState::HalfOpen.gauge(), 2);
    check_eq!(BreakerState::Open.as_str(), "open");
    Ok(())
}

fn breaker_failure_rate_and_operator_actions() -> Result<(), ()> {
    // Window of 10 calls, at least 4, trip at 50 % failures.
    static B: CircuitBreaker =
        CircuitBreaker::new(BreakerConfig::new(1_000).window(10, 4).failure_rate(50));
    for (i, fail) in [false, true, false, true].into_iter().enumerate() {
        let t = i as u64;
        let p = B.try_acquire(t).map_err(|_| ())?;
        if fail {
            p.failure(t)
        } else {
            p.success(t)
        }
    }
    check_eq!(B.state(), BreakerState::Open);
    // An outcome from an older generation is ignored.
    B.reset();
    check_eq!(B.state(), BreakerState::Closed);
    let stale = B.try_acquire_ticket(10).map_err(|_| ())?;
    B.force_open();
    check_eq!(B.state(), BreakerState::ForcedOpen);
    check_eq!(
        B.try_acquire(20).map(|_| ()).err().map(|r| r.retry_after),
        Some(None)
    );
    B.record(stale, 21, Outcome::Failure);
    check_eq!(B.state(), BreakerState::ForcedOpen);
    B.disable();
    check!(B.try_acquire(30).is_ok());
    B.reset();
    check_eq!(B.state(), BreakerState::Closed);
    check_eq!(B.window_counts(), (0, 0));
    Ok(())
}

fn backoff_is_capped_and_deterministic() -> Result<(), ()> {
    // 100 ms doubling up to 5 s, full jitter, at most 5 retries (clock in milliseconds).
    const RETRY: Backoff = Backoff::new(100, 5_000)
        .with_jitter(Jitter::Full)
        .with_max_attempts(5);
    let mut rng = Rng::new(42);
    let mut attempt = 0;
    while let Ok(delay) = RETRY.delay(attempt, rng.next_u32()) {
        check!(delay <= 100 << attempt);
        attempt += 1;
    }
    check_eq!(attempt, 5);
    check_eq!(RETRY.delay(5, 0), Err(RetriesExhausted { max_attempts: 5 }));
    let plain = Backoff::new(100, 5_000);
    check_eq!(plain.delay(10, 0), Ok(5_000)); // capped
    check_eq!(plain.exponential(3), 800);
    check_eq!(plain.exponential(200), 5_000); // no overflow
    let equal = plain.with_jitter(Jitter::Equal);
    check_eq!(equal.delay(2, 0), Ok(200));
    check_eq!(equal.delay(2, u32::MAX), Ok(400));
    let dec = plain.with_jitter(Jitter::Decorrelated);
    let d = dec.decorrelated_next(100, u32::MAX / 2);
    check!((100..=300).contains(&d));
    // Same seed, same sequence on every target (the host tests see the same numbers).
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..8 {
        check_eq!(a.next_u32(), b.next_u32());
    }
    Ok(())
}
