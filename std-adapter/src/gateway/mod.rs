//! The gateway's building blocks: put vitals in front of MCP servers you did not write.
//!
//! An [`Upstream`] supervises one MCP server (a child process over stdio, or a Streamable HTTP
//! endpoint): it starts and initializes it, lists what it offers, watches it, restarts it with
//! the core's [`Backoff`](vitals_core::resilience::Backoff) after a crash (at most
//! [`RestartPolicy::max_restarts`](config::RestartPolicy) in a window, then marks it failed), and
//! forwards requests to it with a timeout, a concurrency cap and relayed progress, cancellation,
//! sampling and elicitation. A [`Gateway`] is the rmcp server handler clients talk to: your own
//! tools plus every upstream's tools, prompts and resources, prefixed when there are several.
//! Wrapped with [`Vitals::instrument`](crate::Vitals::instrument), every forwarded tool call gets
//! the rate limits, quota, per-upstream circuit breaker and metrics of a local one.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rmcp::{ServerHandler, ServiceExt, model::ServerConfig};
//! use vitals_std::gateway::{Gateway, Upstream, UpstreamConfig};
//!
//! #[derive(Clone)]
//! struct MyTools; // the gateway's own tools (none here)
//! impl ServerHandler for MyTools {
//!     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let vitals = vitals_std::Vitals::builder().gateway().build()?;
//! let upstream = Upstream::new(
//!     UpstreamConfig::stdio("py", "python", &["server.py".into()]),
//!     vitals.gateway_metrics().expect("built with .gateway()"),
//! );
//! vitals.add_health_source(upstream.clone(), true);
//! upstream.start();
//! let gateway = Gateway::new(vitals.clone(), MyTools, vec![upstream.clone()], "__");
//! let server = vitals.instrument(gateway).serve(rmcp::transport::stdio()).await?;
//! server.waiting().await?;
//! upstream.stop().await; // closes stdin, then SIGTERM, then SIGKILL to its process group
//! # Ok(()) }
//! ```

pub mod config;
mod handler;
mod metrics;
mod upstream;

pub use config::{ConfigError, PrefixMode, RestartPolicy, Settings, Transport, UpstreamConfig};
pub use handler::Gateway;
pub use metrics::GatewayMetrics;
pub use upstream::{Catalog, Connection, ForwardError, Phase, Upstream};

impl crate::HealthSource for Upstream {
    /// `upstream:NAME` (the breaker of the same upstream is the component `NAME`).
    fn name(&self) -> &str {
        self.health_name()
    }

    fn snapshot(&self) -> (vitals_core::health::Status, Option<String>) {
        let (status, detail) = self.health();
        (status, Some(detail))
    }
}
