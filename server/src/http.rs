//! The HTTP side: routing, per-client limits, request logs, and the accept loop with its limits
//! (connections, header read timeout) and graceful drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;
use vitals_std::exposition::Chunk;
use vitals_std::http::{ClientAddr, RequestTimer};
use vitals_std::Vitals;

/// Every response body: rmcp's, the exposition's, or fixed bytes.
pub type Body = BoxBody<Chunk, Infallible>;

/// What an MCP handler served over HTTP must be: one value per session, made by a factory.
pub trait Handler: rmcp::ServerHandler + Send + Sync + 'static {}
impl<H: rmcp::ServerHandler + Send + Sync + 'static> Handler for H {}

/// What the router needs. `H` is the MCP handler of each session.
pub struct App<H: Handler> {
    vitals: Vitals,
    /// None when MCP is served elsewhere (stdio): /mcp is then 404.
    mcp: Option<StreamableHttpService<H, LocalSessionManager>>,
    max_body_bytes: usize,
    /// POST/DELETE requests to /mcp from arrival until their response body (for a tool call, an
    /// SSE stream that ends with the result) has been sent or dropped: what the drain waits for.
    mcp_in_flight: Arc<AtomicUsize>,
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

/// A response body that holds an [`InFlight`] until the body is finished or dropped.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Chunk;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Chunk>, Infallible>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Limits of the accept loop.
pub struct Limits {
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Time allowed for request headers.
    pub header_timeout: Duration,
    /// Time allowed for the drain on shutdown.
    pub drain_timeout: Duration,
}

impl<H: Handler> App<H> {
    /// The router over `vitals`; each MCP session gets a handler from `factory`; `mcp_config`
    /// configures rmcp's Streamable HTTP transport.
    pub fn new(
        vitals: Vitals,
        factory: impl Fn() -> H + Send + Sync + 'static,
        mcp_config: StreamableHttpServerConfig,
    ) -> Self {
        let max_body_bytes = mcp_config.max_request_body_bytes;
        let mcp = StreamableHttpService::new(
            move || Ok(factory()),
            Arc::new(LocalSessionManager::default()),
            mcp_config,
        );
        App {
            vitals,
            mcp: Some(mcp),
            max_body_bytes,
            mcp_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The router without /mcp (MCP is on stdio): /metrics and health only.
    pub fn without_mcp(vitals: Vitals) -> Self {
        App {
            vitals,
            mcp: None,
            max_body_bytes: 0,
            mcp_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Forwards a request to rmcp. A POST body is read here first (bounded: 413 beyond the
    /// limit) so that a JSON body that does not parse gets the JSON-RPC parse error (-32700).
    async fn mcp(&self, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
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
        parts.extensions.insert(ClientAddr(remote));
        let too_large = || {
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body exceeds the limit\n",
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return too_large();
        }
        let bytes = match http_body_util::Limited::new(body, self.max_body_bytes)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "could not read the request body\n"),
        };
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if parts.method == http::Method::POST
            && is_json
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
        {
            let err = serde_json::json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": "Parse error: the body is not valid JSON"}});
            return json(StatusCode::BAD_REQUEST, Bytes::from(err.to_string()));
        }
        let req = Request::from_parts(parts, Full::new(bytes));
        let Ok(r) = mcp.clone().call(req).await;
        r.map(|b| {
            let body = b.map_frame(|f| f.map_data(Chunk::Bytes)).boxed();
            match in_flight {
                Some(guard) => Tracked {
                    inner: body,
                    _in_flight: guard,
                }
                .boxed(),
                None => body,
            }
        })
    }

    /// Routes one request.
    pub async fn handle(&self, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let timer = RequestTimer::start(self.vitals.http_metrics());
        let method = req.method().clone();
        let route: &'static str = match req.uri().path() {
            "/mcp" => "/mcp",
            "/metrics" => "/metrics",
            "/healthz" => "/healthz",
            "/livez" => "/livez",
            "/readyz" => "/readyz",
            _ => "unmatched",
        };
        let limited = !matches!(route, "/livez" | "/readyz");
        let response = match (limited, self.vitals.check_http_client(remote.ip())) {
            (true, Err(retry)) => {
                let mut r = text(StatusCode::TOO_MANY_REQUESTS, "rate limited: retry later\n");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry.secs()));
                r
            }
            _ => match route {
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
                "/mcp" => self.mcp(remote, req).await,
                _ => text(
                    StatusCode::NOT_FOUND,
                    "not found: try /mcp, /metrics, /healthz, /livez, /readyz\n",
                ),
            },
        };
        let status = response.status().as_u16();
        timer.finish(method.as_str(), route, status);
        tracing::info!(method = %method, path = route, status, remote = %remote,
            duration_ms = started.elapsed().as_secs_f64() * 1e3, "http request");
        response
    }
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.connections_rejected.inc();
            tracing::warn!(remote = %remote, "connection limit reached: answering 503");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
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
            drop(permit);
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
