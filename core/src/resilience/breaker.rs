//! Circuit breaker: closed / open / half-open, plus forced-open and disabled for operators.
//!
//! State lives in three atomic words:
//! - `state`: the state (3 bits), the open level for the exponential wait (5 bits), half-open
//!   probes admitted (8 bits) and succeeded (8 bits), and the generation (32 bits). Every
//!   transition increments the generation; admission in the closed state is one load of it.
//! - two outcome windows (`failures`, `slow`): the last `window` outcomes as bits (40), how many
//!   are recorded (6 bits) and the generation they belong to (18-bit tag).
//! - `since`: when the current open period ends, or when the current half-open round started, in
//!   coarse ticks (48 bits), tagged with the generation it belongs to (16 bits). It only moves
//!   forward, so a slow writer can never overwrite a newer generation's time.

use super::clock::Clock;
use super::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};
use crate::Counter;
use core::fmt;

/// The most outcomes a count-based window can hold.
pub const MAX_WINDOW: u8 = 40;

// --- state word -------------------------------------------------------------------------------
const ST_CLOSED: u64 = 0;
const ST_OPEN: u64 = 1;
const ST_HALF_OPEN: u64 = 2;
const ST_FORCED_OPEN: u64 = 3;
const ST_DISABLED: u64 = 4;
const MAX_LEVEL: u64 = 31;
const ADMITTED_ONE: u64 = 1 << 8;
const SUCCEEDED_ONE: u64 = 1 << 16;

const fn st(s: u64) -> u64 {
    s & 7
}
const fn level(s: u64) -> u64 {
    (s >> 3) & 31
}
const fn admitted(s: u64) -> u64 {
    (s >> 8) & 0xFF
}
const fn succeeded(s: u64) -> u64 {
    (s >> 16) & 0xFF
}
const fn generation(s: u64) -> u32 {
    (s >> 32) as u32
}
const fn make(state: u64, level: u64, admitted: u64, succeeded: u64, gen: u32) -> u64 {
    (state & 7)
        | ((level & 31) << 3)
        | ((admitted & 0xFF) << 8)
        | ((succeeded & 0xFF) << 16)
        | ((gen as u64) << 32)
}

// --- window words -----------------------------------------------------------------------------
const BITS_MASK: u64 = (1 << 40) - 1;
const TAG_BITS: u32 = 18;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

const fn w_bits(w: u64) -> u64 {
    w & BITS_MASK
}
const fn w_count(w: u64) -> u64 {
    (w >> 40) & 63
}
const fn w_tag(w: u64) -> u64 {
    w >> 46
}
const fn gen_tag(gen: u32) -> u64 {
    gen as u64 & TAG_MASK
}
const fn w_make(tag: u64, count: u64, bits: u64) -> u64 {
    ((tag & TAG_MASK) << 46) | ((count & 63) << 40) | (bits & BITS_MASK)
}

// --- since word -------------------------------------------------------------------------------
const TIME_MASK: u64 = (1 << 48) - 1;
const fn s_tag(w: u64) -> u16 {
    (w >> 48) as u16
}

/// Configuration of a [`CircuitBreaker`]. Durations are in ticks of the caller's clock; the
/// builder methods take milliseconds and convert with `ticks_per_second`.
///
/// Invariant (after [`validate`](Self::validate), or the clamping done by
/// [`CircuitBreaker::new`]): `1 ≤ minimum_calls ≤ window ≤ 40`, `1 ≤ failure_rate_percent ≤ 100`,
/// `consecutive_failures ≤ window`, `slow_call_rate_percent ≤ 100`, `half_open_probes ≥ 1`,
/// `1 ≤ open_ticks ≤ max_open_ticks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Ticks per second of the caller's clock.
    pub ticks_per_second: u64,
    /// Size of the count-based window: the last `window` calls (1..=40).
    pub window: u8,
    /// The rates are only evaluated once the window holds this many calls.
    pub minimum_calls: u8,
    /// Trip when at least this percentage of the window failed (1..=100).
    pub failure_rate_percent: u8,
    /// Also trip after this many failures in a row (0: off; at most `window`).
    pub consecutive_failures: u8,
    /// A call that took at least this many ticks is slow.
    pub slow_call_ticks: u64,
    /// Also trip when at least this percentage of the window was slow (0: off).
    pub slow_call_rate_percent: u8,
    /// How long the breaker stays open the first time.
    pub open_ticks: u64,
    /// The open wait doubles each time a half-open round fails, up to this.
    pub max_open_ticks: u64,
    /// Probes admitted in half-open; that many successes close the breaker, one failure reopens.
    pub half_open_probes: u8,
    /// A half-open round that has not finished after this long starts over with a new
    /// generation: permits that were lost or leaked are never lost forever.
    pub probe_timeout_ticks: u64,
}

