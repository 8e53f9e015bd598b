//! One upstream MCP server: its supervisor (start, initialize, list, watch, restart with backoff,
//! stop) and the forwarding of requests to it.
//!
//! Invariants:
//! - The supervisor owns the child process and its process group: on a crash or on shutdown the
//!   whole group goes (stdin closed, then SIGTERM, then SIGKILL), so grandchildren started by
//!   `npx` or `uvx` never outlive it. Its stderr is always drained (a full pipe would stall it).
//! - A request in flight when the connection is lost is answered at once with a transport error;
//!   a request reaches the upstream at most once (nothing is replayed).
//! - Every forwarded request holds a [`Pending`] guard: whichever way the request ends (answer,
//!   error, timeout, cancellation, the downstream future dropped), the in-flight gauge comes back
//!   down, the outcome is counted once, and an unanswered upstream request is cancelled upstream.

#![allow(deprecated)] // logging, sampling and roots are deprecated by 2026-07-28; relayed for 2025-11-25.

use crate::series::Exact as _;
use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::model::*;
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient,
    RoleServer, RunningService, ServiceError,
};
use rmcp::{ErrorData as McpError, ServiceExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use vitals_core::health::Status;
use vitals_core::resilience::{Backoff, Jitter, Rng};

use super::config::{Transport, UpstreamConfig};
use super::metrics::GatewayMetrics;
use crate::mcp::CallOutcome;

/// Lines of the child's stderr kept as the crash reason.
const STDERR_TAIL: usize = 20;
/// Longest stderr line logged or kept (bytes); longer lines are cut.
const STDERR_LINE_MAX: usize = 1024;
/// stderr lines logged per second at most (the rest are counted, and kept in the tail).
const STDERR_LINES_PER_SECOND: u32 = 50;
/// Grace given to a child after its stdin is closed, and again after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a call that asked for progress waits, after the answer, for progress notifications
/// the upstream sent before it (rmcp delivers those from tasks of their own).
const PROGRESS_GRACE: Duration = Duration::from_millis(5);
/// Interval of liveness pings to an upstream that is up.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Consecutive failed pings after which the upstream is restarted.
const PING_FAILURES: u32 = 2;

/// Where an upstream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Being started for the first time.
    Starting,
    /// Initialized and serving.
    Up,
    /// Lost, waiting to be started again.
    Restarting,
    /// Crashed too often: no longer restarted.
    Failed,
    /// Stopped by shutdown.
    Stopped,
}

impl Phase {
    /// The name shown in health reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Up => "up",
            Phase::Restarting => "restarting",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
        }
    }
}

/// What an upstream lists.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Its tools.
    pub tools: Vec<Tool>,
    /// Its prompts.
    pub prompts: Vec<Prompt>,
    /// Its resources.
    pub resources: Vec<Resource>,
    /// Its resource templates.
    pub templates: Vec<ResourceTemplate>,
    /// What it announced at initialization.
    pub capabilities: ServerCapabilities,
    /// Its instructions, if any.
    pub instructions: Option<String>,
}

/// Why a forwarded request got no answer from the upstream.
#[derive(Debug)]
pub enum ForwardError {
    /// The upstream is not serving (starting, restarting, failed, stopped).
    Unavailable {
        /// The upstream.
        upstream: String,
        /// Its phase.
        phase: Phase,
    },
    /// Every concurrency slot is taken and the queue is full.
    Busy {
        /// The upstream.
        upstream: String,
    },
    /// No answer in time.
    Timeout {
        /// The upstream.
        upstream: String,
        /// The time allowed.
        after: Duration,
    },
    /// The connection was lost.
    Transport {
        /// The upstream.
        upstream: String,
        /// What happened.
        detail: String,
    },
    /// The client cancelled the request.
    Cancelled,
    /// The upstream answered with a JSON-RPC error (passed to the client unchanged).
    Upstream(McpError),
}

impl ForwardError {
    /// The outcome label of a tool call that ended with this error.
    pub fn outcome(&self) -> CallOutcome {
        match self {
            ForwardError::Unavailable { .. } | ForwardError::Busy { .. } => {
                CallOutcome::Unavailable
            }
            ForwardError::Timeout { .. } => CallOutcome::Timeout,
            ForwardError::Transport { .. } => CallOutcome::Transport,
            ForwardError::Cancelled => CallOutcome::Cancelled,
            ForwardError::Upstream(_) => CallOutcome::JsonRpcError,
        }
    }

    /// Whether the upstream's circuit breaker counts this as a failure.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            ForwardError::Timeout { .. } | ForwardError::Transport { .. } => true,
            ForwardError::Upstream(e) => e.code == ErrorCode::INTERNAL_ERROR,
            _ => false,
        }
    }

    /// The error the client receives.
    pub fn into_mcp(self) -> McpError {
        let message = self.to_string();
        match self {
            ForwardError::Upstream(e) => e,
            ForwardError::Unavailable { upstream, phase } => McpError::internal_error(
                message,
                Some(
                    serde_json::json!({"upstream": upstream, "reason": "unavailable", "phase": phase.as_str()}),
                ),
            ),
            ForwardError::Busy { upstream } => McpError::internal_error(
                message,
                Some(serde_json::json!({"upstream": upstream, "reason": "busy"})),
            ),
            ForwardError::Timeout { upstream, .. } => McpError::internal_error(
                message,
                Some(serde_json::json!({"upstream": upstream, "reason": "timeout"})),
            ),
            ForwardError::Transport { upstream, .. } => McpError::internal_error(
                message,
                Some(serde_json::json!({"upstream": upstream, "reason": "transport"})),
            ),
            ForwardError::Cancelled => McpError::internal_error(message, None),
        }
    }
}

