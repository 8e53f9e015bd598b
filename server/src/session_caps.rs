//! How many MCP sessions may live at once, and what the server says about them.
//!
//! Every session held costs memory until its client deletes it or it idles out, so sessions are
//! bounded: in total (`--max-sessions`) and per client (`--max-sessions-per-client`, the client
//! keyed as for every per-client limit: its bearer token when `/mcp` needs one, else its
//! address or IPv6 /64). With `--redis` the caps and the metrics count the sessions this
//! replica holds (a session used through two replicas is held, and counted, by both). An `initialize` that would go beyond either is refused
//! before rmcp creates anything: HTTP 503 with `Retry-After` and a JSON-RPC error (-32000)
//! naming the limit. The MCP specification prescribes no error for a full server; 503 is what
//! Streamable HTTP clients already retry.
//!
//! The table knows exactly which sessions live: [`CappedSessionManager`] wraps rmcp's session
//! manager and hears of each session when it is created and when it ends (rmcp closes a
//! session when its client deletes it, when it idles out, and when its service stops), so
//! `mcp_sessions_active` and `mcp_server_session_duration_seconds` are updated exactly once per
//! session, whichever way it ends.
//!
//! A place is reserved ([`SessionSlot`]) while rmcp answers an `initialize` (or restores a
//! session another replica created, `--redis`); the reservation becomes the session when it is
//! bound to its client, or is given back when the answer was not a new session. A session being created counts twice for that instant (reserved and
//! live), so the caps can refuse one too many at the edge but never admit one too many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vitals_std::series::Exact as _;

use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use vitals_std::vitals_core::{Bounds, Counter, Gauge, Histogram, StrFamily};
use vitals_std::ClientKey;
use vitals_std::{RegistryBuilder, RegistryError};

use crate::session_manager::{LeanSessionManager, SessionSettings};

/// Buckets of `mcp_server_session_duration_seconds`: the OpenTelemetry MCP semantic
/// conventions' advice (10 ms … 300 s), in milliseconds.
pub(crate) const SESSION_DURATION_BOUNDS: Bounds<14> = Bounds::millis([
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
]);

/// The session metrics.
pub(crate) struct SessionMetrics {
    /// `mcp_sessions_active`: sessions rmcp holds.
    pub active: Gauge,
    /// `mcp_server_session_duration_seconds`: from creation to end, observed when a session ends.
    pub duration: Histogram<14>,
    /// `mcp_sessions_refused_total{limit}`: `initialize` requests refused by a cap
    /// (`limit` = `total` or `per_client`).
    pub refused: StrFamily<Counter, 1, 2, 16>,
    /// `mcp_sessions_restored_total`: sessions created through another replica that this one
    /// restored from the shared store (`--redis`).
    pub restored: Counter,
}

impl SessionMetrics {
    /// Empty metrics.
    pub(crate) const fn new() -> Self {
        SessionMetrics {
            active: Gauge::new(),
            duration: Histogram::new(SESSION_DURATION_BOUNDS),
            refused: StrFamily::new(["limit"]),
            restored: Counter::new(),
        }
    }

    /// Registers the set.
    pub(crate) fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register(
            "mcp_sessions_active",
            "MCP sessions held by the server.",
            None,
            &self.active,
        )?;
        b.register(
            "mcp_server_session_duration_seconds",
            "Lifetime of MCP sessions on the server, observed when a session ends.",
            Some("seconds"),
            &self.duration,
        )?;
        // Both series exist (at 0) before the first refusal.
        self.refused
            .exact_labels([SessionsFull::Total.describe().0]);
        self.refused
            .exact_labels([SessionsFull::PerClient.describe().0]);
        b.register(
            "mcp_sessions_refused_total",
            "MCP initialize requests refused because a session cap was reached, by cap.",
            None,
            &self.refused,
        )?;
        b.register(
            "mcp_sessions_restored_total",
            "MCP sessions created through another replica and restored here from the shared store.",
            None,
            &self.restored,
        )?;
        Ok(())
    }
}

/// The process's session metrics (one server per process).
pub(crate) static METRICS: SessionMetrics = SessionMetrics::new();

/// The session caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most sessions at once.
    pub total: usize,
    /// Most sessions one client may hold at once.
    pub per_client: usize,
}

/// Which cap refused a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionsFull {
    /// The server holds `--max-sessions` sessions.
    Total,
    /// The client holds `--max-sessions-per-client` sessions.
    PerClient,
}

