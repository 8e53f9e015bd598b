//! Circuit breaker: closed / open / half-open, plus forced-open and disabled for operators.
//!
//! State lives in three atomic words: the state word (state, open level, half-open probes
//! admitted and succeeded, generation), two outcome windows and the `since` time; their bit
//! layout is written down in `breaker/state.rs`. `config.rs` holds what the breaker is told,
//! `permit.rs` the right to make one call, this file the state machine.

mod config;
mod permit;
mod state;

pub use config::{BreakerConfig, MAX_WINDOW};
pub use permit::{Outcome, Permit, Rejected, Ticket};
pub use state::BreakerState;

use super::clock::Clock;
use super::error::ConfigError;
use crate::sync::AtomicU64;
use crate::Counter;
use core::num::NonZeroU64;
use permit::Kind;
use state::*;

/// A lock-free circuit breaker over a count-based window.
///
/// Invariants:
/// - closed: every call is admitted with one atomic load; the breaker trips to open when the last
///   `window` outcomes hold at least `minimum_calls` calls and `failure_rate_percent` of them
///   failed, or (optionally) `consecutive_failures` in a row failed, or (feature `slow-calls`)
///   `slow_call_rate_percent` were slow;
/// - open: refused with the remaining wait; the wait is `open_ticks × 2^k` capped at
///   `max_open_ticks`, where `k` counts failed half-open rounds since the breaker last closed;
/// - half-open: at most `half_open_probes` calls are admitted per round, counted at admission;
///   that many successes close it, one failure (or slow probe, when the slow-call trigger is on)
///   reopens it; a round that does not finish within `probe_timeout_ticks` starts over;
/// - every transition increments the generation; an outcome of an older generation is ignored;
/// - forced-open and disabled are held until [`reset`](Self::reset);
/// - a `now` earlier than one already acted on counts as no time passed; no lock, and no panic
///   once built (only [`new`](Self::new) refuses an invalid configuration).
///
/// ```
/// use vitals_core::resilience::{BreakerConfig, CircuitBreaker, BreakerState};
///
/// // Clock in milliseconds: trip when 3 in a row fail, stay open 1 s.
/// static UPSTREAM: CircuitBreaker = CircuitBreaker::new(
///     BreakerConfig::new(1_000).consecutive_failures(3).open_wait(1_000, 30_000),
/// );
///
/// for t in 0..3 {
///     UPSTREAM.try_acquire(t).unwrap().failure(t);
/// }
/// assert_eq!(UPSTREAM.state(), BreakerState::Open);
/// assert_eq!(UPSTREAM.try_acquire(500).unwrap_err().retry_after, Some(502));
/// let probe = UPSTREAM.try_acquire(1_002).unwrap(); // half-open probe
/// probe.success(1_010);
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    state: AtomicU64,
    failures: AtomicU64,
    #[cfg(feature = "slow-calls")]
    slow: AtomicU64,
    since: AtomicU64,
    clock: Clock,
    transitions: Counter,
    rejections: Counter,
    config: BreakerConfig,
    /// Coarse time = ticks >> shift: about a millisecond per unit, so 48 bits span millennia.
    shift: u32,
}

impl CircuitBreaker {
    const_fn! {
        /// A closed breaker (generation 0). An invalid configuration (see [`BreakerConfig`]) is
        /// a compile error in a `static` and a panic at run time: use [`try_new`](Self::try_new)
        /// or [`BreakerConfig::clamped`] for a configuration chosen at run time.
        ///
        /// ```compile_fail,E0080
        /// use vitals_core::resilience::{BreakerConfig, CircuitBreaker};
        /// // A window of 41 outcomes does not fit the 40 bits of the window word.
        /// static UPSTREAM: CircuitBreaker =
        ///     CircuitBreaker::new(BreakerConfig::new(1_000).window(41, 10));
        /// ```
        pub const fn new(config: BreakerConfig) -> Self {
            match Self::try_new(config) {
                Ok(b) => b,
                Err(e) => panic!("{}", e.as_str()),
            }
        }
    }

