//! The connection to Redis or Valkey: opened lazily (the server starts and serves with the store
//! down), reconnected in the background by the `redis` crate's connection manager, every
//! decision bounded by a short timeout. `rediss://` connects over TLS (feature `redis-tls`:
//! rustls with the *ring* provider), trusting the system's roots or, when given, one CA.

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

/// A store URL (or TLS setting) the client library does not accept.
#[derive(Debug)]
pub struct UrlError(UrlProblem);

#[derive(Debug)]
enum UrlProblem {
    Redis(redis::RedisError),
    #[cfg_attr(feature = "redis-tls", allow(dead_code))]
    NoTls,
    CaWithoutTls,
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    Ca(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            UrlProblem::Redis(e) => write!(
                f,
                "invalid store URL (expected redis://, rediss:// or unix://): {e}"
            ),
            UrlProblem::NoTls => f.write_str(
                "rediss:// needs TLS, which this build leaves out (feature `redis-tls`)",
            ),
            UrlProblem::CaWithoutTls => {
                f.write_str("a CA certificate for the store is only used with rediss:// URLs")
            }
            UrlProblem::Ca(why) => write!(f, "the store's CA certificates: {why}"),
        }
    }
}

impl std::error::Error for UrlError {}

/// A client for `url`: over TLS for `rediss://`, trusting `ca` (PEM) instead of the system's
/// roots when given.
fn client(url: &str, ca: Option<&[u8]>) -> Result<redis::Client, UrlError> {
    let tls = url
        .get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"));
    if !tls {
        if ca.is_some() {
            return Err(UrlError(UrlProblem::CaWithoutTls));
        }
        return redis::Client::open(url).map_err(|e| UrlError(UrlProblem::Redis(e)));
    }
    tls_client(url, ca)
}

#[cfg(feature = "redis-tls")]
fn tls_client(url: &str, ca: Option<&[u8]>) -> Result<redis::Client, UrlError> {
    // rustls needs a process-wide crypto provider; ring is the only one this crate enables. An
    // error means one is installed already (by this or another library): that one is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(pem) = ca {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| UrlError(UrlProblem::Ca(e.to_string())))?;
        if certs.is_empty() {
            return Err(UrlError(UrlProblem::Ca(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
            )));
        }
    }
    match ca {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        None => redis::Client::open(url),
    }
    .map_err(|e| UrlError(UrlProblem::Redis(e)))
}

#[cfg(not(feature = "redis-tls"))]
fn tls_client(_url: &str, _ca: Option<&[u8]>) -> Result<redis::Client, UrlError> {
    Err(UrlError(UrlProblem::NoTls))
}

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
        Store::open_with_ca(url, timeout, None)
    }

    /// [`Store::open`], trusting `ca` (PEM certificates) for a `rediss://` URL instead of the
    /// system's roots.
    pub fn open_with_ca(
        url: &str,
        timeout: Duration,
        ca: Option<&[u8]>,
    ) -> Result<Store, UrlError> {
        Ok(Store {
            client: client(url, ca)?,
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

    /// Runs one command within the timeout.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut con = self.manager()?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut con)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError {
                kind: ErrorKind::Timeout,
                detail: format!("no answer within {:?}", self.timeout),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_the_ca_are_checked_before_connecting() {
        let t = Duration::from_millis(50);
        assert!(Store::open("redis://127.0.0.1:6379/0", t).is_ok());
        assert!(Store::open("unix:///tmp/absent.sock", t).is_ok());
        assert!(Store::open("http://127.0.0.1", t).is_err());
        let e = Store::open_with_ca("redis://127.0.0.1", t, Some(b"pem")).unwrap_err();
        assert!(e.to_string().contains("only used with rediss://"), "{e}");
        let tls = Store::open("rediss://localhost:6380", t);
        #[cfg(feature = "redis-tls")]
        {
            assert!(tls.is_ok());
            let e =
                Store::open_with_ca("rediss://localhost:6380", t, Some(b"not a PEM")).unwrap_err();
            assert!(e.to_string().contains("no PEM certificate"), "{e}");
        }
        #[cfg(not(feature = "redis-tls"))]
        assert!(tls.unwrap_err().to_string().contains("redis-tls"));
    }
}