impl std::fmt::Display for ForwardError {
    /// The message the client receives.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Upstream(e) => f.write_str(&e.message),
            ForwardError::Unavailable { upstream, phase } => {
                write!(
                    f,
                    "upstream `{upstream}` is unavailable ({})",
                    phase.as_str()
                )
            }
            ForwardError::Busy { upstream } => write!(
                f,
                "upstream `{upstream}` is busy: every slot and queue place is taken"
            ),
            ForwardError::Timeout { upstream, after } => write!(
                f,
                "upstream `{upstream}` did not answer within {:.3} s",
                after.as_secs_f64()
            ),
            ForwardError::Transport { upstream, detail } => {
                write!(f, "upstream `{upstream}` connection lost: {detail}")
            }
            ForwardError::Cancelled => f.write_str("request cancelled by the client"),
        }
    }
}

impl std::error::Error for ForwardError {}

/// The tool or prompt a forwarded request is about (the name the upstream knows).
#[cfg(feature = "otel")]
fn target_of(request: &ClientRequest) -> Option<&str> {
    match request {
        ClientRequest::CallToolRequest(r) => Some(r.params.name.as_ref()),
        ClientRequest::GetPromptRequest(r) => Some(r.params.name.as_str()),
        _ => None,
    }
}

/// Something an upstream sent that belongs to one forwarded request.
enum CallEvent {
    Progress(ProgressNotificationParam),
    Log(LoggingMessageNotificationParam),
    Request(
        ServerRequest,
        oneshot::Sender<Result<ClientResult, McpError>>,
    ),
}

struct CallEntry {
    upstream_id: RequestId,
    progress_token: ProgressToken,
    events: mpsc::Sender<CallEvent>,
}

/// Where notifications that belong to no request go (the gateway's broadcast).
type NotificationSink = Box<dyn Fn(&str, ServerNotification) + Send + Sync>;

/// The state the supervisor publishes.
struct Life {
    phase: Phase,
    /// Whether it has ever initialized (until then, restarting is not "degraded": it never
    /// worked).
    ever_up: bool,
    restarts: u64,
    last_exit: Option<String>,
    stderr_tail: VecDeque<String>,
}

/// An upstream: supervisor and forwarding. Shared (`Arc`) by the gateway and the supervisor task.
pub struct Upstream {
    config: UpstreamConfig,
    /// A client session's own child (`per_session`): counted in the upstream's counters but
    /// leaves its gauges (up, failed, catalogue sizes) to the shared instance.
    session_instance: bool,
    health_name: String,
    metrics: &'static GatewayMetrics,
    life: Mutex<Life>,
    connection: watch::Sender<Option<Connection>>,
    last_catalog: Mutex<Option<Arc<Catalog>>>,
    calls: Mutex<HashMap<u64, CallEntry>>,
    next_call: AtomicU64,
    slots: Arc<Semaphore>,
    queued: AtomicU64,
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    relist: Mutex<Option<mpsc::Sender<()>>>,
    on_notification: OnceLock<NotificationSink>,
    shutdown: CancellationToken,
    stopped: tokio::sync::Notify,
    stopped_flag: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("health_name", &self.health_name)
            .finish_non_exhaustive()
    }
}

/// A live connection: the peer to send to and what the upstream listed.
#[derive(Clone)]
pub struct Connection {
    peer: Peer<RoleClient>,
    /// What the upstream lists.
    pub catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Our client side of an upstream connection: routes what the upstream sends.
struct UpstreamClient {
    upstream: Weak<Upstream>,
}

impl Upstream {
    /// An upstream that is not started yet (see [`Upstream::start`]).
    pub fn new(config: UpstreamConfig, metrics: &'static GatewayMetrics) -> Arc<Self> {
        let name = config.name.clone();
        metrics.up.exact_labels([&name]).set(0);
        metrics.failed.exact_labels([&name]).set(0);
        metrics.in_flight.exact_labels([&name]).set(0);
        metrics.queued.exact_labels([&name]).set(0);
        metrics.restarts.exact_labels([&name]).inc_by(0);
        Self::build(config, metrics, false)
    }

    /// A client session's own instance of a `per_session` upstream.
    pub fn for_session(config: UpstreamConfig, metrics: &'static GatewayMetrics) -> Arc<Self> {
        Self::build(config, metrics, true)
    }

    /// The metrics it updates.
    pub fn metrics(&self) -> &'static GatewayMetrics {
        self.metrics
    }

