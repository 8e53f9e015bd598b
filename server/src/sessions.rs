//! MCP sessions as the HTTP layer sees them, in front of rmcp's session manager:
//! - each session belongs to the client (key: its bearer token when `/mcp` needs one, else its
//!   address, IPv6 /64, or forwarded address) whose `initialize` created it; the id presented by
//!   any other client is answered like an unknown session (404), so a leaked id is useless
//!   elsewhere;
//! - the JSON-RPC ids of requests in flight in each session: rmcp routes responses by id, so a
//!   second request reusing an id while the first runs would steal or lose a response. It is
//!   refused (-32600) until the first one's response has been sent;
//! - a request whose client went away before its answer (the connection that would carry the
//!   answer closed, or the session was deleted) is cancelled in rmcp as if the client had sent
//!   `notifications/cancelled`, so the handler stops and the call is counted as cancelled.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use serde_json::Value;
use vitals_std::ClientKey;

use crate::session_caps::{CappedSessionManager, SessionSlot, SessionTable, SessionsFull};
use crate::session_manager::LeanSessionManager;

/// Who may use a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The caller created it.
    Caller,
    /// Another client created it.
    Other,
    /// No session with this id lives here (never created, deleted, or expired).
    Unknown,
}

type InFlightSet = Arc<Mutex<HashSet<(SessionId, String)>>>;

/// Session ownership and in-flight request ids; see the [module docs](self).
pub(crate) struct Sessions {
    manager: Arc<LeanSessionManager>,
    table: Arc<SessionTable>,
    in_flight: InFlightSet,
}

impl Sessions {
    /// Ownership over the sessions of `manager`.
    pub(crate) fn new(manager: &CappedSessionManager) -> Self {
        Sessions {
            manager: manager.local().clone(),
            table: manager.table().clone(),
            in_flight: Arc::default(),
        }
    }

    /// Who may use `session`, asked by `client`.
    pub(crate) fn owner(&self, session: &str, client: ClientKey) -> Owner {
        match self.table.owner(session) {
            Some(o) if o == client => Owner::Caller,
            Some(_) => Owner::Other,
            None => Owner::Unknown,
        }
    }

    /// Reserves a place for a new session of `client` (see [`crate::session_caps`]).
    pub(crate) fn reserve(&self, client: ClientKey) -> Result<SessionSlot, SessionsFull> {
        self.table.reserve(client)
    }

    /// Notes that the record of `session` is in the shared store (`--redis`).
    pub(crate) fn mark_shared(&self, session: &str) {
        self.table.mark_shared(session);
    }

    /// Whether the record of `session` is in the shared store.
    pub(crate) fn is_shared(&self, session: &str) -> bool {
        self.table.is_shared(session)
    }

    /// Ends this replica's copy of `session` (it was ended through another replica): its
    /// requests in flight are cancelled, its handler stops, the table hears of it now.
    pub(crate) async fn end_local(&self, session: &str) {
        self.cancel_in_flight(session).await;
        let id: SessionId = Arc::from(session);
        if let Err(e) = self.manager.close_session(&id).await {
            tracing::debug!(error = %e, "closing a session ended elsewhere");
        }
        self.table.closed(&id);
    }

    /// Records that the client of `slot` created (or restored) `session`; whether this slot
    /// became the session's place.
    pub(crate) fn bind(&self, session: &str, slot: SessionSlot) -> bool {
        self.table.bind(session, slot)
    }

    /// Counts a session restored from the shared store.
    pub(crate) fn count_restored(&self) {
        self.table.count_restored();
    }

    /// Marks request `id` in flight in `session` until the returned guard is dropped; `None`
    /// when a request with the same id is already in flight there.
    pub(crate) fn begin(&self, session: &str, id: &Value) -> Option<RequestInFlight> {
        let key = (Arc::from(session), id.to_string());
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(key.clone()) {
            return None;
        }
        Some(RequestInFlight {
            set: self.in_flight.clone(),
            key,
            manager: self.manager.clone(),
            answered: false,
        })
    }

    /// Cancels every request in flight in `session` (before it is deleted: the session's
    /// handlers stop and are counted as cancelled at once).
    pub(crate) async fn cancel_in_flight(&self, session: &str) {
        let ids: Vec<String> = {
            let set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            set.iter()
                .filter(|(s, _)| &**s == session)
                .map(|(_, id)| id.clone())
                .collect()
        };
        let id: SessionId = Arc::from(session);
        for request in ids {
            cancel(&self.manager, &id, &request, "session deleted").await;
        }
    }
}

/// A JSON-RPC request id in flight in a session; released on drop (it travels with the
/// response body, so it lasts until the response has been sent).
pub(crate) struct RequestInFlight {
    set: InFlightSet,
    key: (SessionId, String),
    manager: Arc<LeanSessionManager>,
    answered: bool,
}

impl RequestInFlight {
    /// The response has been sent whole: dropping the guard then only frees the id.
    pub(crate) fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        if self.answered {
            return;
        }
        // The response was dropped unsent: the client went away. (A request rmcp has already
        // answered ignores the cancellation.)
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let manager = self.manager.clone();
            let (session, id) = self.key.clone();
            rt.spawn(async move { cancel(&manager, &session, &id, "client went away").await });
        }
    }
}

/// Delivers `notifications/cancelled` for request `id` (its JSON text) to `session`, as if its
/// client had sent it; a session that has ended is left alone.
async fn cancel(manager: &LeanSessionManager, session: &SessionId, id: &str, reason: &str) {
    let Ok(request_id) = serde_json::from_str::<Value>(id) else {
        return;
    };
    let message = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": reason}});
    let Ok(message) = serde_json::from_value(message) else {
        return;
    };
    if let Err(e) = manager.accept_message(session, message).await {
        tracing::debug!(error = %e, "cancelling a request of an ended session");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_ids_are_refused_while_in_flight() {
        let limits = crate::session_caps::SessionLimits {
            total: 4,
            per_client: 4,
        };
        let table = Arc::new(SessionTable::new(limits, &crate::session_caps::METRICS));
        let s = Sessions::new(&CappedSessionManager::new(None, table));
        let first = s.begin("s", &json!(1)).unwrap();
        assert!(s.begin("s", &json!(1)).is_none());
        let other_session = s.begin("t", &json!(1)).unwrap();
        let string_id = s.begin("s", &json!("1")).unwrap();
        drop(first);
        assert!(s.begin("s", &json!(1)).is_some());
        drop((other_session, string_id));
    }
}
