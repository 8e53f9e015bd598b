//! What the gateway fronts: the `mcpServers` object that desktop MCP clients already use, plus an
//! optional `vitals` object per server for our settings.
//!
//! ```json
//! { "mcpServers": {
//!     "files":  { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
//!                 "env": { "LOG": "1" }, "cwd": "/srv",
//!                 "vitals": { "prefix": "always", "call_timeout_seconds": 30, "max_concurrency": 4 } },
//!     "search": { "url": "http://127.0.0.1:9000/mcp", "headers": { "Authorization": "Bearer ..." } }
//! } }
//! ```
//!
//! Every error names the file, the server and the field ([`ConfigError`]). Unknown fields outside
//! `vitals` are ignored (clients add their own, such as `disabled` or `autoApprove`); unknown
//! fields inside `vitals` are errors, so a typo never silently drops a setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// The separator between an upstream's name and a tool or prompt name when names are prefixed.
/// Clients accept `[A-Za-z0-9_-]` in tool names, so the separator is made of those; upstream
/// names may not contain it.
pub const DEFAULT_DELIMITER: &str = "__";

/// Tool names longer than this are accepted by the protocol but cut or refused by some clients.
pub const CLIENT_NAME_LIMIT: usize = 64;

/// How one upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP on its stdin/stdout, supervised by the gateway.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// A remote server speaking MCP Streamable HTTP.
    Http {
        /// The MCP endpoint.
        url: String,
        /// Extra request headers (e.g. `Authorization`).
        headers: BTreeMap<String, String>,
    },
}

/// When an upstream's tool and prompt names get its name as a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefixMode {
    /// Prefixed when more than one upstream is configured (the default).
    #[default]
    Auto,
    /// Always prefixed.
    Always,
    /// Never prefixed (conflicts are resolved by upstream order and reported).
    Never,
}

/// Restarts of a crashed stdio upstream: exponential backoff with full jitter (the core's
/// [`Backoff`](vitals_core::resilience::Backoff)), at most `max_restarts` in `window`, after which
/// the upstream is marked failed. The attempt counter resets after `reset_after` of uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Most restarts within `window`.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    pub window: Duration,
    /// Uptime after which a crash starts the backoff from the beginning again.
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            max_restarts: 5,
            window: Duration::from_secs(60),
            reset_after: Duration::from_secs(30),
        }
    }
}

/// Settings of one upstream (the `vitals` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Prefixing of tool and prompt names.
    pub prefix: PrefixMode,
    /// Time an upstream request may take; progress notifications restart the clock.
    pub call_timeout: Duration,
    /// Upper bound on a call however much progress it reports.
    pub max_call_time: Duration,
    /// Requests in flight to this upstream at once.
    pub max_concurrency: usize,
    /// Requests allowed to wait for a slot; beyond it, calls are refused at once.
    pub max_queue: usize,
    /// Whether `/readyz` waits for this upstream (and its loss makes the server unhealthy).
    pub required: bool,
    /// Restarts of a stdio upstream.
    pub restart: RestartPolicy,
    /// Whether tool results with `isError: true` count as failures for the circuit breaker.
    pub tool_errors_trip_breaker: bool,
    /// Time allowed for the upstream to start and answer `initialize`.
    pub init_timeout: Duration,
    /// One child process per client session (for servers that keep per-client state) instead
    /// of one shared by every client. stdio upstreams only.
    pub per_session: bool,
    /// Most client sessions with a child of their own at once (`per_session`); beyond it, calls
    /// are refused as unavailable.
    pub max_sessions: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prefix: PrefixMode::Auto,
            call_timeout: Duration::from_secs(60),
            max_call_time: Duration::from_secs(600),
            max_concurrency: 32,
            max_queue: 256,
            required: true,
            restart: RestartPolicy::default(),
            tool_errors_trip_breaker: false,
            init_timeout: Duration::from_secs(30),
            per_session: false,
            max_sessions: 16,
        }
    }
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Its name (the key in `mcpServers`): the `upstream` label and the name prefix.
    pub name: String,
    /// How it is reached.
    pub transport: Transport,
    /// Our settings for it.
    pub settings: Settings,
}

impl UpstreamConfig {
    /// A stdio upstream from a command line (`vitals-server -- COMMAND ARGS...`).
    pub fn stdio(name: &str, command: &str, args: &[String]) -> Self {
        UpstreamConfig {
            name: name.to_owned(),
            transport: Transport::Stdio {
                command: command.to_owned(),
                args: args.to_vec(),
                env: BTreeMap::new(),
                cwd: None,
            },
            settings: Settings::default(),
        }
    }

