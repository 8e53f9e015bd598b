//! `--redis`: MCP sessions shared by the replicas using the same store
//! ([`vitals_std::shared_limits::sessions`]).
//!
//! - **Create.** After rmcp answered an `initialize` with a new session, the guard writes the
//!   session's record (the `initialize` params, the owner's identity, the creation time) before
//!   the client sees the session id, and marks the session shared. When the store cannot take
//!   it, the session stays local to this replica.
//! - **Use elsewhere.** A replica that does not hold a session loads its record; when the caller
//!   is its owner, a place is reserved under the session caps and rmcp restores the session
//!   (its `SessionStore` hook, [`RmcpStore`]): a fresh handler is initialized with the stored
//!   params, as if the client had initialized here. In gateway mode the restored session uses
//!   this replica's upstream connections. Anyone else gets 404, as for an unknown session.
//! - **Use here.** Each request in a shared session pushes its record's expiry back (the idle
//!   timeout); a record that is gone (deleted through another replica, or idle everywhere) ends
//!   this replica's copy, and the request gets 404.
//! - **Delete.** A DELETE through any replica deletes the record (rmcp calls [`RmcpStore`]);
//!   the other replicas end their copies on their next request.
//! - **Store down.** Requests in sessions held here are served as if the store were absent; a
//!   session held only elsewhere is unknown here (404: the client initializes again).

pub(crate) use imp::{Loaded, SharedStore};

#[cfg(feature = "redis")]
mod imp {
    use std::sync::Arc;

    use rmcp::model::InitializeRequestParams;
    use rmcp::transport::streamable_http_server::session::{
        SessionState, SessionStore, SessionStoreError,
    };
    use serde_json::Value;
    use vitals_std::shared_limits::sessions::{owner_id, SessionRecord, SharedSessions};
    use vitals_std::ClientKey;

    /// The session records in the store.
    #[derive(Debug, Clone, Copy)]
    pub struct SharedStore(pub &'static SharedSessions);

    /// What the store says about a session this replica does not hold.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Loaded {
        /// It exists and the caller owns it.
        Owned,
        /// It does not exist, belongs to someone else, or the store cannot say.
        NotHere,
    }

    impl SharedStore {
        /// Writes the record of new session `id` of `owner`, created with `init` (the
        /// `initialize` params); whether the store took it.
        pub async fn put(&self, id: &str, owner: ClientKey, init: Value) -> bool {
            let created_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let record = SessionRecord {
                owner: owner_id(owner),
                created_ms,
                init,
            };
            self.0.put(id, &record).await.is_ok()
        }

        /// Whether `caller` may restore session `id` from the store.
        pub async fn check(&self, id: &str, caller: ClientKey) -> Loaded {
            match self.0.load(id).await {
                Ok(Some(r)) if r.owner == owner_id(caller) => Loaded::Owned,
                _ => Loaded::NotHere,
            }
        }

        /// Pushes the record's expiry back: `Some(false)` when it is gone, `None` when the store
        /// cannot say.
        pub async fn touch(&self, id: &str) -> Option<bool> {
            self.0.touch(id).await.ok()
        }

        /// rmcp's hook: restores load records from here; a DELETE deletes them.
        pub fn rmcp(&self) -> Arc<dyn SessionStore> {
            Arc::new(RmcpStore(self.0))
        }
    }

    /// rmcp's view of the records.
    struct RmcpStore(&'static SharedSessions);

    #[async_trait::async_trait]
    impl SessionStore for RmcpStore {
        async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
            let Some(record) = self.0.load(session_id).await? else {
                return Ok(None);
            };
            let params: InitializeRequestParams = serde_json::from_value(record.init)?;
            Ok(Some(SessionState::new(params)))
        }

        /// Nothing: the guard writes the record, with its owner, once rmcp has answered (see
        /// the [module docs](super)).
        async fn store(&self, _: &str, _: &SessionState) -> Result<(), SessionStoreError> {
            Ok(())
        }

        async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
            Ok(self.0.delete(session_id).await?)
        }
    }
}

#[cfg(not(feature = "redis"))]
mod imp {
    use serde_json::Value;
    use vitals_std::ClientKey;

    /// Session records in a store: none in a build without the `redis` feature (no value of
    /// this type exists).
    #[derive(Debug, Clone, Copy)]
    pub enum SharedStore {}

    /// What the store says about a session this replica does not hold.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Loaded {
        /// It exists and the caller owns it.
        Owned,
        /// It does not exist, belongs to someone else, or the store cannot say.
        NotHere,
    }

    impl SharedStore {
        /// Never called.
        pub async fn put(&self, _: &str, _: ClientKey, _: Value) -> bool {
            match *self {}
        }

        /// Never called.
        pub async fn check(&self, _: &str, _: ClientKey) -> Loaded {
            match *self {}
        }

        /// Never called.
        pub async fn touch(&self, _: &str) -> Option<bool> {
            match *self {}
        }
    }
}
