//! Rate limiting and circuit breaking beside governor and failsafe.
//!
//! Both limiters read the same clock: governor's `FakeRelativeClock` (one atomic load; advanced by
//! one emission interval per allowed call, so both always allow), and, in the `_quanta` row,
//! governor's default `QuantaClock` (the TSC) for both.

use crate::{Op, Visitor, VITALS};
use governor::clock::{Clock, FakeRelativeClock, QuantaClock, Reference};
use governor::{Quota, RateLimiter};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;
use vitals_core::resilience::{
    BreakerConfig, CircuitBreaker, KeyedLimiter, Rate, TokenBucket, TokenBucketConfig,
};

/// Group names.
pub const ALLOW: &str = "token_bucket_allow";
/// Refusal.
pub const DENY: &str = "token_bucket_deny";
/// Allow with a real clock.
pub const ALLOW_QUANTA: &str = "token_bucket_allow_quanta";
/// Keyed limiter, existing key.
pub const KEYED: &str = "keyed_limiter_hit";
/// Breaker admit + record success, closed.
pub const BREAKER: &str = "breaker_closed";

/// Clients in the keyed limiter.
pub const CLIENTS: usize = 64;

const NANOS: u64 = 1_000_000_000;
/// 1,000,000 per second: one token per microsecond.
const PER_SECOND: u32 = 1_000_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

fn fake_now(clock: &FakeRelativeClock) -> u64 {
    clock.now().as_u64()
}

/// Registers the resilience workloads.
pub fn visit<V: Visitor>(v: &mut V) {
    v.op(ALLOW, VITALS, || {
        let clock = FakeRelativeClock::default();
        let tb = TokenBucket::new(TokenBucketConfig::new(
            NANOS,
            Rate::per_second(PER_SECOND as u64),
            10,
        ));
        Op::one(move || {
            clock.advance(Duration::from_micros(1));
            black_box(tb.try_acquire(fake_now(&clock)).is_ok())
        })
    });
    v.op(ALLOW, "governor", || {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::direct_with_clock(
            Quota::per_second(nz(PER_SECOND)).allow_burst(nz(10)),
            clock.clone(),
        );
        Op::one(move || {
            clock.advance(Duration::from_micros(1));
            black_box(rl.check().is_ok())
        })
    });
    v.op(DENY, VITALS, || {
        let clock = FakeRelativeClock::default();
        let tb = TokenBucket::new(TokenBucketConfig::new(NANOS, Rate::per_second(1), 1));
        let _ = tb.try_acquire(fake_now(&clock));
        Op::one(move || black_box(tb.try_acquire(fake_now(&clock)).is_err()))
    });
    v.op(DENY, "governor", || {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::direct_with_clock(Quota::per_second(nz(1)), clock.clone());
        let _ = rl.check();
        Op::one(move || black_box(rl.check().is_err()))
    });
    v.op(ALLOW_QUANTA, VITALS, || {
        let clock = QuantaClock::default();
        let start = clock.now();
        let tb = TokenBucket::new(TokenBucketConfig::new(
            NANOS,
            Rate::per_second(NANOS),
            1_000_000,
        ));
        Op::one(move || {
            let now = clock.now().duration_since(start).as_u64();
            black_box(tb.try_acquire(now).is_ok())
        })
    });
    v.op(ALLOW_QUANTA, "governor", || {
        let clock = QuantaClock::default();
        let rl = RateLimiter::direct_with_clock(
            Quota::per_second(nz(1_000_000_000)).allow_burst(nz(1_000_000)),
            clock,
        );
        Op::one(move || black_box(rl.check().is_ok()))
    });
    v.op(KEYED, VITALS, || {
        let clock = FakeRelativeClock::default();
        let keys: Vec<String> = (0..CLIENTS).map(|i| format!("client-{i}")).collect();
        let kl: &'static KeyedLimiter<256> = Box::leak(Box::new(KeyedLimiter::new(
            TokenBucketConfig::new(NANOS, Rate::per_second(PER_SECOND as u64), 10),
        )));
        for k in &keys {
            let _ = kl.try_acquire_bytes(k.as_bytes(), 0);
        }
        let mut i = 0;
        Op::one(move || {
            i = (i + 1) % CLIENTS;
            clock.advance(Duration::from_micros(1));
            black_box(
                kl.try_acquire_bytes(keys[i].as_bytes(), fake_now(&clock))
                    .is_ok(),
            )
        })
    });
    v.op(KEYED, "governor", || {
        let clock = FakeRelativeClock::default();
        let keys: Vec<String> = (0..CLIENTS).map(|i| format!("client-{i}")).collect();
        let rl = RateLimiter::dashmap_with_clock(
            Quota::per_second(nz(PER_SECOND)).allow_burst(nz(10)),
            clock.clone(),
        );
        for k in &keys {
            let _ = rl.check_key(k);
        }
        let mut i = 0;
        Op::one(move || {
            i = (i + 1) % CLIENTS;
            clock.advance(Duration::from_micros(1));
            black_box(rl.check_key(&keys[i]).is_ok())
        })
    });
    v.op(BREAKER, VITALS, || {
        let b = CircuitBreaker::new(BreakerConfig::new(NANOS));
        let mut now = 0u64;
        Op::one(move || {
            now += 1;
            if let Ok(p) = b.try_acquire(now) {
                p.success(now);
            }
        })
    });
    v.op(BREAKER, "failsafe", || {
        use failsafe::CircuitBreaker as _;
        let b = failsafe::Config::new().build();
        Op::one(move || black_box(b.call(|| Ok::<(), ()>(())).is_ok()))
    });
}