impl SessionsFull {
    /// The `limit` label and the refusal's message.
    pub(crate) fn describe(self) -> (&'static str, &'static str) {
        match self {
            SessionsFull::Total => (
                "total",
                "Server busy: the session limit (--max-sessions) is reached; retry later",
            ),
            SessionsFull::PerClient => (
                "per_client",
                "Too many sessions: this client holds --max-sessions-per-client sessions; \
                 delete one (HTTP DELETE) or retry later",
            ),
        }
    }
}

impl std::fmt::Display for SessionsFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe().1)
    }
}

impl std::error::Error for SessionsFull {}

#[derive(Debug)]
struct Live {
    owner: Option<ClientKey>,
    opened: Instant,
    /// Its record is in the shared store (`--redis`): another replica may end it.
    shared: bool,
}

#[derive(Debug, Default)]
struct State {
    live: HashMap<SessionId, Live>,
    /// Sessions held or reserved per client.
    per_client: HashMap<ClientKey, usize>,
    reserved: usize,
}

impl State {
    fn release_client(&mut self, client: ClientKey) {
        if let Some(n) = self.per_client.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

/// The live sessions, their owners and the caps; see the [module docs](self).
pub(crate) struct SessionTable {
    state: Mutex<State>,
    limits: SessionLimits,
    metrics: &'static SessionMetrics,
}

impl SessionTable {
    /// An empty table with `limits`, reporting to `metrics`.
    pub(crate) fn new(limits: SessionLimits, metrics: &'static SessionMetrics) -> Self {
        SessionTable {
            state: Mutex::default(),
            limits,
            metrics,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a place for a new session of `client`, or says which cap is reached.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        client: ClientKey,
    ) -> Result<SessionSlot, SessionsFull> {
        let mut s = self.state();
        let refused = if s.live.len() + s.reserved >= self.limits.total {
            Some(SessionsFull::Total)
        } else if s.per_client.get(&client).copied().unwrap_or(0) >= self.limits.per_client {
            Some(SessionsFull::PerClient)
        } else {
            None
        };
        if let Some(full) = refused {
            self.metrics.refused.exact_labels([full.describe().0]).inc();
            return Err(full);
        }
        s.reserved += 1;
        *s.per_client.entry(client).or_default() += 1;
        Ok(SessionSlot {
            table: self.clone(),
            client,
            armed: true,
        })
    }

    /// Binds `session` (just created or restored) to the client of `slot`; whether this slot
    /// became the session's place.
    pub(crate) fn bind(&self, session: &str, mut slot: SessionSlot) -> bool {
        slot.armed = false;
        let mut s = self.state();
        s.reserved -= 1;
        match s.live.get_mut(session) {
            Some(live) if live.owner.is_none() => {
                live.owner = Some(slot.client);
                true
            }
            // A concurrent request restored and bound it first, or it ended already: this
            // place is not needed.
            Some(_) | None => {
                s.release_client(slot.client);
                false
            }
        }
    }

    /// Counts a session restored from the shared store.
    pub(crate) fn count_restored(&self) {
        self.metrics.restored.inc();
    }

    /// The client that owns `session`, if it lives and is bound.
    pub(crate) fn owner(&self, session: &str) -> Option<ClientKey> {
        self.state().live.get(session).and_then(|l| l.owner)
    }

    /// Notes that the record of `session` is in the shared store.
    pub(crate) fn mark_shared(&self, session: &str) {
        if let Some(live) = self.state().live.get_mut(session) {
            live.shared = true;
        }
    }

    /// Whether the record of `session` is in the shared store.
    pub(crate) fn is_shared(&self, session: &str) -> bool {
        self.state().live.get(session).is_some_and(|l| l.shared)
    }

    /// Sessions alive.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().live.len()
    }

    fn opened(&self, id: &SessionId) {
        let mut s = self.state();
        let fresh = s
            .live
            .insert(
                id.clone(),
                Live {
                    owner: None,
                    opened: Instant::now(),
                    shared: false,
                },
            )
            .is_none();
        if fresh {
            self.metrics.active.inc();
        }
    }

    /// Notes that session `id` ended (once; later calls do nothing).
    pub(crate) fn closed(&self, id: &SessionId) {
        let mut s = self.state();
        let Some(live) = s.live.remove(id) else {
            return;
        };
        if let Some(owner) = live.owner {
            s.release_client(owner);
        }
        drop(s);
        self.metrics.active.dec();
        self.metrics
            .duration
            .observe_duration(live.opened.elapsed());
    }
}

/// A place reserved for a session being created; given back on drop unless bound.
pub(crate) struct SessionSlot {
    table: Arc<SessionTable>,
    client: ClientKey,
    armed: bool,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.table.state();
            s.reserved -= 1;
            s.release_client(self.client);
        }
    }
}

