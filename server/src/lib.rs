//! vitals-server as a library: [`run`] does what the binary does, so tests can run it in-process.
//!
//! Two modes, one set of instruments:
//! - **Reference server** (no upstream): the operator tools (`server_health`, `server_metrics`,
//!   `rate_limit_status`, `circuit_breaker_status`) and, with `--conformance-fixtures`, the MCP
//!   conformance suite's fixtures.
//! - **Gateway** (`-- COMMAND`, `--config FILE`, `--upstream NAME=URL`): the operator tools plus
//!   every upstream's tools, prompts and resources, each call rate limited, charged to the quota,
//!   guarded by its upstream's circuit breaker and measured
//!   ([`vitals_std::gateway`]).
//!
//! Either is served over Streamable HTTP (`/mcp`, with `/metrics` and health beside it) or over
//! stdio (`--stdio`, with `/metrics` and health on `--listen` when given).

mod body;
mod build_info;
pub mod cli;
mod clients;
#[cfg(feature = "conformance-fixtures")]
mod fixtures;
#[cfg(not(feature = "conformance-fixtures"))]
#[path = "no_fixtures.rs"]
mod fixtures;
mod guard;
mod hosts;
pub mod http;
mod nofile;
mod probe;
mod session_caps;
mod session_manager;
mod session_store;
mod sessions;
pub mod shared;
mod sse;
mod tokens;
pub mod tools;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;
use vitals_std::gateway::{self, Gateway, Upstream, UpstreamConfig};
use vitals_std::Vitals;

use crate::cli::Cli;
use crate::tools::VitalsServer;

/// Runs the server until SIGTERM/SIGINT (or, on stdio, until the client closes stdin).
pub async fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    run_until(cli, shutdown_signal()).await
}

