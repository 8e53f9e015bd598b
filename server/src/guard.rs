//! What stands between a client and rmcp on `/mcp`, and the client identity every route uses.
//! The router calls [`Guard::vet_mcp`] before forwarding a request and
//! [`Guard::after_mcp`] on rmcp's answer; everything refused comes back as a [`Refusal`].
//!
//! In order, for a request to `/mcp`:
//! 1. a `Mcp-Session-Id` must name a session this client created (else 404, as rmcp answers an
//!    unknown session; DELETE included); with `--redis`, a session held by another replica is
//!    looked up in the store, and a shared session held here must still be there
//!    ([`crate::session_store`]);
//! 2. `GET` (an SSE stream) must fit the SSE budget (total, per client, per session);
//! 3. the body is read within the body deadline into one capped buffer ([`crate::body`]);
//! 4. a JSON body waits for a parse permit when large, then passes the structural pre-pass
//!    (depth, element count: -32600), the syntax check (-32700) and the JSON-RPC envelope check
//!    (-32600), and a request's id must not be in flight in its session (-32600);
//! 5. an `initialize` (or the restore of a session held by another replica) must fit the
//!    session caps (503 with `Retry-After` and JSON-RPC -32000 otherwise;
//!    [`crate::session_caps`]);
//! 6. after rmcp: a new session is bound to its creator (and, with `--redis`, its record
//!    written to the store before the client learns its id), and a 415 that
//!    rmcp gave a JSON body it could not read as an MCP message becomes 400 with -32600.

use std::net::IpAddr;

use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use vitals_std::ClientKey;

use crate::body::{self, BodyLimits, Envelope, JsonLimits, Kind, ParseGate};
use crate::clients::TrustedProxies;
use crate::hosts::AllowedHosts;
use crate::session_caps::{CappedSessionManager, SessionLimits, SessionSlot};
use crate::session_store::{Loaded, SharedStore};
use crate::sessions::{Owner, RequestInFlight, Sessions};
use crate::sse::{SseBudget, SseLimits, SseStream};

/// The session header of Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// JSON-RPC error of an `initialize` refused by a session cap (implementation-defined server
/// error range).
const SERVER_BUSY: i64 = -32000;

/// `Retry-After` of an `initialize` refused by a session cap.
const SESSIONS_FULL_RETRY_SECS: u64 = 5;

/// How the guard is configured.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// The `Host` allow-list (for the routes rmcp does not check).
    pub hosts: AllowedHosts,
    /// Body size, frame count and deadline.
    pub body: BodyLimits,
    /// JSON depth and element bounds.
    pub json: JsonLimits,
    /// SSE stream caps.
    pub sse: SseLimits,
    /// Large parses at once.
    pub parses: ParseGate,
    /// Bearer tokens for /mcp (none: open).
    pub tokens: crate::tokens::McpTokens,
    /// Session caps.
    pub sessions: SessionLimits,
    /// Idle time after which a session ends (none: never).
    pub session_idle: Option<std::time::Duration>,
    /// Session records shared with the other replicas (`--redis`).
    pub shared_sessions: Option<SharedStore>,
}

/// The `/mcp` guard; see the [module docs](self).
pub(crate) struct Guard {
    config: GuardConfig,
    sse: SseBudget,
    sessions: Sessions,
}

/// An answer given instead of forwarding to rmcp.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    /// Status code.
    pub status: StatusCode,
    /// `application/json` (a JSON-RPC error) or `text/plain`.
    pub json: bool,
    /// The body.
    pub body: Bytes,
    /// Seconds for `Retry-After`, if any.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A plain-text refusal.
    pub(crate) fn text(status: StatusCode, text: &'static str) -> Self {
        Refusal {
            status,
            json: false,
            body: Bytes::from_static(text.as_bytes()),
            retry_after: matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            .then_some(1),
        }
    }

    /// A JSON-RPC error with HTTP status 400.
    pub(crate) fn jsonrpc(id: Option<&Value>, code: i64, message: &str) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            json: true,
            body: body::jsonrpc_error(id, code, message),
            retry_after: None,
        }
    }

    fn not_found() -> Self {
        Refusal::text(StatusCode::NOT_FOUND, "Not Found: Session not found\n")
    }
}