    /// A Streamable HTTP upstream from `NAME=URL` (`--upstream`).
    pub fn parse_named_url(spec: &str) -> Result<Self, ConfigError> {
        let (name, url) = spec.split_once('=').ok_or_else(|| ConfigError {
            file: None,
            server: None,
            field: Some("--upstream".into()),
            message: format!("`{spec}` is not NAME=URL"),
        })?;
        let err = |m: String| ConfigError {
            file: None,
            server: Some(name.to_owned()),
            field: Some("url".into()),
            message: m,
        };
        check_url(url).map_err(err)?;
        Ok(UpstreamConfig {
            name: name.to_owned(),
            transport: Transport::Http {
                url: url.to_owned(),
                headers: BTreeMap::new(),
            },
            settings: Settings::default(),
        })
    }
}

/// A configuration error, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// The server (key of `mcpServers`), when the error is about one.
    pub server: Option<String>,
    /// The field, as a path such as `vitals.call_timeout_seconds`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(server) = &self.server {
            write!(f, "server `{server}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads a configuration file holding an `mcpServers` object.
pub fn load(path: &Path) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let at_file = |message: String| ConfigError {
        file: Some(path.to_owned()),
        server: None,
        field: None,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| at_file(format!("cannot read: {e}")))?;
    parse(&text).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })
}

/// Parses the text of a configuration file (see the [module docs](self)).
pub fn parse(text: &str) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let top = |field: Option<&str>, message: String| ConfigError {
        file: None,
        server: None,
        field: field.map(Into::into),
        message,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| top(None, format!("not valid JSON: {e}")))?;
    let servers = value
        .get("mcpServers")
        .ok_or_else(|| top(Some("mcpServers"), "missing".into()))?
        .as_object()
        .ok_or_else(|| top(Some("mcpServers"), "expected an object".into()))?;
    if servers.is_empty() {
        return Err(top(Some("mcpServers"), "no server configured".into()));
    }
    servers
        .iter()
        .map(|(name, v)| {
            server(name, v).map_err(|(field, message)| ConfigError {
                file: None,
                server: Some(name.clone()),
                field,
                message,
            })
        })
        .collect()
}

type FieldError = (Option<String>, String);

fn field_err(field: &str, message: impl Into<String>) -> FieldError {
    (Some(field.to_owned()), message.into())
}

fn server(name: &str, v: &Value) -> Result<UpstreamConfig, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| (None, "expected an object".to_owned()))?;
    let kind = opt_str(obj, "type")?;
    let transport = match (obj.get("command"), obj.get("url")) {
        (Some(_), Some(_)) => {
            return Err(field_err(
                "url",
                "give either `command` (stdio) or `url` (HTTP), not both",
            ))
        }
        (Some(_), None) => {
            if let Some(k) = kind.filter(|k| *k != "stdio") {
                return Err(field_err(
                    "type",
                    format!("`{k}` does not go with `command`"),
                ));
            }
            Transport::Stdio {
                command: opt_str(obj, "command")?
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| field_err("command", "expected a non-empty string"))?
                    .to_owned(),
                args: str_array(obj, "args")?,
                env: str_map(obj, "env")?,
                cwd: opt_str(obj, "cwd")?.map(PathBuf::from),
            }
        }
        (None, Some(_)) => {
            match kind {
                None | Some("http" | "streamable-http" | "streamableHttp" | "streamable_http") => {}
                Some("sse") => {
                    return Err(field_err(
                        "type",
                        "legacy HTTP+SSE upstreams are not supported: use the server's Streamable HTTP endpoint",
                    ))
                }
                Some(k) => return Err(field_err("type", format!("`{k}` does not go with `url`"))),
            }
            let url = opt_str(obj, "url")?.unwrap_or_default();
            check_url(url).map_err(|m| field_err("url", m))?;
            Transport::Http {
                url: url.to_owned(),
                headers: str_map(obj, "headers")?,
            }
        }
        (None, None) => {
            return Err((
                None,
                "needs `command` (a stdio server) or `url` (a Streamable HTTP server)".into(),
            ))
        }
    };
    let settings = match obj.get("vitals") {
        None => Settings::default(),
        Some(v) => settings(v)?,
    };
    if settings.per_session && matches!(transport, Transport::Http { .. }) {
        return Err(field_err(
            "vitals.sessions",
            "per_session needs a stdio server (`command`); an HTTP server keeps its own sessions",
        ));
    }
    Ok(UpstreamConfig {
        name: name.to_owned(),
        transport,
        settings,
    })
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_some_and(|r| !r.is_empty()) {
        return Ok(());
    }
    Err(format!("`{url}` is not an http:// or https:// URL"))
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_err(key, "expected a string")),
    }
}

