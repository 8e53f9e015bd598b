//! MCP sessions held in memory, at a fraction of what rmcp's `LocalSessionManager` costs per
//! idle session.
//!
//! rmcp's local manager runs every session as a worker task between the HTTP layer and the
//! service, connected by five tokio channels (session events, the standalone stream, and the
//! worker transport's three queues). A tokio channel allocates a block of 32 messages when it is
//! created, whatever its capacity, and rmcp's message types are hundreds of bytes: an idle
//! session held 64 KB resident, most of it in those blocks and the worker task. Here it holds
//! 24 KB, the rest being rmcp's service loop (`tests/tests/sessions_cap.rs`; the figures and
//! where they go are in `tests/README.md`).
//!
//! Here a session is one shared structure and no task of its own: the HTTP side and the service
//! call into it directly. What it keeps:
//! - the messages from the client waiting for the service (a queue that allocates only when
//!   used, bounded like rmcp's channel: a full queue makes the HTTP request wait);
//! - the routes of the server's messages: a request's answer, its progress and the requests it
//!   causes (SEP-2260) go to the SSE stream of the POST that carried it, everything else to the
//!   standalone GET stream; the same event ids as rmcp (`index` or `index/stream`), the same
//!   priming event, the same replay of the last messages of a stream on `Last-Event-ID`, the
//!   same shadow streams for a second GET;
//! - the time of its last activity: one task per manager (not per session) ends sessions idle
//!   for longer than the idle timeout, and sessions never initialized after rmcp's 60 s.
//!
//! A stream's channel (a block of 32 small events) exists only while its POST or GET is open.
//! There is no external event store; sessions restored by rmcp's session store are created
//! afresh with their id, as with the local manager.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, JsonRpcMessage,
    ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::common::server_side_http::session_id;
use rmcp::transport::streamable_http_server::session::local::SessionConfig;
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use tokio::sync::{mpsc, oneshot, Notify};

/// What went wrong with a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// No session with this id lives here.
    NotFound(SessionId),
    /// The session has ended.
    Closed,
    /// The stream a message or a resumption belongs to is gone.
    StreamClosed(Option<u64>),
    /// A `Last-Event-ID` that is not one of ours.
    InvalidEventId(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::NotFound(id) => write!(f, "session not found: {id}"),
            SessionError::Closed => f.write_str("session closed"),
            SessionError::StreamClosed(Some(id)) => write!(f, "stream {id} closed"),
            SessionError::StreamClosed(None) => f.write_str("standalone stream closed"),
            SessionError::InvalidEventId(id) => write!(f, "invalid event id `{id}`"),
        }
    }
}

impl std::error::Error for SessionError {}

/// The session settings (rmcp's defaults but the idle timeout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSettings {
    /// A session with no message either way for this long ends (none: never).
    pub keep_alive: Option<Duration>,
    /// Messages queued per session and per stream before the sender waits; events a stream
    /// keeps for `Last-Event-ID`.
    pub capacity: usize,
    /// The SSE `retry` of the priming event that opens every POST stream (none: no priming).
    pub sse_retry: Option<Duration>,
    /// A session whose `initialize` has not arrived after this long ends.
    pub init_timeout: Option<Duration>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            keep_alive: Some(SessionConfig::DEFAULT_KEEP_ALIVE),
            capacity: SessionConfig::DEFAULT_CHANNEL_CAPACITY,
            sse_retry: Some(SessionConfig::DEFAULT_SSE_RETRY),
            init_timeout: Some(SessionConfig::DEFAULT_INIT_TIMEOUT),
        }
    }
}

type Sessions = RwLock<HashMap<SessionId, Arc<Session>>>;

/// The sessions; see the [module docs](self).
pub(crate) struct LeanSessionManager {
    sessions: Arc<Sessions>,
    settings: SessionSettings,
    sweeping: AtomicBool,
}

impl LeanSessionManager {
    /// No sessions yet.
    pub(crate) fn new(settings: SessionSettings) -> Self {
        LeanSessionManager {
            sessions: Arc::default(),
            settings,
            sweeping: AtomicBool::new(false),
        }
    }

