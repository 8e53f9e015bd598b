//! vitals-server: an MCP server (Streamable HTTP or stdio) with Prometheus metrics, rate limits,
//! circuit breakers and health checks, wired from `vitals-std`.

mod body;
mod cli;
mod clients;
mod fixtures;
mod guard;
mod hosts;
mod http;
mod nofile;
mod probe;
mod sessions;
mod sse;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;
use vitals_std::Vitals;

use crate::cli::Cli;
use crate::tools::VitalsServer;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = vitals_std::logging::init(cli.log_format, &cli.log_level) {
        eprintln!("vitals-server: {e}");
        return std::process::ExitCode::from(2);
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vitals-server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let vitals = Vitals::builder()
        .http_rate_limit(cli.rate_limit)
        .tool_rate_limit(cli.tool_rate_limit)
        .tool_client_rate_limit(cli.client_tool_rate_limit)
        .daily_tool_quota(cli.daily_quota)
        .metrics_token(cli.metrics_token.clone())
        .build()?;

    if cli.stdio {
        tracing::info!(fixtures = cli.conformance_fixtures, "serving MCP on stdio");
        let server = vitals
            .instrument(VitalsServer::new(vitals.clone(), cli.conformance_fixtures))
            .serve(rmcp::transport::stdio())
            .await?;
        let cancel = server.cancellation_token();
        tokio::select! {
            r = server.waiting() => { r?; }
            _ = shutdown_signal() => { cancel.cancel(); }
        }
        return Ok(());
    }

    let max_connections = fit_connections(cli.max_connections.max(1));
    let mcp_cancel = CancellationToken::new();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(cli.hosts())
        .with_allowed_origins(cli.origins())
        .enforce_origin_validation()
        .with_max_request_body_bytes(cli.max_body_bytes)
        .with_cancellation_token(mcp_cancel.clone());
    let guard = guard_config(&cli, max_connections);
    let app = Arc::new(http::App::new(
        vitals,
        cli.conformance_fixtures,
        mcp_config,
        guard,
    ));
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, fixtures = cli.conformance_fixtures, "listening: MCP at /mcp, metrics at /metrics");
    // A machine-readable line for supervisors and tests that bind port 0.
    eprintln!("vitals-server listening on http://{addr}");
    let limits = http::Limits {
        max_connections,
        max_connections_per_client: cli.hardening.max_connections_per_client,
        header_timeout: Duration::from_secs_f64(cli.header_timeout.max(0.001)),
        drain_timeout: Duration::from_secs_f64(cli.drain_timeout.max(0.0)),
    };
    http::serve(listener, app, limits, mcp_cancel, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
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
fn guard_config(cli: &Cli, max_connections: usize) -> guard::GuardConfig {
    let h = &cli.hardening;
    let body_timeout = Duration::from_secs_f64(h.body_timeout.max(0.001));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    guard::GuardConfig {
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
    }
}

/// Bodies from this size on are parsed under the parse gate (at most one per CPU at once).
const LARGE_BODY_BYTES: usize = 64 * 1024;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
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
