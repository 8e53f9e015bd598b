//! vitals-server: an MCP server (Streamable HTTP or stdio) with Prometheus metrics, rate limits,
//! circuit breakers and health checks, on its own or in front of existing MCP servers. The wiring
//! lives in the library ([`vitals_server::run`]).

use clap::Parser;
use vitals_server::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = vitals_std::logging::init(cli.log_format, &cli.log_level) {
        eprintln!("vitals-server: {e}");
        return std::process::ExitCode::from(2);
    }
    // Trace export, only when an OTLP endpoint is configured. The exporter's blocking HTTP client
    // is made and shut down off the runtime's threads.
    #[cfg(feature = "otel")]
    let traces =
        match tokio::task::spawn_blocking(|| vitals_std::otel::from_env("vitals-server")).await {
            Ok(Ok(traces)) => traces,
            Ok(Err(e)) => {
                eprintln!("vitals-server: {e}");
                return std::process::ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("vitals-server: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    let result = vitals_server::run(cli).await;
    #[cfg(feature = "otel")]
    if let Some(traces) = traces {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vitals-server failed");
            eprintln!("vitals-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
