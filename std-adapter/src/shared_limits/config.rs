//! How a deployment reaches its store and what it does without it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What decides while the store cannot (down, slow, breaker open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackMode {
    /// This replica's own limiters, each budget divided by the replicas hint; quota spent
    /// meanwhile is added back to the store once it answers again.
    #[default]
    Local,
    /// Admit every call (availability over limits).
    Open,
    /// Refuse every call (limits over availability).
    Closed,
}

impl FallbackMode {
    /// The flag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FallbackMode::Local => "local",
            FallbackMode::Open => "open",
            FallbackMode::Closed => "closed",
        }
    }
}

impl fmt::Display for FallbackMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fallback mode that is not `local`, `open` or `closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackModeError(pub String);

impl fmt::Display for FallbackModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid fallback `{}`: expected local, open or closed",
            self.0
        )
    }
}

impl std::error::Error for FallbackModeError {}

impl FromStr for FallbackMode {
    type Err = FallbackModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(FallbackMode::Local),
            "open" => Ok(FallbackMode::Open),
            "closed" => Ok(FallbackMode::Closed),
            _ => Err(FallbackModeError(s.to_owned())),
        }
    }
}

/// Where the shared limits live and how they degrade.
#[derive(Clone)]
pub struct SharedLimitsConfig {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS; feature `redis-tls`) or
    /// `unix:///path/to/socket`.
    pub url: String,
    /// PEM certificates to trust for a `rediss://` store instead of the system's roots.
    pub ca_cert: Option<Vec<u8>>,
    /// How long one decision may wait for the store.
    pub timeout: Duration,
    /// What decides while the store cannot.
    pub fallback: FallbackMode,
    /// Replicas sharing the store: the local fallback gives each `1 / replicas_hint` of every
    /// budget (at least 1).
    pub replicas_hint: u32,
    /// The hash tag of every key (`{PREFIX}:…`): deployments sharing a store use different ones.
    pub prefix: String,
}

/// The default per-decision timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

impl SharedLimitsConfig {
    /// The store at `url` with the defaults: 50 ms timeout, local fallback, 1 replica, prefix
    /// `vitals`.
    pub fn new(url: &str) -> Self {
        SharedLimitsConfig {
            url: url.to_owned(),
            ca_cert: None,
            timeout: DEFAULT_TIMEOUT,
            fallback: FallbackMode::Local,
            replicas_hint: 1,
            prefix: "vitals".to_owned(),
        }
    }
}

impl fmt::Debug for SharedLimitsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SharedLimitsConfig")
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .field("replicas_hint", &self.replicas_hint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
