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
