//! Command-line flags, each with an environment fallback.

use std::net::SocketAddr;

use clap::Parser;
use vitals_std::logging::LogFormat;
use vitals_std::RateSpec;

/// vitals-server: a Model Context Protocol server with Prometheus metrics, rate limits, circuit
/// breakers and health checks, on its own or in front of existing MCP servers (gateway mode).
///
/// With no arguments it serves on 127.0.0.1:8000: MCP Streamable HTTP at /mcp, the Prometheus
/// exposition at /metrics, and /healthz, /livez, /readyz.
///
/// Gateway mode: `vitals-server [FLAGS] -- COMMAND [ARGS...]` fronts the MCP server COMMAND
/// speaks on stdio; `--config FILE` fronts every server of a desktop client's `mcpServers`
/// object; `--upstream NAME=URL` adds a Streamable HTTP server. Every environment variable has
/// the prefix VITALS_.
#[derive(Debug, Clone, Parser)]
#[command(name = "vitals-server", version, about, long_about)]
pub struct Cli {
    /// Address to listen on: MCP at /mcp, /metrics and health. With --stdio, only /metrics and
    /// health are served here, and only when this flag is given.
    #[arg(long, env = "VITALS_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Speak MCP on stdin/stdout instead of HTTP (logs go to stderr).
    #[arg(long, env = "VITALS_MCP_STDIO")]
    pub stdio: bool,

    /// The upstream MCP server to front, spawned and supervised over stdio (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// Name of the `-- COMMAND` upstream (the `upstream` label and name prefix). Default: the
    /// command's file name.
    #[arg(long, env = "VITALS_UPSTREAM_NAME", value_name = "NAME")]
    pub upstream_name: Option<String>,