    const_fn! {
        /// A closed breaker (generation 0), or why `config` is invalid.
        pub const fn try_new(config: BreakerConfig) -> Result<Self, ConfigError> {
            if let Err(e) = config.validate() {
                return Err(e);
            }
            let per_ms = config.ticks_per_second / 1000;
            let shift = if per_ms > 1 { 63 - per_ms.leading_zeros() } else { 0 };
            Ok(Self {
                state: AtomicU64::new(make(ST_CLOSED, 0, 0, 0, 0)),
                failures: AtomicU64::new(0),
                #[cfg(feature = "slow-calls")]
                slow: AtomicU64::new(0),
                since: AtomicU64::new(0),
                clock: Clock::new(),
                transitions: Counter::new(),
                rejections: Counter::new(),
                config,
                shift,
            })
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_code(st(load(&self.state)))
    }

    /// The current generation (incremented by every transition, wrapping).
    pub fn generation(&self) -> u32 {
        generation(load(&self.state))
    }

    /// Transitions since start.
    pub fn transitions(&self) -> u64 {
        self.transitions.get()
    }

    /// Calls refused since start.
    pub fn rejections(&self) -> u64 {
        self.rejections.get()
    }

    /// The transitions counter, to register as a metric.
    pub const fn transitions_counter(&self) -> &Counter {
        &self.transitions
    }

    /// The rejections counter, to register as a metric.
    pub const fn rejections_counter(&self) -> &Counter {
        &self.rejections
    }

    /// Calls and failures in the current closed window, `(calls, failures)`.
    pub fn window_counts(&self) -> (u32, u32) {
        let s = load(&self.state);
        let w = load(&self.failures);
        if st(s) != ST_CLOSED || w_tag(w) != gen_tag(generation(s)) {
            return (0, 0);
        }
        (w_count(w) as u32, ones(w_bits(w) & count_mask(w_count(w))))
    }

    /// Asks to make one call at `now`: a [`Permit`] to report, or a refusal with retry-after.
    #[inline]
    pub fn try_acquire(&self, now: u64) -> Result<Permit<'_>, Rejected> {
        self.try_acquire_ticket(now).map(|ticket| Permit {
            breaker: self,
            ticket: Some(ticket),
        })
    }

    /// Like [`try_acquire`](Self::try_acquire), but returns a detached [`Ticket`] to report with
    /// [`record`](Self::record).
    pub fn try_acquire_ticket(&self, now: u64) -> Result<Ticket, Rejected> {
        let mut s = load(&self.state);
        // One exit for every refusal and one for every admission (less code on MCUs).
        let (state, retry_after) = loop {
            let gen = generation(s);
            let kind = match st(s) {
                ST_OPEN | ST_HALF_OPEN => {
                    let open = st(s) == ST_OPEN;
                    let timeout = self.config.probe_timeout_ticks;
                    if !open && admitted(s) < u64::from(self.config.half_open_probes) {
                        match cas_weak(&self.state, s, s + ADMITTED_ONE) {
                            Ok(_) => Kind::Probe,
                            Err(actual) => {
                                s = actual;
                                continue;
                            }
                        }
                    } else {
                        let eff = self.clock.effective(now);
                        // How long the wait (open) or the round (half-open) lasts from its start.
                        let span = if open {
                            self.open_wait(level(s))
                        } else {
                            timeout
                        };
                        // The ticks still to wait, or `None` when the wait or the round is over.
                        let wait = match self.since_for(gen) {
                            Some(start) => {
                                let deadline = self.ticks_of_coarse(start).saturating_add(span);
                                (eff < deadline).then(|| deadline - eff)
                            }
                            None => {
                                // Either our view of the state is stale (look again), or the
                                // transition is still being published: it has only just begun.
                                let again = load(&self.state);
                                if again != s {
                                    s = again;
                                    continue;
                                }
                                Some(span.max(1))
                            }
                        };
                        if let Some(wait) = wait {
                            let state = if open {
                                BreakerState::Open
                            } else {
                                BreakerState::HalfOpen
                            };
                            break (state, Some(wait));
                        }
                        // Open → half-open, or a timed-out round (its lost permits reclaimed)
                        // → a new round.
                        match self.start_round(s, now) {
                            Ok(t) => return Ok(t),
                            Err(actual) => {
                                s = actual;
                                continue;
                            }
                        }
                    }
                }
                ST_FORCED_OPEN => break (BreakerState::ForcedOpen, None),
                ST_DISABLED => Kind::Disabled,
                _ => Kind::Closed,
            };
            return Ok(Ticket {
                generation: gen,
                kind,
                started: now,
            });
        };
        Err(self.reject(state, retry_after))
    }

    /// Reports a detached ticket's outcome; its duration is `now − admitted at`.
    pub fn record(&self, ticket: Ticket, now: u64, outcome: Outcome) {
        #[cfg(feature = "slow-calls")]
        let slow = self.is_slow(now.saturating_sub(ticket.started));
        #[cfg(not(feature = "slow-calls"))]
        let slow = false;
        self.settle(ticket, now, matches!(outcome, Outcome::Failure), slow);
    }

