//! Token bucket, quota, keyed limiter and backoff: every edge, plus a property test of the GCRA
//! against an exact reference token bucket.
#![cfg(not(loom))]

mod common;

use proptest::prelude::*;
use vitals_core::resilience::Rng;
use vitals_core::resilience::*;

const MS: u64 = 1_000;
const NS: u64 = 1_000_000_000;

fn bucket(tps: u64, rate: Rate, burst: u32) -> TokenBucket {
    TokenBucket::new(TokenBucketConfig::new(tps, rate, burst))
}

// ---------------------------------------------------------------------------------------------
// TokenBucket

#[test]
fn burst_n_gives_exactly_n_back_to_back_from_idle() {
    for burst in [1u32, 2, 5, 100] {
        let b = bucket(MS, Rate::per_second(10), burst);
        for i in 0..burst {
            assert!(
                b.try_acquire(7).is_ok(),
                "burst {burst}: request {i} refused"
            );
        }
        assert_eq!(
            b.try_acquire(7),
            Err(RateLimited { retry_after: 100 }),
            "burst {burst}"
        );
    }
}

#[test]
fn starts_full_at_any_time() {
    let b = bucket(NS, Rate::per_second(1), 3);
    assert_eq!(b.available(1 << 60), 3);
    assert!(b.try_acquire_n(1 << 60, 3).is_ok());
    assert_eq!(b.available(1 << 60), 0);
}

#[test]
fn refills_one_token_per_interval_and_never_beyond_burst() {
    let b = bucket(MS, Rate::per_second(10), 2);
    assert!(b.try_acquire_n(0, 2).is_ok());
    assert_eq!(b.available(99), 0);
    assert_eq!(b.available(100), 1);
    assert_eq!(b.available(200), 2);
    assert_eq!(b.available(1_000_000), 2);
    assert!(b.try_acquire(100).is_ok());
    assert_eq!(b.try_acquire(100), Err(RateLimited { retry_after: 100 }));
}

#[test]
fn one_per_hour() {
    let b = bucket(MS, Rate::per_hour(1), 1);
    assert!(b.try_acquire(0).is_ok());
    assert_eq!(
        b.try_acquire(1),
        Err(RateLimited {
            retry_after: 3_599_999
        })
    );
    assert_eq!(
        b.try_acquire(3_599_999),
        Err(RateLimited { retry_after: 1 })
    );
    assert!(b.try_acquire(3_600_000).is_ok());
}

#[test]
fn one_billion_per_second_with_nanosecond_and_millisecond_ticks() {
    let ns = bucket(NS, Rate::per_second(1_000_000_000), 1_000);
    assert!(ns.try_acquire_n(5, 1_000).is_ok());
    assert_eq!(ns.try_acquire(5), Err(RateLimited { retry_after: 1 }));
    assert!(ns.try_acquire(6).is_ok());
    assert_eq!(ns.try_acquire(6), Err(RateLimited { retry_after: 1 }));

    // 1e6 tokens per millisecond tick: exact, no rounding.
    let ms = bucket(MS, Rate::per_second(1_000_000_000), 1_000_000);
    assert!(ms.try_acquire_n(0, 1_000_000).is_ok());
    assert_eq!(ms.try_acquire(0), Err(RateLimited { retry_after: 1 }));
    assert_eq!(ms.available(1), 1_000_000);
    assert!(ms.try_acquire_n(1, 1_000_000).is_ok());
}

#[test]
fn rates_that_do_not_divide_the_tick_rate_are_exact() {
    // 3 per second on a millisecond clock: a token every 333⅓ ms. Burst 2 so that polling late
    // never finds the bucket full (which would waste refill, as it should).
    let b = bucket(MS, Rate::per_second(3), 2);
    let mut admitted = 0;
    for t in 0..=3_000 {
        if b.try_acquire(t).is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 11); // the burst of 2, then 3 per second for 3 s
}

