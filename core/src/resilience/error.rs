//! Errors of the resilience primitives: each one says what the caller can do next.

use core::fmt;

/// A request was refused because the limiter has no tokens for it now.
///
/// Invariant: `retry_after` is the smallest number of ticks after which the same request would
/// conform if nothing else consumed in between (`u64::MAX` when the tick counter would saturate
/// first, i.e. never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// Ticks to wait before the same request would be admitted.
    pub retry_after: u64,
}

impl core::error::Error for RateLimited {}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited: retry after {} ticks", self.retry_after)
    }
}

/// Why `try_acquire_n` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireError {
    /// Not enough tokens now; waiting `retry_after` ticks will do.
    RateLimited(RateLimited),
    /// `requested` is larger than the burst: this request can never pass, waiting does not help.
    ExceedsBurst {
        /// Tokens asked for.
        requested: u32,
        /// The most tokens one request can ever get.
        burst: u32,
    },
}

impl From<RateLimited> for AcquireError {
    fn from(e: RateLimited) -> Self {
        AcquireError::RateLimited(e)
    }
}

impl core::error::Error for AcquireError {}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::RateLimited(e) => e.fmt(f),
            AcquireError::ExceedsBurst { requested, burst } => write!(
                f,
                "request for {requested} tokens can never pass: the burst is {burst}"
            ),
        }
    }
}

/// A configuration value is out of range. The `new` constructors refuse it at compile time (in a
/// `static` or `const`); the `try_new` ones return it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field that is out of range.
    pub field: &'static str,
    /// What the field must be.
    pub expected: &'static str,
    message: &'static str,
}

/// `config_error!("field", "expected")`: a [`ConfigError`] whose message is built at compile time
/// (so a `const` panic can show it).
macro_rules! config_error {
    ($field:literal, $expected:literal) => {
        $crate::resilience::ConfigError::new(
            $field,
            $expected,
            concat!("invalid config: `", $field, "` must be ", $expected),
        )
    };
}
pub(crate) use config_error;

impl ConfigError {
    pub(crate) const fn new(
        field: &'static str,
        expected: &'static str,
        message: &'static str,
    ) -> Self {
        Self {
            field,
            expected,
            message,
        }
    }

    /// The whole sentence (`` invalid config: `burst` must be at least 1 ``), usable in a `const`
    /// panic.
    pub const fn as_str(&self) -> &'static str {
        self.message
    }
}

impl core::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}