    /// A JSON file with an `mcpServers` object (as desktop MCP clients use): every server in it
    /// is fronted, with optional per-server `vitals` settings.
    #[arg(long, env = "VITALS_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// A Streamable HTTP upstream, NAME=URL (repeatable).
    #[arg(
        long = "upstream",
        env = "VITALS_UPSTREAMS",
        value_name = "NAME=URL",
        value_delimiter = ','
    )]
    pub upstreams: Vec<String>,

    /// Separator between an upstream's name and a tool or prompt name, when names are prefixed
    /// (several upstreams, or `"prefix": "always"`). May not appear in upstream names.
    #[arg(long, env = "VITALS_PREFIX_DELIMITER", default_value = "__")]
    pub prefix_delimiter: String,

    /// Seconds an upstream request may take (progress notifications restart the clock), for
    /// upstreams without their own `call_timeout_seconds`.
    #[arg(long, env = "VITALS_UPSTREAM_TIMEOUT", value_name = "SECONDS")]
    pub upstream_timeout: Option<f64>,

    /// Seconds a tool call of the server's own tools may run (none by default). A call still
    /// running then is stopped and counted with status `timeout` (a circuit-breaker failure);
    /// the client gets a JSON-RPC -32603 error with `"reason": "timeout"`. Not with upstreams:
    /// their calls are bounded by --upstream-timeout.
    #[arg(long, env = "VITALS_CALL_TIMEOUT", value_name = "SECONDS")]
    pub call_timeout: Option<f64>,

    /// Seconds to wait at start for the required upstreams before serving anyway (not ready).
    #[arg(
        long,
        env = "VITALS_UPSTREAM_START_WAIT",
        value_name = "SECONDS",
        default_value_t = 30.0
    )]
    pub upstream_start_wait: f64,

    /// Require `Authorization: Bearer TOKEN` on /metrics (compared in constant time; 401
    /// otherwise) and on the /mcp requests that call the `server_metrics` tool. An empty token
    /// is refused at start.
    #[arg(
        long,
        env = "VITALS_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        value_parser = non_empty_token
    )]
    pub metrics_token: Option<String>,

    /// HTTP budget per client address, N/PERIOD (e.g. 100/1m, 10/1s); beyond it requests get 429
    /// with Retry-After. /livez and /readyz are never limited.
    #[arg(
        long,
        env = "VITALS_RATE_LIMIT",
        value_name = "N/PERIOD",
        default_value = "1200/1m"
    )]
    pub rate_limit: RateSpec,

    /// tools/call budget per tool (all clients together), N/PERIOD; beyond it the call returns a
    /// tool error carrying retry-after.
    #[arg(
        long,
        env = "VITALS_RATE_LIMIT_PER_TOOL",
        value_name = "N/PERIOD",
        default_value = "6000/1m"
    )]
    pub tool_rate_limit: RateSpec,

    /// tools/call budget per client (all tools together), N/PERIOD.
    #[arg(
        long,
        env = "VITALS_RATE_LIMIT_PER_CLIENT_TOOLS",
        value_name = "N/PERIOD",
        default_value = "600/1m"
    )]
    pub client_tool_rate_limit: RateSpec,

    /// tools/call budget per UTC day (all clients and tools together; the window renews at
    /// midnight UTC), 0 = no quota. Once spent, calls return a tool error carrying retry-after;
    /// above 90 % the health report shows the quota as degraded.
    #[arg(
        long,
        env = "VITALS_DAILY_QUOTA",
        value_name = "N",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(vitals_std::quota::MAX_LIMIT))
    )]
    pub daily_quota: u32,

    /// The shared store (`--redis` and its companions).
    #[command(flatten)]
    pub redis: crate::shared::RedisArgs,

    /// Log line format: text or json.
    #[arg(long, env = "VITALS_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or filter directive (e.g. info, debug, info,rmcp=debug). The rmcp SDK's own
    /// logs (payloads, session ids) stay at warn unless the directive names rmcp.
    #[arg(long, env = "VITALS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Also expose the MCP conformance suite's fixture tools, resources and prompts.
    #[arg(long, env = "VITALS_CONFORMANCE_FIXTURES")]
    pub conformance_fixtures: bool,

    /// Largest accepted request body in bytes (413 beyond).
    #[arg(long, env = "VITALS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most simultaneous connections; more are answered 503 and closed (a /livez or /readyz
    /// probe among them is still answered). At start the open-file soft limit is raised to fit;
    /// when the hard limit is too low, this limit is lowered with a warning.
    #[arg(long, env = "VITALS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Seconds a client has to send its request headers before the connection is closed.
    #[arg(
        long,
        env = "VITALS_HEADER_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub header_timeout: f64,

    /// Seconds to wait for in-flight requests on SIGTERM/SIGINT before exiting.
    #[arg(
        long,
        env = "VITALS_DRAIN_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub drain_timeout: f64,

    /// Host header values accepted on /mcp, /metrics and /healthz (DNS-rebinding protection;
    /// 403 otherwise), comma separated.
    /// Default: localhost, 127.0.0.1, ::1 and the listen address.
    #[arg(long, env = "VITALS_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Browser origins accepted on /mcp, comma separated (a request without Origin is always
    /// served). Default: loopback origins on any port.
    #[arg(long, env = "VITALS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// A bearer token clients must send to /mcp (`Authorization: Bearer TOKEN`; 401 otherwise),
    /// repeatable; the token, not the address, is then the client for per-client limits.
    #[arg(
        long = "mcp-token",
        env = "VITALS_MCP_TOKENS",
        value_name = "TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub mcp_tokens: Vec<String>,

    /// A file of /mcp bearer tokens, one per line (`#` starts a comment line).
    #[arg(long, env = "VITALS_MCP_TOKEN_FILE", value_name = "FILE")]
    pub mcp_token_file: Option<std::path::PathBuf>,

    /// Limits against hostile clients.
    #[command(flatten)]
    pub hardening: Hardening,

    /// MCP session caps and idle timeout.
    #[command(flatten)]
    pub sessions: SessionFlags,
}

/// Flags bounding the MCP sessions the server holds (see server/README.md, Sessions).
#[derive(Debug, Clone, clap::Args)]
pub struct SessionFlags {
    /// Most MCP sessions held at once; an `initialize` beyond gets 503 with Retry-After.
    #[arg(
        long,
        env = "VITALS_MAX_SESSIONS",
        value_name = "N",
        default_value_t = 1024
    )]
    pub max_sessions: usize,

    /// Most MCP sessions one client (address, or IPv6 /64) holds at once; an
    /// `initialize` beyond gets 503 with Retry-After.
    #[arg(
        long,
        env = "VITALS_MAX_SESSIONS_PER_CLIENT",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_sessions_per_client: usize,

    /// Seconds without a request after which an MCP session ends (0: never).
    #[arg(
        long,
        env = "VITALS_SESSION_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 300.0
    )]
    pub session_idle_timeout: f64,
}