    /// Reports a detached ticket's outcome with a duration measured by the caller.
    #[cfg(feature = "slow-calls")]
    pub fn record_duration(&self, ticket: Ticket, now: u64, outcome: Outcome, duration_ticks: u64) {
        let failed = matches!(outcome, Outcome::Failure);
        self.settle(ticket, now, failed, self.is_slow(duration_ticks));
    }

    /// Whether a call of `duration_ticks` counts as slow (never when the trigger is off).
    #[cfg(feature = "slow-calls")]
    fn is_slow(&self, duration_ticks: u64) -> bool {
        self.config.slow_call_rate_percent > 0 && duration_ticks >= self.config.slow_call_ticks
    }

    /// Records an outcome (`slow`: only with the slow-call trigger on) for the ticket's state.
    fn settle(&self, ticket: Ticket, now: u64, failed: bool, slow: bool) {
        match ticket.kind {
            Kind::Disabled => {}
            Kind::Closed => self.record_closed(ticket.generation, now, failed, slow),
            Kind::Probe => self.record_probe(ticket.generation, now, failed || slow),
        }
    }

    /// Gives a ticket back unreported: a half-open probe slot becomes free again.
    pub fn release(&self, ticket: Ticket) {
        if ticket.kind != Kind::Probe {
            return;
        }
        let mut s = load(&self.state);
        while st(s) == ST_HALF_OPEN
            && generation(s) == ticket.generation
            && admitted(s) > succeeded(s)
        {
            match cas_weak(&self.state, s, s - ADMITTED_ONE) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Operator: refuse every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.operator(ST_FORCED_OPEN);
    }

    /// Operator: admit every call and record nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.operator(ST_DISABLED);
    }

    /// Operator: close the breaker with an empty window and the shortest open wait.
    pub fn reset(&self) {
        self.operator(ST_CLOSED);
    }

    fn operator(&self, target: u64) {
        let mut s = load(&self.state);
        loop {
            // Forced open, disabled and closed publish no time: `now` is not read.
            let found = self.transition(s, make(target, 0, 0, 0, generation(s).wrapping_add(1)), 0);
            if found == s {
                return;
            }
            s = found;
        }
    }

    /// Every transition: replaces the state word `s` by `next` (of the next generation) and
    /// returns `s`, or returns the word found instead and does nothing else. Entering `next` at
    /// `now`: a closed breaker's windows start afresh; an open breaker or a half-open round
    /// publishes when it started (the high-water mark of `now`, read after the exchange is won;
    /// admission adds the open wait or the probe timeout to it). One function for every
    /// transition, and the word in registers rather than a `Result` in memory (flash on MCUs).
    fn transition(&self, s: u64, next: u64, now: u64) -> u64 {
        if let Err(found) = cas(&self.state, s, next) {
            return found;
        }
        self.transitions.inc();
        let gen = generation(next);
        match st(next) {
            ST_CLOSED => {
                let fresh = w_make(gen_tag(gen), 0, 0);
                store(&self.failures, fresh);
                #[cfg(feature = "slow-calls")]
                store(&self.slow, fresh);
            }
            ST_OPEN | ST_HALF_OPEN => {
                let eff = self.clock.effective(now);
                self.publish(gen, self.coarse_ceil(eff));
                self.clock.advance(now);
            }
            _ => {}
        }
        s
    }

    /// Open → half-open, or a timed-out half-open round → a new round; the caller is its first
    /// probe.
    fn start_round(&self, s: u64, now: u64) -> Result<Ticket, u64> {
        let gen = generation(s).wrapping_add(1);
        let found = self.transition(s, make(ST_HALF_OPEN, level(s), 1, 0, gen), now);
        if found != s {
            return Err(found);
        }
        Ok(Ticket {
            generation: gen,
            kind: Kind::Probe,
            started: now,
        })
    }

    fn record_closed(&self, gen: u32, now: u64, failed: bool, slow: bool) {
        let c = &self.config;
        let Some(w) = self.push(&self.failures, gen, failed).map(NonZeroU64::get) else {
            return;
        };
        let min = u64::from(c.minimum_calls);
        let mut trip = reached(w, min, c.failure_rate_percent);
        if c.consecutive_failures > 0 {
            // The newest `consecutive_failures` outcomes are all failures (a mask test, not a
            // count of trailing ones: no bit-scan table on MCUs).
            let run = count_mask(u64::from(c.consecutive_failures));
            trip |= w_count(w) >= u64::from(c.consecutive_failures) && w_bits(w) & run == run;
        }
        // Without the trigger `slow` is always false: one window, so one `push` and one
        // `reached` (each inlined once on MCUs).
        #[cfg(feature = "slow-calls")]
        if c.slow_call_rate_percent > 0 {
            if let Some(w) = self.push(&self.slow, gen, slow) {
                trip |= reached(w.get(), min, c.slow_call_rate_percent);
            }
        }
        #[cfg(not(feature = "slow-calls"))]
        let _ = slow;
        if !trip {
            return;
        }
        // Only the transition closed(gen) → open(gen + 1) can happen from here; the state word
        // of a closed breaker changes only by transitions, so one attempt is enough.
        let s = load(&self.state);
        if st(s) != ST_CLOSED || generation(s) != gen {
            return;
        }
        self.transition(s, make(ST_OPEN, 0, 0, 0, gen.wrapping_add(1)), now);
    }

