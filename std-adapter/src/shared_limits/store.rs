//! The connection to Redis or Valkey: opened lazily (the server starts and serves with the store
//! down), reconnected in the background by the `redis` crate's connection manager, every
//! decision bounded by a short timeout.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::script::{BadReply, Call, Reply};

/// Why the store did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer within the timeout.
    Timeout,
    /// Could not connect, or the connection was lost.
    Connection,
    /// The store refused the credentials.
    Auth,
    /// The store answered with an error (a wrong key type, a script error, read-only replica).
    Server,
    /// The answer was not the script's.
    Reply,
}

impl ErrorKind {
    /// The `kind` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Auth => "auth",
            ErrorKind::Server => "server",
            ErrorKind::Reply => "reply",
        }
    }

    /// Every kind, for exporting zeros.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Auth,
        ErrorKind::Server,
        ErrorKind::Reply,
    ];
}

/// A failed decision: its kind and what the client library said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// The kind (the metric label).
    pub kind: ErrorKind,
    /// Details for the log.
    pub detail: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store {}: {}", self.kind.as_str(), self.detail)
    }
}

impl std::error::Error for StoreError {}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed {
            ErrorKind::Auth
        } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            ErrorKind::Connection
        } else if matches!(e.kind(), redis::ErrorKind::Server(_)) {
            ErrorKind::Server
        } else {
            ErrorKind::Connection
        };
        StoreError {
            kind,
            detail: e.to_string(),
        }
    }
}

impl From<BadReply> for StoreError {
    fn from(e: BadReply) -> Self {
        StoreError {
            kind: ErrorKind::Reply,
            detail: format!("unexpected reply {:?}", e.0),
        }
    }
}

/// A store URL the client library does not accept.
#[derive(Debug)]
pub struct UrlError(redis::RedisError);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid store URL (expected redis:// or unix://): {}",
            self.0
        )
    }
}

impl std::error::Error for UrlError {}

/// The store. Cheap to share; connects on first use.
pub struct Store {
    client: redis::Client,
    manager: OnceLock<Result<ConnectionManager, StoreError>>,
    timeout: Duration,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Store")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store at `url` (credentials in the URL authenticate the connection); nothing is
    /// connected yet.
    pub fn open(url: &str, timeout: Duration) -> Result<Store, UrlError> {
        Ok(Store {
            client: redis::Client::open(url).map_err(UrlError)?,
            manager: OnceLock::new(),
            timeout,
        })
    }

    /// The per-decision timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        self.manager
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(self.timeout))
                    .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(100))))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(StoreError::from)
            })
            .clone()
    }

    /// Runs one decision within the timeout (a `NOSCRIPT` answer reloads the script and
    /// retries inside the same budget).
    pub async fn decide(&self, call: &Call) -> Result<Reply, StoreError> {
        let mut con = self.manager()?;
        let inv = call.invocation();
        let run = inv.invoke_async::<Vec<i64>>(&mut con);
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(values)) => Ok(Reply::parse(values, call.buckets.len())?),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError {
                kind: ErrorKind::Timeout,
                detail: format!("no answer within {:?}", self.timeout),
            }),
        }
    }
}
