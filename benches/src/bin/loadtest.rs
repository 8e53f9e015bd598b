//! Loopback load test: vitals-server beside a Python FastMCP server instrumented with
//! prometheus_client, in one run, bounded in time and count.
//!
//! For each server: start it on a free 127.0.0.1 port, open an MCP session per connection
//! (Streamable HTTP: `initialize`, `notifications/initialized`), call the tool `server_health`
//! from every connection for `--seconds`, then scrape `/metrics` `--scrapes` times on an idle
//! server. Prints a JSON object: per server, calls/s, call latency p50/p99, scrape latency
//! p50/p99, exposition sample lines, errors.
//!
//! Usage: `loadtest --vitals CMD... --python PYTHON SCRIPT [--seconds N] [--connections N]
//! [--scrapes N]` (either server may be left out; a server that does not start is reported with
//! its error).
//!
//! Gateway comparison (`--compare`, first argument): any number of MCP Streamable HTTP servers,
//! all started first, then loaded one after the other in rounds (so that a change in a shared
//! machine's load touches them alike). Each is called with each of its tools (TOOLS: comma
//! separated, the same count for every server, the n-th tools of all servers doing the same
//! work) at each concurrency level, one MCP session per connection, warm-up excluded. Measured:
//! calls/s, p50/p99; CPU time per call of the server's side and of its upstreams (utime + stime
//! from /proc over the recorded window); peak RSS of the server's process tree (the server
//! process's VmHWM; its other processes sampled every 200 ms), split into the server process,
//! the helper processes it runs and the upstream processes (those running `--upstream-exe`, and
//! their descendants). Prints a JSON object and, with `--markdown FILE`, writes the tables and
//! the ratios of the `--gateway` server to the `--peer`s and to the `--direct` baseline. Exits 1
//! if a server failed or a call failed.
//!
//! ```text
//! loadtest --compare [--warmup S] [--seconds S] [--connections 16,1] [--upstream-exe PATH]
//!     [--markdown FILE]
//!     --gateway LABEL TOOLS READY CMD... [--peer LABEL TOOLS READY CMD...]... [--direct LABEL TOOLS READY CMD...]
//! ```
//! READY is a path answered 200 once the server is ready (e.g. `/readyz`), or `-` for "accepts
//! TCP connections". `{port}` in CMD is replaced by the port. The global flags come first: every
//! argument after a server's READY, up to the next `--gateway`/`--peer`/`--direct`, is its
//! command. Each server gets a stdin pipe held open until it is stopped (SIGTERM, then SIGKILL
//! to what is left of its process tree after 5 s).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    port: u16,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
            port,
        })
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.w.write_all(&bytes)?;
        self.read_response()
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(bad("eof in headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            resp.body.resize(n, 0);
            self.r.read_exact(&mut resp.body)?;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("chunk size"))?;
                if n == 0 {
                    line.clear();
                    self.r.read_line(&mut line)?;
                    break;
                }
                let start = resp.body.len();
                resp.body.resize(start + n, 0);
                self.r.read_exact(&mut resp.body[start..])?;
                let mut crlf = [0u8; 2];
                self.r.read_exact(&mut crlf)?;
            }
        } else if status != 202 && status != 204 {
            self.r.read_to_end(&mut resp.body)?;
        }
        Ok(resp)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Opens an MCP session on `c`; returns the session id (if the server uses one).
