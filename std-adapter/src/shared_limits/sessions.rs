//! MCP sessions shared across replicas: each session's record in the same store as the limits,
//! so that a replica which does not hold a session can restore it from the record.
//!
//! A record ([`SessionRecord`]) holds what re-creating the session needs (the client's
//! `initialize` parameters, from which the protocol version is negotiated again), who may use
//! it (the owner's identity, [`owner_id`]) and when it was created. It lives under
//! `{PREFIX}:session:ID` (the id escaped, [`super::keys`]) with an expiry equal to the session
//! idle timeout, pushed back on every use ([`SharedSessions::touch`], [`SharedSessions::load`]):
//! a session unused everywhere for that long is gone everywhere. Deleting the record ends the
//! session on every replica (each checks it on the next request).
//!
//! While the store cannot answer (down, slow, its breaker open), every operation returns an
//! error at once or within the timeout and the caller keeps its sessions to itself: the first
//! failure is logged at warn, the return at info, and each operation not done is counted in
//! `shared_sessions_fallbacks_total{op}`.

use crate::series::Exact as _;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vitals_core::resilience::{CircuitBreaker, Outcome, Ticket};
use vitals_core::{Counter, StrFamily};

use super::keys::Keys;
use super::store::{ErrorKind, Store, StoreError, UrlError};
use crate::clock::MonotonicClock;
use crate::mcp::ClientKey;
use crate::registry::{RegistryBuilder, RegistryError};

/// What the store keeps of one MCP session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who may use the session ([`owner_id`] of its creator).
    pub owner: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The `params` of the client's `initialize` request, as sent.
    pub init: serde_json::Value,
}

/// The identity a record stores for `client`: `ip:ADDR`, `token:N` (the bearer token's index in
/// the configured list) or `local`. Replicas must see a client the same way (same token list,
/// same trusted proxies) to agree on it.
pub fn owner_id(client: ClientKey) -> String {
    match client {
        ClientKey::Ip(ip) => format!("ip:{ip}"),
        ClientKey::Token(i) => format!("token:{i}"),
        ClientKey::Local => "local".to_owned(),
    }
}

/// How session records are kept.
#[derive(Clone)]
pub struct SharedSessionsConfig {
    /// The store, as for [`super::SharedLimitsConfig::url`].
    pub url: String,
    /// PEM certificates to trust for a `rediss://` store instead of the system's roots.
    pub ca_cert: Option<Vec<u8>>,
    /// How long one operation may wait for the store.
    pub timeout: Duration,
    /// The hash tag of every key.
    pub prefix: String,
    /// Expiry of a record, pushed back on every use: the session idle timeout.
    pub ttl: Duration,
}

impl fmt::Debug for SharedSessionsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SharedSessionsConfig")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// An operation on the store: the `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Writing a new session's record.
    Put,
    /// Reading a record to restore a session held elsewhere.
    Load,
    /// Pushing a record's expiry back (and learning whether it still exists).
    Touch,
    /// Deleting a record (the client ended the session).
    Delete,
}

impl Op {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Load => "load",
            Op::Touch => "touch",
            Op::Delete => "delete",
        }
    }

    const ALL: [Op; 4] = [Op::Put, Op::Load, Op::Touch, Op::Delete];
}

/// Session records in the store; see the [module docs](self). Lives for the process.
pub struct SharedSessions {
    store: Store,
    keys: Keys,
    ttl_secs: u64,
    breaker: &'static CircuitBreaker,
    clock: MonotonicClock,
    down: AtomicBool,
    /// `shared_sessions_fallbacks_total{op}`: operations the store did not do.
    fallbacks: StrFamily<Counter, 1, 4, 8>,
}

impl fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSessions")
            .field("store", &self.store)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// A breaker ticket released on drop unless taken.