    fn get(&self, id: &SessionId) -> Result<Arc<Session>, SessionError> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|s| !s.is_closed())
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.clone()))
    }

    fn insert(&self, id: SessionId) -> SessionTransport {
        self.start_sweeper();
        let session = Arc::new(Session::new(id.clone(), self.settings.capacity));
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, session.clone());
        SessionTransport { session }
    }

    /// The one task that ends idle sessions, started with the first session (inside the
    /// runtime); it stops when the manager is dropped.
    fn start_sweeper(&self) {
        let idle = self.settings.keep_alive;
        let init = self.settings.init_timeout;
        if (idle.is_none() && init.is_none()) || self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let shortest = idle.into_iter().chain(init).min().unwrap_or(Duration::MAX);
        let period = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let sessions: Weak<Sessions> = Arc::downgrade(&self.sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                let expired: Vec<Arc<Session>> = sessions
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .filter(|s| s.expired(idle, init))
                    .cloned()
                    .collect();
                drop(sessions);
                for s in expired {
                    tracing::debug!(session = %s.id, "session idle: closing");
                    s.close();
                }
            }
        });
    }
}

impl SessionManager for LeanSessionManager {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, SessionTransport), SessionError> {
        let id = session_id();
        let transport = self.insert(id.clone());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, SessionError> {
        let session = self.get(id)?;
        let (tx, rx) = oneshot::channel();
        session.inbound().initialize = Some(tx);
        session.push(message).await?;
        let response = rx.await.map_err(|_| SessionError::Closed)?;
        session.initialized.store(true, Ordering::Relaxed);
        Ok(response)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.get(id).is_ok())
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), SessionError> {
        let removed = self
            .sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(session) = removed {
            session.close();
            // Its streams end now, not when the service lets go of the session (unless a
            // message is being handed to one: then when the session is dropped).
            if let Ok(mut out) = session.out.try_lock() {
                *out = Outbound::default();
            }
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let session = self.get(id)?;
        session.touch();
        let rx = {
            let mut out = session.out.lock().await;
            let stream_id = out.next_stream_id;
            out.next_stream_id = out.next_stream_id.wrapping_add(1);
            let (tx, rx) = mpsc::channel(self.settings.capacity);
            let mut stream = Cached::new(Some(tx), Some(stream_id));
            if let Some(retry) = self.settings.sse_retry {
                stream
                    .send(ServerSseMessage::retry(retry), self.settings.capacity)
                    .await;
            }
            out.streams.insert(stream_id, stream);
            if let JsonRpcMessage::Request(r) = &message {
                out.route(Route::Request(r.id.clone()), stream_id);
                if let Some(token) = r.request.get_meta().get_progress_token() {
                    out.route(Route::Progress(token), stream_id);
                }
            }
            rx
        };
        session.push(message).await?;
        Ok(Events(rx))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), SessionError> {
        let session = self.get(id)?;
        let cancelled = match &message {
            JsonRpcMessage::Notification(n) => match &n.notification {
                ClientNotification::CancelledNotification(c) => c.params.request_id.clone(),
                _ => None,
            },
            _ => None,
        };
        // The service hears of a cancellation first, even while a message is being handed to a
        // slow stream of the session.
        session.push(message).await?;
        if let Some(request) = cancelled {
            // The cancelled request's stream ends: no answer will come on it.
            session
                .out
                .lock()
                .await
                .end_stream_of(&Route::Request(request));
        }
        Ok(())
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let session = self.get(id)?;
        session.touch();
        let rx = session
            .out
            .lock()
            .await
            .standalone(Some(0), self.settings.capacity)
            .await?;
        Ok(Events(rx))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let session = self.get(id)?;
        session.touch();
        let invalid = || SessionError::InvalidEventId(last_event_id.clone());
        let (index, stream) = match last_event_id.split_once('/') {
            Some((i, s)) => (
                i.parse::<usize>().map_err(|_| invalid())?,
                Some(s.parse::<u64>().map_err(|_| invalid())?),
            ),
            None => (last_event_id.parse::<usize>().map_err(|_| invalid())?, None),
        };
        let capacity = self.settings.capacity;
        let mut out = session.out.lock().await;
        let rx = match stream {
            Some(stream_id) => {
                let stream = out
                    .streams
                    .get_mut(&stream_id)
                    .ok_or(SessionError::StreamClosed(Some(stream_id)))?;
                let (tx, rx) = mpsc::channel(capacity);
                stream.tx = Some(tx);
                stream.replay(index).await?;
                rx
            }
            None => out.standalone(Some(index), capacity).await?,
        };
        Ok(Events(rx))
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<SessionTransport>, SessionError> {
        if self.get(&id).is_ok() {
            return Ok(RestoreOutcome::AlreadyPresent);
        }
        Ok(RestoreOutcome::Restored(self.insert(id)))
    }
}

/// The client's messages waiting for the service, and the handshake.
#[derive(Default)]
struct Inbound {
    queue: VecDeque<ClientJsonRpcMessage>,
    /// Where the service's first message (the answer to `initialize`) goes.
    initialize: Option<oneshot::Sender<ServerJsonRpcMessage>>,
}

/// One session.
struct Session {
    id: SessionId,
    created: Instant,
    capacity: usize,
    /// Milliseconds from `created` to the last message either way.
    active_ms: AtomicU64,
    initialized: AtomicBool,
    closed: AtomicBool,
    inbound: Mutex<Inbound>,
    /// A message for the service, or the end.
    arrived: Notify,
    /// Room in the queue.
    room: Notify,
    /// The server's side. Held while a message is handed to a stream, as rmcp's worker does
    /// (one message at a time per session, in order; a stream that is not read makes its
    /// session's sender wait, bounded by the stream's capacity).
    out: tokio::sync::Mutex<Outbound>,
}

impl Session {
    fn new(id: SessionId, capacity: usize) -> Self {
        Session {
            id,
            created: Instant::now(),
            capacity: capacity.max(1),
            active_ms: AtomicU64::new(0),
            initialized: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            inbound: Mutex::default(),
            arrived: Notify::new(),
            room: Notify::new(),
            out: tokio::sync::Mutex::default(),
        }
    }

    fn inbound(&self) -> std::sync::MutexGuard<'_, Inbound> {
        self.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.active_ms.store(ms, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn expired(&self, idle: Option<Duration>, init: Option<Duration>) -> bool {
        if self.is_closed() {
            return false;
        }
        let age = self.created.elapsed();
        if !self.initialized.load(Ordering::Relaxed) {
            return init.is_some_and(|t| age > t);
        }
        let since = age.saturating_sub(Duration::from_millis(
            self.active_ms.load(Ordering::Relaxed),
        ));
        idle.is_some_and(|t| since > t)
    }

    /// Ends the session: the service reads the end of its input and stops (rmcp then closes
    /// the session through the manager).
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.arrived.notify_one();
        self.room.notify_waiters();
    }

    /// Queues `message` for the service, waiting while the queue is full.
    async fn push(&self, message: ClientJsonRpcMessage) -> Result<(), SessionError> {
        self.touch();
        let mut message = Some(message);
        loop {
            let room = self.room.notified();
            {
                let mut inbound = self.inbound();
                if self.is_closed() {
                    return Err(SessionError::Closed);
                }
                if inbound.queue.len() < self.capacity {
                    inbound.queue.extend(message.take());
                    drop(inbound);
                    self.arrived.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }
}

/// The service's end of a session.
pub(crate) struct SessionTransport {
    session: Arc<Session>,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        message: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), SessionError>> + Send + 'static {
        let session = self.session.clone();
        // Boxed: rmcp awaits the answer to `initialize` inline in the task that lives as long as
        // the session, which would otherwise keep room for this future all along.
        Box::pin(async move {
            session.touch();
            {
                let mut inbound = session.inbound();
                if let Some(answer) = inbound.initialize.take() {
                    return answer.send(message).map_err(|_| SessionError::Closed);
                }
            }
            if session.is_closed() {
                return Err(SessionError::Closed);
            }
            let capacity = session.capacity;
            session.out.lock().await.deliver(message, capacity).await
        })
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            {
                let mut inbound = self.session.inbound();
                if let Some(m) = inbound.queue.pop_front() {
                    if inbound.queue.is_empty() {
                        // An idle session keeps no buffer (a few messages of ~0.5 KB each).
                        inbound.queue = VecDeque::new();
                    }
                    drop(inbound);
                    self.session.room.notify_one();
                    return Some(m);
                }
                if self.session.is_closed() {
                    return None;
                }
            }
            self.session.arrived.notified().await;
        }
    }

    async fn close(&mut self) -> Result<(), SessionError> {
        self.session.close();
        Ok(())
    }
}

/// What a server message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Route {
    Request(RequestId),
    Progress(ProgressToken),
}