#[test]
fn now_going_backwards_counts_as_no_time_passed() {
    let b = bucket(MS, Rate::per_second(1), 1);
    assert!(b.try_acquire(1_000).is_ok());
    // Earlier than the last admission: treated as t = 1000, not as a refill or a deeper debt.
    assert_eq!(b.try_acquire(500), Err(RateLimited { retry_after: 1_000 }));
    assert_eq!(b.try_acquire(0), Err(RateLimited { retry_after: 1_000 }));
    assert_eq!(b.available(0), 0);
    assert!(b.try_acquire(2_000).is_ok());
}

#[test]
fn ticks_near_u64_max_saturate_and_never_panic() {
    let b = bucket(NS, Rate::per_second(1_000_000_000), 5);
    let t = u64::MAX - 10;
    assert!(b.try_acquire_n(t, 5).is_ok());
    assert_eq!(b.try_acquire(t), Err(RateLimited { retry_after: 1 }));
    let mut admitted = 0;
    for now in t..=u64::MAX {
        while b.try_acquire(now).is_ok() {
            admitted += 1;
        }
    }
    // TAT would reach u64::MAX: the bucket refuses ("never") rather than over-admit.
    assert!(admitted <= 10, "admitted {admitted}");
    assert_eq!(
        b.try_acquire(u64::MAX),
        Err(RateLimited {
            retry_after: u64::MAX
        })
    );
    assert_eq!(b.available(u64::MAX), 0);

    // A huge scale (1e9 per second on a 1-tick-per-second clock) saturates time early: still no panic.
    let s = bucket(1, Rate::per_second(1_000_000_000), 1);
    for now in [0, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        let _ = s.try_acquire(now);
        let _ = s.available(now);
        let _ = s.peek(now, 1);
    }
}

#[test]
fn acquire_n_edges() {
    let b = bucket(MS, Rate::per_second(10), 4);
    assert_eq!(b.try_acquire_n(0, 0), Ok(()));
    assert_eq!(
        b.try_acquire_n(0, 5),
        Err(AcquireError::ExceedsBurst {
            requested: 5,
            burst: 4
        })
    );
    assert_eq!(b.try_acquire_n(0, 3), Ok(()));
    // 3 of 4 used: 2 more need one extra token = 100 ms.
    assert_eq!(
        b.try_acquire_n(0, 2),
        Err(AcquireError::RateLimited(RateLimited { retry_after: 100 }))
    );
    assert_eq!(b.try_acquire_n(100, 2), Ok(()));
}

#[test]
fn peek_consumes_nothing() {
    let b = bucket(MS, Rate::per_second(1), 2);
    for _ in 0..10 {
        assert_eq!(b.peek(0, 2), Ok(()));
    }
    assert_eq!(b.available(0), 2);
    assert!(b.peek(0, 3).is_err());
    b.try_acquire_n(0, 2).unwrap();
    assert_eq!(
        b.peek(0, 1),
        Err(AcquireError::RateLimited(RateLimited {
            retry_after: 1_000
        }))
    );
    b.reset();
    assert_eq!(b.available(0), 2);
}

#[test]
fn zero_config_is_refused() {
    let field = |r: Result<TokenBucketConfig, ConfigError>| r.unwrap_err().field;
    assert_eq!(Rate::try_new(0, 1).unwrap_err().field, "rate.tokens");
    assert_eq!(Rate::try_new(1, 0).unwrap_err().field, "rate.seconds");
    let one = Rate::per_second(1);
    assert_eq!(
        field(TokenBucketConfig::try_new(0, one, 1)),
        "ticks_per_second"
    );
    assert_eq!(field(TokenBucketConfig::try_new(1_000, one, 0)), "burst");
    let e = TokenBucketConfig::try_new(1000, one, 0).unwrap_err();
    assert_eq!(e.to_string(), "invalid config: `burst` must be at least 1");
    // `new` refuses the same values (a compile error in a static, a panic here).
    assert!(std::panic::catch_unwind(|| Rate::new(0, 1)).is_err());
    assert!(std::panic::catch_unwind(|| TokenBucketConfig::new(1_000, one, 0)).is_err());
    // The smallest valid configuration: one token back-to-back.
    let b =
        TokenBucket::new(TokenBucketConfig::try_new(1, Rate::try_new(1, 1).unwrap(), 1).unwrap());
    assert_eq!(b.burst(), 1);
    assert!(b.try_acquire(0).is_ok());
    assert!(b.try_acquire(0).is_err());
    assert_eq!(b.config().rate(), one);
}