const fn ms_to_ticks(ms: u64, tps: u64) -> u64 {
    let t = (ms as u128 * tps as u128).div_ceil(1000);
    if t > u64::MAX as u128 {
        u64::MAX
    } else {
        t as u64
    }
}

impl BreakerConfig {
    /// Defaults: window 20, minimum 10 calls, trip at 50 % failures, no consecutive or slow-call
    /// trigger, open 5 s doubling up to 60 s, 3 half-open probes, probe timeout 30 s.
    pub const fn new(ticks_per_second: u64) -> Self {
        Self {
            ticks_per_second,
            window: 20,
            minimum_calls: 10,
            failure_rate_percent: 50,
            consecutive_failures: 0,
            slow_call_ticks: u64::MAX,
            slow_call_rate_percent: 0,
            open_ticks: ms_to_ticks(5_000, ticks_per_second),
            max_open_ticks: ms_to_ticks(60_000, ticks_per_second),
            half_open_probes: 3,
            probe_timeout_ticks: ms_to_ticks(30_000, ticks_per_second),
        }
    }
    /// The window of the last `window` calls and the minimum number of calls before rates count.
    pub const fn window(mut self, window: u8, minimum_calls: u8) -> Self {
        self.window = window;
        self.minimum_calls = minimum_calls;
        self
    }
    /// The failure-rate threshold in percent.
    pub const fn failure_rate(mut self, percent: u8) -> Self {
        self.failure_rate_percent = percent;
        self
    }
    /// Trip after `n` failures in a row (0: off).
    pub const fn consecutive_failures(mut self, n: u8) -> Self {
        self.consecutive_failures = n;
        self
    }
    /// Calls of at least `slow_ms` are slow; trip when `rate_percent` of the window is slow.
    pub const fn slow_calls(mut self, slow_ms: u64, rate_percent: u8) -> Self {
        self.slow_call_ticks = ms_to_ticks(slow_ms, self.ticks_per_second);
        self.slow_call_rate_percent = rate_percent;
        self
    }
    /// The first open wait and its cap, in milliseconds.
    pub const fn open_wait(mut self, first_ms: u64, max_ms: u64) -> Self {
        self.open_ticks = ms_to_ticks(first_ms, self.ticks_per_second);
        self.max_open_ticks = ms_to_ticks(max_ms, self.ticks_per_second);
        self
    }
    /// Half-open probes and the probe timeout in milliseconds.
    pub const fn half_open(mut self, probes: u8, timeout_ms: u64) -> Self {
        self.half_open_probes = probes;
        self.probe_timeout_ticks = ms_to_ticks(timeout_ms, self.ticks_per_second);
        self
    }

    /// Checks the invariant (the breaker clamps instead).
    pub const fn validate(&self) -> Result<(), ConfigError> {
        const fn err(field: &'static str, expected: &'static str) -> Result<(), ConfigError> {
            Err(ConfigError { field, expected })
        }
        if self.ticks_per_second == 0 {
            return err("ticks_per_second", "at least 1");
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return err("window", "in 1..=40");
        }
        if self.minimum_calls == 0 || self.minimum_calls > self.window {
            return err("minimum_calls", "in 1..=window");
        }
        if self.failure_rate_percent == 0 || self.failure_rate_percent > 100 {
            return err("failure_rate_percent", "in 1..=100");
        }
        if self.consecutive_failures > self.window {
            return err("consecutive_failures", "at most window (0 turns it off)");
        }
        if self.slow_call_rate_percent > 100 {
            return err("slow_call_rate_percent", "at most 100 (0 turns it off)");
        }
        if self.half_open_probes == 0 {
            return err("half_open_probes", "at least 1");
        }
        if self.open_ticks == 0 || self.max_open_ticks < self.open_ticks {
            return err("open_ticks", "at least 1 and at most max_open_ticks");
        }
        Ok(())
    }

