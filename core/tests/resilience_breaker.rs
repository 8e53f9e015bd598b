//! Circuit breaker: every transition and edge, plus a state-machine property test against a
//! plain sequential reference model.
#![cfg(not(loom))]

mod common;

use proptest::prelude::*;
use std::collections::VecDeque;
use vitals_core::resilience::*;

const MS: u64 = 1_000;

/// The slow-call trigger's rate and threshold for the model: `(0, u64::MAX)` (off) without the
/// `slow-calls` feature.
fn slow_trigger(c: &BreakerConfig) -> (u8, u64) {
    #[cfg(feature = "slow-calls")]
    return (c.slow_call_rate_percent(), c.slow_call_ticks());
    #[cfg(not(feature = "slow-calls"))]
    {
        let _ = c;
        (0, u64::MAX)
    }
}

fn consecutive(n: u8) -> CircuitBreaker {
    CircuitBreaker::new(
        BreakerConfig::new(MS)
            .window(10, 10)
            .consecutive_failures(n)
            .open_wait(1_000, 8_000)
            .half_open(2, 30_000),
    )
}

fn fail_n(b: &CircuitBreaker, n: u32, now: u64) {
    for _ in 0..n {
        b.try_acquire(now).unwrap().failure(now);
    }
}

#[test]
fn closed_admits_and_stays_closed_below_minimum_calls() {
    let b = CircuitBreaker::new(BreakerConfig::new(MS).window(10, 5).failure_rate(50));
    fail_n(&b, 4, 0);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.window_counts(), (4, 4));
    fail_n(&b, 1, 0);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.transitions(), 1);
    assert_eq!(b.generation(), 1);
}