struct HeldTicket(&'static CircuitBreaker, Option<Ticket>);

impl Drop for HeldTicket {
    fn drop(&mut self) {
        if let Some(t) = self.1.take() {
            self.0.release(t);
        }
    }
}

impl SharedSessions {
    /// Records in the store of `config` (nothing is connected yet).
    pub fn new(config: &SharedSessionsConfig) -> Result<&'static SharedSessions, UrlError> {
        let store = Store::open_with_ca(&config.url, config.timeout, config.ca_cert.as_deref())?;
        Ok(crate::leak(SharedSessions {
            store,
            keys: Keys::new(&config.prefix),
            ttl_secs: config.ttl.as_secs_f64().ceil().clamp(1.0, 1e9) as u64,
            breaker: crate::leak(CircuitBreaker::new(super::breaker_config())),
            clock: MonotonicClock::new(),
            down: AtomicBool::new(false),
            fallbacks: StrFamily::new(["op"]),
        }))
    }

    /// Registers `shared_sessions_fallbacks_total{op}`.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        for op in Op::ALL {
            self.fallbacks.exact_labels([op.as_str()]);
        }
        b.register(
            "shared_sessions_fallbacks_total",
            "MCP session operations the shared store did not do (down, slow or its breaker open): \
             the session stays local to this replica. By operation.",
            None,
            &self.fallbacks,
        )?;
        Ok(())
    }

    /// Operations of kind `op` the store did not do.
    pub fn fallbacks(&self, op: Op) -> u64 {
        self.fallbacks.exact_labels([op.as_str()]).get()
    }

    /// Runs `cmd` under the breaker and the timeout, counting and logging a failure.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: Op,
        cmd: redis::Cmd,
    ) -> Result<T, StoreError> {
        let Ok(ticket) = self.breaker.try_acquire_ticket(self.clock.now()) else {
            self.failed(op, None);
            return Err(StoreError {
                kind: ErrorKind::Connection,
                detail: "breaker open".into(),
            });
        };
        // Given back if this future is dropped before the store answered.
        let mut held = HeldTicket(self.breaker, Some(ticket));
        let result = self.store.query::<T>(&cmd).await;
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if let Some(t) = held.1.take() {
            self.breaker.record(t, self.clock.now(), outcome);
        }
        match &result {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared sessions: the store answers again");
                }
            }
            Err(e) => self.failed(op, Some(e)),
        }
        result
    }

    fn failed(&self, op: Op, e: Option<&StoreError>) {
        self.fallbacks.exact_labels([op.as_str()]).inc();
        if !self.down.swap(true, Ordering::Relaxed) {
            let error = e.map_or_else(|| "breaker open".to_owned(), ToString::to_string);
            tracing::warn!(%error, op = op.as_str(),
                "shared sessions: store unavailable; sessions stay local to this replica until it answers");
        }
    }

    /// Writes the record of a new session `id` (expiring after the idle timeout).
    pub async fn put(&self, id: &str, record: &SessionRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError {
            kind: ErrorKind::Reply,
            detail: e.to_string(),
        })?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.session(id))
            .arg(json)
            .arg("EX")
            .arg(self.ttl_secs);
        self.run::<()>(Op::Put, cmd).await
    }

    /// The record of session `id`, its expiry pushed back; `None` when there is none (never
    /// created, deleted, or idle past the timeout).
    pub async fn load(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.keys.session(id)).arg("EX").arg(self.ttl_secs);
        let Some(json) = self.run::<Option<String>>(Op::Load, cmd).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| StoreError {
                kind: ErrorKind::Reply,
                detail: format!("session record: {e}"),
            })
    }

    /// Pushes the expiry of session `id` back; `false` when its record is gone (deleted through
    /// another replica, or idle past the timeout everywhere).
    pub async fn touch(&self, id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EXPIRE");
        cmd.arg(self.keys.session(id)).arg(self.ttl_secs);
        self.run::<bool>(Op::Touch, cmd).await
    }

    /// Deletes the record of session `id`.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.session(id));
        self.run::<()>(Op::Delete, cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_distinct_per_kind() {
        assert_eq!(
            owner_id(ClientKey::Ip("10.0.0.1".parse().unwrap())),
            "ip:10.0.0.1"
        );
        assert_eq!(owner_id(ClientKey::Token(3)), "token:3");
        assert_eq!(owner_id(ClientKey::Local), "local");
    }

    #[tokio::test]
    async fn a_store_that_is_down_fails_fast_counts_and_logs_once() {
        let dir = std::env::temp_dir().join(format!("vitals-no-store-{}", std::process::id()));
        let s = SharedSessions::new(&SharedSessionsConfig {
            url: format!("unix://{}/absent.sock", dir.display()),
            ca_cert: None,
            timeout: Duration::from_millis(200),
            prefix: "t".into(),
            ttl: Duration::from_secs(5),
        })
        .unwrap();
        for _ in 0..10 {
            assert!(s.touch("x").await.is_err());
        }
        assert_eq!(s.fallbacks(Op::Touch), 10);
        assert!(s.down.load(Ordering::Relaxed));
        assert!(s.load("x").await.is_err());
        assert_eq!(s.fallbacks(Op::Load), 1);
    }
}
