//! MCP sessions as the HTTP layer sees them, in front of rmcp's session manager:
//! - each session belongs to the client (key: address, IPv6 /64, or forwarded address) whose
//!   `initialize` created it; the id presented by any other client is answered like an unknown
//!   session (404), so a leaked id is useless elsewhere;
//! - the JSON-RPC ids of requests in flight in each session: rmcp routes responses by id, so a
//!   second request reusing an id while the first runs would steal or lose a response. It is
//!   refused (-32600) until the first one's response has been sent;
//! - a request whose client went away before its answer (the connection that would carry the
//!   answer closed, or the session was deleted) is cancelled in rmcp as if the client had sent
//!   `notifications/cancelled`, so the handler stops and the call is counted as cancelled.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use serde_json::Value;

/// Who may use a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The caller created it.
    Caller,
    /// Another client created it.
    Other,
    /// No session with this id was created here (or it was forgotten).
    Unknown,
}

type InFlightSet = Arc<Mutex<HashSet<(SessionId, String)>>>;

/// Session ownership and in-flight request ids; see the [module docs](self).
pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    owners: Mutex<HashMap<SessionId, IpAddr>>,
    in_flight: InFlightSet,
    /// Table size at which ended sessions are pruned next.
    prune_at: AtomicUsize,
}

const PRUNE_FLOOR: usize = 256;

impl Sessions {
    /// Ownership over the sessions of `manager`.
    pub fn new(manager: Arc<LocalSessionManager>) -> Self {
        Sessions {
            manager,
            owners: Mutex::default(),
            in_flight: Arc::default(),
            prune_at: AtomicUsize::new(PRUNE_FLOOR),
        }
    }

    /// Who may use `session`, asked by `client`.
    pub fn owner(&self, session: &str, client: IpAddr) -> Owner {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        match owners.get(session) {
            Some(o) if *o == client => Owner::Caller,
            Some(_) => Owner::Other,
            None => Owner::Unknown,
        }
    }

    /// Records that `client` created `session`. Ended sessions (closed, or expired by rmcp's
    /// idle timeout) are pruned whenever the table has doubled since the last pruning, so it
    /// stays within twice the live sessions.
    pub async fn bind(&self, session: &str, client: IpAddr) {
        let len = {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.insert(Arc::from(session), client);
            owners.len()
        };
        if len >= self.prune_at.load(Ordering::Relaxed) {
            let live = self.manager.sessions.read().await;
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.retain(|id, _| live.contains_key(id));
            self.prune_at
                .store((owners.len() * 2).max(PRUNE_FLOOR), Ordering::Relaxed);
        }
    }

    /// Whether rmcp still holds `session`.
    pub async fn exists(&self, session: &str) -> bool {
        let id: SessionId = Arc::from(session);
        self.manager.has_session(&id).await.unwrap_or(false)
    }

    /// Forgets `session` (after a DELETE).
    pub fn forget(&self, session: &str) {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
    }

    /// Marks request `id` in flight in `session` until the returned guard is dropped; `None`
    /// when a request with the same id is already in flight there.
    pub fn begin(&self, session: &str, id: &Value) -> Option<RequestInFlight> {
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
    pub async fn cancel_in_flight(&self, session: &str) {
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

    /// Sessions currently owned (for tests).
    #[cfg(test)]
    fn owned(&self) -> usize {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A JSON-RPC request id in flight in a session; released on drop (it travels with the
/// response body, so it lasts until the response has been sent).
pub struct RequestInFlight {
    set: InFlightSet,
    key: (SessionId, String),
    manager: Arc<LocalSessionManager>,
    answered: bool,
}

impl RequestInFlight {
    /// The response has been sent whole: dropping the guard then only frees the id.
    pub fn answered(&mut self) {
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
async fn cancel(manager: &LocalSessionManager, session: &SessionId, id: &str, reason: &str) {
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

    #[tokio::test]
    async fn sessions_belong_to_their_creator() {
        let s = Sessions::new(Arc::new(LocalSessionManager::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        s.bind("s1", a).await;
        assert_eq!(s.owner("s1", a), Owner::Caller);
        assert_eq!(s.owner("s1", b), Owner::Other);
        assert_eq!(s.owner("s2", a), Owner::Unknown);
        s.forget("s1");
        assert_eq!(s.owner("s1", a), Owner::Unknown);
        assert!(!s.exists("s1").await);
        // Binding past the pruning threshold drops sessions rmcp does not hold.
        for i in 0..PRUNE_FLOOR {
            s.bind(&format!("x{i}"), a).await;
        }
        assert!(s.owned() < PRUNE_FLOOR, "{}", s.owned());
    }

    #[test]
    fn duplicate_ids_are_refused_while_in_flight() {
        let s = Sessions::new(Arc::new(LocalSessionManager::default()));
        let first = s.begin("s", &json!(1)).unwrap();
        assert!(s.begin("s", &json!(1)).is_none());
        let other_session = s.begin("t", &json!(1)).unwrap();
        let string_id = s.begin("s", &json!("1")).unwrap();
        drop(first);
        assert!(s.begin("s", &json!(1)).is_some());
        drop((other_session, string_id));
    }
}