    fn build(
        config: UpstreamConfig,
        metrics: &'static GatewayMetrics,
        session_instance: bool,
    ) -> Arc<Self> {
        Arc::new(Upstream {
            session_instance,
            health_name: format!("upstream:{}", config.name),
            slots: Arc::new(Semaphore::new(config.settings.max_concurrency)),
            config,
            metrics,
            life: Mutex::new(Life {
                phase: Phase::Starting,
                ever_up: false,
                restarts: 0,
                last_exit: None,
                stderr_tail: VecDeque::new(),
            }),
            connection: watch::channel(None).0,
            last_catalog: Mutex::new(None),
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            on_change: OnceLock::new(),
            relist: Mutex::new(None),
            on_notification: OnceLock::new(),
            shutdown: CancellationToken::new(),
            stopped: tokio::sync::Notify::new(),
            stopped_flag: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its component name in health reports: `upstream:NAME`.
    pub fn health_name(&self) -> &str {
        &self.health_name
    }

    /// Its configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Its phase.
    pub fn phase(&self) -> Phase {
        self.life().phase
    }

    /// Starts after the first.
    pub fn restarts(&self) -> u64 {
        self.life().restarts
    }

    /// Why the last process or connection ended, with the last lines of its stderr.
    pub fn last_exit(&self) -> Option<String> {
        self.life().last_exit.clone()
    }

    /// The live connection, if up.
    pub fn connection(&self) -> Option<Connection> {
        self.connection.borrow().clone()
    }

    /// What the upstream listed when it was last up (kept while it is down, so calls to its
    /// tools are counted under their names as `unavailable`, not as unknown tools).
    pub fn last_catalog(&self) -> Option<Arc<Catalog>> {
        self.last_catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, connection: Option<Connection>) {
        if let Some(c) = &connection {
            *self.last_catalog.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.catalog.clone());
        }
        self.connection.send_replace(connection);
    }

    /// Waits until the upstream is up (true) or failed/stopped (false), at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.connection.subscribe();
        let wait = async {
            loop {
                if rx.borrow_and_update().is_some() {
                    return true;
                }
                if matches!(self.phase(), Phase::Failed | Phase::Stopped) {
                    return false;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Health: up is healthy; lost and restarting is degraded; never initialized yet, failed
    /// or stopped is unhealthy (so `/readyz` waits for a required upstream's first start). With
    /// the detail shown in health reports.
    pub fn health(&self) -> (Status, String) {
        let life = self.life();
        let status = match life.phase {
            Phase::Up => Status::Healthy,
            Phase::Restarting if life.ever_up => Status::Degraded,
            Phase::Starting | Phase::Restarting | Phase::Failed | Phase::Stopped => {
                Status::Unhealthy
            }
        };
        let mut detail = format!("{}, restarts {}", life.phase.as_str(), life.restarts);
        if let Some(exit) = &life.last_exit {
            detail.push_str(", last exit: ");
            detail.push_str(exit);
        }
        (status, detail)
    }

    fn life(&self) -> std::sync::MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called (from the supervisor task) whenever the phase or the catalogue changes.
    pub fn set_on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_change.set(Box::new(f));
    }

    /// Called with notifications that belong to no request (logging, resource updates).
    pub fn set_on_notification(
        &self,
        f: impl Fn(&str, ServerNotification) + Send + Sync + 'static,
    ) {
        let _ = self.on_notification.set(Box::new(f));
    }

    fn changed(&self) {
        if let Some(f) = self.on_change.get() {
            f();
        }
    }

    fn set_phase(&self, phase: Phase) {
        {
            let mut life = self.life();
            life.phase = phase;
            life.ever_up |= phase == Phase::Up;
        }
        if self.session_instance {
            return;
        }
        let name = self.name();
        self.metrics
            .up
            .exact_labels([name])
            .set(i64::from(phase == Phase::Up));
        self.metrics
            .failed
            .exact_labels([name])
            .set(i64::from(phase == Phase::Failed));
    }

    /// Starts the supervisor task.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            me.supervise().await;
            me.stopped_flag.store(true, Ordering::SeqCst);
            me.stopped.notify_waiters();
        });
    }

    /// Stops the upstream (closes stdin, then SIGTERM, then SIGKILL to its process group) and
    /// waits for the supervisor to finish.
    pub async fn stop(&self) {
        let notified = self.stopped.notified();
        self.shutdown.cancel();
        if !self.stopped_flag.load(Ordering::SeqCst) {
            notified.await;
        }
    }

    async fn supervise(self: &Arc<Self>) {
        let policy = self.config.settings.restart;
        let backoff = Backoff::new(
            policy.initial.as_millis() as u64,
            policy.max.as_millis().max(1) as u64,
        )
        .with_jitter(Jitter::Full);
        let mut random = Rng::new(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ (Arc::as_ptr(self) as u64),
        );
        let mut attempt = 0u32;
        let mut recent_restarts: VecDeque<Instant> = VecDeque::new();
        let mut first = true;
        let name = self.name().to_owned();
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            if !first {
                self.life().restarts += 1;
                self.metrics.restarts.exact_labels([&name]).inc();
            }
            first = false;
            let started = Instant::now();
            match self.connect().await {
                Ok(session) => {
                    self.metrics.starts.exact_labels([&name, "ok"]).inc();
                    let since_epoch = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let catalog = session.connection.catalog.clone();
                    if !self.session_instance {
                        self.metrics
                            .start_time
                            .exact_labels([&name])
                            .set(since_epoch as i64);
                        self.set_catalog_gauges(&catalog);
                    }
                    self.publish(Some(session.connection.clone()));
                    self.set_phase(Phase::Up);
                    tracing::info!(upstream = %name, tools = catalog.tools.len(),
                        prompts = catalog.prompts.len(), resources = catalog.resources.len(),
                        "upstream up");
                    self.changed();
                    let reason = self.watch(session).await;
                    self.publish(None);
                    self.fail_calls();
                    self.metrics.exits.exact_labels([&name, reason.label]).inc();
                    if !self.session_instance {
                        self.metrics.up.exact_labels([&name]).set(0);
                    }
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    let tail = self.stderr_summary();
                    tracing::warn!(upstream = %name, reason = reason.label, detail = %reason.detail,
                        stderr_tail = %tail, "upstream lost");
                    self.life().last_exit = Some(with_tail(&reason.detail, &tail));
                    if started.elapsed() >= policy.reset_after {
                        attempt = 0;
                    }
                }
                Err(e) => {
                    self.metrics.starts.exact_labels([&name, "failed"]).inc();
                    self.metrics.exits.exact_labels([&name, e.label]).inc();
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    let tail = self.stderr_summary();
                    tracing::warn!(upstream = %name, reason = e.label, detail = %e.detail,
                        stderr_tail = %tail, "upstream failed to start");
                    self.life().last_exit = Some(with_tail(&e.detail, &tail));
                }
            }
            // Crash-loop guard: at most `max_restarts` restarts within the window.
            let now = Instant::now();
            while recent_restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) > policy.window)
            {
                recent_restarts.pop_front();
            }
            if recent_restarts.len() as u32 >= policy.max_restarts {
                tracing::error!(upstream = %name, restarts = recent_restarts.len(),
                    window_s = policy.window.as_secs_f64(), "upstream crashed too often: marked failed");
                self.set_phase(Phase::Failed);
                self.changed();
                self.shutdown.cancelled().await;
                break;
            }
            recent_restarts.push_back(now);
            self.set_phase(Phase::Restarting);
            self.changed();
            let delay = backoff
                .delay(attempt, random.next_u32())
                .unwrap_or(policy.max.as_millis() as u64);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                _ = self.shutdown.cancelled() => break,
            }
        }
        self.set_phase(Phase::Stopped);
        self.changed();
    }

    fn set_catalog_gauges(&self, c: &Catalog) {
        let name = self.name();
        self.metrics
            .tools
            .exact_labels([name])
            .set(c.tools.len() as i64);
        self.metrics
            .prompts
            .exact_labels([name])
            .set(c.prompts.len() as i64);
        self.metrics
            .resources
            .exact_labels([name])
            .set((c.resources.len() + c.templates.len()) as i64);
    }

    fn stderr_summary(&self) -> String {
        let life = self.life();
        life.stderr_tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Answers every request still waiting on the lost connection. (rmcp already fails requests
    /// whose responder it holds; this drops our routing entries so nothing waits on them.)
    fn fail_calls(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn connect(self: &Arc<Self>) -> Result<Session, StartError> {
        // The crash reason is the last lines of this run's stderr, not an earlier run's.
        self.life().stderr_tail.clear();
        let settings = &self.config.settings;
        let client = UpstreamClient {
            upstream: Arc::downgrade(self),
        };
        let (running, child) = match &self.config.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .envs(env)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                #[cfg(unix)]
                cmd.process_group(0);
                let mut child = cmd.spawn().map_err(|e| StartError {
                    label: "spawn_failed",
                    detail: format!("cannot start `{command}`: {e}"),
                })?;
                let (Some(stdout), Some(stdin), Some(stderr)) =
                    (child.stdout.take(), child.stdin.take(), child.stderr.take())
                else {
                    return Err(StartError {
                        label: "spawn_failed",
                        detail: "child has no stdio pipes".into(),
                    });
                };
                self.drain_stderr(stderr);
                let mut child = Child::new(child);
                let served =
                    tokio::time::timeout(settings.init_timeout, client.serve((stdout, stdin)));
                let running = tokio::select! {
                    r = served => r,
                    status = child.wait() => {
                        let reason = exit_reason(status);
                        return Err(StartError { label: reason.label, detail: format!("exited during initialization: {}", reason.detail) });
                    }
                };
                match running {
                    Ok(Ok(r)) => (r, Some(child)),
                    Ok(Err(e)) => {
                        // A child that died is the real story: report its exit, not the pipe.
                        if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
                            let reason = exit_reason(status);
                            return Err(StartError {
                                label: reason.label,
                                detail: format!("{} during initialization", reason.detail),
                            });
                        }
                        child.stop().await;
                        return Err(StartError {
                            label: "init_failed",
                            detail: format!("initialization failed: {e}"),
                        });
                    }
                    Err(_) => {
                        child.stop().await;
                        return Err(StartError {
                            label: "init_timeout",
                            detail: format!(
                                "no answer to initialize within {:.1} s",
                                settings.init_timeout.as_secs_f64()
                            ),
                        });
                    }
                }
            }
            Transport::Http { url, headers } => {
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                use rmcp::transport::StreamableHttpClientTransport;
                let mut custom = HashMap::new();
                let mut auth = None;
                for (k, v) in headers {
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = Some(v.strip_prefix("Bearer ").unwrap_or(v).to_owned());
                        continue;
                    }
                    let (Ok(name), Ok(value)) = (
                        http::HeaderName::try_from(k.as_str()),
                        http::HeaderValue::try_from(v.as_str()),
                    ) else {
                        return Err(StartError {
                            label: "init_failed",
                            detail: format!("header `{k}` is not a valid HTTP header"),
                        });
                    };
                    custom.insert(name, value);
                }
                let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom)
                    .max_concurrent_requests(settings.max_concurrency);
                if let Some(a) = auth {
                    cfg = cfg.auth_header(a);
                }
                // Bounded reconnection of the SSE stream (rmcp's default retries for ever).
                let mut retry =
                    rmcp::transport::common::client_side_sse::ExponentialBackoff::default();
                retry.max_times = Some(3);
                retry.base_duration = Duration::from_millis(200);
                cfg.retry_config = Arc::new(retry);
                let transport = StreamableHttpClientTransport::from_config(cfg);
                match tokio::time::timeout(settings.init_timeout, client.serve(transport)).await {
                    Ok(Ok(r)) => (r, None),
                    Ok(Err(e)) => {
                        return Err(StartError {
                            label: "init_failed",
                            detail: format!("cannot initialize {url}: {e}"),
                        })
                    }
                    Err(_) => {
                        return Err(StartError {
                            label: "init_timeout",
                            detail: format!(
                                "no answer from {url} within {:.1} s",
                                settings.init_timeout.as_secs_f64()
                            ),
                        })
                    }
                }
            }
        };
        let peer = running.peer().clone();
        peer.set_response_cache_config(rmcp::ClientCacheConfig::disabled())
            .await;
        let catalog = match tokio::time::timeout(settings.init_timeout, list_catalog(&peer)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let mut s = Session {
                    running,
                    child,
                    connection: Connection {
                        peer,
                        catalog: Arc::default(),
                    },
                };
                s.stop().await;
                return Err(StartError {
                    label: "init_failed",
                    detail: format!("listing failed: {e}"),
                });
            }
            Err(_) => {
                let mut s = Session {
                    running,
                    child,
                    connection: Connection {
                        peer,
                        catalog: Arc::default(),
                    },
                };
                s.stop().await;
                return Err(StartError {
                    label: "init_timeout",
                    detail: "listing timed out".into(),
                });
            }
        };
        Ok(Session {
            running,
            child,
            connection: Connection {
                peer,
                catalog: Arc::new(catalog),
            },
        })
    }

    /// Waits until the session ends (the process exits, the connection closes, pings fail, or
    /// shutdown), stops what is left of it and says why.
    async fn watch(&self, mut session: Session) -> ExitReason {
        let peer = session.connection.peer.clone();
        let mut relist = self.relist_requests();
        let mut failed_pings = 0u32;
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let reason = loop {
            tokio::select! {
                status = wait_child(&mut session.child) => break exit_reason(status),
                _ = wait_closed(&peer) => break ExitReason { label: "transport", detail: "connection closed".into() },
                _ = self.shutdown.cancelled() => break ExitReason { label: "shutdown", detail: "shutdown".into() },
                _ = relist.recv() => {
                    match list_catalog(&peer).await {
                        Ok(c) => {
                            let c = Arc::new(c);
                            if !self.session_instance {
                                self.set_catalog_gauges(&c);
                            }
                            session.connection.catalog = c;
                            self.publish(Some(session.connection.clone()));
                            self.changed();
                        }
                        Err(e) => tracing::warn!(upstream = %self.name(), error = %e, "re-listing failed"),
                    }
                }
                _ = ping.tick() => {
                    let ok = matches!(
                        tokio::time::timeout(Duration::from_secs(10), peer.send_request(ClientRequest::PingRequest(PingRequest::default()))).await,
                        Ok(Ok(_))
                    );
                    failed_pings = if ok { 0 } else { failed_pings + 1 };
                    if failed_pings >= PING_FAILURES {
                        break ExitReason { label: "unresponsive", detail: format!("{PING_FAILURES} pings unanswered") };
                    }
                }
            }
        };
        session.stop().await;
        reason
    }

    /// A channel that wakes the session's watcher when the upstream says a list changed.
    fn relist_requests(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(1);
        *self.relist.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    fn request_relist(&self) {
        if let Some(tx) = &*self.relist.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.try_send(());
        }
    }

    fn drain_stderr(self: &Arc<Self>, stderr: tokio::process::ChildStderr) {
        let me = Arc::downgrade(self);
        let name = self.name().to_owned();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(8192, stderr);
            let mut line = Vec::with_capacity(256);
            let mut window = Instant::now();
            let mut logged = 0u32;
            let mut suppressed = 0u64;
            loop {
                line.clear();
                // Read one line, keeping at most STDERR_LINE_MAX bytes of it.
                let mut eof = false;
                loop {
                    // While lines are being dropped, wake at the end of the window to say so.
                    let buf = if suppressed > 0 {
                        let until = window + Duration::from_secs(1);
                        tokio::select! {
                            r = reader.fill_buf() => r,
                            _ = tokio::time::sleep_until(until.into()) => {
                                tracing::warn!(upstream = %name, suppressed, "upstream stderr lines not logged (rate limit)");
                                suppressed = 0;
                                window = Instant::now();
                                logged = 0;
                                continue;
                            }
                        }
                    } else {
                        reader.fill_buf().await
                    };
                    let buf = match buf {
                        Ok(b) => b,
                        Err(_) => {
                            eof = true;
                            break;
                        }
                    };
                    if buf.is_empty() {
                        eof = true;
                        break;
                    }
                    let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (buf.len(), false),
                    };
                    let room = STDERR_LINE_MAX.saturating_sub(line.len());
                    line.extend_from_slice(&buf[..take.min(room)]);
                    reader.consume(take);
                    if done {
                        break;
                    }
                }
                if eof && line.is_empty() {
                    break;
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    continue;
                }
                let text: String = text
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                if window.elapsed() >= Duration::from_secs(1) {
                    if suppressed > 0 {
                        tracing::warn!(upstream = %name, suppressed, "upstream stderr lines not logged (rate limit)");
                    }
                    window = Instant::now();
                    logged = 0;
                    suppressed = 0;
                }
                if logged < STDERR_LINES_PER_SECOND {
                    logged += 1;
                    tracing::info!(upstream = %name, stream = "stderr", "{text}");
                } else {
                    suppressed += 1;
                }
                let Some(me) = me.upgrade() else { break };
                let mut life = me.life();
                if life.stderr_tail.len() == STDERR_TAIL {
                    life.stderr_tail.pop_front();
                }
                life.stderr_tail.push_back(text);
                drop(life);
                if eof {
                    break;
                }
            }
            // Drain whatever is left without keeping it.
            let mut sink = [0u8; 8192];
            let mut rest = reader.into_inner();
            while matches!(rest.read(&mut sink).await, Ok(n) if n > 0) {}
        });
    }

    /// Forwards `request` (`method` is its MCP method name, for metrics) on behalf of the
    /// downstream request in `downstream`: progress notifications and requests the upstream sends
    /// for it (sampling, elicitation, roots) are relayed to that client, and its cancellation is
    /// relayed to the upstream.
    pub async fn forward(
        &self,
        request: ClientRequest,
        method: &'static str,
        downstream: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ForwardError> {
        let name = self.name();
        let started = Instant::now();
        let tool = crate::semconv::tool_of(&request);
        let mut meta = downstream.meta.clone();
        meta.remove("progressToken");
        // The CLIENT span of this call, a child of the client's request's SERVER span; its trace
        // context replaces the client's in `_meta`.
        #[cfg(feature = "otel")]
        let mut span = crate::otel::ClientSpan::start(|| {
            let (transport, url) = match &self.config.transport {
                super::config::Transport::Stdio { .. } => ("pipe", None),
                super::config::Transport::Http { url, .. } => ("tcp", Some(url.as_str())),
            };
            crate::otel::Call {
                method: crate::semconv::method_name(method),
                target: target_of(&request),
                upstream: name,
                transport,
                url,
                protocol_version: self
                    .connection()
                    .and_then(|c| c.peer.peer_info().map(|i| i.protocol_version.to_string())),
            }
        });
        #[cfg(feature = "otel")]
        if let Some(s) = &span {
            s.inject(&mut meta);
        }
        let mut sent = None;
        let result = self
            .forward_inner(request, meta, downstream, &mut sent)
            .await;
        #[cfg(feature = "otel")]
        if let Some(s) = &mut span {
            if let Some(id) = sent {
                s.request_id(match id {
                    NumberOrString::Number(n) => n.to_string(),
                    NumberOrString::String(s) => s.to_string(),
                });
            }
            let ending = crate::semconv::Ending::of_forward(&result);
            let message = match &result {
                Err(e) => Some(e.to_string()),
                Ok(_) => None,
            };
            s.ended(ending.error_type, ending.status_code, message);
        }
        #[cfg(not(feature = "otel"))]
        let _ = sent;
        #[cfg(feature = "otel")]
        let exemplar = span.as_ref().and_then(crate::otel::ClientSpan::ids);
        #[cfg(not(feature = "otel"))]
        let exemplar = None;
        let outcome = match &result {
            Ok(ServerResult::CallToolResult(r)) if r.is_error == Some(true) => "tool_error",
            Ok(_) => "ok",
            Err(e) => e.outcome().as_str(),
        };
        self.metrics
            .requests
            .exact_labels([name, method, outcome])
            .inc();
        // Every request the upstream had: answered, refused with an error, timed out, or lost
        // with the connection (not those never sent, nor those the client cancelled).
        if result.is_ok()
            || matches!(
                result,
                Err(ForwardError::Upstream(_)
                    | ForwardError::Timeout { .. }
                    | ForwardError::Transport { .. })
            )
        {
            self.metrics
                .duration
                .exact_labels([name, method])
                .observe_duration(started.elapsed());
            crate::semconv::observe_forward(
                self.metrics,
                name,
                method,
                tool,
                &result,
                started,
                exemplar,
            );
        }
        result
    }

    async fn forward_inner(
        &self,
        request: ClientRequest,
        meta: RequestMetaObject,
        downstream: &RequestContext<RoleServer>,
        sent: &mut Option<RequestId>,
    ) -> Result<ServerResult, ForwardError> {
        let name = self.name();
        let unavailable = || ForwardError::Unavailable {
            upstream: name.to_owned(),
            phase: self.phase(),
        };
        let Some(conn) = self.connection() else {
            return Err(unavailable());
        };
        // A concurrency slot, waiting in a bounded queue.
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.queued.load(Ordering::Relaxed) >= self.config.settings.max_queue as u64 {
                    return Err(ForwardError::Busy {
                        upstream: name.to_owned(),
                    });
                }
                let _queued = Queued::new(self);
                tokio::select! {
                    p = self.slots.clone().acquire_owned() => p.map_err(|_| unavailable())?,
                    _ = downstream.ct.cancelled() => return Err(ForwardError::Cancelled),
                }
            }
        };
        let settings = &self.config.settings;
        let mut options = PeerRequestOptions::with_timeout(settings.call_timeout)
            .reset_timeout_on_progress()
            .with_max_total_timeout(settings.max_call_time);
        if !meta.is_empty() {
            options = options.with_meta(meta);
        }
        let handle = conn
            .peer
            .send_request_with_option(request, options)
            .await
            .map_err(|e| transport_error(name, e))?;
        *sent = Some(handle.id.clone());
        let (events_tx, mut events) = mpsc::channel(64);
        let key = self.next_call.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            upstream: self,
            key,
            peer: conn.peer.clone(),
            upstream_id: handle.id.clone(),
            answered: false,
            _permit: permit,
        };
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            CallEntry {
                upstream_id: handle.id.clone(),
                progress_token: handle.progress_token.clone(),
                events: events_tx,
            },
        );
        self.metrics.in_flight.exact_labels([name]).inc();
        let downstream_token = downstream.meta.get_progress_token();
        let response = handle.await_response();
        tokio::pin!(response);
        let result = loop {
            tokio::select! {
                biased;
                Some(event) = events.recv() => relay(name, event, downstream, downstream_token.as_ref()).await,
                r = &mut response => break r,
                _ = downstream.ct.cancelled() => return Err(ForwardError::Cancelled),
            }
        };
        pending.answered = true;
        // rmcp hands each upstream notification to a task of its own but delivers the answer
        // inline, so progress the upstream sent just before answering may still be on its way to
        // this call's channel. A client that asked for progress gets it: the entry stays a moment.
        if downstream_token.is_some() {
            let grace = tokio::time::sleep(PROGRESS_GRACE);
            tokio::pin!(grace);
            loop {
                tokio::select! {
                    biased;
                    Some(event) = events.recv() => relay(name, event, downstream, downstream_token.as_ref()).await,
                    _ = &mut grace => break,
                }
            }
        }
        // From here on, notifications that belong to no call in flight are broadcast: the entry
        // goes before the last events are drained, so none lands in a channel nobody reads.
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        // Progress that arrived just before the answer goes out first.
        while let Ok(event) = events.try_recv() {
            relay(name, event, downstream, downstream_token.as_ref()).await;
        }
        match result {
            Ok(r) => Ok(r),
            Err(ServiceError::McpError(e)) => Err(ForwardError::Upstream(e)),
            Err(ServiceError::Timeout { timeout }) => Err(ForwardError::Timeout {
                upstream: name.to_owned(),
                after: timeout,
            }),
            Err(ServiceError::Cancelled { .. }) => Err(ForwardError::Cancelled),
            Err(e) => Err(transport_error(name, e)),
        }
    }

    /// Sends a notification to the upstream, if up.
    pub async fn notify(&self, notification: ClientNotification) {
        if let Some(conn) = self.connection() {
            let _ = conn.peer.send_notification(notification).await;
        }
    }

    /// The forwarded call a request from the upstream belongs to: the one whose HTTP stream it
    /// arrived on when the transport tells, else the most recent call in flight.
    fn call_for(&self, origin: Option<&InboundStreamOrigin>) -> Option<mpsc::Sender<CallEvent>> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = origin {
            if let Some(c) = calls.values().find(|c| &c.upstream_id == id) {
                return Some(c.events.clone());
            }
        }
        calls
            .iter()
            .max_by_key(|(k, _)| **k)
            .map(|(_, c)| c.events.clone())
    }

    fn call_for_progress(&self, token: &ProgressToken) -> Option<mpsc::Sender<CallEvent>> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .values()
            .find(|c| &c.progress_token == token)
            .map(|c| c.events.clone())
    }
}

