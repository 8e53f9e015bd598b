//! The HTTP side: routing, per-client limits, request logs, and the accept loop with its limits
//! (connections, header read timeout) and graceful drain.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitals_std::series::Exact as _;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;
use vitals_std::exposition::Chunk;
use vitals_std::http::{method_label, ClientAddr, ClientIdentity, RequestTimer};
use vitals_std::logging::Sampler;
use vitals_std::{ClientKey, Vitals};

use crate::clients::{client_key, KeyedCounter};
use crate::guard::{Guard, GuardConfig, Refusal};
use crate::probe::Triage;
use crate::session_caps::{self, CappedSessionManager, SessionTable};
use crate::sessions::RequestInFlight;

/// Every response body: rmcp's, the exposition's, or fixed bytes.
pub type Body = BoxBody<Chunk, Infallible>;

/// What an MCP handler served over HTTP must be: one value per session, made by a factory.
pub trait Handler: rmcp::ServerHandler + Send + Sync + 'static {}
impl<H: rmcp::ServerHandler + Send + Sync + 'static> Handler for H {}

/// What the router needs.
pub struct App<H: Handler> {
    vitals: Vitals,
    /// None when MCP is served elsewhere (stdio): /mcp is then 404.
    mcp: Option<StreamableHttpService<H, CappedSessionManager>>,
    /// POST/DELETE requests to /mcp from arrival until their response body (for a tool call, an
    /// SSE stream that ends with the result) has been sent or dropped: what the drain waits for.
    mcp_in_flight: Arc<AtomicUsize>,
    /// Client identity, Host checks, and everything vetted before rmcp sees a request.
    guard: Guard,
    /// One 429 log line per second at most.
    rate_limited_log: Sampler,
}

impl<H: Handler> std::fmt::Debug for App<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// Counts one /mcp request in flight until dropped (it travels with the response body).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds `G` (an [`InFlight`], an SSE stream's budget share, a request id
/// in flight) until the body is finished or dropped.
struct Tracked<G> {
    inner: Body,
    _in_flight: G,
    /// The request id in flight, told when the body has been sent whole (else its drop cancels
    /// the request: the client went away).
    request: Option<RequestInFlight>,
}