/// The server's side of a session: its streams and what is routed to them.
#[derive(Default)]
struct Outbound {
    next_stream_id: u64,
    /// The SSE streams of the POSTs whose answer has not been sent, by stream id.
    streams: HashMap<u64, Cached>,
    routes: HashMap<Route, u64>,
    /// The standalone (GET) stream; its sender is `None` until a GET opens it.
    common: Cached,
    /// Further GET streams while the first is open: kept alive, sent nothing (as rmcp does).
    shadows: Vec<mpsc::Sender<ServerSseMessage>>,
}

/// Shadow streams kept at most (rmcp's number); the oldest is dropped beyond.
const MAX_SHADOW_STREAMS: usize = 32;

impl Outbound {
    fn route(&mut self, route: Route, stream_id: u64) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.routes.push(route.clone());
            self.routes.insert(route, stream_id);
        }
    }

    /// Ends the stream `route` leads to, and forgets its routes.
    fn end_stream_of(&mut self, route: &Route) {
        if let Some(stream_id) = self.routes.remove(route) {
            if let Some(stream) = self.streams.remove(&stream_id) {
                for r in stream.routes {
                    self.routes.remove(&r);
                }
            }
        }
    }

    /// Where `message` goes: a POST's stream (and whether it is the last message on it), or
    /// the standalone stream (`None`). rmcp's rules.
    fn target(&self, message: &ServerJsonRpcMessage) -> Option<(u64, bool)> {
        let on = |route: Route, last: bool| self.routes.get(&route).map(|id| (*id, last));
        match message {
            JsonRpcMessage::Request(r) => r
                .request
                .extensions()
                .get::<OriginatingRequestId>()
                .and_then(|o| on(Route::Request(o.0.clone()), false)),
            JsonRpcMessage::Notification(n) => match &n.notification {
                ServerNotification::ProgressNotification(p) => {
                    on(Route::Progress(p.params.progress_token.clone()), false)
                }
                ServerNotification::CancelledNotification(c) => c
                    .params
                    .request_id
                    .clone()
                    .and_then(|id| on(Route::Request(id), false)),
                _ => None,
            },
            JsonRpcMessage::Response(r) => on(Route::Request(r.id.clone()), true),
            JsonRpcMessage::Error(e) => e.id.clone().and_then(|id| on(Route::Request(id), true)),
        }
    }

    async fn deliver(
        &mut self,
        message: ServerJsonRpcMessage,
        capacity: usize,
    ) -> Result<(), SessionError> {
        match self.target(&message) {
            Some((stream_id, last)) => {
                let stream = self
                    .streams
                    .get_mut(&stream_id)
                    .ok_or(SessionError::StreamClosed(Some(stream_id)))?;
                stream.send(message_event(message), capacity).await;
                if last {
                    if let Some(stream) = self.streams.remove(&stream_id) {
                        for r in stream.routes {
                            self.routes.remove(&r);
                        }
                    }
                }
            }
            None => self.common.send(message_event(message), capacity).await,
        }
        Ok(())
    }

    /// A GET stream: the standalone stream if none is open (replaying what it kept from
    /// `replay_from` on), else a shadow.
    async fn standalone(
        &mut self,
        replay_from: Option<usize>,
        capacity: usize,
    ) -> Result<mpsc::Receiver<ServerSseMessage>, SessionError> {
        self.shadows.retain(|tx| !tx.is_closed());
        let open = self.common.tx.as_ref().is_some_and(|tx| !tx.is_closed());
        if open {
            let (tx, rx) = mpsc::channel(1);
            if self.shadows.len() >= MAX_SHADOW_STREAMS {
                self.shadows.remove(0);
            }
            self.shadows.push(tx);
            return Ok(rx);
        }
        let (tx, rx) = mpsc::channel(capacity);
        self.common.tx = Some(tx);
        if let Some(index) = replay_from {
            self.common.replay(index).await?;
        }
        Ok(rx)
    }
}

