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
    match vitals_server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vitals-server failed");
            eprintln!("vitals-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