/// Every error of the core is a `core::error::Error`, so `?` turns it into a boxed error (or
/// anyhow's) in the caller's code.
#[test]
fn every_core_error_is_an_error() {
    fn boxed<E: core::error::Error + Send + Sync + 'static>(
        e: E,
    ) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(e)
    }
    let errors = [
        boxed(RateLimited { retry_after: 1 }),
        boxed(AcquireError::ExceedsBurst {
            requested: 2,
            burst: 1,
        }),
        boxed(TokenBucketConfig::try_new(0, Rate::per_second(1), 1).unwrap_err()),
        boxed(RetriesExhausted { max_attempts: 1 }),
        boxed(vitals_core::Bounds::try_new([2, 1], vitals_core::Scale::MICRO).unwrap_err()),
        boxed(vitals_core::RenderError::BufferTooSmall { needed: 1 }),
    ];
    #[cfg(feature = "string-labels")]
    let errors = {
        let mut errors = Vec::from(errors);
        errors.push(boxed(vitals_core::LabelError::Full));
        errors
    };
    assert!(errors.iter().all(|e| !e.to_string().is_empty()));
}

#[test]
fn errors_say_what_to_do() {
    assert_eq!(
        RateLimited { retry_after: 5 }.to_string(),
        "rate limited: retry after 5 ticks"
    );
    assert_eq!(
        AcquireError::ExceedsBurst {
            requested: 9,
            burst: 4
        }
        .to_string(),
        "request for 9 tokens can never pass: the burst is 4"
    );
    assert_eq!(
        QuotaError::Exhausted { retry_after: 3 }.to_string(),
        "quota exhausted: the next window starts in 3 ticks"
    );
    assert_eq!(
        RetriesExhausted { max_attempts: 3 }.to_string(),
        "giving up: all 3 retries used"
    );
}

static STATIC_BUCKET: TokenBucket =
    TokenBucket::new(TokenBucketConfig::new(MS, Rate::per_minute(60), 3));

#[test]
fn lives_in_a_static() {
    assert_eq!(STATIC_BUCKET.available(0), 3);
}

/// The reference: a continuous token bucket in exact rational arithmetic. Credit is kept in
/// tokens × D where D = seconds × tps ticks per period; it grows `tokens` per tick.
struct Model {
    d: u128,
    tokens: u128,
    burst: u128,
    credit: u128,
    at: u64,
}