fn message_event(message: ServerJsonRpcMessage) -> ServerSseMessage {
    ServerSseMessage::from_message(message)
}

/// One SSE stream's sender and the last events sent on it, for `Last-Event-ID`.
#[derive(Default)]
struct Cached {
    tx: Option<mpsc::Sender<ServerSseMessage>>,
    /// The POST's stream id; `None` for the standalone stream.
    stream_id: Option<u64>,
    /// Events kept (at most the capacity), oldest first; allocated with the first event.
    cache: VecDeque<ServerSseMessage>,
    /// The index of the next event.
    next: usize,
    routes: Vec<Route>,
}

impl Cached {
    fn new(tx: Option<mpsc::Sender<ServerSseMessage>>, stream_id: Option<u64>) -> Self {
        Cached {
            tx,
            stream_id,
            ..Cached::default()
        }
    }

    fn event_id(&self, index: usize) -> String {
        match self.stream_id {
            Some(s) => format!("{index}/{s}"),
            None => index.to_string(),
        }
    }

    /// Numbers `event`, keeps it, and sends it if the stream is open (a closed stream drops
    /// it, as rmcp does: it is replayed on resumption).
    async fn send(&mut self, mut event: ServerSseMessage, capacity: usize) {
        event.event_id = Some(self.event_id(self.next));
        self.next += 1;
        if self.cache.len() >= capacity.max(1) {
            self.cache.pop_front();
        }
        self.cache.push_back(event.clone());
        if let Some(tx) = &self.tx {
            if tx.send(event).await.is_err() {
                tracing::trace!("message for a closed SSE stream kept for resumption");
            }
        }
    }