/// Runs the server until `shutdown` resolves.
pub async fn run_until(
    cli: Cli,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error>> {
    let mut builder = Vitals::builder()
        .http_rate_limit(cli.rate_limit)
        .tool_rate_limit(cli.tool_rate_limit)
        .tool_client_rate_limit(cli.client_tool_rate_limit)
        .daily_tool_quota(cli.daily_quota)
        .metrics_token(cli.metrics_token.clone());
    if cli.is_gateway() {
        builder = builder.gateway();
    }
    if let Some(secs) = cli.call_timeout {
        if cli.is_gateway() {
            return Err(
                "--call-timeout bounds the server's own tools; an upstream's calls are \
                        bounded by --upstream-timeout"
                    .into(),
            );
        }
        if !(secs.is_finite() && secs > 0.0) {
            return Err("--call-timeout: expected a number of seconds > 0".into());
        }
        builder = builder.tool_call_timeout(Some(Duration::from_secs_f64(secs.min(1e9))));
    }
    #[cfg(feature = "redis")]
    if let Some(limits) = shared::shared_limits(&cli)? {
        builder = builder.shared_limits(limits);
    }
    #[cfg(feature = "redis")]
    let shared_sessions = shared::shared_sessions(&cli)?;
    #[cfg(feature = "redis")]
    if let Some(s) = shared_sessions {
        builder = builder.metrics(move |b| s.0.register(b));
    }
    #[cfg(not(feature = "redis"))]
    let shared_sessions: Option<session_store::SharedStore> = None;
    #[cfg(not(feature = "redis"))]
    if cli.redis.url.is_some() {
        return Err("--redis: this vitals-server was built without the `redis` feature".into());
    }
    builder = builder
        .metrics(|b| session_caps::METRICS.register(b))
        .metrics(build_info::register);
    let vitals = builder.build()?;
    let fixtures = cli.conformance_fixtures;
    if fixtures && !cfg!(feature = "conformance-fixtures") {
        return Err(
            "--conformance-fixtures: this vitals-server was built without the \
                    `conformance-fixtures` feature"
                .into(),
        );
    }

    if !cli.is_gateway() {
        let v = vitals.clone();
        let tools = VitalsServer::new(v.clone(), fixtures);
        return serve(
            &cli,
            vitals,
            move || v.instrument(tools.for_session()),
            shutdown,
            shared_sessions,
        )
        .await;
    }

    let upstreams = upstreams(&cli, &vitals)?;
    let gateway = Gateway::new(
        vitals.clone(),
        VitalsServer::new(vitals.clone(), fixtures),
        upstreams.clone(),
        &cli.prefix_delimiter,
    );
    if cli.stdio {
        // A desktop client sends initialize and tools/list at once: give the required
        // upstreams (bounded) time to come up so the first list is complete.
        let wait = Duration::from_secs_f64(cli.upstream_start_wait.clamp(0.0, 3600.0));
        let required = upstreams
            .iter()
            .filter(|u| u.config().settings.required)
            .map(|u| u.wait_ready(wait));
        for ready in required {
            ready.await;
        }
    }
    let v = vitals.clone();
    let sessions = gateway.clone();
    let tools = VitalsServer::new(v.clone(), fixtures);
    let result = serve(
        &cli,
        vitals,
        move || v.instrument(sessions.for_session(tools.for_session())),
        shutdown,
        shared_sessions,
    )
    .await;
    gateway.stop().await;
    result
}

/// The upstreams named by the flags, created, registered for health and started.
fn upstreams(cli: &Cli, vitals: &Vitals) -> Result<Vec<Arc<Upstream>>, Box<dyn Error>> {
    let mut configs = Vec::new();
    if let Some((command, args)) = cli.command.split_first() {
        let name = cli
            .upstream_name
            .clone()
            .unwrap_or_else(|| name_of(command));
        configs.push(UpstreamConfig::stdio(&name, command, args));
    }
    if let Some(path) = &cli.config {
        configs.extend(gateway::config::load(path)?);
    }
    for spec in &cli.upstreams {
        configs.push(UpstreamConfig::parse_named_url(spec)?);
    }
    if let Some(secs) = cli.upstream_timeout {
        if !(secs.is_finite() && secs > 0.0) {
            return Err("--upstream-timeout: expected a number of seconds > 0".into());
        }
        for c in &mut configs {
            c.settings.call_timeout = Duration::from_secs_f64(secs);
            c.settings.max_call_time = c.settings.max_call_time.max(c.settings.call_timeout);
        }
    }
    gateway::config::validate(&configs, &cli.prefix_delimiter)?;
    let metrics = vitals
        .gateway_metrics()
        .ok_or("gateway metrics not registered")?;
    let upstreams: Vec<Arc<Upstream>> = configs
        .into_iter()
        .map(|c| Upstream::new(c, metrics))
        .collect();
    for u in &upstreams {
        vitals.add_health_source(u.clone(), u.config().settings.required);
        // Every upstream's breaker exists (and is exported) before its first call.
        vitals.upstreams().get_or_create(u.name());
        u.start();
    }
    Ok(upstreams)
}

/// A default upstream name from a command: its file name, made of `[A-Za-z0-9_-]`.
fn name_of(command: &str) -> String {
    let base = std::path::Path::new(command)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("upstream");
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    if name.is_empty() {
        "upstream".into()
    } else {
        name
    }
}

/// Serves MCP from `factory` over stdio or HTTP, with /metrics and health on HTTP when listening.
async fn serve<H: http::Handler>(
    cli: &Cli,
    vitals: Vitals,
    factory: impl Fn() -> H + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    shared_sessions: Option<session_store::SharedStore>,
) -> Result<(), Box<dyn Error>> {
    let max_connections = fit_connections(cli.max_connections.max(1));
    let limits = http::Limits {
        max_connections,
        max_connections_per_client: cli.hardening.max_connections_per_client,
        header_timeout: Duration::from_secs_f64(cli.header_timeout.max(0.001)),
        drain_timeout: Duration::from_secs_f64(cli.drain_timeout.max(0.0)),
    };
    let guard = guard_config(cli, max_connections, shared_sessions)?;
    let mcp_cancel = CancellationToken::new();
    if cli.stdio {
        tracing::info!(fixtures = cli.conformance_fixtures, "serving MCP on stdio");
        let stop_http = CancellationToken::new();
        let http_task = match cli.listen_addr() {
            Some(addr) => {
                let app = Arc::new(http::App::<H>::without_mcp(vitals.clone(), guard));
                let listener = bind(addr).await?;
                let stop = stop_http.clone();
                Some(tokio::spawn(http::serve(
                    listener,
                    app,
                    limits,
                    mcp_cancel.clone(),
                    async move { stop.cancelled().await },
                )))
            }
            None => None,
        };
        let server = match stdio_pipes() {
            Some(pipes) => factory().serve(pipes).await?,
            None => factory().serve(rmcp::transport::stdio()).await?,
        };
        let cancel = server.cancellation_token();
        tokio::select! {
            r = server.waiting() => { r?; }
            _ = shutdown => { cancel.cancel(); }
        }
        stop_http.cancel();
        if let Some(t) = http_task {
            let _ = t.await;
        }
        return Ok(());
    }

    let addr = cli.listen_addr().ok_or("no address to listen on")?;
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(cli.hosts())
        .with_allowed_origins(cli.origins())
        .enforce_origin_validation()
        .with_max_request_body_bytes(cli.max_body_bytes)
        .with_cancellation_token(mcp_cancel.clone());
    let app = Arc::new(http::App::new(vitals, factory, mcp_config, guard));
    let listener = bind(addr).await?;
    http::serve(listener, app, limits, mcp_cancel, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// This process's stdin and stdout as asynchronous pipes, when both are pipes (as an MCP client
/// that spawns us makes them): reads and writes then go through the reactor instead of a
/// blocking thread per operation (rmcp's `stdio()`), which costs as much per call as the whole
/// HTTP path. None for a terminal, a file or /dev/null: then rmcp's `stdio()` serves.
#[cfg(unix)]
fn stdio_pipes() -> Option<(
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Sender,
)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let read = tokio::net::unix::pipe::Receiver::from_file(std::fs::File::from(stdin)).ok()?;
    let write = tokio::net::unix::pipe::Sender::from_file(std::fs::File::from(stdout)).ok()?;
    Some((read, write))
}

#[cfg(not(unix))]
fn stdio_pipes() -> Option<(tokio::io::Stdin, tokio::io::Stdout)> {
    None
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    // A machine-readable line for supervisors and tests that bind port 0.
    eprintln!("vitals-server listening on http://{addr}");
    Ok(listener)
}

/// The connection limit that fits the open-file limit (raised when allowed; see [`nofile`]).
fn fit_connections(wanted: usize) -> usize {
    match nofile::fit_connections(wanted) {
        Ok(fit) => {
            if let Some(before) = fit.raised_from {
                tracing::info!(
                    from = before,
                    to = fit.soft,
                    "raised the open-file soft limit to fit --max-connections"
                );
            }
            if let Some(wanted) = fit.clamped_from {
                tracing::warn!(
                    wanted,
                    max_connections = fit.max_connections,
                    open_files = fit.soft,
                    "--max-connections exceeds the open-file limit: lowered to fit"
                );
            }
            fit.max_connections
        }
        Err(e) => {
            tracing::warn!(error = %e, "keeping --max-connections as given");
            wanted
        }
    }
}

/// The `/mcp` guard's configuration from the flags.
fn guard_config(
    cli: &Cli,
    max_connections: usize,
    shared_sessions: Option<session_store::SharedStore>,
) -> Result<guard::GuardConfig, tokens::TokenError> {
    let h = &cli.hardening;
    let body_timeout = Duration::from_secs_f64(h.body_timeout.max(0.001));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(guard::GuardConfig {
        tokens: tokens::McpTokens::load(&cli.mcp_tokens, cli.mcp_token_file.as_deref())?,
        proxies: clients::TrustedProxies::new(h.trusted_proxies.clone()),
        hosts: hosts::AllowedHosts::new(&cli.hosts()),
        body: body::BodyLimits::new(cli.max_body_bytes, body_timeout),
        json: body::JsonLimits {
            max_depth: h.max_json_depth.clamp(1, 128),
            max_elements: h.max_json_elements.max(1),
        },
        sse: sse::SseLimits {
            total: h
                .max_sse_streams
                .unwrap_or(max_connections / 2)
                .clamp(1, max_connections.max(1)),
            per_client: h.max_sse_streams_per_client,
            per_session: h.max_sse_streams_per_session,
        },
        parses: body::ParseGate::new(cpus, LARGE_BODY_BYTES, body_timeout),
        sessions: session_caps::SessionLimits {
            total: cli.sessions.max_sessions.max(1),
            per_client: cli.sessions.max_sessions_per_client.max(1),
        },
        session_idle: (cli.sessions.session_idle_timeout > 0.0)
            .then(|| Duration::from_secs_f64(cli.sessions.session_idle_timeout.min(1e9))),
        shared_sessions,
    })
}

/// Bodies from this size on are parsed under the parse gate (at most one per CPU at once).
const LARGE_BODY_BYTES: usize = 64 * 1024;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
