//! `--redis`: the per-client and per-tool tool-call limits, the daily quota and the MCP sessions
//! shared by every replica pointing at the same Redis or Valkey ([`vitals_std::shared_limits`],
//! `session_store`).

use std::fmt;

use clap::Args;

/// The store flags.
#[derive(Clone, Args)]
pub struct RedisArgs {
    /// Share the tool-call limits, the daily quota and MCP sessions with every replica using
    /// this store: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…` (TLS) or
    /// `unix:///PATH` (credentials in the URL authenticate). Without it every limit and session
    /// is this process's own.
    #[arg(
        long = "redis",
        env = "VITALS_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<String>,

    /// PEM file of the CA certificate(s) to trust for a rediss:// store, instead of the
    /// system's roots.
    #[arg(long = "redis-ca", env = "VITALS_REDIS_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// How long one limit decision may wait for the store, in milliseconds.
    #[arg(
        long = "redis-timeout",
        env = "VITALS_REDIS_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub timeout_ms: u64,

    /// What decides while the store is down or slow: local (this replica's limiters, each
    /// budget divided by --replicas-hint; quota spent meanwhile is added back later), open
    /// (admit every call) or closed (refuse every call).
    #[arg(
        long = "redis-fallback",
        env = "VITALS_REDIS_FALLBACK",
        value_name = "MODE",
        default_value = "local",
        value_parser = ["local", "open", "closed"]
    )]
    pub fallback: String,

    /// Replicas sharing the store (the local fallback's divisor).
    #[arg(
        long = "replicas-hint",
        env = "VITALS_REPLICAS_HINT",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub replicas_hint: u32,

    /// Hash tag of every key in the store ({PREFIX}:…): deployments sharing one store use
    /// different prefixes.
    #[arg(
        long = "redis-prefix",
        env = "VITALS_REDIS_PREFIX",
        value_name = "PREFIX",
        default_value = "vitals"
    )]
    pub prefix: String,
}

impl fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisArgs")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("ca", &self.ca)
            .field("timeout_ms", &self.timeout_ms)
            .field("fallback", &self.fallback)
            .field("replicas_hint", &self.replicas_hint)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The shared limits the flags ask for, built with the same budgets as the local ones.
#[cfg(feature = "redis")]
pub fn shared_limits(
    cli: &crate::cli::Cli,
) -> Result<Option<&'static vitals_std::shared_limits::SharedLimits>, Box<dyn std::error::Error>> {
    use vitals_std::shared_limits::{Budgets, SharedLimits, SharedLimitsConfig};
    let a = &cli.redis;
    let Some(url) = &a.url else {
        return Ok(None);
    };
    let mut config = SharedLimitsConfig::new(url);
    config.ca_cert = ca_cert(a)?;
    config.timeout = std::time::Duration::from_millis(a.timeout_ms);
    config.fallback = a.fallback.parse()?;
    config.replicas_hint = a.replicas_hint;
    config.prefix = a.prefix.clone();
    let budgets = Budgets {
        client: Some(cli.client_tool_rate_limit),
        tool: Some(cli.tool_rate_limit),
        quota: (cli.daily_quota > 0).then(|| {
            (
                vitals_std::quota::DAILY_TOOL_CALLS.to_owned(),
                cli.daily_quota.min(vitals_std::quota::MAX_LIMIT),
                vitals_std::quota::DAY_SECONDS,
            )
        }),
    };
    let limits = SharedLimits::new(&config, budgets)?;
    tracing::info!(fallback = %config.fallback, timeout_ms = a.timeout_ms,
        replicas_hint = a.replicas_hint, prefix = %config.prefix,
        "tool-call limits and quota shared through the store");
    Ok(Some(limits))
}

/// The `--redis-ca` file's contents.
#[cfg(feature = "redis")]
fn ca_cert(a: &RedisArgs) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error>> {
    let Some(path) = &a.ca else {
        return Ok(None);
    };
    std::fs::read(path)
        .map(Some)
        .map_err(|e| format!("--redis-ca {}: {e}", path.display()).into())
}

/// Expiry of a session record when sessions never idle out (`--session-idle-timeout 0`): every
/// key in the store expires.
pub const NEVER_IDLE_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The shared MCP sessions the flags ask for (`--redis`).
#[cfg(feature = "redis")]
pub fn shared_sessions(
    cli: &crate::cli::Cli,
) -> Result<Option<crate::session_store::SharedStore>, Box<dyn std::error::Error>> {
    use vitals_std::shared_limits::sessions::{SharedSessions, SharedSessionsConfig};
    let a = &cli.redis;
    let (Some(url), false) = (&a.url, cli.stdio) else {
        return Ok(None);
    };
    let idle = cli.sessions.session_idle_timeout;
    let ttl = if idle > 0.0 {
        std::time::Duration::from_secs_f64(idle.min(1e9))
    } else {
        NEVER_IDLE_TTL
    };
    let sessions = SharedSessions::new(&SharedSessionsConfig {
        url: url.clone(),
        ca_cert: ca_cert(a)?,
        timeout: std::time::Duration::from_millis(a.timeout_ms),
        prefix: a.prefix.clone(),
        ttl,
    })?;
    tracing::info!(
        ttl_secs = ttl.as_secs(),
        "MCP sessions shared through the store"
    );
    Ok(Some(crate::session_store::SharedStore(sessions)))
}
