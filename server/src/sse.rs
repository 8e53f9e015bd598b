//! The budget of long-lived SSE streams (`GET /mcp`): a total, and caps per client and per
//! session, so idle notification streams can never hold every connection slot.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clients::{Held, KeyedCounter};

/// Caps of the SSE budget.
#[derive(Debug, Clone, Copy)]
pub struct SseLimits {
    /// Streams open at once, all clients together.
    pub total: usize,
    /// Streams one client (key) may hold.
    pub per_client: usize,
    /// Streams one MCP session may hold.
    pub per_session: usize,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SseRefused {
    /// Every stream of the total budget is taken: 503.
    Total,
    /// This client holds its share: 429.
    Client,
    /// This session holds its share: 429.
    Session,
}

impl SseRefused {
    /// The HTTP status and the text to answer with.
    pub(crate) fn status(self) -> (http::StatusCode, &'static str) {
        match self {
            SseRefused::Total => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "too many SSE streams open: retry later\n",
            ),
            SseRefused::Client => (
                http::StatusCode::TOO_MANY_REQUESTS,
                "this client holds too many SSE streams\n",
            ),
            SseRefused::Session => (
                http::StatusCode::TOO_MANY_REQUESTS,
                "this session holds too many SSE streams\n",
            ),
        }
    }
}

impl std::fmt::Display for SseRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status().1.trim_end())
    }
}

impl std::error::Error for SseRefused {}

/// The SSE budget; see the [module docs](self).
pub(crate) struct SseBudget {
    total: Arc<Semaphore>,
    per_client: KeyedCounter<IpAddr>,
    per_session: KeyedCounter<Arc<str>>,
}

/// One open stream's share of the budget, given back on drop (it travels with the response
/// body).
pub(crate) struct SseStream {
    _total: OwnedSemaphorePermit,
    _client: Held<IpAddr>,
    _session: Option<Held<Arc<str>>>,
}

impl SseBudget {
    /// A budget with `limits` (every cap at least 1).
    pub(crate) fn new(limits: SseLimits) -> Self {
        SseBudget {
            total: Arc::new(Semaphore::new(limits.total.max(1))),
            per_client: KeyedCounter::new(limits.per_client.max(1)),
            per_session: KeyedCounter::new(limits.per_session.max(1)),
        }
    }

    /// Takes a stream for `client` in `session`.
    pub(crate) fn try_open(
        &self,
        client: IpAddr,
        session: Option<&str>,
    ) -> Result<SseStream, SseRefused> {
        let client = self
            .per_client
            .try_acquire(client)
            .ok_or(SseRefused::Client)?;
        let session = match session {
            Some(s) => Some(
                self.per_session
                    .try_acquire(Arc::from(s))
                    .ok_or(SseRefused::Session)?,
            ),
            None => None,
        };
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| SseRefused::Total)?;
        Ok(SseStream {
            _total: total,
            _client: client,
            _session: session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_apply_in_order() {
        let b = SseBudget::new(SseLimits {
            total: 3,
            per_client: 2,
            per_session: 1,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = b.try_open(a, Some("s1")).unwrap();
        assert_eq!(b.try_open(a, Some("s1")).err(), Some(SseRefused::Session));
        let s2 = b.try_open(a, Some("s2")).unwrap();
        assert_eq!(b.try_open(a, Some("s3")).err(), Some(SseRefused::Client));
        let s3 = b.try_open(c, Some("s3")).unwrap();
        assert_eq!(b.try_open(c, Some("s4")).err(), Some(SseRefused::Total));
        drop(s1);
        assert!(b.try_open(c, Some("s1")).is_ok());
        drop((s2, s3));
    }
}