    /// Sends again the kept events from `index` on (rmcp's arithmetic).
    async fn replay(&mut self, index: usize) -> Result<(), SessionError> {
        let first = self.next - self.cache.len();
        let skip = index.saturating_sub(first);
        if skip > self.cache.len() {
            return Err(SessionError::InvalidEventId(self.event_id(index)));
        }
        let Some(tx) = &self.tx else {
            return Err(SessionError::StreamClosed(self.stream_id));
        };
        for event in self.cache.iter().skip(skip) {
            if tx.send(event.clone()).await.is_err() {
                return Err(SessionError::StreamClosed(self.stream_id));
            }
        }
        Ok(())
    }
}

/// A stream's receiving end as the HTTP layer reads it.
struct Events(mpsc::Receiver<ServerSseMessage>);

impl Stream for Events {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(v: serde_json::Value) -> ClientJsonRpcMessage {
        serde_json::from_value(v).unwrap()
    }

    fn server(v: serde_json::Value) -> ServerJsonRpcMessage {
        serde_json::from_value(v).unwrap()
    }

    async fn next(s: &mut (impl Stream<Item = ServerSseMessage> + Unpin)) -> ServerSseMessage {
        std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx))
            .await
            .expect("an event")
    }

    #[tokio::test]
    async fn routes_answers_to_their_post_and_the_rest_to_the_get_stream() {
        let m = LeanSessionManager::new(SessionSettings::default());
        let (id, mut t) = m.create_session().await.unwrap();
        let init = client(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}),
        );
        let service = tokio::spawn(async move {
            let first = t.receive().await.unwrap();
            assert!(matches!(first, JsonRpcMessage::Request(_)));
            t.send(server(json!({"jsonrpc": "2.0", "id": 0, "result": {}})))
                .await
                .unwrap();
            let call = t.receive().await.unwrap();
            let JsonRpcMessage::Request(call) = call else {
                panic!("a request")
            };
            assert_eq!(call.id, RequestId::Number(7));
            t.send(server(
                json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": "p", "progress": 1}}),
            ))
            .await
            .unwrap();
            t.send(server(
                json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "x"}}),
            ))
            .await
            .unwrap();
            t.send(server(json!({"jsonrpc": "2.0", "id": 7, "result": {}})))
                .await
                .unwrap();
            assert!(t.receive().await.is_none(), "closed");
        });
        let answer = m.initialize_session(&id, init).await.unwrap();
        assert!(matches!(answer, JsonRpcMessage::Response(_)));
        let mut get = m.create_standalone_stream(&id).await.unwrap();
        let call = client(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "x", "_meta": {"progressToken": "p"}}}));
        let mut post = m.create_stream(&id, call).await.unwrap();
        let priming = next(&mut post).await;
        assert_eq!(priming.event_id.as_deref(), Some("0/0"));
        assert!(priming.message.is_none() && priming.retry.is_some());
        let progress = next(&mut post).await;
        assert_eq!(progress.event_id.as_deref(), Some("1/0"));
        let answer = next(&mut post).await;
        assert_eq!(answer.event_id.as_deref(), Some("2/0"));
        assert!(matches!(
            answer.message.as_deref(),
            Some(JsonRpcMessage::Response(_))
        ));
        // The answer ends the POST's stream.
        assert!(std::future::poll_fn(|cx| Pin::new(&mut post).poll_next(cx))
            .await
            .is_none());
        let log = next(&mut get).await;
        assert_eq!(log.event_id.as_deref(), Some("0"));
        // A second GET is a shadow; resuming the standalone stream replays from the index.
        drop(get);
        let mut resumed = m.resume(&id, "0".into()).await.unwrap();
        assert_eq!(next(&mut resumed).await.event_id.as_deref(), Some("0"));
        m.close_session(&id).await.unwrap();
        assert!(!m.has_session(&id).await.unwrap());
        service.await.unwrap();
        // rmcp's session store restores a session under its old id (here or on a replica).
        let restored = m.restore_session(id.clone()).await.unwrap();
        assert!(matches!(restored, RestoreOutcome::Restored(_)));
        assert!(m.has_session(&id).await.unwrap());
        let again = m.restore_session(id.clone()).await.unwrap();
        assert!(matches!(again, RestoreOutcome::AlreadyPresent));
    }

    #[tokio::test]
    async fn idle_sessions_end_and_a_cancelled_call_ends_its_stream() {
        let m = LeanSessionManager::new(SessionSettings {
            keep_alive: Some(Duration::from_millis(300)),
            ..SessionSettings::default()
        });
        let (id, mut t) = m.create_session().await.unwrap();
        let service = tokio::spawn(async move {
            t.receive().await.unwrap();
            t.send(server(json!({"jsonrpc": "2.0", "id": 0, "result": {}})))
                .await
                .unwrap();
            t.receive().await.unwrap(); // the call, never answered
            t.receive().await.unwrap(); // its cancellation
            assert!(t.receive().await.is_none(), "ended by the idle timeout");
        });
        let init = client(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}),
        );
        m.initialize_session(&id, init).await.unwrap();
        let call = client(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "x"}}));
        let mut post = m.create_stream(&id, call).await.unwrap();
        next(&mut post).await; // priming
        let cancel = client(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 3}}),
        );
        m.accept_message(&id, cancel).await.unwrap();
        assert!(std::future::poll_fn(|cx| Pin::new(&mut post).poll_next(cx))
            .await
            .is_none());
        tokio::time::timeout(Duration::from_secs(10), service)
            .await
            .expect("the idle session ended")
            .unwrap();
        assert!(!m.has_session(&id).await.unwrap());
    }
}