#[test]
fn failure_rate_threshold_is_inclusive_and_the_window_slides() {
    let b = CircuitBreaker::new(BreakerConfig::new(MS).window(4, 4).failure_rate(50));
    // S F S S: 25 %.
    b.try_acquire(0).unwrap().success(0);
    b.try_acquire(0).unwrap().failure(0);
    b.try_acquire(0).unwrap().success(0);
    b.try_acquire(0).unwrap().success(0);
    assert_eq!(b.state(), BreakerState::Closed);
    // The oldest S slides out: F S S F = 50 % ⇒ trips.
    b.try_acquire(0).unwrap().failure(0);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn old_failures_fall_out_of_the_window() {
    let b = CircuitBreaker::new(BreakerConfig::new(MS).window(3, 3).failure_rate(100));
    b.try_acquire(0).unwrap().failure(0);
    b.try_acquire(0).unwrap().failure(0);
    b.try_acquire(0).unwrap().success(0);
    b.try_acquire(0).unwrap().failure(0);
    b.try_acquire(0).unwrap().failure(0);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "F S F F: the window holds S F F"
    );
    b.try_acquire(0).unwrap().failure(0);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn consecutive_failures_trip_before_the_minimum() {
    let b = consecutive(3);
    fail_n(&b, 2, 0);
    b.try_acquire(0).unwrap().success(0);
    fail_n(&b, 2, 0);
    assert_eq!(b.state(), BreakerState::Closed);
    fail_n(&b, 1, 0);
    assert_eq!(b.state(), BreakerState::Open);
}

#[cfg(feature = "slow-calls")]
#[test]
fn slow_call_rate_trips() {
    let b = CircuitBreaker::new(
        BreakerConfig::new(MS)
            .window(4, 4)
            .failure_rate(100)
            .slow_calls(200, 50),
    );
    let p = b.try_acquire(0).unwrap();
    p.success(500); // slow: 500 ms
    b.try_acquire(600).unwrap().success(610);
    b.try_acquire(700)
        .unwrap()
        .record(800, Outcome::Success, 10); // caller-measured: fast
    assert_eq!(b.state(), BreakerState::Closed);
    b.try_acquire(900)
        .unwrap()
        .record(900, Outcome::Success, 200); // exactly the threshold: slow
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn open_refuses_with_retry_after_then_half_open_admits_bounded_probes() {
    let b = consecutive(1);
    fail_n(&b, 1, 100);
    assert_eq!(b.state(), BreakerState::Open);
    let r = b.try_acquire(600).unwrap_err();
    assert_eq!(
        r,
        Rejected {
            state: BreakerState::Open,
            retry_after: Some(500)
        }
    );
    assert_eq!(r.to_string(), "circuit breaker open: retry after 500 ticks");
    assert_eq!(b.rejections(), 1);
    let p1 = b.try_acquire(1_100).unwrap();
    assert!(p1.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p2 = b.try_acquire(1_100).unwrap();
    let refused = b.try_acquire(1_100).unwrap_err();
    assert_eq!(refused.state, BreakerState::HalfOpen);
    assert_eq!(refused.retry_after, Some(30_000));
    p1.success(1_200);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    p2.success(1_200);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.window_counts(), (0, 0), "a fresh window after closing");
    assert_eq!(b.transitions(), 3);
}

#[test]
fn failed_probe_reopens_with_exponential_wait_up_to_the_cap() {
    let b = consecutive(1);
    fail_n(&b, 1, 0);
    let mut now = 0;
    for expected in [2_000u64, 4_000, 8_000, 8_000, 8_000] {
        now += b
            .try_acquire(now)
            .map(|_| 0)
            .unwrap_or_else(|r| r.retry_after.unwrap());
        let p = b.try_acquire(now).unwrap();
        p.failure(now);
        assert_eq!(b.try_acquire(now).unwrap_err().retry_after, Some(expected));
    }
    // Success resets the wait to the first one.
    now += 8_000;
    b.try_acquire(now).unwrap().success(now);
    b.try_acquire(now).unwrap().success(now);
    assert_eq!(b.state(), BreakerState::Closed);
    fail_n(&b, 1, now);
    assert_eq!(b.try_acquire(now).unwrap_err().retry_after, Some(1_000));
}

#[test]
fn stale_outcomes_are_ignored() {
    let b = consecutive(2);
    let old = b.try_acquire(0).unwrap(); // generation 0
    let old2 = b.try_acquire_ticket(0).unwrap();
    fail_n(&b, 2, 0); // open (generation 1)
    old.failure(10);
    b.record(old2, 10, Outcome::Failure);
    assert_eq!(b.generation(), 1);
    b.reset(); // closed, generation 2
    let late = b.try_acquire(0).unwrap();
    b.force_open();
    b.reset();
    late.failure(0);
    assert_eq!(b.window_counts(), (0, 0));
    // A probe of an old round cannot close or reopen a newer one.
    fail_n(&b, 2, 0);
    let probe = b.try_acquire(1_000).unwrap();
    b.reset();
    fail_n(&b, 2, 2_000);
    probe.failure(2_000);
    assert_eq!(b.try_acquire(2_500).unwrap_err().retry_after, Some(500));
}

#[test]
fn dropped_probe_frees_its_slot_and_leaked_tickets_time_out() {
    let b = CircuitBreaker::new(
        BreakerConfig::new(MS)
            .consecutive_failures(1)
            .window(5, 5)
            .open_wait(1_000, 1_000)
            .half_open(1, 5_000),
    );
    fail_n(&b, 1, 0);
    let p = b.try_acquire(1_000).unwrap();
    assert!(b.try_acquire(1_000).is_err());
    drop(p); // unreported: the slot comes back
    let t = b.try_acquire(1_001).unwrap().into_ticket(); // leaked: never reported
    let gen = t.generation();
    assert!(t.is_probe());
    assert_eq!(b.try_acquire(3_000).unwrap_err().retry_after, Some(3_000));
    let _leaked = t; // never reported
                     // After the probe timeout a new round (new generation) admits a probe again.
    let p = b.try_acquire(6_000).unwrap();
    assert_eq!(p.generation(), gen + 1);
    p.success(6_001);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn forced_open_and_disabled_hold_until_reset() {
    let b = consecutive(1);
    b.force_open();
    assert_eq!(b.state(), BreakerState::ForcedOpen);
    let r = b.try_acquire(u64::MAX).unwrap_err();
    assert_eq!(r.retry_after, None);
    assert_eq!(
        r.to_string(),
        "circuit breaker forced_open: retry when an operator resets it"
    );
    b.disable();
    assert_eq!(b.state(), BreakerState::Disabled);
    fail_n(&b, 50, 0);
    assert_eq!(b.state(), BreakerState::Disabled);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.transitions(), 3);
    assert_eq!(BreakerState::ForcedOpen.gauge(), 1);
    assert_eq!(BreakerState::HalfOpen.gauge(), 2);
    assert_eq!(BreakerState::Disabled.gauge(), 0);
}

#[test]
fn now_going_backwards_counts_as_no_time_passed() {
    let b = consecutive(1);
    fail_n(&b, 1, 5_000); // open until 6000
    assert_eq!(b.try_acquire(0).unwrap_err().retry_after, Some(1_000));
    assert_eq!(b.try_acquire(5_500).unwrap_err().retry_after, Some(500));
    let p = b.try_acquire(6_000).unwrap();
    p.failure(100); // earlier than the round started: open for 2000 from 6000
    assert_eq!(b.try_acquire(7_000).unwrap_err().retry_after, Some(1_000));
}

#[test]
fn ticks_near_u64_max_and_nanosecond_clocks() {
    let b = CircuitBreaker::new(
        BreakerConfig::new(1_000_000_000)
            .consecutive_failures(1)
            .window(2, 2)
            .open_wait(1_000, 1_000)
            .half_open(1, 1_000),
    );
    fail_n(&b, 1, 1_000_000);
    let r = b.try_acquire(1_000_000).unwrap_err().retry_after.unwrap();
    assert!(
        (1_000_000_000..1_000_000_000 + (1 << 20)).contains(&r),
        "{r}"
    );
    assert!(b.try_acquire(1_000_000 + r).is_ok());

    // Past the 48-bit coarse time (millennia of ticks) times saturate: the breaker opens (its
    // wait, never cut short, then lasts until u64::MAX), then goes on working (two probes close
    // it, a `now` of 0 after u64::MAX counts as no time passed) and never panics.
    let m = consecutive(1);
    fail_n(&m, 1, u64::MAX - 10);
    assert_eq!(m.state(), BreakerState::Open);
    assert_eq!(
        m.try_acquire(u64::MAX - 5).unwrap_err().retry_after,
        Some(5)
    );
    let mut seen = Vec::new();
    for now in [u64::MAX, u64::MAX, 0, u64::MAX] {
        let p = m.try_acquire(now).expect("admitted at the saturated end");
        seen.push((p.is_probe(), p.generation()));
        p.success(now);
    }
    assert_eq!(seen, [(true, 2), (true, 2), (false, 3), (false, 3)]);
    assert_eq!(m.state(), BreakerState::Closed);
}

#[test]
fn config_validation_and_clamping() {
    assert_eq!(BreakerConfig::new(MS).validate(), Ok(()));
    let bad = BreakerConfig::new(MS).window(0, 0);
    assert_eq!(bad.validate().unwrap_err().field, "window");
    let c = BreakerConfig::new(0)
        .window(200, 255)
        .failure_rate(0)
        .half_open(0, 0)
        .consecutive_failures(99)
        .clamped();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.window_size(), MAX_WINDOW);
    assert_eq!(c.minimum_calls(), MAX_WINDOW);
    assert_eq!(c.failure_rate_percent(), 1);
    assert_eq!(c.half_open_probes(), 1);
    assert_eq!(c.consecutive_failure_limit(), MAX_WINDOW);
    assert_eq!(c.ticks_per_second(), 1);
    // An invalid configuration is refused by `try_new` (and by `new`: a compile error in a
    // static); the clamped one is accepted.
    let wide = BreakerConfig::new(MS).window(200, 255);
    let e = CircuitBreaker::try_new(wide).unwrap_err();
    assert_eq!(e.field, "window");
    assert_eq!(e.to_string(), "invalid config: `window` must be in 1..=40");
    assert_eq!(e.as_str(), e.to_string());
    let b = CircuitBreaker::new(wide.clamped());
    assert_eq!(b.config().window_size(), 40);
    assert!(std::panic::catch_unwind(|| CircuitBreaker::new(wide)).is_err());
}

static STATIC_BREAKER: CircuitBreaker = CircuitBreaker::new(BreakerConfig::new(MS));

#[test]
fn lives_in_a_static() {
    assert!(STATIC_BREAKER.try_acquire(0).is_ok());
}

// ---------------------------------------------------------------------------------------------
// State-machine property test.

#[derive(Clone, Copy, Debug, PartialEq)]
enum MState {
    Closed,
    Open {
        until: u64,
    },
    Half {
        start: u64,
        admitted: u8,
        succeeded: u8,
    },
    Forced,
    Disabled,
}

/// The specification, written sequentially and plainly.
struct Model {
    c: BreakerConfig,
    state: MState,
    gen: u32,
    level: u32,
    window: VecDeque<(bool, bool)>,
    seen: u64,
    transitions: u64,
}

impl Model {
    fn new(c: BreakerConfig) -> Self {
        Self {
            c,
            state: MState::Closed,
            gen: 0,
            level: 0,
            window: VecDeque::new(),
            seen: 0,
            transitions: 0,
        }
    }
    fn wait(&self, level: u32) -> u64 {
        (self.c.open_ticks().saturating_mul(1u64 << level)).min(self.c.max_open_ticks())
    }
    fn go(&mut self, s: MState) {
        self.state = s;
        self.gen += 1;
        self.transitions += 1;
        if s == MState::Closed {
            self.window.clear();
        }
    }
    fn open(&mut self, now: u64, level: u32) {
        let eff = now.max(self.seen);
        self.seen = eff;
        self.level = level;
        let until = eff + self.wait(level);
        self.go(MState::Open { until });
    }
    /// Ok((generation, probe)) or Err(retry_after).
    fn acquire(&mut self, now: u64) -> Result<(u32, bool), Option<u64>> {
        let eff = now.max(self.seen);
        match self.state {
            MState::Closed | MState::Disabled => Ok((self.gen, false)),
            MState::Forced => Err(None),
            MState::Open { until } if eff < until => Err(Some(until - eff)),
            MState::Open { .. } => {
                self.seen = eff;
                self.go(MState::Half {
                    start: eff,
                    admitted: 1,
                    succeeded: 0,
                });
                Ok((self.gen, true))
            }
            MState::Half {
                start,
                admitted,
                succeeded,
            } => {
                if admitted < self.c.half_open_probes() {
                    self.state = MState::Half {
                        start,
                        admitted: admitted + 1,
                        succeeded,
                    };
                    Ok((self.gen, true))
                } else if eff >= start + self.c.probe_timeout_ticks() {
                    self.seen = eff;
                    self.go(MState::Half {
                        start: eff,
                        admitted: 1,
                        succeeded: 0,
                    });
                    Ok((self.gen, true))
                } else {
                    Err(Some(start + self.c.probe_timeout_ticks() - eff))
                }
            }
        }
    }
    fn report(&mut self, gen: u32, probe: bool, now: u64, failed: bool, duration: u64) {
        let (slow_rate, slow_ticks) = slow_trigger(&self.c);
        let slow = slow_rate > 0 && duration >= slow_ticks;
        if gen != self.gen {
            return;
        }
        match (self.state, probe) {
            (MState::Closed, false) => {
                self.window.push_back((failed, slow));
                if self.window.len() > self.c.window_size() as usize {
                    self.window.pop_front();
                }
                let n = self.window.len() as u64;
                let fails = self.window.iter().filter(|w| w.0).count() as u64;
                let slows = self.window.iter().filter(|w| w.1).count() as u64;
                let run = self.window.iter().rev().take_while(|w| w.0).count() as u64;
                let min = self.c.minimum_calls() as u64;
                let trip = (n >= min && fails * 100 >= self.c.failure_rate_percent() as u64 * n)
                    || (self.c.consecutive_failure_limit() > 0
                        && run >= self.c.consecutive_failure_limit() as u64)
                    || (slow_rate > 0 && n >= min && slows * 100 >= slow_rate as u64 * n);
                if trip {
                    self.open(now, 0);
                }
            }
            (
                MState::Half {
                    start,
                    admitted,
                    succeeded,
                },
                true,
            ) => {
                if failed || slow {
                    self.open(now, (self.level + 1).min(31));
                } else if succeeded + 1 >= self.c.half_open_probes() {
                    self.level = 0;
                    self.go(MState::Closed);
                } else {
                    self.state = MState::Half {
                        start,
                        admitted,
                        succeeded: succeeded + 1,
                    };
                }
            }
            _ => {}
        }
    }
    fn release(&mut self, gen: u32, probe: bool) {
        if let (
            MState::Half {
                start,
                admitted,
                succeeded,
            },
            true,
        ) = (self.state, probe)
        {
            if gen == self.gen && admitted > succeeded {
                self.state = MState::Half {
                    start,
                    admitted: admitted - 1,
                    succeeded,
                };
            }
        }
    }
    fn operator(&mut self, s: MState) {
        self.level = 0;
        self.go(s);
    }
    fn public_state(&self) -> BreakerState {
        match self.state {
            MState::Closed => BreakerState::Closed,
            MState::Open { .. } => BreakerState::Open,
            MState::Half { .. } => BreakerState::HalfOpen,
            MState::Forced => BreakerState::ForcedOpen,
            MState::Disabled => BreakerState::Disabled,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Report {
        which: usize,
        failed: bool,
        duration: u64,
    },
    Drop {
        which: usize,
    },
    Advance(u64),
    Back(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), prop::bool::weighted(0.6), 0u64..300).prop_map(|(which, failed, duration)| Op::Report { which, failed, duration }),
        1 => any::<usize>().prop_map(|which| Op::Drop { which }),
        3 => (0u64..3_000).prop_map(Op::Advance),
        1 => (0u64..500).prop_map(Op::Back),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (
        1u8..8,
        1u8..8,
        1u8..=100,
        0u8..4,
        prop::option::of((50u64..250, 1u8..=100)),
        1u64..2_000,
        0u32..4,
        1u8..4,
        100u64..5_000,
    )
        .prop_map(
            |(window, min, rate, consec, slow, open, doublings, probes, timeout)| {
                let c = BreakerConfig::new(MS)
                    .window(window, min.min(window))
                    .failure_rate(rate)
                    .consecutive_failures(consec.min(window));
                #[cfg(feature = "slow-calls")]
                let c = match slow {
                    Some((ms, pct)) => c.slow_calls(ms, pct),
                    None => c,
                };
                #[cfg(not(feature = "slow-calls"))]
                let _ = slow;
                c.open_wait(open, open << doublings)
                    .half_open(probes, timeout)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_reference_model(c in config(), ops in proptest::collection::vec(op(), 1..120)) {
        let b = CircuitBreaker::new(c);
        let mut m = Model::new(c);
        let mut now = 10_000u64;
        let mut held: Vec<(Permit<'_>, u32, bool)> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => match (b.try_acquire(now), m.acquire(now)) {
                    (Ok(p), Ok((gen, probe))) => {
                        prop_assert_eq!((p.generation(), p.is_probe()), (gen, probe));
                        held.push((p, gen, probe));
                    }
                    (Err(r), Err(retry)) => prop_assert_eq!(r.retry_after, retry),
                    (got, want) => prop_assert!(false, "acquire at {}: breaker {:?}, model {:?}", now, got.map(|p| p.generation()), want),
                },
                Op::Report { which, failed, duration } if !held.is_empty() => {
                    let (p, gen, probe) = held.swap_remove(which % held.len());
                    let outcome = if failed { Outcome::Failure } else { Outcome::Success };
                    #[cfg(feature = "slow-calls")]
                    p.record(now, outcome, duration);
                    #[cfg(not(feature = "slow-calls"))]
                    match outcome {
                        Outcome::Failure => p.failure(now),
                        _ => p.success(now),
                    }
                    m.report(gen, probe, now, failed, duration);
                }
                Op::Drop { which } if !held.is_empty() => {
                    let (p, gen, probe) = held.swap_remove(which % held.len());
                    drop(p);
                    m.release(gen, probe);
                }
                Op::Report { .. } | Op::Drop { .. } => {}
                Op::Advance(dt) => now += dt,
                Op::Back(dt) => now -= dt,
                Op::ForceOpen => { b.force_open(); m.operator(MState::Forced) }
                Op::Disable => { b.disable(); m.operator(MState::Disabled) }
                Op::Reset => { b.reset(); m.operator(MState::Closed) }
            }
            prop_assert_eq!(b.state(), m.public_state());
            prop_assert_eq!(b.generation(), m.gen);
            prop_assert_eq!(b.transitions(), m.transitions);
            if m.state == MState::Closed {
                let fails = m.window.iter().filter(|w| w.0).count() as u32;
                prop_assert_eq!(b.window_counts(), (m.window.len() as u32, fails));
            }
            // Never more probes in flight than allowed: counted on the breaker's own permits
            // (probes of the current generation still held), not on the model.
            if b.state() == BreakerState::HalfOpen {
                let gen = b.generation();
                let probes = held.iter().filter(|(p, _, _)| p.is_probe() && p.generation() == gen).count();
                prop_assert!(probes <= usize::from(c.half_open_probes()), "{} probes in flight, {} allowed", probes, c.half_open_probes());
            }
        }
        // Held permits drop here: no panic.
        drop(held);
    }
}

/// The open wait is `open × 2^level` saturated, then capped: computed with shifts, checked here
/// against the multiplication at every level around each width of `open`, capped and uncapped.
#[test]
fn open_wait_is_the_saturated_product_capped() {
    let mut opens = vec![1u64, 3, 1_000, u64::MAX];
    for k in 0..64 {
        opens.extend([1u64 << k, (1u64 << k) | 1, u64::MAX >> k]);
    }
    for open in opens {
        for max in [open, open.saturating_mul(5), u64::MAX] {
            // ticks_per_second 1000: milliseconds are ticks.
            let b = CircuitBreaker::new(BreakerConfig::new(MS).open_wait(open, max));
            for level in (0u64..=70).chain([u64::from(u32::MAX) + 1, u64::MAX]) {
                let product = match 1u64.checked_shl(level as u32) {
                    Some(f) if level < 64 => open.saturating_mul(f),
                    _ => u64::MAX,
                };
                assert_eq!(
                    b.open_wait(level),
                    product.min(max),
                    "open {open} max {max} level {level}"
                );
            }
        }
    }
}