/// One place in an upstream's queue (the queued gauge follows it).
struct Queued<'a>(&'a Upstream);

impl<'a> Queued<'a> {
    fn new(u: &'a Upstream) -> Self {
        u.queued.fetch_add(1, Ordering::Relaxed);
        u.metrics.queued.exact_labels([u.name()]).inc();
        Queued(u)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.queued.exact_labels([self.0.name()]).dec();
    }
}

/// A request sent upstream. On drop: the routing entry goes, the in-flight gauge comes down, the
/// slot is freed, and a request that got no answer is cancelled upstream.
struct Pending<'a> {
    upstream: &'a Upstream,
    key: u64,
    peer: Peer<RoleClient>,
    upstream_id: RequestId,
    answered: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let u = self.upstream;
        u.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        u.metrics.in_flight.exact_labels([u.name()]).dec();
        if !self.answered && !self.peer.is_transport_closed() {
            let peer = self.peer.clone();
            let id = self.upstream_id.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let cancel = CancelledNotification::new(CancelledNotificationParam::new(
                        Some(id),
                        Some("cancelled by the client".into()),
                    ));
                    let _ = peer.send_notification(cancel.into()).await;
                });
            }
        }
    }
}

async fn relay(
    upstream: &str,
    event: CallEvent,
    downstream: &RequestContext<RoleServer>,
    token: Option<&ProgressToken>,
) {
    match event {
        CallEvent::Progress(mut p) => {
            // Forwarded only when the client asked for progress, under its own token.
            if let Some(token) = token {
                p.progress_token = token.clone();
                let _ = downstream.peer.notify_progress(p).await;
            }
        }
        CallEvent::Log(mut p) => {
            if p.logger.is_none() {
                p.logger = Some(upstream.to_owned());
            }
            #[allow(deprecated)] // logging: deprecated by 2026-07-28, relayed for 2025-11-25.
            let _ = downstream.peer.notify_logging_message(p).await;
        }
        CallEvent::Request(request, reply) => {
            let result = downstream
                .peer
                .send_request(request)
                .await
                .map_err(|e| match e {
                    ServiceError::McpError(e) => e,
                    other => McpError::internal_error(
                        format!("the client did not answer: {other}"),
                        None,
                    ),
                });
            let _ = reply.send(result);
        }
    }
}

