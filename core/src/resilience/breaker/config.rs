//! The configuration of a [`CircuitBreaker`](super::CircuitBreaker).

#[cfg(doc)]
use super::CircuitBreaker;
use crate::resilience::error::{config_error, ConfigError};

/// The most outcomes a count-based window can hold.
pub const MAX_WINDOW: u8 = 40;

/// Configuration of a [`CircuitBreaker`], built with `const` methods from [`new`](Self::new).
/// Durations are kept in ticks of the caller's clock; the builder methods take milliseconds and
/// convert with `ticks_per_second`.
///
/// A breaker is only built from a valid configuration ([`validate`](Self::validate)):
/// `ticks_per_second ≥ 1`, `1 ≤ minimum_calls ≤ window ≤ 40`, `1 ≤ failure_rate_percent ≤ 100`,
/// `consecutive_failures ≤ window`, `slow_call_rate_percent ≤ 100` (feature `slow-calls`),
/// `half_open_probes ≥ 1`, `1 ≤ open_ticks ≤ max_open_ticks`. [`CircuitBreaker::new`] refuses
/// anything else (a compile error in a `static`), [`CircuitBreaker::try_new`] returns the
/// [`ConfigError`], and [`clamped`](Self::clamped) moves every field into range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Ticks per second of the caller's clock.
    pub(super) ticks_per_second: u64,
    /// Size of the count-based window: the last `window` calls (1..=40).
    pub(super) window: u8,
    /// The rates are only evaluated once the window holds this many calls.
    pub(super) minimum_calls: u8,
    /// Trip when at least this percentage of the window failed (1..=100).
    pub(super) failure_rate_percent: u8,
    /// Also trip after this many failures in a row (0: off; at most `window`).
    pub(super) consecutive_failures: u8,
    /// A call that took at least this many ticks is slow.
    #[cfg(feature = "slow-calls")]
    pub(super) slow_call_ticks: u64,
    /// Also trip when at least this percentage of the window was slow (0: off).
    #[cfg(feature = "slow-calls")]
    pub(super) slow_call_rate_percent: u8,
    /// How long the breaker stays open the first time.
    pub(super) open_ticks: u64,
    /// The open wait doubles each time a half-open round fails, up to this.
    pub(super) max_open_ticks: u64,
    /// Probes admitted in half-open; that many successes close the breaker, one failure reopens.
    pub(super) half_open_probes: u8,
    /// A half-open round that has not finished after this long starts over with a new
    /// generation: permits that were lost or leaked are never lost forever.
    pub(super) probe_timeout_ticks: u64,
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
            #[cfg(feature = "slow-calls")]
            slow_call_ticks: u64::MAX,
            #[cfg(feature = "slow-calls")]
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
    #[cfg(feature = "slow-calls")]
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

    /// Ticks per second of the caller's clock.
    pub const fn ticks_per_second(&self) -> u64 {
        self.ticks_per_second
    }
    /// Size of the count-based window: the last `window` calls (1..=40).
    pub const fn window_size(&self) -> u8 {
        self.window
    }
    /// The rates are only evaluated once the window holds this many calls.
    pub const fn minimum_calls(&self) -> u8 {
        self.minimum_calls
    }
    /// Trip when at least this percentage of the window failed (1..=100).
    pub const fn failure_rate_percent(&self) -> u8 {
        self.failure_rate_percent
    }
    /// Also trip after this many failures in a row (0: off).
    pub const fn consecutive_failure_limit(&self) -> u8 {
        self.consecutive_failures
    }
    /// A call that took at least this many ticks is slow.
    #[cfg(feature = "slow-calls")]
    pub const fn slow_call_ticks(&self) -> u64 {
        self.slow_call_ticks
    }
    /// Also trip when at least this percentage of the window was slow (0: off).
    #[cfg(feature = "slow-calls")]
    pub const fn slow_call_rate_percent(&self) -> u8 {
        self.slow_call_rate_percent
    }
    /// How long the breaker stays open the first time, in ticks.
    pub const fn open_ticks(&self) -> u64 {
        self.open_ticks
    }
    /// The cap of the doubling open wait, in ticks.
    pub const fn max_open_ticks(&self) -> u64 {
        self.max_open_ticks
    }
    /// Probes admitted in half-open.
    pub const fn half_open_probes(&self) -> u8 {
        self.half_open_probes
    }
    /// A half-open round that has not finished after this many ticks starts over.
    pub const fn probe_timeout_ticks(&self) -> u64 {
        self.probe_timeout_ticks
    }

    /// Checks the invariant above.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.ticks_per_second == 0 {
            return Err(config_error!("ticks_per_second", "at least 1"));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(config_error!("window", "in 1..=40"));
        }
        if self.minimum_calls == 0 || self.minimum_calls > self.window {
            return Err(config_error!("minimum_calls", "in 1..=window"));
        }
        if self.failure_rate_percent == 0 || self.failure_rate_percent > 100 {
            return Err(config_error!("failure_rate_percent", "in 1..=100"));
        }
        if self.consecutive_failures > self.window {
            return Err(config_error!(
                "consecutive_failures",
                "at most window (0 turns it off)"
            ));
        }
        #[cfg(feature = "slow-calls")]
        if self.slow_call_rate_percent > 100 {
            return Err(config_error!(
                "slow_call_rate_percent",
                "at most 100 (0 turns it off)"
            ));
        }
        if self.half_open_probes == 0 {
            return Err(config_error!("half_open_probes", "at least 1"));
        }
        if self.open_ticks == 0 || self.max_open_ticks < self.open_ticks {
            return Err(config_error!(
                "open_ticks",
                "at least 1 and at most max_open_ticks"
            ));
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
        #[cfg(feature = "slow-calls")]
        {
            self.slow_call_rate_percent = clamp(self.slow_call_rate_percent, 0, 100);
        }
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
