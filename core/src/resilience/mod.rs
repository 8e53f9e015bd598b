//! Resilience primitives: token bucket, keyed limiter, quota, circuit breaker, backoff.
//!
//! Same rules as the rest of the core: `no_std`, no allocation, no lock, no panic on any input
//! once built, `const`-constructible for `static`s. Configuration is checked when it is built:
//! each `new` refuses an invalid value (a compile error in a `static`, a panic at run time) and
//! each `try_new` returns a [`ConfigError`] instead. Time is a `now: u64` tick count supplied by the caller,
//! with the tick rate in each configuration; a `now` earlier than one already acted on counts as
//! no time passed, and tick arithmetic saturates near `u64::MAX`.

mod backoff;
mod breaker;
mod clock;
mod error;
mod keyed;
mod observe;
mod quota;
mod token_bucket;

pub use backoff::{Backoff, Jitter, RetriesExhausted, Rng};
pub use breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, Outcome, Permit, Rejected, Ticket, MAX_WINDOW,
};
pub use error::{AcquireError, ConfigError, RateLimited};
pub use keyed::{hash_bytes, KeyedLimiter, WAYS};
pub use quota::{Quota, QuotaConfig, QuotaError, MAX_QUOTA_LIMIT};
pub use token_bucket::{Rate, TokenBucket, TokenBucketConfig};