fn str_array(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| field_err(&format!("{key}[{i}]"), "expected a string"))
            })
            .collect(),
        Some(_) => Err(field_err(key, "expected an array of strings")),
    }
}

fn str_map(obj: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| field_err(&format!("{key}.{k}"), "expected a string"))
            })
            .collect(),
        Some(_) => Err(field_err(key, "expected an object of strings")),
    }
}

fn settings(v: &Value) -> Result<Settings, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| field_err("vitals", "expected an object"))?;
    let mut s = Settings::default();
    for (key, value) in obj {
        let path = format!("vitals.{key}");
        let secs = || {
            value
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0 && *x <= 86_400.0 * 365.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| field_err(&path, "expected a number of seconds > 0"))
        };
        let count = || {
            value
                .as_u64()
                .filter(|n| (1..=1_000_000).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| field_err(&path, "expected an integer from 1 to 1000000"))
        };
        let flag = || {
            value
                .as_bool()
                .ok_or_else(|| field_err(&path, "expected true or false"))
        };
        match key.as_str() {
            "prefix" => {
                s.prefix = match value.as_str() {
                    Some("auto") => PrefixMode::Auto,
                    Some("always") => PrefixMode::Always,
                    Some("never") => PrefixMode::Never,
                    _ => {
                        return Err(field_err(
                            &path,
                            "expected \"auto\", \"always\" or \"never\"",
                        ))
                    }
                }
            }
            "call_timeout_seconds" => s.call_timeout = secs()?,
            "max_call_seconds" => s.max_call_time = secs()?,
            "init_timeout_seconds" => s.init_timeout = secs()?,
            "max_concurrency" => s.max_concurrency = count()?,
            "max_queue" => {
                s.max_queue = value
                    .as_u64()
                    .filter(|n| *n <= 1_000_000)
                    .map(|n| n as usize)
                    .ok_or_else(|| field_err(&path, "expected an integer from 0 to 1000000"))?
            }
            "required" => s.required = flag()?,
            "sessions" => {
                s.per_session = match value.as_str() {
                    Some("shared") => false,
                    Some("per_session") => true,
                    _ => return Err(field_err(&path, "expected \"shared\" or \"per_session\"")),
                }
            }
            "max_sessions" => s.max_sessions = count()?,
            "tool_errors_trip_breaker" => s.tool_errors_trip_breaker = flag()?,
            "restart" => s.restart = restart(value)?,
            _ => return Err(field_err(&path, "unknown setting")),
        }
    }
    if s.max_call_time < s.call_timeout {
        s.max_call_time = s.call_timeout;
    }
    Ok(s)
}

fn restart(v: &Value) -> Result<RestartPolicy, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| field_err("vitals.restart", "expected an object"))?;
    let mut r = RestartPolicy::default();
    for (key, value) in obj {
        let path = format!("vitals.restart.{key}");
        let secs = || {
            value
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| field_err(&path, "expected a number of seconds from 0 to 86400"))
        };
        match key.as_str() {
            "initial_delay_seconds" => r.initial = secs()?,
            "max_delay_seconds" => r.max = secs()?,
            "window_seconds" => r.window = secs()?,
            "reset_after_seconds" => r.reset_after = secs()?,
            "max_restarts" => {
                r.max_restarts = value
                    .as_u64()
                    .filter(|n| *n <= 10_000)
                    .map(|n| n as u32)
                    .ok_or_else(|| field_err(&path, "expected an integer from 0 to 10000"))?
            }
            _ => return Err(field_err(&path, "unknown setting")),
        }
    }
    if r.max < r.initial {
        r.max = r.initial;
    }
    Ok(r)
}