/// The session manager ([`LeanSessionManager`]), telling a [`SessionTable`] when sessions
/// begin and end.
pub(crate) struct CappedSessionManager {
    inner: Arc<LeanSessionManager>,
    table: Arc<SessionTable>,
}

impl CappedSessionManager {
    /// Wraps a session manager whose sessions idle out after `idle` (none: never).
    pub(crate) fn new(idle: Option<Duration>, table: Arc<SessionTable>) -> Self {
        let inner = LeanSessionManager::new(SessionSettings {
            keep_alive: idle,
            ..SessionSettings::default()
        });
        CappedSessionManager {
            inner: Arc::new(inner),
            table,
        }
    }

    /// The wrapped manager.
    pub(crate) fn local(&self) -> &Arc<LeanSessionManager> {
        &self.inner
    }

    /// The table.
    pub(crate) fn table(&self) -> &Arc<SessionTable> {
        &self.table
    }
}

type Error = <LeanSessionManager as SessionManager>::Error;
type Transport = <LeanSessionManager as SessionManager>::Transport;

impl SessionManager for CappedSessionManager {
    type Error = Error;
    type Transport = Transport;

    async fn create_session(&self) -> Result<(SessionId, Transport), Error> {
        let (id, transport) = self.inner.create_session().await?;
        self.table.opened(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Error> {
        let closed = self.inner.close_session(id).await;
        self.table.closed(id);
        closed
    }

    fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl std::future::Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error>,
    > + Send {
        self.inner.create_stream(id, message)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Error> {
        self.inner.accept_message(id, message).await
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl std::future::Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error>,
    > + Send {
        self.inner.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl std::future::Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error>,
    > + Send {
        self.inner.resume(id, last_event_id)
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Transport>, Error> {
        let outcome = self.inner.restore_session(id.clone()).await?;
        if matches!(outcome, RestoreOutcome::Restored(_)) {
            self.table.opened(&id);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(total: usize, per_client: usize) -> Arc<SessionTable> {
        static M: SessionMetrics = SessionMetrics::new();
        Arc::new(SessionTable::new(SessionLimits { total, per_client }, &M))
    }

    #[test]
    fn caps_hold_and_places_come_back() {
        let t = table(3, 2);
        let a = ClientKey::Ip("10.0.0.1".parse().unwrap());
        let b = ClientKey::Token(0);
        let s1 = t.reserve(a).unwrap();
        t.opened(&Arc::from("s1"));
        t.bind("s1", s1);
        let s2 = t.reserve(a).unwrap();
        assert_eq!(t.reserve(a).err(), Some(SessionsFull::PerClient));
        // An initialize that made no session gives its place back.
        drop(s2);
        let s2 = t.reserve(a).unwrap();
        t.opened(&Arc::from("s2"));
        t.bind("s2", s2);
        assert_eq!(t.owner("s2"), Some(a));
        let s3 = t.reserve(b).unwrap();
        assert_eq!(t.reserve(b).err(), Some(SessionsFull::Total));
        drop(s3);
        // A session that ends frees its client's place and the total's; twice is once.
        t.closed(&Arc::from("s1"));
        t.closed(&Arc::from("s1"));
        assert_eq!(t.len(), 1);
        assert!(t.reserve(a).is_ok());
        assert_eq!(t.owner("s1"), None);
    }

    #[test]
    fn a_session_that_ends_before_it_is_bound_frees_its_place() {
        let t = table(1, 1);
        let a = ClientKey::Ip("10.0.0.1".parse().unwrap());
        let slot = t.reserve(a).unwrap();
        t.opened(&Arc::from("s"));
        t.closed(&Arc::from("s"));
        t.bind("s", slot);
        assert!(t.reserve(a).is_ok());
    }

    #[test]
    fn a_session_restored_twice_at_once_holds_one_place() {
        let t = table(4, 2);
        let a = ClientKey::Token(1);
        // Two requests for a session held elsewhere reserve a place each; one restores it.
        let first = t.reserve(a).unwrap();
        let second = t.reserve(a).unwrap();
        t.opened(&Arc::from("s"));
        assert!(t.bind("s", first));
        assert!(!t.bind("s", second));
        assert_eq!(t.owner("s"), Some(a));
        assert!(t.reserve(a).is_ok(), "the second place was given back");
        assert!(!t.is_shared("s"));
        t.mark_shared("s");
        assert!(t.is_shared("s"));
        t.closed(&Arc::from("s"));
        assert!(!t.is_shared("s"));
    }
}