fn transport_error(upstream: &str, e: ServiceError) -> ForwardError {
    ForwardError::Transport {
        upstream: upstream.to_owned(),
        detail: e.to_string(),
    }
}

fn with_tail(detail: &str, tail: &str) -> String {
    if tail.is_empty() {
        detail.to_owned()
    } else {
        format!("{detail}; stderr: {tail}")
    }
}

/// Most items read from one list (a bound on what a misbehaving upstream can make us hold).
const MAX_LISTED: usize = 100_000;

/// Every page of one list: `request` makes the request for a cursor, `page` takes the items and
/// the next cursor out of the answer.
async fn list_pages<T>(
    peer: &Peer<RoleClient>,
    request: impl Fn(PaginatedRequestParams) -> ClientRequest,
    page: impl Fn(ServerResult) -> Option<(Vec<T>, Option<String>)>,
) -> Result<Vec<T>, ServiceError> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let answer = peer
            .send_request(request(
                PaginatedRequestParams::default().with_cursor(cursor),
            ))
            .await?;
        let (mut more, next) = page(answer).ok_or(ServiceError::UnexpectedResponse)?;
        items.append(&mut more);
        cursor = next;
        if cursor.is_none() || items.len() > MAX_LISTED {
            return Ok(items);
        }
    }
}