/// A request that passed [`Guard::vet_mcp`]: its body, and what it holds until its response has
/// been sent.
pub(crate) struct Vetted {
    /// The body, read whole.
    pub body: Bytes,
    /// The SSE budget share of a GET stream.
    pub stream: Option<SseStream>,
    /// The request id marked in flight in its session.
    pub request: Option<RequestInFlight>,
    /// The parse permit of a large body (drop it once rmcp has answered).
    pub parse: Option<OwnedSemaphorePermit>,
    /// The place reserved for the session an `initialize` creates (or a restore brings here).
    slot: Option<SessionSlot>,
    /// Who the request comes from, as sessions are owned.
    owner: ClientKey,
    /// The session is held by another replica: rmcp restores it from the store.
    restoring: bool,
    /// The params of an `initialize`, for the session's record in the store.
    init: Option<Value>,
    envelope: Option<Envelope>,
    session: Option<String>,
    method: Method,
    json: bool,
}

/// The refusal of a session beyond a cap: 503, `Retry-After`, JSON-RPC -32000 naming the flag.
fn sessions_full(full: crate::session_caps::SessionsFull, id: Option<&Value>) -> Refusal {
    let (_, message) = full.describe();
    Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        json: true,
        body: body::jsonrpc_error(id, SERVER_BUSY, message),
        retry_after: Some(SESSIONS_FULL_RETRY_SECS),
    }
}

/// Whether `headers` declare a JSON body, compared as rmcp compares (media type essence).
pub(crate) fn content_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

impl Guard {
    /// A guard over the sessions of `manager`.
    pub(crate) fn new(config: GuardConfig, manager: &CappedSessionManager) -> Self {
        Guard {
            sse: SseBudget::new(config.sse),
            sessions: Sessions::new(manager),
            config,
        }
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The client a request comes from: `peer`, or the forwarded address when `peer` is a
    /// trusted proxy.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.config.proxies.client_ip(peer, headers)
    }

