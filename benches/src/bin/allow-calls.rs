//! The token bucket's allow beside governor's, for instruction counts: runs `CALLS` allows of one
//! limiter on one clock (the criterion rows' setup) and exits. Under callgrind, two runs with
//! different `CALLS` give the instructions of one allow, free of the machine's load:
//!
//! ```sh
//! cargo build --release -p vitals-benches --bin allow-calls
//! for n in 1000 101000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/allow-calls vitals fake $n 2>&1 | grep 'Collected'
//! done   # (second − first) / 100000 = instructions per allow
//! ```
//!
//! `allow-calls LIMITER CLOCK CALLS`: LIMITER is `vitals` or `governor`, CLOCK `fake`
//! (governor's `FakeRelativeClock`, advanced 1 µs per call: every call is allowed), `quanta`
//! (governor's default `QuantaClock`, 1e9 per second with bursts of 1e6) or `deny` (the fake
//! clock standing still on an empty bucket of 1 per second: every call is refused, the criterion
//! deny row). Prints the allowed count, so nothing is optimised away.

use governor::clock::{Clock, FakeRelativeClock, QuantaClock, Reference};
use governor::{Quota, RateLimiter};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;
use vitals_core::resilience::{Rate, TokenBucket, TokenBucketConfig};

const NANOS: u64 = 1_000_000_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: allow-calls vitals|governor fake|quanta|deny CALLS";
    let (limiter, clock, calls) = match args.as_slice() {
        [l, c, n] => (l.as_str(), c.as_str(), n.parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let mut allowed = 0u64;
    match (limiter, clock) {
        ("vitals", "fake") => {
            let clock = FakeRelativeClock::default();
            let tb = TokenBucket::new(TokenBucketConfig::new(
                NANOS,
                Rate::per_second(1_000_000),
                10,
            ));
            for _ in 0..calls {
                clock.advance(Duration::from_micros(1));
                allowed += u64::from(black_box(tb.try_acquire(clock.now().as_u64()).is_ok()));
            }
        }
        ("governor", "fake") => {
            let clock = FakeRelativeClock::default();
            let rl = RateLimiter::direct_with_clock(
                Quota::per_second(nz(1_000_000)).allow_burst(nz(10)),
                clock.clone(),
            );
            for _ in 0..calls {
                clock.advance(Duration::from_micros(1));
                allowed += u64::from(black_box(rl.check().is_ok()));
            }
        }
        ("vitals", "quanta") => {
            let clock = QuantaClock::default();
            let start = clock.now();
            let tb = TokenBucket::new(TokenBucketConfig::new(
                NANOS,
                Rate::per_second(NANOS),
                1_000_000,
            ));
            for _ in 0..calls {
                let now = clock.now().duration_since(start).as_u64();
                allowed += u64::from(black_box(tb.try_acquire(now).is_ok()));
            }
        }
        ("governor", "quanta") => {
            let rl = RateLimiter::direct_with_clock(
                Quota::per_second(nz(1_000_000_000)).allow_burst(nz(1_000_000)),
                QuantaClock::default(),
            );
            for _ in 0..calls {
                allowed += u64::from(black_box(rl.check().is_ok()));
            }
        }
        ("vitals", "deny") => {
            let clock = FakeRelativeClock::default();
            let tb = TokenBucket::new(TokenBucketConfig::new(NANOS, Rate::per_second(1), 1));
            let _ = tb.try_acquire(clock.now().as_u64());
            for _ in 0..calls {
                allowed += u64::from(black_box(tb.try_acquire(clock.now().as_u64()).is_ok()));
            }
        }
        ("governor", "deny") => {
            let clock = FakeRelativeClock::default();
            let rl = RateLimiter::direct_with_clock(Quota::per_second(nz(1)), clock.clone());
            let _ = rl.check();
            for _ in 0..calls {
                allowed += u64::from(black_box(rl.check().is_ok()));
            }
        }
        _ => panic!("{usage}"),
    }
    println!("{allowed} of {calls} allowed");
}