fn mcp_session(c: &mut Conn) -> Result<Option<String>, String> {
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"vitals-loadtest","version":"0.1"}}});
    let r = c
        .request("POST", "/mcp", &[ACCEPT, JSON], init.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    if r.status != 200 || !String::from_utf8_lossy(&r.body).contains("\"result\"") {
        return Err(format!(
            "initialize: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let sid = r.header("mcp-session-id").map(str::to_string);
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2025-06-18")];
    if let Some(s) = &sid {
        h.push(("Mcp-Session-Id", s));
    }
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let r = c
        .request("POST", "/mcp", &h, note.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    if r.status >= 300 {
        return Err(format!("notifications/initialized: HTTP {}", r.status));
    }
    Ok(sid)
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &[String], port: u16) -> Result<Server, String> {
    let args: Vec<String> = cmd
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::open(port) {
            if c.request("GET", "/metrics", &[], b"")
                .is_ok_and(|r| r.status == 200)
            {
                return Ok(server);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not serve /metrics on 127.0.0.1:{port} within 60 s",
        args[0]
    ))
}

fn sample_lines(body: &[u8]) -> usize {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

fn run(cmd: &[String], seconds: f64, connections: usize, scrapes: usize) -> Value {
    let port = free_port();
    let _server = match start(cmd, port) {
        Ok(s) => s,
        Err(e) => return json!({ "error": e }),
    };
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"server_health","arguments":{}}}).to_string();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results: Vec<Result<(Vec<u64>, u64), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let call = &call;
                s.spawn(move || -> Result<(Vec<u64>, u64), String> {
                    let mut c = Conn::open(port).map_err(|e| e.to_string())?;
                    let sid = mcp_session(&mut c)?;
                    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2025-06-18")];
                    if let Some(s) = &sid {
                        h.push(("Mcp-Session-Id", s));
                    }
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    // Bounded in time and in count.
                    while Instant::now() < deadline && lat.len() < 5_000_000 {
                        let t = Instant::now();
                        let r = c
                            .request("POST", "/mcp", &h, call.as_bytes())
                            .map_err(|e| e.to_string())?;
                        lat.push(t.elapsed().as_nanos() as u64);
                        let body = String::from_utf8_lossy(&r.body);
                        if r.status != 200
                            || !body.contains("\"result\"")
                            || body.contains("\"isError\":true")
                        {
                            errors += 1;
                            if errors == 1 {
                                eprintln!(
                                    "loadtest: first failed call: HTTP {} {}",
                                    r.status,
                                    body.chars().take(300).collect::<String>()
                                );
                            }
                        }
                    }
                    Ok((lat, errors))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut errors = 0;
    for r in results {
        match r {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(e) => return json!({ "error": e }),
        }
    }
    lat.sort_unstable();
    let calls = lat.len() as u64;

    // Scrapes on the idle server, one keep-alive connection.
    let mut scrape = Vec::new();
    let mut lines = 0;
    let mut bytes = 0;
    if let Ok(mut c) = Conn::open(port) {
        for _ in 0..scrapes {
            let t = Instant::now();
            match c.request("GET", "/metrics", &[], b"") {
                Ok(r) if r.status == 200 => {
                    scrape.push(t.elapsed().as_nanos() as u64);
                    lines = sample_lines(&r.body);
                    bytes = r.body.len();
                }
                _ => break,
            }
        }
    }
    scrape.sort_unstable();
    json!({
        "calls": calls,
        "errors": errors,
        "seconds": elapsed,
        "connections": connections,
        "calls_per_s": calls as f64 / elapsed,
        "call_p50_ns": percentile(&lat, 0.5),
        "call_p99_ns": percentile(&lat, 0.99),
        "scrapes": scrape.len(),
        "scrape_p50_ns": percentile(&scrape, 0.5),
        "scrape_p99_ns": percentile(&scrape, 0.99),
        "metrics_sample_lines": lines,
        "metrics_bytes": bytes,
    })
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--compare") {
        std::process::exit(compare::main(std::env::args().skip(2).collect()));
    }
    let mut vitals: Vec<String> = Vec::new();
    let mut python: Vec<String> = Vec::new();
    let (mut seconds, mut connections, mut scrapes) = (10.0, 4usize, 200usize);
    let mut args = std::env::args().skip(1).peekable();
    let mut into: Option<&mut Vec<String>> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--vitals" => into = Some(&mut vitals),
            "--python" => into = Some(&mut python),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--connections" => {
                connections = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--connections N")
            }
            "--scrapes" => {
                scrapes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--scrapes N")
            }
            _ => match into.as_mut() {
                Some(v) => v.push(a),
                None => panic!("unexpected argument {a}"),
            },
        }
    }
    let mut out = serde_json::Map::new();
    let mut target_lines = 1000;
    if !vitals.is_empty() {
        let v = run(&vitals, seconds, connections, scrapes);
        if let Some(n) = v["metrics_sample_lines"].as_u64().filter(|&n| n > 0) {
            target_lines = n;
        }
        out.insert("vitals".into(), v);
    } else {
        out.insert("vitals".into(), json!({"error": "not run"}));
    }
    if !python.is_empty() {
        python.push("{port}".into());
        python.push(target_lines.to_string());
        out.insert("python".into(), run(&python, seconds, connections, scrapes));
    } else {
        out.insert("python".into(), json!({"error": "not run"}));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(out)).expect("json")
    );
}

/// `loadtest --compare`: MCP gateways and a direct baseline, same tool load, same concurrency.
mod compare {
    use super::{free_port, mcp_session, percentile, Conn, ACCEPT, JSON};
    use serde_json::{json, Value};
    use std::collections::{BTreeSet, HashMap};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Role {
        Gateway,
        Peer,
        Direct,
    }