    /// Vets an `/mcp` request of `client` (its address key; `owner` is who it is as sessions
    /// are owned: its token or that address); see the [module docs](self).
    pub(crate) async fn vet_mcp<B>(
        &self,
        parts: &http::request::Parts,
        body: B,
        client: IpAddr,
        owner: ClientKey,
    ) -> Result<Vetted, Refusal>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
    {
        let session = parts
            .headers
            .get(SESSION_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let shared = self.config.shared_sessions;
        let mut restoring = false;
        if let Some(s) = &session {
            match self.sessions.owner(s, owner) {
                Owner::Caller => {
                    if let Some(store) = shared.filter(|_| self.sessions.is_shared(s)) {
                        if store.touch(s).await == Some(false) {
                            // Deleted through another replica, or idle everywhere.
                            self.sessions.end_local(s).await;
                            return Err(Refusal::not_found());
                        }
                    }
                    if parts.method == Method::DELETE {
                        self.sessions.cancel_in_flight(s).await;
                    }
                }
                Owner::Other => return Err(Refusal::not_found()),
                Owner::Unknown => {
                    let Some(store) = shared else {
                        return Err(Refusal::not_found());
                    };
                    if store.check(s, owner).await != Loaded::Owned {
                        return Err(Refusal::not_found());
                    }
                    // A DELETE of a session held elsewhere only deletes its record (rmcp).
                    restoring = parts.method != Method::DELETE;
                }
            }
        }
        let slot = if restoring {
            Some(
                self.sessions
                    .reserve(owner)
                    .map_err(|full| sessions_full(full, None))?,
            )
        } else {
            None
        };
        let stream = if parts.method == Method::GET {
            let s = self.sse.try_open(client, session.as_deref()).map_err(|r| {
                let (status, text) = r.status();
                Refusal::text(status, text)
            })?;
            Some(s)
        } else {
            None
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = body::read_body(body, declared, &self.config.body)
            .await
            .map_err(|e| {
                let (status, text) = e.status();
                Refusal::text(status, text)
            })?;
        let mut vetted = Vetted {
            body: bytes,
            stream,
            request: None,
            parse: None,
            slot,
            owner,
            restoring,
            init: None,
            envelope: None,
            session,
            method: parts.method.clone(),
            json: content_is_json(&parts.headers),
        };
        if parts.method != Method::POST || !vetted.json {
            return Ok(vetted);
        }
        vetted.parse = self
            .config
            .parses
            .enter(vetted.body.len())
            .await
            .map_err(|_| {
                Refusal::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many large requests in progress: retry later\n",
                )
            })?;
        let bytes = &vetted.body;
        if let Err(e) = body::prepass(bytes, &self.config.json) {
            return Err(Refusal::jsonrpc(
                None,
                body::INVALID_REQUEST,
                &format!("Invalid Request: {e}"),
            ));
        }
        if !body::is_json(bytes) {
            return Err(Refusal::jsonrpc(
                None,
                body::PARSE_ERROR,
                "Parse error: the body is not valid JSON",
            ));
        }
        let envelope = body::envelope(bytes).map_err(|e| {
            Refusal::jsonrpc(
                e.id.as_ref(),
                body::INVALID_REQUEST,
                "Invalid Request: not a JSON-RPC 2.0 message",
            )
        })?;
        if let (Kind::Request, Some(id), Some(s)) = (envelope.kind, &envelope.id, &vetted.session) {
            vetted.request = Some(self.sessions.begin(s, id).ok_or_else(|| {
                Refusal::jsonrpc(
                    Some(id),
                    body::INVALID_REQUEST,
                    "Invalid Request: a request with this id is already in flight in this session",
                )
            })?);
        }
        if vetted.session.is_none()
            && envelope.kind == Kind::Request
            && envelope.method.as_deref() == Some("initialize")
        {
            let slot = self
                .sessions
                .reserve(owner)
                .map_err(|full| sessions_full(full, envelope.id.as_ref()))?;
            vetted.slot = Some(slot);
            if shared.is_some() {
                vetted.init = serde_json::from_slice::<Value>(&vetted.body)
                    .ok()
                    .and_then(|mut m| m.get_mut("params").map(Value::take));
            }
        }
        vetted.envelope = Some(envelope);
        Ok(vetted)
    }

    /// Looks at rmcp's answer (`status`, `headers`) to a vetted request: binds a new or
    /// restored session to its client (a new one's record written to the shared store first),
    /// and turns a 415 for a JSON body into the JSON-RPC error it should have been.
    pub(crate) async fn after_mcp(
        &self,
        vetted: &mut Vetted,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Refusal> {
        match (&vetted.session, &vetted.method) {
            (None, &Method::POST) if status == StatusCode::OK => {
                let id = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
                if let (Some(id), Some(slot)) = (id, vetted.slot.take()) {
                    self.sessions.bind(id, slot);
                    if let (Some(store), Some(init)) =
                        (self.config.shared_sessions, vetted.init.take())
                    {
                        if store.put(id, vetted.owner, init).await {
                            self.sessions.mark_shared(id);
                        }
                    }
                }
            }
            (Some(id), _) if vetted.restoring => {
                if let Some(slot) = vetted.slot.take() {
                    if self.sessions.bind(id, slot) {
                        self.sessions.mark_shared(id);
                        self.sessions.count_restored();
                    }
                }
            }
            _ => {}
        }

        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE && vetted.json {
            let id = vetted.envelope.as_ref().and_then(|e| e.id.as_ref());
            return Some(Refusal::jsonrpc(
                id,
                body::INVALID_REQUEST,
                "Invalid Request: not a valid MCP message",
            ));
        }
        None
    }

    /// Checks the `Host` of a request to `route`: the allow-list on `/metrics` and `/healthz`
    /// (rmcp checks `/mcp`; probes come from orchestrators that send the pod address), and a
    /// single `Host` header everywhere.
    pub(crate) fn check_route(&self, route: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let refused = if matches!(route, "/metrics" | "/healthz") {
            self.config.hosts.check(headers).err()
        } else {
            crate::hosts::duplicate_host(headers).then_some(crate::hosts::HostRefused::Duplicate)
        };
        match refused {
            Some(r) => {
                let (status, text) = r.status();
                Err(Refusal::text(status, text))
            }
            None => Ok(()),
        }
    }
}