    /// The configuration with every field clamped into range.
    pub const fn clamped(mut self) -> Self {
        const fn clamp(v: u8, lo: u8, hi: u8) -> u8 {
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        }
        if self.ticks_per_second == 0 {
            self.ticks_per_second = 1;
        }
        self.window = clamp(self.window, 1, MAX_WINDOW);
        self.minimum_calls = clamp(self.minimum_calls, 1, self.window);
        self.failure_rate_percent = clamp(self.failure_rate_percent, 1, 100);
        self.consecutive_failures = clamp(self.consecutive_failures, 0, self.window);
        self.slow_call_rate_percent = clamp(self.slow_call_rate_percent, 0, 100);
        self.half_open_probes = clamp(self.half_open_probes, 1, u8::MAX);
        if self.open_ticks == 0 {
            self.open_ticks = 1;
        }
        if self.max_open_ticks < self.open_ticks {
            self.max_open_ticks = self.open_ticks;
        }
        self
    }
}

/// The state of a breaker as an operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; outcomes are recorded.
    Closed,
    /// Calls are refused until the open wait ends.
    Open,
    /// A bounded number of probe calls pass; their outcomes decide.
    HalfOpen,
    /// Refused until an operator resets it.
    ForcedOpen,
    /// Every call passes and nothing is recorded, until an operator resets it.
    Disabled,
}

impl BreakerState {
    const fn from_code(code: u64) -> Self {
        match code {
            ST_OPEN => BreakerState::Open,
            ST_HALF_OPEN => BreakerState::HalfOpen,
            ST_FORCED_OPEN => BreakerState::ForcedOpen,
            ST_DISABLED => BreakerState::Disabled,
            _ => BreakerState::Closed,
        }
    }

    /// The conventional gauge value: 0 closed (and disabled), 1 open (and forced open), 2
    /// half-open.
    pub const fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed | BreakerState::Disabled => 0,
            BreakerState::Open | BreakerState::ForcedOpen => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    /// Lower-case name (`closed`, `open`, `half_open`, `forced_open`, `disabled`).
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call refused by the breaker.
///
/// Invariant: `retry_after` is the ticks until the breaker may admit again (the end of the open
/// wait, or of the half-open round), or `None` when forced open (only an operator can close it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The state that refused.
    pub state: BreakerState,
    /// Ticks to wait, if known.
    pub retry_after: Option<u64>,
}

impl core::error::Error for Rejected {}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(t) => write!(f, "circuit breaker {}: retry after {t} ticks", self.state),
            None => write!(
                f,
                "circuit breaker {}: retry when an operator resets it",
                self.state
            ),
        }
    }
}

/// What a call's outcome was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call did what it should.
    Success,
    /// The call failed in a way that says the dependency is unhealthy.
    Failure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Closed,
    Probe,
    Disabled,
}

/// The right to make one call, detached from the breaker's lifetime. Report it exactly once with
/// [`CircuitBreaker::record`] (it is not `Clone`, so it cannot be reported twice).
///
/// Invariant: it carries the generation it was admitted in; an outcome reported after the breaker
/// changed generation is ignored. A ticket that is never reported is reclaimed when the
/// half-open round times out ([`BreakerConfig::probe_timeout_ticks`]).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "report the outcome with CircuitBreaker::record"]
pub struct Ticket {
    generation: u32,
    kind: Kind,
    started: u64,
}

impl Ticket {
    /// The breaker generation this ticket was admitted in.
    pub const fn generation(&self) -> u32 {
        self.generation
    }
    /// Whether this is one of the bounded half-open probes.
    pub const fn is_probe(&self) -> bool {
        matches!(self.kind, Kind::Probe)
    }
    /// The `now` it was admitted at.
    pub const fn started(&self) -> u64 {
        self.started
    }
}

/// The right to make one call. Report it with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record).
///
/// Invariant: dropping it unreported gives a half-open probe slot back (another probe may be
/// admitted) and records nothing.
#[derive(Debug)]
#[must_use = "report the outcome with .success(now) or .failure(now)"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Option<Ticket>,
}