impl Model {
    fn new(cfg: &TokenBucketConfig) -> Self {
        let d = cfg.rate().seconds() as u128 * cfg.ticks_per_second() as u128;
        Self {
            d,
            tokens: cfg.rate().tokens() as u128,
            burst: cfg.burst() as u128,
            credit: cfg.burst() as u128 * d,
            at: 0,
        }
    }
    fn credit_at(&self, now: u64) -> u128 {
        let grown = self.credit + (now.saturating_sub(self.at) as u128) * self.tokens;
        grown.min(self.burst * self.d)
    }
    /// Ok, or the exact wait in ticks, deciding at `max(now, at)`: no time passes backwards.
    fn decide(&self, now: u64, n: u32) -> Result<(), u64> {
        if n == 0 {
            return Ok(());
        }
        let c = self.credit_at(now.max(self.at));
        let need = n as u128 * self.d;
        if c >= need {
            Ok(())
        } else {
            Err((need - c).div_ceil(self.tokens) as u64)
        }
    }
    /// Takes `n ≥ 1` tokens (after `decide` said Ok).
    fn take(&mut self, now: u64, n: u32) {
        let now = now.max(self.at);
        self.credit = self.credit_at(now) - n as u128 * self.d;
        self.at = now;
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn config_strategy() -> impl Strategy<Value = TokenBucketConfig> {
    (
        prop_oneof![Just(1u64), Just(1_000), Just(1_000_000), Just(NS)],
        1u64..2_000,
        prop_oneof![Just(1u64), Just(60), Just(3_600), 1u64..10],
        1u32..12,
    )
        .prop_map(|(tps, tokens, seconds, burst)| {
            TokenBucketConfig::new(tps, Rate::new(tokens, seconds), burst)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Same decisions and same retry-after as the reference at every `now` no earlier than the
    /// latest admission; earlier ones never admit what the reference refuses; and over any
    /// interval the admitted count is at most `burst + elapsed × rate`.
    #[test]
    fn gcra_matches_reference_token_bucket(
        cfg in config_strategy(),
        ops in proptest::collection::vec((0u64..3_000_000_000, 0u32..14, any::<bool>()), 1..60),
    ) {
        let b = TokenBucket::new(cfg);
        let mut model = Model::new(&cfg);
        let mut now = 0u64;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        for (dt, n, backwards) in ops {
            // Mostly forward, sometimes backwards in time.
            now = if backwards { now.saturating_sub(dt % 1_000) } else { now + dt % (cfg.ticks_per_second() * 2) };
            // One token goes through `try_acquire`'s straight-line path, more through the general one.
            let got = if n == 1 { b.try_acquire(now).map_err(AcquireError::RateLimited) } else { b.try_acquire_n(now, n) };
            if n > cfg.burst() {
                prop_assert_eq!(got, Err(AcquireError::ExceedsBurst { requested: n, burst: cfg.burst() }));
                continue;
            }
            let want = model.decide(now, n);
            match (got, want) {
                (Ok(()), Ok(())) => if n > 0 {
                    model.take(now, n);
                    admitted.push((model.at, n));
                },
                (Err(AcquireError::RateLimited(r)), Err(w)) if now >= model.at => prop_assert_eq!(r.retry_after, w),
                // Earlier than the latest admission: the bucket decides between `now` and it (the
                // mark is derived from its TAT), so it may refuse what the reference admits at its
                // mark, and then waits at least as long; it never admits what the reference refuses.
                (Err(AcquireError::RateLimited(r)), Err(w)) => prop_assert!(r.retry_after >= w, "at {} n {}: waits {} < {}", now, n, r.retry_after, w),
                (Err(AcquireError::RateLimited(_)), Ok(())) if now < model.at => {}
                (g, w) => prop_assert!(false, "at {} (mark {}) n {}: bucket {:?}, reference {:?}", now, model.at, n, g, w),
            }
        }
        // Admitted over [t_i, t_j] ≤ burst + (t_j − t_i) × rate.
        for i in 0..admitted.len() {
            let mut sum = 0u128;
            for j in i..admitted.len() {
                sum += admitted[j].1 as u128;
                let elapsed = (admitted[j].0 - admitted[i].0) as u128;
                let budget = cfg.burst() as u128 + elapsed * model.tokens / model.d;
                prop_assert!(sum <= budget, "{} admitted in {} ticks, budget {}", sum, elapsed, budget);
            }
        }
    }

    /// `try_acquire(now)` is `try_acquire_n(now, 1)` (its straight-line path and the saturating one),
    /// on twin buckets, at any time: small, near where `now × scale + span` leaves `u64`, and near
    /// `u64::MAX`, forwards and backwards.
    #[test]
    fn try_acquire_is_try_acquire_n_of_one(
        tps in prop_oneof![Just(1u64), Just(1_000), Just(NS)],
        tokens in prop_oneof![1u64..2_000, Just(NS)],
        seconds in prop_oneof![Just(1u64), Just(3_600), 1u64..10],
        burst in 1u32..12,
        ops in proptest::collection::vec((0u8..4, 0u64..200), 1..80),
    ) {
        let cfg = TokenBucketConfig::new(tps, Rate::new(tokens, seconds), burst);
        let (a, b) = (TokenBucket::new(cfg), TokenBucket::new(cfg));
        let period = seconds as u128 * tps as u128;
        let scale = tokens as u128 / gcd(period, tokens as u128);
        let span = (period / gcd(period, tokens as u128)) * burst as u128;
        // The first tick whose units plus a full span leave u64 (the straight line's end).
        let edge = (u64::MAX as u128).saturating_sub(1 + span) / scale + 1;
        let edge = edge.min(u64::MAX as u128) as u64;
        for (whence, d) in ops {
            let now = match whence {
                0 => d * 1_000,
                1 => edge.saturating_sub(d % 100),
                2 => edge.saturating_add(d % 100),
                _ => u64::MAX - d,
            };
            prop_assert_eq!(a.try_acquire(now).map_err(AcquireError::RateLimited), b.try_acquire_n(now, 1), "at {}", now);
            prop_assert_eq!(a.available(now), b.available(now));
            prop_assert_eq!(a.available_latest(), b.available_latest());
        }
    }

    /// Waiting exactly `retry_after` is enough, one tick less is not.
    #[test]
    fn retry_after_is_exact(cfg in config_strategy(), used in 1u32..12, t in 0u64..1_000_000) {
        let b = TokenBucket::new(cfg);
        let used = used.min(cfg.burst());
        b.try_acquire_n(t, used).unwrap();
        // `used` ≥ 1 tokens are gone at `t`, so a full burst at `t` must be refused.
        let r = match b.peek(t, cfg.burst()) {
            Err(AcquireError::RateLimited(r)) => r,
            other => return Err(TestCaseError::fail(format!("a full burst right after {used} used: {other:?}"))),
        };
        prop_assert!(r.retry_after >= 1);
        prop_assert!(b.peek(t + r.retry_after - 1, cfg.burst()).is_err());
        prop_assert_eq!(b.peek(t + r.retry_after, cfg.burst()), Ok(()));
    }

    /// The quota never admits more than its limit in one window.
    #[test]
    fn quota_never_exceeds_its_limit(limit in 1u32..20, ops in proptest::collection::vec((0u64..40, 0u32..4), 1..100)) {
        let q = Quota::new(QuotaConfig::new(10, 10, limit)); // windows of 100 ticks
        let mut now = 0u64;
        let mut per_window = std::collections::HashMap::<u64, u32>::new();
        for (dt, n) in ops {
            now += dt;
            if q.try_acquire_n(now, n).is_ok() {
                *per_window.entry(now / 100).or_default() += n;
            }
        }
        for (_, used) in per_window {
            prop_assert!(used <= limit);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quota

#[test]
fn quota_counts_and_renews_per_window() {
    let q = Quota::new(QuotaConfig::new(1, 86_400, 3)); // 3 per day, clock in seconds
    assert_eq!(q.try_acquire(10), Ok(2));
    assert_eq!(q.try_acquire(20), Ok(1));
    assert_eq!(q.try_acquire(30), Ok(0));
    assert_eq!(
        q.try_acquire(40),
        Err(QuotaError::Exhausted {
            retry_after: 86_360
        })
    );
    assert_eq!(q.rejected(), 1);
    assert_eq!(q.used(86_399), 3);
    assert_eq!(q.used(86_400), 0);
    assert_eq!(q.try_acquire(86_400), Ok(2));
    assert_eq!(q.resets_in(86_400), 86_400);
}

#[test]
fn quota_8640_per_day() {
    static DAILY: Quota = Quota::new(QuotaConfig::new(1_000, 86_400, 8_640));
    for i in 0..8_640u64 {
        assert!(DAILY.try_acquire(i * 10).is_ok());
    }
    assert!(DAILY.try_acquire(86_399_999).is_err());
    assert!(DAILY.try_acquire(86_400_000).is_ok());
}

#[test]
fn quota_usage_and_health_threshold() {
    let q = Quota::new(QuotaConfig::new(1, 60, 10));
    assert_eq!(q.usage_permille(0), 0);
    q.try_acquire_n(0, 9).unwrap();
    assert_eq!(q.usage_permille(0), 900);
    assert!(!q.is_near_limit(0), "exactly 90 % is not above 90 %");
    q.try_acquire(0).unwrap();
    assert_eq!(q.usage_permille(0), 1000);
    assert!(q.is_near_limit(0));
    assert_eq!(q.remaining(0), 0);
    q.reset();
    assert_eq!(q.remaining(0), 10);
}

#[test]
fn quota_edges() {
    let q = Quota::new(QuotaConfig::new(1, 60, 5));
    assert_eq!(
        q.try_acquire_n(0, 6),
        Err(QuotaError::ExceedsLimit {
            requested: 6,
            limit: 5
        })
    );
    assert_eq!(q.try_acquire_n(0, 0), Ok(5));
    assert_eq!(q.try_acquire_n(0, 5), Ok(0));
    assert_eq!(
        q.try_acquire_n(59, 1),
        Err(QuotaError::Exhausted { retry_after: 1 })
    );
    // Backwards into an earlier window: counts in the stored window, no time passed.
    assert_eq!(q.try_acquire_n(70, 2), Ok(3));
    assert_eq!(q.try_acquire_n(30, 3), Ok(0));
    assert_eq!(
        q.try_acquire(30),
        Err(QuotaError::Exhausted { retry_after: 90 })
    );
    assert_eq!(q.used(0), 5);
    // Near u64::MAX.
    let m = Quota::new(QuotaConfig::new(u64::MAX, u64::MAX, MAX_QUOTA_LIMIT));
    assert_eq!(m.limit(), MAX_QUOTA_LIMIT);
    assert!(m.try_acquire(u64::MAX).is_ok());
    let field = |r: Result<QuotaConfig, ConfigError>| r.unwrap_err().field;
    assert_eq!(field(QuotaConfig::try_new(0, 1, 1)), "ticks_per_second");
    assert_eq!(field(QuotaConfig::try_new(1, 0, 1)), "window_seconds");
    assert_eq!(field(QuotaConfig::try_new(1, 1, 0)), "limit");
    assert_eq!(
        field(QuotaConfig::try_new(1, 1, MAX_QUOTA_LIMIT + 1)),
        "limit"
    );
    assert!(std::panic::catch_unwind(|| QuotaConfig::new(1, 1, 0)).is_err());
    let z = Quota::new(QuotaConfig::new(1, 1, 1));
    assert_eq!(z.try_acquire(u64::MAX), Ok(0));
    assert_eq!(
        z.try_acquire(u64::MAX),
        Err(QuotaError::Exhausted { retry_after: 1 })
    );
}

// ---------------------------------------------------------------------------------------------
// KeyedLimiter

const PER_CLIENT: TokenBucketConfig = TokenBucketConfig::new(MS, Rate::per_second(1), 2);

#[test]
fn keys_have_independent_buckets() {
    let l: KeyedLimiter<16> = KeyedLimiter::new(PER_CLIENT);
    for key in [0u64, 1, 2, u64::MAX] {
        assert!(l.try_acquire(key, 0).is_ok());
        assert!(l.try_acquire(key, 0).is_ok());
        assert_eq!(
            l.try_acquire(key, 0),
            Err(RateLimited { retry_after: 1_000 })
        );
    }
    assert_eq!(l.available(7, 0), 2);
    assert_eq!(l.available(1, 0), 0);
    assert_eq!(l.available(1, 999), 0);
    assert_eq!(l.available(1, 1_000), 1);
    assert_eq!(l.active(0), 4);
    assert!(l.try_acquire_bytes(b"alice", 0).is_ok());
    assert!(l.try_acquire_bytes(b"bob", 0).is_ok());
    assert_eq!(
        l.try_acquire_n(9, 0, 3),
        Err(AcquireError::ExceedsBurst {
            requested: 3,
            burst: 2
        })
    );
    assert_eq!(l.try_acquire_n(9, 0, 0), Ok(()));
    assert_eq!(l.overflowed(), 0);
}

#[test]
fn full_table_routes_new_keys_to_the_counted_overflow_bucket() {
    let l: KeyedLimiter<4> = KeyedLimiter::new(PER_CLIENT); // one set of 4
    for key in 0..4 {
        l.try_acquire(key, 0).unwrap(); // active: bucket not full
    }
    // Table full of active clients: the overflow bucket (burst 2) is shared by all newcomers.
    assert!(l.try_acquire(100, 0).is_ok());
    assert!(l.try_acquire(101, 0).is_ok());
    assert!(l.try_acquire(102, 0).is_err());
    assert_eq!(l.overflowed(), 3);
    assert_eq!(l.overflow_available(0), 0);
    // Existing clients are unaffected by the flood.
    assert!(l.try_acquire(3, 0).is_ok());
    // Once their buckets are full again, slots are reused without losing anything.
    assert_eq!(l.active(1_001), 1, "key 3 took twice");
    assert_eq!(l.active(2_001), 0);
    assert!(l.try_acquire_n(102, 2_001, 2).is_ok());
    assert_eq!(l.overflowed(), 3, "102 got a slot");
    assert!(l.try_acquire(102, 2_001).is_err());
}

#[test]
fn eviction_loses_nothing() {
    let l: KeyedLimiter<1> = KeyedLimiter::new(PER_CLIENT);
    assert!(l.try_acquire_n(1, 0, 2).is_ok());
    // Key 2 cannot evict key 1 while 1's bucket is not full.
    assert!(l.try_acquire(2, 1_000).is_ok()); // via overflow
    assert_eq!(l.overflowed(), 1);
    // At 2001 key 1 is full again (TAT 2000 < now): key 2 takes the slot.
    assert!(l.try_acquire_n(2, 2_001, 2).is_ok());
    assert_eq!(l.overflowed(), 1);
    // Key 1 comes back: it was full, so it is full again (nothing lost).
    assert_eq!(l.available(1, 2_001), 2);
    assert!(l.try_acquire(1, 2_001).is_ok()); // overflow bucket, slot taken by active key 2
}

#[test]
fn odd_capacities_and_zero() {
    let none: KeyedLimiter<0> = KeyedLimiter::new(PER_CLIENT);
    assert!(none.try_acquire(1, 0).is_ok());
    assert!(none.try_acquire(2, 0).is_ok());
    assert!(none.try_acquire(3, 0).is_err());
    assert_eq!(none.overflowed(), 3);
    assert_eq!(none.capacity(), 0);

    let odd: KeyedLimiter<5> = KeyedLimiter::new(PER_CLIENT);
    let mut in_slots = 0;
    for key in 0..50u64 {
        let before = odd.overflowed();
        odd.try_acquire(key, 0).unwrap_or(());
        if odd.overflowed() == before {
            in_slots += 1;
        }
    }
    assert_eq!(in_slots, 5);
    assert_eq!(odd.active(0), 5);
}

#[test]
fn keyed_now_backwards_and_near_max() {
    let l: KeyedLimiter<8> = KeyedLimiter::new(PER_CLIENT);
    l.try_acquire_n(1, 10_000, 2).unwrap();
    assert_eq!(l.try_acquire(1, 0), Err(RateLimited { retry_after: 1_000 }));
    let m: KeyedLimiter<8> = KeyedLimiter::new(TokenBucketConfig::new(NS, Rate::per_second(NS), 3));
    for now in [u64::MAX - 2, u64::MAX - 1, u64::MAX, u64::MAX] {
        let _ = m.try_acquire(5, now);
        let _ = m.try_acquire(6, now);
    }
    assert_eq!(
        m.try_acquire(5, u64::MAX),
        Err(RateLimited {
            retry_after: u64::MAX
        })
    );
}

static STATIC_KEYED: KeyedLimiter<32> = KeyedLimiter::new(PER_CLIENT);

#[test]
fn keyed_lives_in_a_static() {
    assert!(STATIC_KEYED.try_acquire_bytes(b"10.0.0.1", 0).is_ok());
    assert_eq!(hash_bytes(b""), 0xCBF2_9CE4_8422_2325);
}

// ---------------------------------------------------------------------------------------------
// Backoff

#[test]
fn backoff_without_jitter_doubles_up_to_the_cap() {
    let b = Backoff::new(100, 1_000).with_max_attempts(6);
    let got: Vec<_> = (0..7).map(|a| b.delay(a, 12345)).collect();
    assert_eq!(
        got,
        [
            Ok(100),
            Ok(200),
            Ok(400),
            Ok(800),
            Ok(1_000),
            Ok(1_000),
            Err(RetriesExhausted { max_attempts: 6 })
        ]
    );
    assert_eq!(
        Backoff::new(u64::MAX, u64::MAX).delay(u32::MAX - 1, u32::MAX),
        Ok(u64::MAX)
    );
    assert_eq!(Backoff::new(3, 10).delay(200, 0), Ok(10));
    assert_eq!(Backoff::new(0, 10).delay(3, 0), Ok(0));
    assert_eq!(
        Backoff::new(5, 10).with_max_attempts(0).delay(0, 0),
        Err(RetriesExhausted { max_attempts: 0 })
    );
}

#[test]
fn jitter_bounds_at_the_extremes_of_random() {
    let base = Backoff::new(100, 10_000);
    for attempt in 0..20 {
        let e = base.exponential(attempt);
        let full = base.with_jitter(Jitter::Full);
        assert_eq!(full.delay(attempt, 0), Ok(0));
        assert_eq!(full.delay(attempt, u32::MAX), Ok(e));
        let equal = base.with_jitter(Jitter::Equal);
        assert_eq!(equal.delay(attempt, 0), Ok(e / 2));
        assert_eq!(equal.delay(attempt, u32::MAX), Ok(e));
        let dec = base.with_jitter(Jitter::Decorrelated);
        assert_eq!(dec.delay(attempt, 0), Ok(100));
        let top = dec.delay(attempt, u32::MAX).unwrap();
        assert_eq!(top, (100 * 3u64.pow(attempt.min(10))).min(10_000));
    }
    assert_eq!(base.decorrelated_next(100, 0), 100);
    assert_eq!(base.decorrelated_next(100, u32::MAX), 300);
    assert_eq!(base.decorrelated_next(u64::MAX, u32::MAX), 10_000);
}

#[test]
fn rng_is_deterministic() {
    let mut a = Rng::new(7);
    let mut b = Rng::new(7);
    let xs: Vec<u32> = (0..100).map(|_| a.next_u32()).collect();
    let ys: Vec<u32> = (0..100).map(|_| b.next_u32()).collect();
    assert_eq!(xs, ys);
    let distinct: std::collections::HashSet<_> = xs.iter().collect();
    assert!(distinct.len() > 95);
    let mut z = Rng::new(0);
    assert_ne!(z.next_u32(), z.next_u32());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn backoff_is_pure_and_bounded(base in 0u64..1_000_000, cap in 0u64..10_000_000, attempt in 0u32..100, r in any::<u32>(), j in 0usize..4) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated][j];
        let b = Backoff::new(base, cap).with_jitter(jitter);
        let d = b.delay(attempt, r).unwrap();
        prop_assert_eq!(Ok(d), b.delay(attempt, r));
        prop_assert!(d <= cap);
        if jitter != Jitter::Decorrelated {
            prop_assert!(d <= b.exponential(attempt));
        }
    }
}