/// Lists everything an upstream offers, following pagination, per its capabilities.
async fn list_catalog(peer: &Peer<RoleClient>) -> Result<Catalog, ServiceError> {
    let info = peer.peer_info();
    let caps = info
        .as_ref()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    let mut c = Catalog {
        capabilities: caps.clone(),
        instructions: info.as_ref().and_then(|i| i.instructions.clone()),
        ..Catalog::default()
    };
    if caps.tools.is_some() {
        c.tools = list_pages(
            peer,
            |params| ClientRequest::ListToolsRequest(ListToolsRequest::with_param(params)),
            |r| match r {
                ServerResult::ListToolsResult(r) => Some((r.tools, r.next_cursor)),
                _ => None,
            },
        )
        .await?;
    }
    if caps.prompts.is_some() {
        c.prompts = list_pages(
            peer,
            |params| ClientRequest::ListPromptsRequest(ListPromptsRequest::with_param(params)),
            |r| match r {
                ServerResult::ListPromptsResult(r) => Some((r.prompts, r.next_cursor)),
                _ => None,
            },
        )
        .await?;
    }
    if caps.resources.is_some() {
        c.resources = list_pages(
            peer,
            |params| ClientRequest::ListResourcesRequest(ListResourcesRequest::with_param(params)),
            |r| match r {
                ServerResult::ListResourcesResult(r) => Some((r.resources, r.next_cursor)),
                _ => None,
            },
        )
        .await?;
        c.templates = list_pages(
            peer,
            |params| {
                ClientRequest::ListResourceTemplatesRequest(
                    ListResourceTemplatesRequest::with_param(params),
                )
            },
            |r| match r {
                ServerResult::ListResourceTemplatesResult(r) => {
                    Some((r.resource_templates, r.next_cursor))
                }
                _ => None,
            },
        )
        .await?;
    }
    Ok(c)
}

