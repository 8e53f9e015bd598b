//! The token bucket's allow beside governor's, for instruction counts: runs `CALLS` allows of one
//! limiter on one clock (the criterion rows' setup) and exits. Each mode's loop is its own
//! function (`calls_<limiter>_<clock>`, never inlined), so callgrind counts it alone, free of the
//! machine's load and of quanta's start-up calibration (whose length varies from run to run):
//!
//! ```sh
//! cargo build --release -p vitals-benches --bin allow-calls
//! for n in 1000 101000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!     '--toggle-collect=allow_calls::calls_*' target/release/allow-calls vitals fake $n 2>&1 |
//!     grep 'Collected'
//! done   # (second − first) / 100000 = instructions per allow
//! ```
//!
//! Under valgrind quanta reads the time with `clock_gettime` (no TSC), the same call for both
//! limiters. `objdump -d target/release/allow-calls` shows each loop
//! (`allow_calls::calls_vitals_fake` …).
//!
//! `allow-calls LIMITER CLOCK CALLS`: LIMITER is `vitals` or `governor`, CLOCK `fake`
//! (governor's `FakeRelativeClock`, advanced 1 µs per call: every call is allowed), `quanta`
//! (governor's default `QuantaClock`, 1e9 per second with bursts of 1e6) or `deny` (the fake
//! clock standing still on an empty bucket of 1 per second: every call is refused, the criterion
//! deny row). Prints the allowed count, so nothing is optimised away.

use governor::clock::{Clock, FakeRelativeClock, QuantaClock, QuantaInstant, Reference};
use std::hint::black_box;
use std::time::Duration;
use vitals_benches::resilience::limiters::{self, GovernorFake, GovernorQuanta};
use vitals_core::resilience::TokenBucket;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: allow-calls vitals|governor fake|quanta|deny CALLS";
    let (limiter, clock, calls) = match args.as_slice() {
        [l, c, n] => (l.as_str(), c.as_str(), n.parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let allowed = match (limiter, clock) {
        ("vitals", "fake") => {
            let clock = FakeRelativeClock::default();
            let tb = limiters::allow();
            calls_vitals_fake(&clock, &tb, calls)
        }
        ("governor", "fake") => {
            let clock = FakeRelativeClock::default();
            let rl = limiters::allow_governor(&clock);
            calls_governor_fake(&clock, &rl, calls)
        }
        ("vitals", "quanta") => {
            let clock = QuantaClock::default();
            let start = clock.now();
            let tb = limiters::allow_quanta();
            calls_vitals_quanta(&clock, start, &tb, calls)
        }
        ("governor", "quanta") => {
            let rl = limiters::allow_quanta_governor();
            calls_governor_quanta(&rl, calls)
        }
        ("vitals", "deny") => {
            let clock = FakeRelativeClock::default();
            let tb = limiters::deny();
            let _ = tb.try_acquire(clock.now().as_u64());
            calls_vitals_deny(&clock, &tb, calls)
        }
        ("governor", "deny") => {
            let clock = FakeRelativeClock::default();
            let rl = limiters::deny_governor(&clock);
            let _ = rl.check();
            calls_governor_deny(&rl, calls)
        }
        _ => panic!("{usage}"),
    };
    println!("{allowed} of {calls} allowed");
}

// One function per mode, never inlined: callgrind can count it alone (`--toggle-collect`), and
// `objdump -d` shows its loop.

#[inline(never)]
fn calls_vitals_fake(clock: &FakeRelativeClock, tb: &TokenBucket, calls: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        clock.advance(Duration::from_micros(1));
        allowed += u64::from(black_box(tb.try_acquire(clock.now().as_u64()).is_ok()));
    }
    allowed
}

#[inline(never)]
fn calls_governor_fake(clock: &FakeRelativeClock, rl: &GovernorFake, calls: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        clock.advance(Duration::from_micros(1));
        allowed += u64::from(black_box(rl.check().is_ok()));
    }
    allowed
}

#[inline(never)]
fn calls_vitals_quanta(
    clock: &QuantaClock,
    start: QuantaInstant,
    tb: &TokenBucket,
    calls: u64,
) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        let now = clock.now().duration_since(start).as_u64();
        allowed += u64::from(black_box(tb.try_acquire(now).is_ok()));
    }
    allowed
}

#[inline(never)]
fn calls_governor_quanta(rl: &GovernorQuanta, calls: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        allowed += u64::from(black_box(rl.check().is_ok()));
    }
    allowed
}

#[inline(never)]
fn calls_vitals_deny(clock: &FakeRelativeClock, tb: &TokenBucket, calls: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        allowed += u64::from(black_box(tb.try_acquire(clock.now().as_u64()).is_ok()));
    }
    allowed
}

#[inline(never)]
fn calls_governor_deny(rl: &GovernorFake, calls: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..calls {
        allowed += u64::from(black_box(rl.check().is_ok()));
    }
    allowed
}