    fn record_probe(&self, gen: u32, now: u64, failed: bool) {
        let mut s = load(&self.state);
        while st(s) == ST_HALF_OPEN && generation(s) == gen {
            let found = if failed {
                // A failed round reopens, with the next open level.
                let lvl = if level(s) < MAX_LEVEL {
                    level(s) + 1
                } else {
                    MAX_LEVEL
                };
                self.transition(s, make(ST_OPEN, lvl, 0, 0, gen.wrapping_add(1)), now)
            } else if succeeded(s) + 1 >= u64::from(self.config.half_open_probes) {
                self.transition(s, make(ST_CLOSED, 0, 0, 0, gen.wrapping_add(1)), now)
            } else {
                match cas(&self.state, s, s + SUCCEEDED_ONE) {
                    Ok(found) | Err(found) => found,
                }
            };
            if found == s {
                return;
            }
            s = found;
        }
    }

    /// Shifts `bit` into a window word of generation `gen`; `None` when `gen` is stale. (A pushed
    /// word counts at least one call, so it is never 0: `NonZeroU64` returns it in registers.)
    fn push(&self, word: &AtomicU64, gen: u32, bit: bool) -> Option<NonZeroU64> {
        let tag = gen_tag(gen);
        let n = u64::from(self.config.window);
        let mut w = load(word);
        loop {
            let base = if w_tag(w) == tag {
                w
            } else {
                // A window left from an older generation: start it afresh, but only if `gen`
                // is the closed generation now.
                let s = load(&self.state);
                if st(s) != ST_CLOSED || generation(s) != gen {
                    return None;
                }
                w_make(tag, 0, 0)
            };
            let count = if w_count(base) < n {
                w_count(base) + 1
            } else {
                n
            };
            let bits = (w_bits(base) << 1) | u64::from(bit);
            let next = w_make(tag, count, bits);
            match cas_weak(word, w, next) {
                Ok(_) => return NonZeroU64::new(next),
                Err(actual) => w = actual,
            }
        }
    }

    /// Publishes `time` (coarse) for generation `gen`, never over a newer generation's.
    fn publish(&self, gen: u32, time: u64) {
        let tag = gen as u16;
        let next = ((tag as u64) << 48) | (time & TIME_MASK);
        let mut cur = load(&self.since);
        loop {
            if (s_tag(cur).wrapping_sub(tag) as i16) > 0 {
                return; // a newer generation already published
            }
            match cas_weak(&self.since, cur, next) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The published coarse time of generation `gen`, if it is published yet.
    fn since_for(&self, gen: u32) -> Option<u64> {
        let w = load(&self.since);
        (s_tag(w) == gen as u16).then_some(w & TIME_MASK)
    }

    fn reject(&self, state: BreakerState, retry_after: Option<u64>) -> Rejected {
        self.rejections.inc();
        Rejected { state, retry_after }
    }

    /// The open wait after `level` failed half-open rounds: `open × 2^level`, capped.
    pub fn open_wait(&self, level: u64) -> u64 {
        let c = &self.config;
        // `open << level` when no set bit is shifted out (shifting back gives `open`), else
        // saturated: shifts, not a 64-bit multiplication or a count of leading zeros (library
        // calls on MCUs without those instructions).
        let shifted = c.open_ticks.checked_shl(level as u32).unwrap_or(0);
        let wait = if level < 64 && shifted >> level == c.open_ticks {
            shifted
        } else {
            u64::MAX
        };
        wait.min(c.max_open_ticks)
    }

    /// `ticks` in coarse units, rounded up (a wait or round measured from it never ends early).
    #[inline]
    fn coarse_ceil(&self, ticks: u64) -> u64 {
        let unit = (1u64 << self.shift) - 1;
        (ticks.saturating_add(unit) >> self.shift).min(TIME_MASK)
    }

    #[inline]
    fn ticks_of_coarse(&self, c: u64) -> u64 {
        if c >= TIME_MASK {
            u64::MAX
        } else {
            c << self.shift
        }
    }
}