/// Flags bounding what one client can hold or cost (see server/README.md, Security).
#[derive(Debug, Clone, clap::Args)]
pub struct Hardening {
    /// Seconds a client has to send a whole request body, from the end of its headers; a body
    /// still incomplete then gets 408 and the connection is closed.
    #[arg(
        long,
        env = "VITALS_BODY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 5.0
    )]
    pub body_timeout: f64,

    /// Most simultaneous connections from one client (its IPv4 address or IPv6 /64; trusted
    /// proxies are exempt); more are answered 503. 0 = no cap.
    #[arg(
        long,
        env = "VITALS_MAX_CONNECTIONS_PER_CLIENT",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_connections_per_client: usize,

    /// Most SSE streams (GET /mcp) open at once, all clients together; more get 503. Default:
    /// half of --max-connections, so streams can never hold every slot.
    #[arg(long, env = "VITALS_MAX_SSE_STREAMS", value_name = "N")]
    pub max_sse_streams: Option<usize>,

    /// Most SSE streams one client may hold; more get 429.
    #[arg(
        long,
        env = "VITALS_MAX_SSE_STREAMS_PER_CLIENT",
        value_name = "N",
        default_value_t = 8
    )]
    pub max_sse_streams_per_client: usize,

    /// Most SSE streams one MCP session may hold; more get 429.
    #[arg(
        long,
        env = "VITALS_MAX_SSE_STREAMS_PER_SESSION",
        value_name = "N",
        default_value_t = 2
    )]
    pub max_sse_streams_per_session: usize,

    /// Deepest nesting of arrays and objects in an /mcp body (at most 128, the JSON parser's
    /// own limit); deeper gets 400 with JSON-RPC -32600 before the message is parsed.
    #[arg(
        long,
        env = "VITALS_MAX_JSON_DEPTH",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_json_depth: usize,

    /// Most JSON elements in an /mcp body (each array and object, and each comma between
    /// array elements or object members: about one per value); more gets 400 with JSON-RPC
    /// -32600 before the message is parsed.
    #[arg(
        long,
        env = "VITALS_MAX_JSON_ELEMENTS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_json_elements: usize,

    /// A reverse proxy (IP or CIDR network; repeatable or comma separated) whose
    /// X-Forwarded-For is believed: for its requests the client is the right-most address of
    /// X-Forwarded-For that is not a trusted proxy (for rate limits, session ownership and
    /// logs). It is exempt from the per-client connection cap.
    #[arg(
        long = "trusted-proxy",
        env = "VITALS_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::clients::Cidr>,
}

/// Refuses an empty (or blank) metrics token: it would silently disable the check.
fn non_empty_token(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err(
            "the metrics token must not be empty (omit the flag to serve /metrics without a token)"
                .into(),
        )
    } else {
        Ok(s.to_owned())
    }
}

/// The address served when `--listen` is not given (HTTP mode).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

impl Cli {
    /// Where to listen: the flag, else the default in HTTP mode, else nowhere (stdio).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        match (self.listen, self.stdio) {
            (Some(a), _) => Some(a),
            (None, false) => DEFAULT_LISTEN.parse().ok(),
            (None, true) => None,
        }
    }

    /// Whether any upstream is configured (gateway mode).
    pub fn is_gateway(&self) -> bool {
        !self.command.is_empty() || self.config.is_some() || !self.upstreams.is_empty()
    }

    /// The Host allow-list: the flag, or loopback names plus the listen IP.
    pub fn hosts(&self) -> Vec<String> {
        if !self.allowed_hosts.is_empty() {
            return self.allowed_hosts.clone();
        }
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
        let Some(listen) = self.listen_addr() else {
            return hosts;
        };
        let ip = listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            hosts.push(ip.to_string());
        }
        hosts
    }

    /// The Origin allow-list: the flag, or loopback origins on any port.
    pub fn origins(&self) -> Vec<String> {
        if !self.allowed_origins.is_empty() {
            return self.allowed_origins.clone();
        }
        [
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "https://localhost:*",
        ]
        .map(String::from)
        .into()
    }
}