struct StartError {
    label: &'static str,
    detail: String,
}

struct ExitReason {
    label: &'static str,
    detail: String,
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>) -> ExitReason {
    match status {
        Err(e) => ExitReason {
            label: "transport",
            detail: format!("wait failed: {e}"),
        },
        Ok(s) => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(sig) = s.signal() {
                    let label = match sig {
                        9 => "killed",
                        15 => "terminated",
                        _ => "signaled",
                    };
                    return ExitReason {
                        label,
                        detail: format!("killed by signal {sig}"),
                    };
                }
            }
            match s.code() {
                Some(0) => ExitReason {
                    label: "exited",
                    detail: "exited with status 0".into(),
                },
                Some(c) => ExitReason {
                    label: "failed",
                    detail: format!("exited with status {c}"),
                },
                None => ExitReason {
                    label: "signaled",
                    detail: "ended without a status".into(),
                },
            }
        }
    }
}

/// A running connection and, for stdio, its child process.
struct Session {
    running: RunningService<RoleClient, UpstreamClient>,
    child: Option<Child>,
    connection: Connection,
}

impl Session {
    async fn stop(&mut self) {
        // Closing the transport closes the child's stdin: a well-behaved server exits.
        let _ = self.running.close_with_timeout(STOP_GRACE).await;
        if let Some(child) = &mut self.child {
            child.stop().await;
        }
    }
}