    impl Role {
        fn as_str(self) -> &'static str {
            match self {
                Role::Gateway => "gateway",
                Role::Peer => "peer",
                Role::Direct => "direct",
            }
        }
    }

    struct Spec {
        role: Role,
        label: String,
        tools: Vec<String>,
        ready: String,
        cmd: Vec<String>,
    }

    struct Opts {
        warmup: f64,
        seconds: f64,
        levels: Vec<usize>,
        upstream_exe: Option<PathBuf>,
        markdown: Option<PathBuf>,
    }

    fn parse(args: Vec<String>) -> Result<(Opts, Vec<Spec>), String> {
        let mut o = Opts {
            warmup: 3.0,
            seconds: 10.0,
            levels: vec![16, 1],
            upstream_exe: None,
            markdown: None,
        };
        let mut specs: Vec<Spec> = Vec::new();
        let mut it = args.into_iter();
        let num = |v: Option<String>, flag: &str| -> Result<f64, String> {
            v.and_then(|v| v.parse::<f64>().ok())
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{flag}: expected a number of seconds"))
        };
        while let Some(a) = it.next() {
            let role = match a.as_str() {
                "--gateway" => Some(Role::Gateway),
                "--peer" => Some(Role::Peer),
                "--direct" => Some(Role::Direct),
                _ => None,
            };
            if let Some(role) = role {
                let (Some(label), Some(tool), Some(ready)) = (it.next(), it.next(), it.next())
                else {
                    return Err(format!("{a} LABEL TOOLS READY CMD...: too few arguments"));
                };
                specs.push(Spec {
                    role,
                    label,
                    tools: tool.split(',').map(str::to_string).collect(),
                    ready,
                    cmd: Vec::new(),
                });
                continue;
            }
            if let Some(s) = specs.last_mut() {
                s.cmd.push(a);
                continue;
            }
            match a.as_str() {
                "--warmup" => o.warmup = num(it.next(), "--warmup")?,
                "--seconds" => o.seconds = num(it.next(), "--seconds")?,
                "--connections" => {
                    o.levels = it
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                        .collect::<Option<Vec<_>>>()
                        .filter(|l| !l.is_empty())
                        .ok_or("--connections: expected N[,N...] with N > 0")?
                }
                "--upstream-exe" => {
                    let p = PathBuf::from(it.next().ok_or("--upstream-exe PATH")?);
                    o.upstream_exe = Some(
                        std::fs::canonicalize(&p)
                            .map_err(|e| format!("--upstream-exe {}: {e}", p.display()))?,
                    );
                }
                "--markdown" => o.markdown = Some(it.next().ok_or("--markdown FILE")?.into()),
                _ => return Err(format!("unexpected argument {a}")),
            }
        }
        if specs.is_empty() {
            return Err("no server: give --gateway, --peer or --direct".into());
        }
        if let Some(s) = specs.iter().find(|s| s.cmd.is_empty()) {
            return Err(format!("{}: no command", s.label));
        }
        if specs.iter().any(|s| s.tools.len() != specs[0].tools.len()) {
            return Err("every server needs the same number of tools".into());
        }
        if o.seconds <= 0.0 {
            return Err("--seconds must be > 0".into());
        }
        Ok((o, specs))
    }

    // ---- /proc ----

    /// (pid, ppid) of every process.
    fn processes() -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                out.push((pid, ppid));
            }
        }
        out
    }

    /// `root` and its descendants, each with its parent.
    fn tree(root: u32) -> Vec<(u32, u32)> {
        let procs = processes();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for &(pid, ppid) in &procs {
            children.entry(ppid).or_default().push(pid);
        }
        let mut out = vec![(root, 0)];
        let mut i = 0;
        while i < out.len() {
            let p = out[i].0;
            for &c in children.get(&p).into_iter().flatten() {
                out.push((c, p));
            }
            i += 1;
        }
        out
    }

    /// A field of /proc/PID/status in kB (VmHWM, VmRSS).
    fn status_kb(pid: u32, field: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// utime + stime of a process, in clock ticks.
    fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut f = rest.split_whitespace().skip(11);
        Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
    }

    /// Clock ticks per second (`getconf CLK_TCK`, else the usual 100).
    fn ticks_per_s() -> f64 {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    }

    /// The tree of `root`, each process with its kind and program: `root` is the server, a
    /// process running `upstream_exe` (and everything below it) an upstream, anything else a
    /// helper.
    fn classified(root: u32, upstream_exe: Option<&Path>) -> Vec<(u32, Kind, Option<PathBuf>)> {
        let mut kind: HashMap<u32, Kind> = HashMap::new();
        let mut out = Vec::new();
        for (pid, ppid) in tree(root) {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let k = if pid == root {
                Kind::Server
            } else if kind.get(&ppid) == Some(&Kind::Upstream)
                || (upstream_exe.is_some() && exe.as_deref() == upstream_exe)
            {
                Kind::Upstream
            } else {
                Kind::Helper
            };
            kind.insert(pid, k);
            out.push((pid, k, exe));
        }
        out
    }

    /// CPU ticks of every process of the tree, by pid, with its kind.
    fn cpu_snapshot(root: u32, upstream_exe: Option<&Path>) -> HashMap<u32, (Kind, u64)> {
        classified(root, upstream_exe)
            .into_iter()
            .filter_map(|(pid, k, _)| Some((pid, (k, cpu_ticks(pid)?))))
            .collect()
    }

    /// Ticks spent between two snapshots by the gateway side (server and helpers) and by the
    /// upstreams (a process born in between counts whole; one gone by the end is lost).
    fn cpu_spent(
        before: &HashMap<u32, (Kind, u64)>,
        after: &HashMap<u32, (Kind, u64)>,
    ) -> (u64, u64) {
        let (mut gateway, mut upstream) = (0, 0);
        for (pid, &(k, t)) in after {
            let d = t.saturating_sub(before.get(pid).map_or(0, |b| b.1));
            match k {
                Kind::Upstream => upstream += d,
                _ => gateway += d,
            }
        }
        (gateway, upstream)
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Kind {
        Server,
        Helper,
        Upstream,
    }

    /// Peak memory of one server's process tree, by kind of process.
    #[derive(Default)]
    struct Memory {
        /// The server process's VmHWM (the kernel's own peak) in kB.
        server_kb: u64,
        /// The server process's highest RssAnon seen (heap and stacks, no code pages) in kB.
        server_anon_kb: u64,
        /// Per kind (helper, upstream): the highest sum over the processes alive at one sample
        /// of their VmHWM (a process's peak so far), the most alive at once, every pid seen and
        /// the programs they ran.
        kinds: HashMap<&'static str, KindPeak>,
    }

    #[derive(Default)]
    struct KindPeak {
        peak_kb: u64,
        most_alive: usize,
        pids: BTreeSet<u32>,
        programs: BTreeSet<String>,
    }

    impl Memory {
        fn sample(&mut self, root: u32, upstream_exe: Option<&Path>) {
            let mut now: HashMap<&'static str, (u64, usize)> = HashMap::new();
            for (pid, k, exe) in classified(root, upstream_exe) {
                let Some(hwm) = status_kb(pid, "VmHWM") else {
                    continue;
                };
                let name = match k {
                    Kind::Server => {
                        self.server_kb = self.server_kb.max(hwm);
                        if let Some(anon) = status_kb(pid, "RssAnon") {
                            self.server_anon_kb = self.server_anon_kb.max(anon);
                        }
                        continue;
                    }
                    Kind::Helper => "helper",
                    Kind::Upstream => "upstream",
                };
                let e = now.entry(name).or_default();
                e.0 += hwm;
                e.1 += 1;
                let kp = self.kinds.entry(name).or_default();
                kp.pids.insert(pid);
                if let Some(program) = exe.as_deref().and_then(Path::file_name) {
                    kp.programs.insert(program.to_string_lossy().into_owned());
                }
            }
            for (name, (kb, n)) in now {
                let kp = self.kinds.entry(name).or_default();
                kp.peak_kb = kp.peak_kb.max(kb);
                kp.most_alive = kp.most_alive.max(n);
            }
        }

        fn json(&self, name: &str) -> Value {
            let k = self.kinds.get(name);
            json!({
                "peak_kb": k.map_or(0, |k| k.peak_kb),
                "most_alive": k.map_or(0, |k| k.most_alive),
                "processes": k.map_or(0, |k| k.pids.len()),
                "programs": k.map(|k| k.programs.iter().collect::<Vec<_>>()).unwrap_or_default(),
            })
        }
    }

    // ---- one server ----

    struct Running {
        child: Child,
        port: u16,
        stop_sampler: Arc<AtomicBool>,
        sampler: Option<std::thread::JoinHandle<()>>,
        memory: Arc<Mutex<Memory>>,
        upstream_exe: Option<PathBuf>,
    }

    impl Running {
        fn sample(&self) {
            let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            m.sample(self.child.id(), self.upstream_exe.as_deref());
        }

        /// SIGTERM, up to 5 s for a clean exit, then SIGKILL to whatever is left of the tree.
        fn stop(&mut self) {
            self.stop_sampler.store(true, Ordering::Relaxed);
            if let Some(h) = self.sampler.take() {
                let _ = h.join();
            }
            let root = self.child.id();
            let pids: Vec<u32> = tree(root).into_iter().map(|(p, _)| p).collect();
            let _ = Command::new("kill")
                .args(["-TERM", &root.to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            // Children in their own process group (supergateway's) or slow to follow.
            std::thread::sleep(Duration::from_millis(200));
            for p in pids.into_iter().skip(1) {
                if Path::new(&format!("/proc/{p}")).exists() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &p.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if self.sampler.is_some() {
                self.stop();
            }
        }
    }

    fn probe(port: u16, ready: &str) -> bool {
        let Ok(mut c) = Conn::open(port) else {
            return false;
        };
        ready == "-"
            || c.request("GET", ready, &[], b"")
                .is_ok_and(|r| r.status == 200)
    }

    fn start(spec: &Spec, upstream_exe: Option<&Path>) -> Result<Running, String> {
        let port = free_port();
        let args: Vec<String> = spec
            .cmd
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let child = Command::new(&args[0])
            .args(&args[1..])
            // A pipe held open: supergateway exits when its stdin closes.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        let memory = Arc::new(Mutex::new(Memory::default()));
        let stop_sampler = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (memory, stop, exe, root) = (
                memory.clone(),
                stop_sampler.clone(),
                upstream_exe.map(Path::to_path_buf),
                child.id(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    memory
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .sample(root, exe.as_deref());
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let mut running = Running {
            child,
            port,
            stop_sampler,
            sampler: Some(sampler),
            memory,
            upstream_exe: upstream_exe.map(Path::to_path_buf),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = running.child.try_wait() {
                return Err(format!("{} exited at start: {st}", spec.label));
            }
            if probe(port, &spec.ready) {
                return Ok(running);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{}: {} not answered 200 on 127.0.0.1:{port} within 60 s",
            spec.label, spec.ready
        ))
    }

    struct Level {
        calls: u64,
        errors: u64,
        seconds: f64,
        lat: Vec<u64>,
        /// CPU seconds spent in the recorded window: gateway side, upstreams.
        cpu: (f64, f64),
    }

    type Session = (Conn, Option<String>);

    /// One connection's recorded latencies, failed calls and the end of its last recorded call.
    type Recorded = (Vec<u64>, u64, Instant);

    fn open_session(port: u16) -> Result<Session, String> {
        // The first sessions may race the server's own start-up (an upstream still
        // initializing): retry for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = Conn::open(port)
                .map_err(|e| e.to_string())
                .and_then(|mut c| mcp_session(&mut c).map(|sid| (c, sid)));
            match r {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// `connections` sessions (opened before the clock starts) calling `tool` back to back:
    /// `warmup` seconds unrecorded, then `seconds` recorded.
    fn level(
        running: &Running,
        tool: &str,
        connections: usize,
        warmup: f64,
        seconds: f64,
    ) -> Result<Level, String> {
        let port = running.port;
        let sessions = (0..connections)
            .map(|_| open_session(port))
            .collect::<Result<Vec<_>, _>>()?;
        let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":tool,"arguments":{}}})
        .to_string();
        let barrier = Barrier::new(connections + 1);
        let (root, exe) = (running.child.id(), running.upstream_exe.as_deref());
        let (results, measured_from, cpu) = std::thread::scope(|s| {
            let handles: Vec<_> = sessions
                .into_iter()
                .map(|(mut c, sid)| {
                    let (call, barrier) = (&call, &barrier);
                    s.spawn(move || -> (Result<Recorded, String>, Session) {
                        let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2025-06-18")];
                        if let Some(s) = &sid {
                            h.push(("Mcp-Session-Id", s));
                        }
                        barrier.wait();
                        let start = Instant::now();
                        let record_from = start + Duration::from_secs_f64(warmup);
                        let end = record_from + Duration::from_secs_f64(seconds);
                        let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
                        let (mut last, mut printed) = (record_from, false);
                        let r = loop {
                            let t = Instant::now();
                            if t >= end || lat.len() >= 5_000_000 {
                                break Ok(());
                            }
                            let r = match c.request("POST", "/mcp", &h, call.as_bytes()) {
                                Ok(r) => r,
                                Err(e) => break Err(format!("tools/call: {e}")),
                            };
                            let done = Instant::now();
                            let body = String::from_utf8_lossy(&r.body);
                            let failed = r.status != 200
                                || !body.contains("\"result\"")
                                || body.contains("\"isError\":true");
                            if t >= record_from {
                                lat.push((done - t).as_nanos() as u64);
                                last = done;
                                errors += u64::from(failed);
                            }
                            if failed && !printed {
                                printed = true;
                                eprintln!(
                                    "loadtest: failed call: HTTP {} {}",
                                    r.status,
                                    body.chars().take(300).collect::<String>()
                                );
                            }
                        };
                        drop(h);
                        (r.map(|()| (lat, errors, last)), (c, sid))
                    })
                })
                .collect();
            barrier.wait();
            let measured_from = Instant::now() + Duration::from_secs_f64(warmup);
            std::thread::sleep(measured_from.saturating_duration_since(Instant::now()));
            let before = cpu_snapshot(root, exe);
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("load thread"))
                .collect();
            let cpu = cpu_spent(&before, &cpu_snapshot(root, exe));
            (results, measured_from, cpu)
        });
        // The peak of the tree while every session is still open.
        running.sample();
        let tps = ticks_per_s();
        let mut out = Level {
            calls: 0,
            errors: 0,
            seconds: 0.0,
            lat: Vec::new(),
            cpu: (cpu.0 as f64 / tps, cpu.1 as f64 / tps),
        };
        let mut last = measured_from;
        let mut failure = None;
        for (r, (mut c, sid)) in results {
            match r {
                Ok((l, e, t)) => {
                    out.lat.extend(l);
                    out.errors += e;
                    last = last.max(t);
                }
                Err(e) => failure = Some(e),
            }
            // End the session as a client would (supergateway stops its child then).
            if let Some(sid) = &sid {
                let _ = c.request(
                    "DELETE",
                    "/mcp",
                    &[
                        ACCEPT,
                        ("MCP-Protocol-Version", "2025-06-18"),
                        ("Mcp-Session-Id", sid),
                    ],
                    b"",
                );
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        out.lat.sort_unstable();
        out.calls = out.lat.len() as u64;
        out.seconds = (last - measured_from).as_secs_f64().max(1e-9);
        Ok(out)
    }

    /// One server under test: its spec, its process (once started) and its results so far.
    struct Under<'a> {
        spec: &'a Spec,
        running: Option<Running>,
        idle_kb: Option<u64>,
        levels: Vec<Value>,
        error: Option<String>,
    }

    /// Starts every server first, then runs each (tool, connections) round over all of them in
    /// turn, so that a change in the machine's load during the run touches every server alike.
    fn run_all(specs: &[Spec], o: &Opts) -> Vec<Value> {
        let mut all: Vec<Under> = specs
            .iter()
            .map(|spec| {
                eprintln!("loadtest: starting {} ({})", spec.label, spec.role.as_str());
                let mut u = Under {
                    spec,
                    running: None,
                    idle_kb: None,
                    levels: Vec::new(),
                    error: None,
                };
                match start(spec, o.upstream_exe.as_deref()) {
                    Ok(r) => {
                        r.sample();
                        u.idle_kb = status_kb(r.child.id(), "VmRSS");
                        u.running = Some(r);
                    }
                    Err(e) => u.error = Some(e),
                }
                u
            })
            .collect();
        let ntools = specs.first().map_or(0, |s| s.tools.len());
        for n in 0..ntools {
            for &c in &o.levels {
                for u in all.iter_mut().filter(|u| u.error.is_none()) {
                    let Some(running) = &u.running else { continue };
                    let tool = &u.spec.tools[n];
                    match level(running, tool, c, o.warmup, o.seconds) {
                        Ok(l) => {
                            let per_call = |s: f64| s * 1e6 / (l.calls.max(1) as f64);
                            eprintln!(
                                "loadtest: {}: {tool}, {c} connections: {:.0} calls/s, p50 {:.3} ms, p99 {:.3} ms, {} errors, CPU {:.0} + {:.0} us/call",
                                u.spec.label,
                                l.calls as f64 / l.seconds,
                                percentile(&l.lat, 0.5).unwrap_or(0) as f64 / 1e6,
                                percentile(&l.lat, 0.99).unwrap_or(0) as f64 / 1e6,
                                l.errors,
                                per_call(l.cpu.0),
                                per_call(l.cpu.1),
                            );
                            u.levels.push(json!({
                                "tool": n,
                                "tool_name": tool,
                                "connections": c,
                                "calls": l.calls,
                                "errors": l.errors,
                                "seconds": l.seconds,
                                "calls_per_s": l.calls as f64 / l.seconds,
                                "p50_ns": percentile(&l.lat, 0.5),
                                "p99_ns": percentile(&l.lat, 0.99),
                                "gateway_cpu_s": l.cpu.0,
                                "upstream_cpu_s": l.cpu.1,
                                "gateway_cpu_us_per_call": per_call(l.cpu.0),
                                "upstream_cpu_us_per_call": per_call(l.cpu.1),
                            }))
                        }
                        Err(e) => {
                            eprintln!("loadtest: {}: {tool}, {c} connections: {e}", u.spec.label);
                            u.error = Some(format!("{tool}, {c} connections: {e}"));
                        }
                    }
                }
            }
        }
        all.into_iter()
            .map(|mut u| {
                let spec = u.spec;
                let mut base = json!({"label": spec.label, "role": spec.role.as_str(),
                    "tools": spec.tools, "command": spec.cmd, "levels": u.levels});
                if let Some(mut running) = u.running.take() {
                    running.sample();
                    running.stop();
                    let m = running.memory.lock().unwrap_or_else(|e| e.into_inner());
                    let helpers = m.json("helper");
                    base["rss"] = json!({
                        "server_peak_kb": m.server_kb,
                        "server_anon_peak_kb": m.server_anon_kb,
                        "server_idle_kb": u.idle_kb,
                        "helpers": helpers,
                        "upstreams": m.json("upstream"),
                        // What the comparison uses: everything the gateway runs besides the upstream.
                        "gateway_peak_kb": m.server_kb + helpers["peak_kb"].as_u64().unwrap_or(0),
                    });
                }
                if let Some(e) = u.error {
                    base["error"] = json!(e);
                }
                base
            })
            .collect()
    }

    // ---- the tables ----

    fn ms(ns: Option<f64>) -> String {
        ns.map_or("-".into(), |n| format!("{:.3} ms", n / 1e6))
    }

    fn us(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{x:.0} µs"))
    }

    fn signed_ms(ns: Option<f64>) -> String {
        ns.map_or("-".into(), |n| format!("{:+.3} ms", n / 1e6))
    }

    fn mib(kb: Option<f64>) -> String {
        kb.map_or("-".into(), |k| format!("{:.1} MiB", k / 1024.0))
    }

    fn thousands(x: f64) -> String {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    }

    fn lvl(s: &Value, tool: usize, c: usize) -> Option<&Value> {
        s["levels"].as_array()?.iter().find(|l| {
            l["tool"].as_u64() == Some(tool as u64) && l["connections"].as_u64() == Some(c as u64)
        })
    }

    /// The n-th tool's name as the direct server (else a peer, else anyone) calls it.
    fn tool_name(servers: &[Value], n: usize) -> String {
        let pick = |role: &str| {
            servers
                .iter()
                .filter(|s| s["role"] == role)
                .find_map(|s| s["tools"][n].as_str())
        };
        pick("direct")
            .or_else(|| pick("peer"))
            .or_else(|| pick("gateway"))
            .unwrap_or("?")
            .to_string()
    }

    fn markdown(o: &Opts, servers: &[Value]) -> String {
        let ntools = servers
            .first()
            .and_then(|s| s["tools"].as_array())
            .map_or(0, Vec::len);
        // (tool, connections) in the order they ran.
        let runs: Vec<(usize, usize)> = (0..ntools)
            .flat_map(|n| o.levels.iter().map(move |&c| (n, c)))
            .collect();
        let mut t = String::new();
        t.push_str(&format!(
            "Warm-up {} s (not recorded), then {} s recorded per tool and concurrency level; one MCP session per connection.\n\n",
            o.warmup, o.seconds
        ));
        t.push_str("| tool | server | connections | tools/call per s | p50 | p99 | failed calls | CPU per call: gateway (server) | CPU per call: upstream |\n");
        t.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for &(n, c) in &runs {
            let tname = tool_name(servers, n);
            for s in servers {
                let label = s["label"].as_str().unwrap_or("?");
                match lvl(s, n, c) {
                    Some(l) => t.push_str(&format!(
                        "| {tname} | {label} | {c} | {} | {} | {} | {} | {} | {} |\n",
                        thousands(l["calls_per_s"].as_f64().unwrap_or(0.0)),
                        ms(l["p50_ns"].as_f64()),
                        ms(l["p99_ns"].as_f64()),
                        l["errors"].as_u64().unwrap_or(0),
                        us(l["gateway_cpu_us_per_call"].as_f64()),
                        if s["role"] == "direct" {
                            "-".to_string()
                        } else {
                            us(l["upstream_cpu_us_per_call"].as_f64())
                        },
                    )),
                    None => t.push_str(&format!(
                        "| {tname} | {label} | {c} | missing | - | - | {} | - | - |\n",
                        s["error"].as_str().unwrap_or("not run")
                    )),
                }
            }
        }
        t.push_str("\nPeak RSS over the whole run (every tool and level). The server process: its VmHWM. Other processes: /proc sampled every 200 ms and at the end of each level, the highest sum of the VmHWM of those alive at once.\n\n");
        t.push_str("| server | idle RSS | peak RSS, server process | of which anonymous (highest RssAnon) | other processes it runs (besides the upstream): most at once, peak | gateway total (compared) | upstream processes: distinct, most at once, peak |\n");
        t.push_str("|---|---:|---:|---:|---|---:|---|\n");
        for s in servers {
            let r = &s["rss"];
            if r.is_null() {
                continue;
            }
            let (h, u) = (&r["helpers"], &r["upstreams"]);
            let programs: Vec<&str> = h["programs"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            t.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                s["label"].as_str().unwrap_or("?"),
                mib(r["server_idle_kb"].as_f64()),
                mib(r["server_peak_kb"].as_f64()),
                mib(r["server_anon_peak_kb"].as_f64()),
                if h["processes"].as_u64().unwrap_or(0) == 0 {
                    "none".to_string()
                } else {
                    format!(
                        "{} ({}): {}",
                        h["most_alive"],
                        programs.join(", "),
                        mib(h["peak_kb"].as_f64())
                    )
                },
                mib(r["gateway_peak_kb"].as_f64()),
                if s["role"] == "direct" {
                    "- (is the upstream)".to_string()
                } else {
                    format!(
                        "{}, {}: {}",
                        u["processes"],
                        u["most_alive"],
                        mib(u["peak_kb"].as_f64())
                    )
                },
            ));
        }
        // Ratios: the --gateway server against the best peer and the direct path.
        let Some(gw) = servers.iter().find(|s| s["role"] == "gateway") else {
            return t;
        };
        let peers: Vec<&Value> = servers.iter().filter(|s| s["role"] == "peer").collect();
        let direct = servers.iter().find(|s| s["role"] == "direct");
        let gname = gw["label"].as_str().unwrap_or("gateway");
        t.push_str("\n| comparison | tool | connections | measured | target | met |\n");
        t.push_str("|---|---|---:|---|---|---|\n");
        let yes = |b: bool| if b { "yes" } else { "**no**" };
        let f = |v: &Value, k: &str| v[k].as_f64();
        for &(n, c) in &runs {
            let tname = tool_name(servers, n);
            let Some(g) = lvl(gw, n, c) else { continue };
            let of_peers = |k: &str| -> Vec<(&str, f64)> {
                peers
                    .iter()
                    .filter_map(|p| Some((p["label"].as_str()?, f(lvl(p, n, c)?, k)?)))
                    .collect()
            };
            let best_tp = of_peers("calls_per_s")
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let (Some((pn, ptp)), Some(gtp)) = (best_tp, f(g, "calls_per_s")) {
                let r = gtp / ptp;
                t.push_str(&format!(
                    "| throughput, {gname} / best other gateway | {tname} | {c} | {} / {} ({pn}) = {r:.1}x | >= 5x | {} |\n",
                    thousands(gtp), thousands(ptp), yes(r >= 5.0)
                ));
            }
            let best_p99 = of_peers("p99_ns")
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let (Some((pn, pp)), Some(gp)) = (best_p99, f(g, "p99_ns")) {
                t.push_str(&format!(
                    "| p99, {gname} vs lowest other gateway | {tname} | {c} | {} vs {} ({pn}) = {:.2}x | below theirs | {} |\n",
                    ms(Some(gp)), ms(Some(pp)), gp / pp, yes(gp < pp)
                ));
            }
            let best_cpu = of_peers("gateway_cpu_us_per_call")
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let (Some((pn, pc)), Some(gc)) = (best_cpu, f(g, "gateway_cpu_us_per_call")) {
                t.push_str(&format!(
                    "| gateway CPU per call, {gname} vs leanest other gateway | {tname} | {c} | {} vs {} ({pn}) = 1/{:.1} | report | - |\n",
                    us(Some(gc)), us(Some(pc)), pc / gc
                ));
            }
            if let Some(d) = direct.and_then(|d| lvl(d, n, c)) {
                let add = |k: &str| Some(f(g, k)? - f(d, k)?);
                t.push_str(&format!(
                    "| added latency over the direct path, p50 / p99 | {tname} | {c} | {} / {} (direct {} / {}) | report | - |\n",
                    signed_ms(add("p50_ns")), signed_ms(add("p99_ns")), ms(f(d, "p50_ns")), ms(f(d, "p99_ns"))
                ));
                if let (Some(gtp), Some(dtp)) = (f(g, "calls_per_s"), f(d, "calls_per_s")) {
                    t.push_str(&format!(
                        "| throughput, {gname} / direct | {tname} | {c} | {:.2}x | report | - |\n",
                        gtp / dtp
                    ));
                }
            }
        }
        let smallest = peers
            .iter()
            .filter_map(|p| Some((p["label"].as_str()?, p["rss"]["gateway_peak_kb"].as_f64()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some((pn, pk)), Some(gk)) = (smallest, gw["rss"]["gateway_peak_kb"].as_f64()) {
            let r = gk / pk;
            t.push_str(&format!(
                "| peak RSS, {gname} / smallest other gateway (upstreams excluded) | all | all | {} / {} ({pn}) = 1/{:.1} | <= 1/3 | {} |\n",
                mib(Some(gk)), mib(Some(pk)), 1.0 / r, yes(r <= 1.0 / 3.0)
            ));
        }
        t
    }

    pub(crate) fn main(args: Vec<String>) -> i32 {
        let (o, specs) = match parse(args) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("loadtest --compare: {e}");
                return 2;
            }
        };
        let servers = run_all(&specs, &o);
        let failed: Vec<String> = servers
            .iter()
            .filter_map(|s| {
                let label = s["label"].as_str().unwrap_or("?");
                if let Some(e) = s["error"].as_str() {
                    return Some(format!("{label}: {e}"));
                }
                let errors: u64 = s["levels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["errors"].as_u64())
                    .sum();
                let calls: u64 = s["levels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["calls"].as_u64())
                    .sum();
                (errors > 0 || calls == 0)
                    .then(|| format!("{label}: {errors} failed calls of {calls}"))
            })
            .collect();
        let out = json!({
            "warmup_s": o.warmup,
            "seconds": o.seconds,
            "connections": o.levels,
            "servers": servers,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        if let Some(p) = &o.markdown {
            if let Err(e) = std::fs::write(p, markdown(&o, &servers)) {
                eprintln!("loadtest: {}: {e}", p.display());
                return 1;
            }
        }
        for f in &failed {
            eprintln!("loadtest: FAILED {f}");
        }
        i32::from(!failed.is_empty())
    }
}