impl<G: Send + Sync + Unpin + 'static> hyper::body::Body for Tracked<G> {
    type Data = Chunk;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Chunk>, Infallible>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(_)) => self.inner.is_end_stream(),
            std::task::Poll::Pending => false,
        };
        if ended {
            if let Some(r) = &mut self.request {
                r.answered();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts the bytes it sends and observes the total in
/// `http_response_size_bytes{path}` once, when it ends or is dropped.
struct Counted {
    inner: Body,
    bytes: u64,
    path: &'static str,
    metrics: &'static vitals_std::HttpMetrics,
}

impl hyper::body::Body for Counted {
    type Data = Chunk;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Chunk>, Infallible>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += bytes::Buf::remaining(data) as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics
            .response_size
            .exact_labels([self.path])
            .observe(self.bytes);
    }
}

/// The declared body length of a request, if any.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Limits of the accept loop.
#[derive(Debug)]
pub struct Limits {
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Most simultaneous connections per client key (0 = no cap; trusted proxies exempt).
    pub max_connections_per_client: usize,
    /// Time allowed for request headers.
    pub header_timeout: Duration,
    /// Time allowed for the drain on shutdown.
    pub drain_timeout: Duration,
}

impl<H: Handler> App<H> {
    /// The router over `vitals`; each MCP session gets a handler from `factory`; `mcp_config`
    /// configures rmcp's Streamable HTTP transport, `guard` what is vetted before it.
    pub fn new(
        vitals: Vitals,
        factory: impl Fn() -> H + Send + Sync + 'static,
        mcp_config: StreamableHttpServerConfig,
        guard: GuardConfig,
    ) -> Self {
        // Restores sessions held by other replicas; a DELETE deletes the record.
        #[cfg(feature = "redis")]
        let mcp_config = {
            let mut c = mcp_config;
            c.session_store = guard.shared_sessions.map(|s| s.rmcp());
            c
        };
        let table = Arc::new(SessionTable::new(guard.sessions, &session_caps::METRICS));
        let sessions = Arc::new(CappedSessionManager::new(guard.session_idle, table));
        let mcp = StreamableHttpService::new(move || Ok(factory()), sessions.clone(), mcp_config);
        App {
            vitals,
            mcp: Some(mcp),
            mcp_in_flight: Arc::new(AtomicUsize::new(0)),
            guard: Guard::new(guard, &sessions),
            rate_limited_log: Sampler::new(Duration::from_secs(1)),
        }
    }

    /// The router without /mcp (MCP is on stdio): /metrics and health only.
    pub fn without_mcp(vitals: Vitals, guard: GuardConfig) -> Self {
        let table = Arc::new(SessionTable::new(guard.sessions, &session_caps::METRICS));
        App {
            vitals,
            mcp: None,
            mcp_in_flight: Arc::new(AtomicUsize::new(0)),
            guard: Guard::new(guard, &CappedSessionManager::new(None, table)),
            rate_limited_log: Sampler::new(Duration::from_secs(1)),
        }
    }

    /// Forwards a request of `client` (its key) to rmcp once the guard has vetted it (see
    /// [`crate::guard`]): the body is read here, bounded, so that what rmcp would parse
    /// expensively or answer wrongly is refused first.
    async fn mcp(
        &self,
        remote: SocketAddr,
        client: IpAddr,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let Some(mcp) = &self.mcp else {
            return text(
                StatusCode::NOT_FOUND,
                "not found: MCP is served on stdio; this address serves /metrics, /healthz, /livez, /readyz\n",
            );
        };
        // GET streams are long-lived notification channels: the drain closes them, it does not
        // wait for them.
        let in_flight =
            (req.method() != http::Method::GET).then(|| InFlight::new(&self.mcp_in_flight));
        let (mut parts, body) = req.into_parts();
        let tokens = &self.guard.config().tokens;
        if tokens.required() {
            match tokens.identify(&parts.headers) {
                Some(id) => {
                    parts.extensions.insert(ClientIdentity(id));
                }
                None => {
                    let mut r = text(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized: /mcp needs Authorization: Bearer TOKEN\n",
                    );
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"mcp\""),
                    );
                    return r;
                }
            }
        }
        // Tool handlers key per-client limits on this: the forwarded address behind a proxy.
        parts
            .extensions
            .insert(ClientAddr(SocketAddr::new(client, remote.port())));
        // Sessions belong to the token, when /mcp needs one, else to the address.
        let key = client_key(client);
        let owner = parts
            .extensions
            .get::<ClientIdentity>()
            .map_or(ClientKey::Ip(key), |id| ClientKey::Token(id.0));
        let mut vetted = match self.guard.vet_mcp(&parts, body, key, owner).await {
            Ok(v) => v,
            Err(r) => return refusal(r),
        };
        if content_length(&parts.headers).is_none() {
            self.vitals
                .http_metrics()
                .request_size
                .exact_labels(["/mcp"])
                .observe(vetted.body.len() as u64);
        }
        let req = Request::from_parts(parts, Full::new(std::mem::take(&mut vetted.body)));
        let Ok(r) = mcp.clone().call(req).await;
        drop(vetted.parse.take());
        if let Some(r) = self
            .guard
            .after_mcp(&mut vetted, r.status(), r.headers())
            .await
        {
            return refusal(r);
        }
        let held = (in_flight, vetted.stream.take());
        let request = vetted.request.take();
        r.map(|b| {
            let body = b.map_frame(|f| f.map_data(Chunk::Bytes)).boxed();
            Tracked {
                inner: body,
                _in_flight: held,
                request,
            }
            .boxed()
        })
    }

    /// Routes one request.
    pub async fn handle(&self, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let timer = RequestTimer::start(self.vitals.http_metrics());
        let method = method_label(req.method());
        let route: &'static str = match req.uri().path() {
            "/mcp" => "/mcp",
            "/metrics" => "/metrics",
            "/healthz" => "/healthz",
            "/livez" => "/livez",
            "/readyz" => "/readyz",
            _ => "unmatched",
        };
        let client = self.guard.client_ip(remote.ip(), req.headers());
        // /mcp observes the body it actually read (a chunked body declares no length).
        let declared = content_length(req.headers());
        if route != "/mcp" || declared.is_some() {
            self.vitals
                .http_metrics()
                .request_size
                .exact_labels([route])
                .observe(declared.unwrap_or(0));
        }
        let probe = matches!(route, "/livez" | "/readyz");
        let response = if let Err(r) = self.guard.check_route(route, req.headers()) {
            refusal(r)
        } else if let (false, Err(retry)) = (probe, self.vitals.check_http_client(client)) {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "rate limited: retry later\n");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry.secs()));
            r
        } else {
            match route {
                "/livez" => json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}")),
                "/readyz" => {
                    if self.vitals.is_ready() {
                        json(
                            StatusCode::OK,
                            Bytes::from_static(b"{\"status\":\"ready\"}"),
                        )
                    } else {
                        json(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Bytes::from_static(b"{\"status\":\"not ready\"}"),
                        )
                    }
                }
                "/healthz" => {
                    let body = Bytes::from(self.vitals.health_json());
                    let status = match self.vitals.health_status() {
                        vitals_std::vitals_core::Status::Unhealthy => {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                        _ => StatusCode::OK,
                    };
                    json(status, body)
                }
                "/metrics" => self
                    .vitals
                    .exposition()
                    .respond(req.method(), req.headers())
                    .map(|b| b.boxed()),
                "/mcp" => self.mcp(remote, client, req).await,
                _ => text(
                    StatusCode::NOT_FOUND,
                    "not found: try /mcp, /metrics, /healthz, /livez, /readyz\n",
                ),
            }
        };
        let status = response.status().as_u16();
        timer.finish(method, route, status);
        let metrics = self.vitals.http_metrics();
        let response = response.map(|inner| {
            Counted {
                inner,
                bytes: 0,
                path: route,
                metrics,
            }
            .boxed()
        });
        self.log_request(method, route, status, remote, client, started);
        response
    }

    /// The request's log line: at debug for probes (an orchestrator polls them), sampled for
    /// 429s (a client over its budget can send as fast as it likes), at info otherwise.
    fn log_request(
        &self,
        method: &str,
        route: &str,
        status: u16,
        remote: SocketAddr,
        client: IpAddr,
        started: Instant,
    ) {
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        if matches!(route, "/livez" | "/readyz") {
            tracing::debug!(method = %method, path = route, status, remote = %remote, duration_ms, "http request");
        } else if status == 429 {
            if let Some(suppressed) = self.rate_limited_log.sample() {
                tracing::info!(method = %method, path = route, status, remote = %remote, client = %client,
                    duration_ms, suppressed, "http request");
            }
        } else {
            tracing::info!(method = %method, path = route, status, remote = %remote, client = %client,
                duration_ms, "http request");
        }
    }
}

