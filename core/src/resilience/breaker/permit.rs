//! The right to make one call: a [`Permit`] tied to the breaker, or a detached [`Ticket`].

use super::state::BreakerState;
#[cfg(doc)]
use super::BreakerConfig;
use super::CircuitBreaker;
use core::fmt;

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
#[non_exhaustive]
pub enum Outcome {
    /// The call did what it should.
    Success,
    /// The call failed in a way that says the dependency is unhealthy.
    Failure,
}

/// What admitted a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) generation: u32,
    pub(super) kind: Kind,
    pub(super) started: u64,
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
/// [`failure`](Self::failure) or (feature `slow-calls`, with a duration you measured) `record`.
///
/// Invariant: dropping it unreported gives a half-open probe slot back (another probe may be
/// admitted) and records nothing.
#[derive(Debug)]
#[must_use = "report the outcome with .success(now) or .failure(now)"]
pub struct Permit<'a> {
    pub(super) breaker: &'a CircuitBreaker,
    pub(super) ticket: Option<Ticket>,
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
    #[cfg(feature = "slow-calls")]
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
            #[cfg(feature = "slow-calls")]
            {
                let d = duration.unwrap_or_else(|| now.saturating_sub(t.started));
                self.breaker.record_duration(t, now, outcome, d);
            }
            #[cfg(not(feature = "slow-calls"))]
            {
                let _ = duration; // only the slow-call trigger reads durations
                self.breaker
                    .settle(t, now, matches!(outcome, Outcome::Failure), false);
            }
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