async fn wait_child(child: &mut Option<Child>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

async fn wait_closed(peer: &Peer<RoleClient>) {
    loop {
        if peer.is_transport_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A supervised child process, leader of its own process group.
struct Child {
    child: tokio::process::Child,
    pgid: Option<i32>,
    status: Option<std::process::ExitStatus>,
}

impl Child {
    fn new(child: tokio::process::Child) -> Self {
        let pgid = child.id().map(|p| p as i32);
        Child {
            child,
            pgid,
            status: None,
        }
    }

    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        if let Some(s) = self.status {
            let () = std::future::pending().await;
            return Ok(s);
        }
        let s = self.child.wait().await?;
        self.status = Some(s);
        // The leader is gone; whatever it started goes too.
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        Ok(s)
    }

    fn signal_group(&self, signal: nix::sys::signal::Signal) {
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal);
        }
    }

    /// stdin is already closed by the caller: wait, then SIGTERM the group, wait, then SIGKILL.
    async fn stop(&mut self) {
        if self.status.is_none() {
            if let Ok(Ok(s)) = tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
                self.status = Some(s);
            } else {
                self.signal_group(nix::sys::signal::Signal::SIGTERM);
                if let Ok(Ok(s)) = tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
                    self.status = Some(s);
                }
            }
        }
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        if self.status.is_none() {
            if let Ok(s) = self.child.wait().await {
                self.status = Some(s);
            }
        }
    }
}

impl rmcp::Service<RoleClient> for UpstreamClient {
    async fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let _ = context;
        if let ServerRequest::PingRequest(_) = request {
            return Ok(ClientResult::empty(()));
        }
        let Some(upstream) = self.upstream.upgrade() else {
            return Err(McpError::internal_error("gateway stopping", None));
        };
        let origin = rmcp::model::GetExtensions::extensions(&request)
            .get::<InboundStreamOrigin>()
            .cloned();
        let method = match &request {
            ServerRequest::CreateMessageRequest(_) => "sampling/createMessage",
            ServerRequest::ListRootsRequest(_) => "roots/list",
            ServerRequest::ElicitRequest(_) => "elicitation/create",
            _ => "a request",
        };
        let Some(call) = upstream.call_for(origin.as_ref()) else {
            return Err(McpError::invalid_request(
                format!("`{method}` reached the gateway with no client call in flight on this upstream to answer it"),
                None,
            ));
        };
        let (tx, rx) = oneshot::channel();
        if call.send(CallEvent::Request(request, tx)).await.is_err() {
            return Err(McpError::internal_error(
                "the client call this request belongs to has ended",
                None,
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(McpError::internal_error(
                "the client call this request belongs to has ended",
                None,
            ))
        })
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> Result<(), McpError> {
        let _ = context;
        let Some(upstream) = self.upstream.upgrade() else {
            return Ok(());
        };
        let label: &str = match &notification {
            ServerNotification::ProgressNotification(_) => "notifications/progress",
            ServerNotification::LoggingMessageNotification(_) => "notifications/message",
            ServerNotification::ResourceUpdatedNotification(_) => "notifications/resources/updated",
            ServerNotification::ResourceListChangedNotification(_) => {
                "notifications/resources/list_changed"
            }
            ServerNotification::ToolListChangedNotification(_) => {
                "notifications/tools/list_changed"
            }
            ServerNotification::PromptListChangedNotification(_) => {
                "notifications/prompts/list_changed"
            }
            ServerNotification::CancelledNotification(_) => "notifications/cancelled",
            _ => "other",
        };
        upstream
            .metrics
            .notifications
            .exact_labels([upstream.name(), label])
            .inc();
        match notification {
            ServerNotification::ProgressNotification(n) => {
                if let Some(call) = upstream.call_for_progress(&n.params.progress_token) {
                    let _ = call.try_send(CallEvent::Progress(n.params));
                }
            }
            ServerNotification::ToolListChangedNotification(_)
            | ServerNotification::PromptListChangedNotification(_)
            | ServerNotification::ResourceListChangedNotification(_) => upstream.request_relist(),
            // A log line while a call is in flight belongs to that call's client; otherwise to
            // every client.
            ServerNotification::LoggingMessageNotification(n) => {
                let unsent = match upstream.call_for(None) {
                    Some(call) => match call.try_send(CallEvent::Log(n.params)) {
                        Ok(()) => None,
                        Err(mpsc::error::TrySendError::Full(CallEvent::Log(p)))
                        | Err(mpsc::error::TrySendError::Closed(CallEvent::Log(p))) => Some(p),
                        Err(_) => None,
                    },
                    None => Some(n.params),
                };
                if let (Some(p), Some(f)) = (unsent, upstream.on_notification.get()) {
                    f(
                        upstream.name(),
                        ServerNotification::LoggingMessageNotification(
                            LoggingMessageNotification::new(p),
                        ),
                    );
                }
            }
            other @ ServerNotification::ResourceUpdatedNotification(_) => {
                if let Some(f) = upstream.on_notification.get() {
                    f(upstream.name(), other);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// What the gateway declares to every upstream: sampling and elicitation (form and URL),
    /// which it relays to the client whose call caused them. Not roots: a shared upstream's
    /// `roots/list` can arrive outside any call, with no client to ask.
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .build();
        caps.elicitation = Some(
            ElicitationCapability::new()
                .with_form(FormElicitationCapability::default())
                .with_url(UrlElicitationCapability::default()),
        );
        ClientConfig::new(
            caps,
            Implementation::new("vitals-gateway", env!("CARGO_PKG_VERSION")),
        )
    }
}