/// Checks a set of upstreams before start: names are non-empty, unique, made of
/// `[A-Za-z0-9_-]` (so a prefixed name stays a valid tool name) and free of `delimiter`.
pub fn validate(upstreams: &[UpstreamConfig], delimiter: &str) -> Result<(), ConfigError> {
    let err = |server: &str, message: String| ConfigError {
        file: None,
        server: Some(server.to_owned()),
        field: None,
        message,
    };
    if delimiter.is_empty()
        || !delimiter
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(ConfigError {
            file: None,
            server: None,
            field: Some("--prefix-delimiter".into()),
            message: format!("`{delimiter}` must be non-empty and made of [A-Za-z0-9_.-]"),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for u in upstreams {
        let n = &u.name;
        if n.is_empty() || n.len() > 48 {
            return Err(err(n, "an upstream name has 1 to 48 characters".into()));
        }
        if !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(err(
                n,
                "an upstream name is made of letters, digits, `_` and `-`".into(),
            ));
        }
        if n.contains(delimiter) {
            return Err(err(
                n,
                format!("the name contains the prefix delimiter `{delimiter}`: rename the server or choose another --prefix-delimiter"),
            ));
        }
        if !seen.insert(n.as_str()) {
            return Err(err(n, "configured twice".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_desktop_client_config() {
        let c = parse(
            r#"{"mcpServers": {
                "files": {"command": "npx", "args": ["-y", "fs"], "env": {"A": "1"}, "cwd": "/tmp",
                          "disabled": false,
                          "vitals": {"prefix": "always", "call_timeout_seconds": 2.5, "max_concurrency": 4,
                                     "required": false, "restart": {"max_restarts": 2},
                                     "sessions": "per_session", "max_sessions": 3}},
                "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}}
            }}"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        let files = c.iter().find(|u| u.name == "files").unwrap();
        assert!(
            matches!(&files.transport, Transport::Stdio { command, args, env, cwd }
            if command == "npx" && args.len() == 2 && env["A"] == "1" && cwd.as_deref() == Some(Path::new("/tmp")))
        );
        assert_eq!(files.settings.prefix, PrefixMode::Always);
        assert_eq!(files.settings.call_timeout, Duration::from_millis(2500));
        assert_eq!(files.settings.max_concurrency, 4);
        assert!(!files.settings.required);
        assert_eq!(files.settings.restart.max_restarts, 2);
        assert!(files.settings.per_session);
        assert_eq!(files.settings.max_sessions, 3);
        let web = c.iter().find(|u| u.name == "web").unwrap();
        assert!(
            matches!(&web.transport, Transport::Http { url, headers } if url.ends_with("/mcp") && headers.len() == 1)
        );
        validate(&c, DEFAULT_DELIMITER).unwrap();
    }

    #[test]
    fn errors_name_the_server_and_the_field() {
        let e = parse(
            r#"{"mcpServers": {"a": {"command": "x", "vitals": {"call_timeout_seconds": -1}}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.server.as_deref(), Some("a"));
        assert_eq!(e.field.as_deref(), Some("vitals.call_timeout_seconds"));
        let e = parse(r#"{"mcpServers": {"a": {"command": "x", "vitals": {"timeout": 1}}}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "server `a`: field `vitals.timeout`: unknown setting"
        );
        let e = parse(r#"{"mcpServers": {"b": {"url": "ftp://x"}}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("url"));
        let e =
            parse(r#"{"mcpServers": {"c": {"type": "sse", "url": "http://x/sse"}}}"#).unwrap_err();
        assert!(e.message.contains("not supported"), "{e}");
        let e = parse(r#"{"mcpServers": {"h": {"url": "http://x/mcp", "vitals": {"sessions": "per_session"}}}}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("vitals.sessions"));
        let e = parse(r#"{"mcpServers": {"d": {"args": []}}}"#).unwrap_err();
        assert!(e.message.contains("needs `command`"), "{e}");
        let e = parse(r#"{"mcpServers": {"e": {"command": "x", "args": [1]}}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("args[0]"));
        assert!(parse("{}").unwrap_err().to_string().contains("mcpServers"));
        let dir = std::env::temp_dir().join(format!("vitals-config-{}.json", std::process::id()));
        std::fs::write(&dir, "{not json").unwrap();
        let e = load(&dir).unwrap_err();
        assert!(e.to_string().starts_with(&dir.display().to_string()), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn names_are_checked_against_the_delimiter() {
        let a = UpstreamConfig::stdio("my__server", "x", &[]);
        let e = validate(&[a], DEFAULT_DELIMITER).unwrap_err();
        assert!(e.message.contains("delimiter"), "{e}");
        let b = UpstreamConfig::stdio("bad name", "x", &[]);
        assert!(validate(&[b], DEFAULT_DELIMITER).is_err());
        let c = UpstreamConfig::stdio("same", "x", &[]);
        assert!(validate(&[c.clone(), c], DEFAULT_DELIMITER).is_err());
        assert!(UpstreamConfig::parse_named_url("web=http://127.0.0.1:1/mcp").is_ok());
        assert!(UpstreamConfig::parse_named_url("web").is_err());
    }
}
