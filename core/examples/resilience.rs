//! A token bucket and a circuit breaker in a loop with a fake clock (milliseconds).
//! Run: `cargo run -p vitals-core --example resilience`.

use vitals_core::resilience::{
    Backoff, BreakerConfig, CircuitBreaker, Jitter, Rate, Rng, TokenBucket, TokenBucketConfig,
};

/// 5 requests per second, bursts of 3.
static LIMIT: TokenBucket = TokenBucket::new(TokenBucketConfig::new(1_000, Rate::per_second(5), 3));
/// Trips after 3 failures in a row; open 500 ms, doubling up to 4 s; 1 half-open probe.
static UPSTREAM: CircuitBreaker = CircuitBreaker::new(
    BreakerConfig::new(1_000)
        .consecutive_failures(3)
        .open_wait(500, 4_000)
        .half_open(1, 10_000),
);
const RETRY: Backoff = Backoff::new(50, 2_000)
    .with_jitter(Jitter::Full)
    .with_max_attempts(4);

fn main() {
    let mut rng = Rng::new(1);
    let (mut admitted, mut limited, mut refused, mut ok, mut failed) = (0, 0, 0, 0, 0);
    // The upstream is down between t = 1 s and t = 3 s.
    for now in (0..5_000u64).step_by(20) {
        if let Err(e) = LIMIT.try_acquire(now) {
            limited += 1;
            if now % 1_000 == 0 {
                println!("t={now:>4} ms  limited: {e}");
            }
            continue;
        }
        admitted += 1;
        match UPSTREAM.try_acquire(now) {
            Err(r) => {
                refused += 1;
                println!("t={now:>4} ms  refused: {r}");
            }
            Ok(permit) if (1_000..3_000).contains(&now) => {
                failed += 1;
                permit.failure(now + 5);
                let delay = RETRY.delay(0, rng.next_u32()).unwrap_or(0);
                println!(
                    "t={now:>4} ms  upstream failed, breaker {}, would retry in {delay} ms",
                    UPSTREAM.state()
                );
            }
            Ok(permit) => {
                ok += 1;
                permit.success(now + 5);
            }
        }
    }
    println!(
        "admitted {admitted}, rate limited {limited}; upstream ok {ok}, failed {failed}, refused by breaker {refused}; \
         breaker {} after {} transitions",
        UPSTREAM.state(),
        UPSTREAM.transitions()
    );
}