/// The response of a [`Refusal`].
fn refusal(r: Refusal) -> Response<Body> {
    let content_type = if r.json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = full(r.status, content_type, r.body);
    if let Some(secs) = r.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(Chunk::Bytes(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    full(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    full(status, "application/json", body)
}

/// Longest wait for the request head of a connection in triage.
const TRIAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers a connection that found no slot: through triage (probes answered, others 503) when
/// it has room for `client` (`None`: a trusted proxy), else an immediate 503.
fn refuse(
    stream: tokio::net::TcpStream,
    triage: &Arc<Triage>,
    client: Option<IpAddr>,
    vitals: &Vitals,
) {
    match triage.try_enter(client) {
        Some(ticket) => {
            let triage = triage.clone();
            let vitals = vitals.clone();
            tokio::spawn(async move { triage.answer(stream, vitals, ticket).await });
        }
        None => {
            vitals.http_metrics().connections_rejected.inc();
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream.write_all(crate::probe::REFUSED).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Accepts connections until `shutdown` resolves, then drains: stops accepting, marks the server
/// not ready, waits (bounded) for in-flight tool calls, closes MCP streams, and waits (bounded)
/// for open connections to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    app: Arc<App<H>>,
    limits: Limits,
    mcp_cancel: CancellationToken,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client: KeyedCounter<IpAddr> = KeyedCounter::new(limits.max_connections_per_client);
    let triage = Arc::new(Triage::new(limits.header_timeout.min(TRIAGE_TIMEOUT)));
    let refused_log = Sampler::new(Duration::from_secs(1));
    let metrics = app.vitals.http_metrics();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Responses (SSE events, JSON bodies) go out in several small writes: without
        // TCP_NODELAY, Nagle's algorithm holds the last one until the client's delayed ACK
        // (~40 ms per call on Linux).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        // A slot, and the client's share of them (trusted proxies carry many clients).
        let peer = crate::clients::canonical(remote.ip());
        let trusted = app.guard.config().proxies.contains(peer);
        let key = client_key(peer);
        let share = if trusted {
            Ok(None)
        } else {
            per_client
                .try_acquire(key)
                .map(Some)
                .ok_or("client connection cap reached")
        };
        let admitted = share.and_then(|share| {
            slots
                .clone()
                .try_acquire_owned()
                .map(|slot| (slot, share))
                .map_err(|_| "connection limit reached")
        });
        let (permit, share) = match admitted {
            Ok(a) => a,
            Err(reason) => {
                if let Some(suppressed) = refused_log.sample() {
                    tracing::warn!(remote = %remote, reason, suppressed,
                        "connection refused: answering 503 (probes are still answered)");
                }
                refuse(stream, &triage, (!trusted).then_some(key), &app.vitals);
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(remote, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        metrics.connections_active.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(remote = %remote, error = %e, "connection closed with error");
            }
            metrics.connections_active.dec();
            drop((permit, share));
        });
    }

    drop(listener);
    app.vitals.set_ready(false);
    tracing::info!("shutting down: draining in-flight requests");
    let deadline = Instant::now() + limits.drain_timeout;
    // Wait for tool calls to finish and for every POST's response (the SSE stream carrying the
    // result) to be sent; only then close the long-lived GET streams.
    let active = app.vitals.mcp_metrics();
    while (active.active_requests.get() > 0 || app.mcp_in_flight.load(Ordering::SeqCst) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mcp_cancel.cancel();
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(
        remaining.max(Duration::from_millis(100)),
        graceful.shutdown(),
    )
    .await
    {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!("drain timeout: closing remaining connections"),
    }
}
