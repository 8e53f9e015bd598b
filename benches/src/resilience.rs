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
    BreakerConfig, CircuitBreaker, KeyedLimiter, Rate, TokenBucketConfig,
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

/// The limiters of the token bucket rows, built here once so that every driver (the criterion
/// rows below, `interleaved`, `allow-calls`) times the same configurations.
pub mod limiters {
    use super::{nz, NANOS, PER_SECOND};
    use governor::clock::{FakeRelativeClock, QuantaClock, QuantaInstant};
    use governor::middleware::NoOpMiddleware;
    use governor::nanos::Nanos;
    use governor::state::{InMemoryState, NotKeyed};
    use governor::{Quota, RateLimiter};
    use vitals_core::resilience::{Rate, TokenBucket, TokenBucketConfig};

    /// governor's direct limiter on its fake clock.
    pub type GovernorFake =
        RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<Nanos>>;
    /// governor's direct limiter on its quanta clock.
    pub type GovernorQuanta =
        RateLimiter<NotKeyed, InMemoryState, QuantaClock, NoOpMiddleware<QuantaInstant>>;

    /// Allow rows, fake clock in nanoseconds: 1,000,000 per second (one token per µs), bursts of 10.
    pub fn allow() -> TokenBucket {
        TokenBucket::new(TokenBucketConfig::new(
            NANOS,
            Rate::per_second(PER_SECOND as u64),
            10,
        ))
    }

    /// governor's [`allow`] on `clock`.
    pub fn allow_governor(clock: &FakeRelativeClock) -> GovernorFake {
        RateLimiter::direct_with_clock(
            Quota::per_second(nz(PER_SECOND)).allow_burst(nz(10)),
            clock.clone(),
        )
    }

    /// Allow rows on the quanta clock in nanoseconds: 1e9 per second, bursts of 1,000,000 (never
    /// refuses at the rate one thread can call it).
    pub fn allow_quanta() -> TokenBucket {
        TokenBucket::new(TokenBucketConfig::new(
            NANOS,
            Rate::per_second(NANOS),
            1_000_000,
        ))
    }

    /// governor's [`allow_quanta`] on its own quanta clock.
    pub fn allow_quanta_governor() -> GovernorQuanta {
        RateLimiter::direct_with_clock(
            Quota::per_second(nz(1_000_000_000)).allow_burst(nz(1_000_000)),
            QuantaClock::default(),
        )
    }

    /// Deny rows: one token per second, bursts of 1 (take the token first, then every call is refused).
    pub fn deny() -> TokenBucket {
        TokenBucket::new(TokenBucketConfig::new(NANOS, Rate::per_second(1), 1))
    }

    /// governor's [`deny`] on `clock`.
    pub fn deny_governor(clock: &FakeRelativeClock) -> GovernorFake {
        RateLimiter::direct_with_clock(Quota::per_second(nz(1)), clock.clone())
    }
}

/// Registers the resilience workloads.
pub fn visit<V: Visitor>(v: &mut V) {
    v.op(ALLOW, VITALS, || {
        let clock = FakeRelativeClock::default();
        let tb = limiters::allow();
        Op::one(move || {
            clock.advance(Duration::from_micros(1));
            black_box(tb.try_acquire(fake_now(&clock)).is_ok())
        })
    });
    v.op(ALLOW, "governor", || {
        let clock = FakeRelativeClock::default();
        let rl = limiters::allow_governor(&clock);
        Op::one(move || {
            clock.advance(Duration::from_micros(1));
            black_box(rl.check().is_ok())
        })
    });
    v.op(DENY, VITALS, || {
        let clock = FakeRelativeClock::default();
        let tb = limiters::deny();
        let _ = tb.try_acquire(fake_now(&clock));
        Op::one(move || black_box(tb.try_acquire(fake_now(&clock)).is_err()))
    });
    v.op(DENY, "governor", || {
        let clock = FakeRelativeClock::default();
        let rl = limiters::deny_governor(&clock);
        let _ = rl.check();
        Op::one(move || black_box(rl.check().is_err()))
    });
    v.op(ALLOW_QUANTA, VITALS, || {
        let clock = QuantaClock::default();
        let start = clock.now();
        let tb = limiters::allow_quanta();
        Op::one(move || {
            let now = clock.now().duration_since(start).as_u64();
            black_box(tb.try_acquire(now).is_ok())
        })
    });
    v.op(ALLOW_QUANTA, "governor", || {
        let rl = limiters::allow_quanta_governor();
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