impl Permit<'_> {
    /// The call succeeded; its duration is `now − admitted at`.
    pub fn success(self, now: u64) {
        self.finish(now, Outcome::Success, None);
    }
    /// The call failed; its duration is `now − admitted at`.
    pub fn failure(self, now: u64) {
        self.finish(now, Outcome::Failure, None);
    }
    /// Reports `outcome` with a duration measured by the caller (for the slow-call rate).
    pub fn record(self, now: u64, outcome: Outcome, duration_ticks: u64) {
        self.finish(now, outcome, Some(duration_ticks));
    }
    /// The generation this permit was admitted in.
    pub fn generation(&self) -> u32 {
        self.ticket.as_ref().map_or(0, |t| t.generation)
    }
    /// Whether this is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.as_ref().is_some_and(Ticket::is_probe)
    }
    /// Detaches the permit from the breaker's lifetime (e.g. to move it into a task). Report the
    /// ticket with [`CircuitBreaker::record`]; if it is never reported, the probe timeout
    /// reclaims it.
    pub fn into_ticket(mut self) -> Ticket {
        // `ticket` is always `Some` until the permit is finished or turned into a ticket.
        self.ticket.take().unwrap_or(Ticket {
            generation: 0,
            kind: Kind::Disabled,
            started: 0,
        })
    }

    fn finish(mut self, now: u64, outcome: Outcome, duration: Option<u64>) {
        if let Some(t) = self.ticket.take() {
            let d = duration.unwrap_or_else(|| now.saturating_sub(t.started));
            self.breaker.record_duration(t, now, outcome, d);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.release(t);
        }
    }
}

/// A lock-free circuit breaker over a count-based window.
///
/// Invariants:
/// - closed: every call is admitted with one atomic load; the breaker trips to open when the last
///   `window` outcomes hold at least `minimum_calls` calls and `failure_rate_percent` of them
///   failed, or (optionally) `consecutive_failures` in a row failed, or `slow_call_rate_percent`
///   were slow;
/// - open: refused with the remaining wait; the wait is `open_ticks × 2^k` capped at
///   `max_open_ticks`, where `k` counts failed half-open rounds since the breaker last closed;
/// - half-open: at most `half_open_probes` calls are admitted per round, counted at admission;
///   that many successes close it, one failure (or slow probe, when the slow-call trigger is on)
///   reopens it; a round that does not finish within `probe_timeout_ticks` starts over;
/// - every transition increments the generation; an outcome of an older generation is ignored;
/// - forced-open and disabled are held until [`reset`](Self::reset);
/// - a `now` earlier than one already acted on counts as no time passed; no lock, no panic.
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
        /// A closed breaker (generation 0). Out-of-range fields are clamped
        /// ([`BreakerConfig::clamped`]).
        pub const fn new(config: BreakerConfig) -> Self {
            let config = config.clamped();
            let per_ms = config.ticks_per_second / 1000;
            let shift = if per_ms > 1 { 63 - per_ms.leading_zeros() } else { 0 };
            Self {
                state: AtomicU64::new(make(ST_CLOSED, 0, 0, 0, 0)),
                failures: AtomicU64::new(0),
                slow: AtomicU64::new(0),
                since: AtomicU64::new(0),
                clock: Clock::new(),
                transitions: Counter::new(),
                rejections: Counter::new(),
                config,
                shift,
            }
        }
    }

    /// The effective configuration (after clamping).
    pub const fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_code(st(self.state.load(Ordering::Acquire)))
    }

    /// The current generation (incremented by every transition, wrapping).
    pub fn generation(&self) -> u32 {
        generation(self.state.load(Ordering::Acquire))
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
        let s = self.state.load(Ordering::Acquire);
        let w = self.failures.load(Ordering::Acquire);
        if st(s) != ST_CLOSED || w_tag(w) != gen_tag(generation(s)) {
            return (0, 0);
        }
        (
            w_count(w) as u32,
            (w_bits(w) & count_mask(w_count(w))).count_ones(),
        )
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
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let gen = generation(s);
            match st(s) {
                ST_OPEN => {
                    let eff = self.clock.effective(now);
                    let until = match self.since_for(gen) {
                        Some(until) => until,
                        None => {
                            // Either our view of the state is stale (look again), or the
                            // transition is still being published: it has only just opened.
                            let again = self.state.load(Ordering::Acquire);
                            if again != s {
                                s = again;
                                continue;
                            }
                            return Err(
                                self.reject(BreakerState::Open, Some(self.open_wait(level(s))))
                            );
                        }
                    };
                    if self.coarse(eff) < until {
                        let wait = self.ticks_of_coarse(until).saturating_sub(eff);
                        return Err(
                            self.reject(BreakerState::Open, Some(if wait == 0 { 1 } else { wait }))
                        );
                    }
                    match self.start_round(s, now, eff) {
                        Ok(t) => return Ok(t),
                        Err(actual) => s = actual,
                    }
                }
                ST_HALF_OPEN => {
                    if admitted(s) < u64::from(self.config.half_open_probes) {
                        match self.state.compare_exchange_weak(
                            s,
                            s + ADMITTED_ONE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => {
                                return Ok(Ticket {
                                    generation: gen,
                                    kind: Kind::Probe,
                                    started: now,
                                })
                            }
                            Err(actual) => {
                                s = actual;
                                continue;
                            }
                        }
                    }
                    let eff = self.clock.effective(now);
                    let timeout = self.config.probe_timeout_ticks;
                    let deadline = match self.since_for(gen) {
                        Some(start) => self.ticks_of_coarse(start).saturating_add(timeout),
                        None => {
                            let again = self.state.load(Ordering::Acquire);
                            if again != s {
                                s = again;
                                continue;
                            }
                            return Err(self.reject(BreakerState::HalfOpen, Some(timeout.max(1))));
                        }
                    };
                    if eff < deadline {
                        return Err(self.reject(BreakerState::HalfOpen, Some(deadline - eff)));
                    }
                    // The round timed out: lost permits are reclaimed by starting a new round.
                    match self.start_round(s, now, eff) {
                        Ok(t) => return Ok(t),
                        Err(actual) => s = actual,
                    }
                }
                ST_FORCED_OPEN => return Err(self.reject(BreakerState::ForcedOpen, None)),
                ST_DISABLED => {
                    return Ok(Ticket {
                        generation: gen,
                        kind: Kind::Disabled,
                        started: now,
                    })
                }
                _ => {
                    return Ok(Ticket {
                        generation: gen,
                        kind: Kind::Closed,
                        started: now,
                    })
                }
            }
        }
    }

    /// Reports a detached ticket's outcome; its duration is `now − admitted at`.
    pub fn record(&self, ticket: Ticket, now: u64, outcome: Outcome) {
        let d = now.saturating_sub(ticket.started);
        self.record_duration(ticket, now, outcome, d);
    }

    /// Reports a detached ticket's outcome with a duration measured by the caller.
    pub fn record_duration(&self, ticket: Ticket, now: u64, outcome: Outcome, duration_ticks: u64) {
        let slow =
            self.config.slow_call_rate_percent > 0 && duration_ticks >= self.config.slow_call_ticks;
        let failed = matches!(outcome, Outcome::Failure);
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
        let mut s = self.state.load(Ordering::Acquire);
        while st(s) == ST_HALF_OPEN
            && generation(s) == ticket.generation
            && admitted(s) > succeeded(s)
        {
            match self.state.compare_exchange_weak(
                s,
                s - ADMITTED_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
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
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let next = make(target, 0, 0, 0, generation(s).wrapping_add(1));
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.entered(next, 0);
                    return;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Bookkeeping after a successful transition into `next` (its `since` is `since_coarse`).
    fn entered(&self, next: u64, since_coarse: u64) {
        self.transitions.inc();
        let gen = generation(next);
        match st(next) {
            ST_CLOSED => {
                let fresh = w_make(gen_tag(gen), 0, 0);
                self.failures.store(fresh, Ordering::Release);
                self.slow.store(fresh, Ordering::Release);
            }
            ST_OPEN | ST_HALF_OPEN => self.publish(gen, since_coarse),
            _ => {}
        }
    }

    /// Open → half-open, or a timed-out half-open round → a new round; the caller is its first
    /// probe.
    fn start_round(&self, s: u64, now: u64, eff: u64) -> Result<Ticket, u64> {
        let gen = generation(s).wrapping_add(1);
        let next = make(ST_HALF_OPEN, level(s), 1, 0, gen);
        self.state
            .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)?;
        self.entered(next, self.coarse(eff));
        self.clock.advance(now);
        Ok(Ticket {
            generation: gen,
            kind: Kind::Probe,
            started: now,
        })
    }

    fn record_closed(&self, gen: u32, now: u64, failed: bool, slow: bool) {
        let c = &self.config;
        let Some(w) = self.push(&self.failures, gen, failed) else {
            return;
        };
        let min = u64::from(c.minimum_calls);
        let mut trip = reached(w, min, c.failure_rate_percent);
        if c.consecutive_failures > 0 {
            let run = u64::from((w_bits(w) & count_mask(w_count(w))).trailing_ones());
            trip |= run >= u64::from(c.consecutive_failures);
        }
        if c.slow_call_rate_percent > 0 {
            if let Some(w) = self.push(&self.slow, gen, slow) {
                trip |= reached(w, min, c.slow_call_rate_percent);
            }
        }
        if !trip {
            return;
        }
        // Only the transition closed(gen) → open(gen + 1) can happen from here; the state word
        // of a closed breaker changes only by transitions, so one attempt is enough.
        let s = self.state.load(Ordering::Acquire);
        if st(s) != ST_CLOSED || generation(s) != gen {
            return;
        }
        self.open(s, 0, now);
    }

    fn open(&self, s: u64, level: u64, now: u64) -> bool {
        let next = make(ST_OPEN, level, 0, 0, generation(s).wrapping_add(1));
        if self
            .state
            .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let eff = self.clock.effective(now);
        let until = eff.saturating_add(self.open_wait(level));
        self.entered(next, self.coarse_ceil(until));
        self.clock.advance(now);
        true
    }

    fn record_probe(&self, gen: u32, now: u64, failed: bool) {
        let mut s = self.state.load(Ordering::Acquire);
        while st(s) == ST_HALF_OPEN && generation(s) == gen {
            if failed {
                let lvl = if level(s) < MAX_LEVEL {
                    level(s) + 1
                } else {
                    MAX_LEVEL
                };
                if self.open(s, lvl, now) {
                    return;
                }
            } else {
                let next = if succeeded(s) + 1 >= u64::from(self.config.half_open_probes) {
                    make(ST_CLOSED, 0, 0, 0, gen.wrapping_add(1))
                } else {
                    s + SUCCEEDED_ONE
                };
                if self
                    .state
                    .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    if st(next) == ST_CLOSED {
                        self.entered(next, 0);
                    }
                    return;
                }
            }
            s = self.state.load(Ordering::Acquire);
        }
    }

    /// Shifts `bit` into a window word of generation `gen`; `None` when `gen` is stale.
    fn push(&self, word: &AtomicU64, gen: u32, bit: bool) -> Option<u64> {
        let tag = gen_tag(gen);
        let n = u64::from(self.config.window);
        let mut w = word.load(Ordering::Acquire);
        loop {
            let base = if w_tag(w) == tag {
                w
            } else {
                // A window left from an older generation: start it afresh, but only if `gen`
                // is the closed generation now.
                let s = self.state.load(Ordering::Acquire);
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
            let bits = ((w_bits(base) << 1) | u64::from(bit)) & count_mask(n);
            let next = w_make(tag, count, bits);
            match word.compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(next),
                Err(actual) => w = actual,
            }
        }
    }

    /// Publishes `time` (coarse) for generation `gen`, never over a newer generation's.
    fn publish(&self, gen: u32, time: u64) {
        let tag = gen as u16;
        let next = ((tag as u64) << 48) | (time & TIME_MASK);
        let mut cur = self.since.load(Ordering::Acquire);
        loop {
            if (s_tag(cur).wrapping_sub(tag) as i16) > 0 {
                return; // a newer generation already published
            }
            match self
                .since
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The published coarse time of generation `gen`, if it is published yet.
    fn since_for(&self, gen: u32) -> Option<u64> {
        let w = self.since.load(Ordering::Acquire);
        (s_tag(w) == gen as u16).then_some(w & TIME_MASK)
    }

    fn reject(&self, state: BreakerState, retry_after: Option<u64>) -> Rejected {
        self.rejections.inc();
        Rejected { state, retry_after }
    }

    /// The open wait after `level` failed half-open rounds: `open × 2^level`, capped.
    pub fn open_wait(&self, level: u64) -> u64 {
        let c = &self.config;
        let wait = match 1u64.checked_shl(level as u32) {
            Some(f) if level < 64 => c.open_ticks.saturating_mul(f),
            _ => u64::MAX,
        };
        wait.min(c.max_open_ticks)
    }

    #[inline]
    fn coarse(&self, ticks: u64) -> u64 {
        (ticks >> self.shift).min(TIME_MASK)
    }

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

/// Mask of the newest `n` bits.
const fn count_mask(n: u64) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Whether the window `w` holds at least `min` calls and at least `percent` % of them are set.
const fn reached(w: u64, min: u64, percent: u8) -> bool {
    let count = w_count(w);
    if count < min || count == 0 {
        return false;
    }
    let ones = (w_bits(w) & count_mask(count)).count_ones() as u64;
    ones * 100 >= percent as u64 * count
}
