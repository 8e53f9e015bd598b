#!/usr/bin/env python3
"""End-to-end test of monitoring/ against running vitals-servers and a real Prometheus.

    python3 monitoring/tests/live_test.py --server-bin target/debug/vitals-server

1. Static checks of the Grafana dashboard (schema version, `${datasource}` everywhere, required
   panels) and of the rule files (every rule found).
2. Starts two vitals-servers on free loopback ports and sends MCP traffic over Streamable HTTP to
   both, in background threads for the whole test:
   - the reference server (no upstream): tools/call of `server_health` and of an unknown tool;
   - a gateway (`--config`) whose upstreams are the same binary over stdio, so no outside program
     is needed: `up` (prefix always, one concurrency slot: calls queue), `slow` (prefix never,
     so its operator tools clash with the gateway's own: name conflicts; a 40 ms call limit, so
     its 100 ms tool times out and its breaker opens) and `broken` (a bad flag: exits at once,
     is restarted twice and marked failed). Calls: the gateway's own `server_health`, forwarded
     `up__rate_limit_status` (ok), `up__test_error_handling` (tool_error),
     `up__test_tool_with_progress` from three threads (queueing), `test_tool_with_progress` on
     `slow` (timeout, then circuit_open), an unknown tool.
3. Starts Prometheus with monitoring/prometheus.yml (its target, intervals and rule paths rewritten
   for the test: 1 s scrapes and evaluations, both servers as targets of job `vitals`), waits for
   the targets to be up.
4. Sends every PromQL expression of the rules (as Prometheus loaded them) and of the dashboard
   (panels, variables, annotations) to /api/v1/query: each must answer `status: success`; every
   rule must evaluate with health `ok`; the dashboard's core panels (the gateway row included)
   must return data. The gateway series the rules read must exist with the values the traffic
   implies, and the alerts that traffic should trigger must be pending or firing (with annotation
   templates that expand), those it should not must be inactive.
5. Every metric name the rules and the dashboard read must be on the live /metrics of one of
   the two servers. Names listed in monitoring/NEEDS.md (not exported yet) are reported as PENDING.
6. No upstream process of the gateway is left once it has been stopped.

Python standard library only. Fails (never skips) when prometheus or promtool is missing. Only
loopback, free ports, every wait bounded, child processes killed on exit.
"""

import argparse
import atexit
import ctypes
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
MON = HERE.parent
RULE_FILES = [MON / "rules" / "recording.yml", MON / "rules" / "alerts.yml"]
DASHBOARD = MON / "grafana" / "vitals-dashboard.json"
NEEDS = MON / "NEEDS.md"

# Panels that must show data once the server has had tool traffic (every target of each).
CORE_PANELS = [
    "Targets up", "Tool calls/s", "Error ratio (all tools)", "Breakers not closed",
    "Tool call rate", "Tool error ratio", "Tool latency p50 / p95 / p99", "Tool errors by type",
    "Active tool calls", "HTTP requests", "Circuit breaker state", "Rate-limit rejections", "CPU",
    "Resident memory", "Open file descriptors",
    # gateway row: the test's gateway gives each of them data
    "Upstreams up", "Upstreams failed", "Upstream restarts", "Name conflicts", "Upstream state",
    "Upstream restarts and exits", "Upstream requests by outcome",
    "Tool calls by upstream and status", "Upstream unanswered ratio", "Upstream latency p50 / p99",
    "Upstream in flight and queued", "Upstream catalogue",
    # OpenTelemetry semantic-convention row
    "Operations by method", "Operation latency p50 / p95", "Operation failures by error_type",
    # resilience gauges: the server exports tokens available per tool limiter and quota use
    "Rate-limit tokens available", "Quota usage",
]
# What the issue asks the dashboard to show, by panel title.
REQUIRED_PANELS = CORE_PANELS
# Per-client tools/call budget of the test server: above the steady traffic (about 12 calls/s),
# below the one burst the test sends, so the limiter panels have refusals to show.
CLIENT_TOOL_RATE = "20/1s"
# Series Prometheus makes itself, not the server.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
             "scrape_samples_post_metric_relabeling", "scrape_series_added"}
# Grafana variables and their values for the test (multi-value "All" is the regex `.+`).
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
                "${job}": "vitals", "$job": "vitals", "${instance}": ".+", "$instance": ".+",
                "${tool}": ".+", "$tool": ".+", "${upstream}": ".+", "$upstream": ".+"}

CHILDREN = []
FAILURES = []
# Leave headroom under the CI budget: every wait below is bounded by one of these.
TIMEOUT_START = 60
TIMEOUT_DATA = 90


def log(msg):
    print(f"live_test: {msg}", flush=True)


def fail(msg):
    FAILURES.append(msg)
    print(f"live_test: FAIL: {msg}", flush=True)


def die(msg):
    print(f"live_test: FAIL: {msg}", flush=True)
    sys.exit(1)


# --------------------------------------------------------------------------------- processes

def _die_with_parent():
    """Child side: get SIGTERM if this test process dies, even by SIGKILL (Linux prctl)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(args, logfile, env=None):
    out = open(logfile, "wb")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)
    CHILDREN.append(p)
    return p


def kill_children():
    for p in reversed(CHILDREN):
        if p.poll() is None:
            p.terminate()
    for p in reversed(CHILDREN):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    CHILDREN.clear()


def on_signal(signum, _frame):
    kill_children()
    sys.exit(128 + signum)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=40):
    try:
        lines = pathlib.Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------------- HTTP

def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, headers, body bytes); HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_for(what, check, timeout, proc=None, proc_log=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            die(f"{what}: process exited with {proc.returncode}\n{tail(proc_log)}")
        try:
            ok, last = check()
            if ok:
                return last
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = repr(e)
        time.sleep(0.25)
    die(f"timed out after {timeout}s waiting for {what} (last: {last})"
        + (f"\n{tail(proc_log)}" if proc_log else ""))


# --------------------------------------------------------------------------------- MCP client

class Mcp:
    """A minimal MCP Streamable HTTP client: JSON or SSE answers, session id, protocol header."""

    ACCEPT = "application/json, text/event-stream"

    def __init__(self, url):
        self.url = url
        self.session = None
        self.version = None
        self.next_id = 1

    def _headers(self):
        h = {"Content-Type": "application/json", "Accept": self.ACCEPT}
        if self.session:
            h["Mcp-Session-Id"] = self.session
        if self.version:
            h["MCP-Protocol-Version"] = self.version
        return h

    @staticmethod
    def _messages(headers, body):
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "text/event-stream":
            msgs, data = [], []
            for line in body.decode().splitlines() + [""]:
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    text = "\n".join(data)
                    data = []
                    if text.strip():
                        msgs.append(json.loads(text))
            return msgs
        if ctype == "application/json":
            m = json.loads(body)
            return m if isinstance(m, list) else [m]
        raise ValueError(f"unexpected Content-Type {ctype!r}: {body[:200]!r}")

    def request(self, method, params):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        status, headers, body = http("POST", self.url, msg, self._headers())
        if status != 200:
            raise RuntimeError(f"{method}: HTTP {status}: {body[:300]!r}")
        for m in self._messages(headers, body):
            if m.get("id") == rid:
                return headers, m
        raise RuntimeError(f"{method}: no response with id {rid} in {body[:300]!r}")

    def notify(self, method):
        msg = {"jsonrpc": "2.0", "method": method}
        status, _, body = http("POST", self.url, msg, self._headers())
        if status != 202:
            raise RuntimeError(f"{method}: expected HTTP 202, got {status}: {body[:300]!r}")

    def initialize(self):
        headers, m = self.request("initialize", {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "vitals-monitoring-test", "version": "1.0.0"},
        })
        if "result" not in m:
            raise RuntimeError(f"initialize failed: {m}")
        self.session = headers.get("Mcp-Session-Id")
        if not self.session:
            raise RuntimeError("initialize: no Mcp-Session-Id header")
        self.version = m["result"].get("protocolVersion", "2025-11-25")
        self.notify("notifications/initialized")

    def call_tool(self, name, arguments=None):
        _, m = self.request("tools/call", {"name": name, "arguments": arguments or {}})
        return m


def outcome(m):
    """ok, rate_limited (a refusal with retry-after), or bad."""
    r = m.get("result")
    if r is None:
        return "bad"
    if not r.get("isError"):
        return "ok"
    if (r.get("_meta") or {}).get("io.vitals/reason") == "rate_limited":
        return "rate_limited"
    return "bad"


def traffic(url, stop, stats):
    """Tool calls until `stop` is set: mostly server_health, some to a tool that does not exist
    (an error for the error panels)."""
    try:
        c = Mcp(url)
        c.initialize()
        stats["initialized"] = True
        i = 0
        while not stop.is_set():
            stats[outcome(c.call_tool("server_health"))] += 1
            if i % 5 == 0:
                c.call_tool("no_such_tool_for_monitoring_test")
                stats["unknown"] += 1
            i += 1
            stop.wait(0.1)
    except Exception as e:  # reported by the main thread
        stats["error"] = repr(e)


# --------------------------------------------------------------------------------- gateway

# Every upstream process of the test gateway carries this variable (set to the temp dir), so that
# the test can find any the gateway leaves behind.
MARKER = "VITALS_MONITORING_TEST_UPSTREAM"
# Tools the gateway must list: its own, forwarded from `up` (prefixed) and from `slow` (not).
GATEWAY_TOOLS = {"server_health", "rate_limit_status", "up__rate_limit_status",
                 "up__test_error_handling", "up__test_tool_with_progress", "test_tool_with_progress"}


def gateway_config(server_bin, marker):
    """Three upstreams, all this same binary: `up` serves, `slow` times out, `broken` crash-loops."""
    stdio = [str(server_bin), "--stdio", "--log-level", "warn", "--conformance-fixtures",
             # every call of the test comes from the gateway's one session: no limit in the way
             "--client-tool-rate-limit", "100000/1m"]
    env = {MARKER: marker}
    return {"mcpServers": {
        # Prefixed (up__...): unprefixed, its operator tools would clash with the gateway's own.
        # One concurrency slot, so concurrent calls queue.
        "up": {"command": stdio[0], "args": stdio[1:], "env": env,
               "vitals": {"prefix": "always", "max_concurrency": 1}},
        # Not prefixed: its four operator tools clash with the gateway's own and are hidden (name
        # conflicts). 40 ms per call at most: its 100 ms test_tool_with_progress times out.
        "slow": {"command": stdio[0], "args": stdio[1:], "env": env,
                 "vitals": {"prefix": "never", "call_timeout_seconds": 0.02,
                            "max_call_seconds": 0.04}},
        # Exits at once (unknown flag): restarted twice within a second, then marked failed.
        "broken": {"command": str(server_bin), "args": ["--no-such-flag-for-monitoring-test"],
                   "env": env,
                   "vitals": {"required": False,
                              "restart": {"initial_delay_seconds": 0.05, "max_delay_seconds": 0.1,
                                          "max_restarts": 2, "window_seconds": 60}}},
    }}


def call_kind(m):
    """ok, tool_error (isError, with the refusal reason if any: tool_error:circuit_open), or
    jsonrpc_error."""
    r = m.get("result")
    if r is None:
        return "jsonrpc_error"
    if not r.get("isError"):
        return "ok"
    reason = (r.get("_meta") or {}).get("io.vitals/reason")
    return f"tool_error:{reason}" if reason else "tool_error"


class Tally:
    """Thread-safe counts of (tool, kind)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []

    def add(self, tool, kind):
        with self.lock:
            self.counts[(tool, kind)] = self.counts.get((tool, kind), 0) + 1

    def kinds(self, tool):
        with self.lock:
            return {k: n for (t, k), n in self.counts.items() if t == tool}


def gateway_traffic(url, stop, tally):
    """One client: the gateway's own tool, forwarded tools, an unknown tool."""
    try:
        c = Mcp(url)
        c.initialize()
        while not stop.is_set():
            for name in ("server_health", "up__rate_limit_status", "up__test_error_handling",
                         "no_such_tool_for_monitoring_test"):
                tally.add(name, call_kind(c.call_tool(name)))
            stop.wait(0.1)
    except Exception as e:  # reported by the main thread
        tally.errors.append(repr(e))


def slow_traffic(url, stop, go, tally):
    """Once `go` is set (Prometheus scrapes the gateway, so it sees the timeouts' rate, not only
    their count): slow's tool, which times out until its breaker opens, then is refused."""
    try:
        c = Mcp(url)
        c.initialize()
        go.wait()
        while not stop.is_set():
            tally.add("test_tool_with_progress", call_kind(c.call_tool("test_tool_with_progress")))
            stop.wait(0.1)
    except Exception as e:
        tally.errors.append(repr(e))


def queue_traffic(url, stop, tally):
    """Back-to-back calls of up's 100 ms tool: with `up`'s one slot, callers queue."""
    try:
        c = Mcp(url)
        c.initialize()
        while not stop.is_set():
            tally.add("up__test_tool_with_progress",
                      call_kind(c.call_tool("up__test_tool_with_progress")))
    except Exception as e:
        tally.errors.append(repr(e))


def gateway_expectations(inst):
    """(what, PromQL) that must return data once the gateway traffic has run for a few seconds:
    the gateway series the rules and the dashboard read, with the values the traffic implies."""
    g = f'job="vitals", instance="{inst}"'
    return [
        ("up is up", f'mcp_upstream_up{{{g}, upstream="up"}} == 1'),
        ("slow is up", f'mcp_upstream_up{{{g}, upstream="slow"}} == 1'),
        ("broken is down", f'mcp_upstream_up{{{g}, upstream="broken"}} == 0'),
        ("broken is failed", f'mcp_upstream_failed{{{g}, upstream="broken"}} == 1'),
        ("up is not failed", f'mcp_upstream_failed{{{g}, upstream="up"}} == 0'),
        ("broken was restarted twice", f'mcp_upstream_restarts_total{{{g}, upstream="broken"}} == 2'),
        ("broken's 3 starts failed",
         f'mcp_upstream_starts_total{{{g}, upstream="broken", result="failed"}} == 3'),
        ("broken's exits are counted", f'sum(mcp_upstream_exits_total{{{g}, upstream="broken"}}) == 3'),
        ("up started once", f'mcp_upstream_starts_total{{{g}, upstream="up", result="ok"}} == 1'),
        ("up's start time", f'mcp_upstream_start_time_seconds{{{g}, upstream="up"}} > 0'),
        ("slow's operator tools clash with the gateway's", f'mcp_gateway_name_conflicts{{{g}}} > 0'),
        ("up lists tools", f'mcp_upstream_tools{{{g}, upstream="up"}} > 0'),
        ("up answers tools/call",
         f'rate(mcp_upstream_requests_total{{{g}, upstream="up", method="tools/call", outcome="ok"}}[1m]) > 0'),
        ("up answers with isError",
         f'mcp_upstream_requests_total{{{g}, upstream="up", method="tools/call", outcome="tool_error"}} > 0'),
        ("slow times out",
         f'mcp_upstream_requests_total{{{g}, upstream="slow", method="tools/call", outcome="timeout"}} > 0'),
        ("calls queued for up", f'max_over_time(mcp_upstream_queued{{{g}, upstream="up"}}[5m]) > 0'),
        ("calls in flight to up", f'max_over_time(mcp_upstream_in_flight{{{g}, upstream="up"}}[5m]) > 0'),
        ("progress relayed", f'mcp_upstream_notifications_total{{{g}, upstream="up"}} > 0'),
        ("up's p99", f'instance_upstream_method:mcp_upstream_request_duration_seconds:p99_rate5m'
                     f'{{{g}, upstream="up", method="tools/call"}} > 0'),
        ("slow's unanswered ratio is 1",
         f'instance_upstream:mcp_upstream_request_failure_ratio:rate5m{{{g}, upstream="slow"}} == 1'),
        ("up's unanswered ratio is 0",
         f'instance_upstream:mcp_upstream_request_failure_ratio:rate5m{{{g}, upstream="up"}} == 0'),
        ("a forwarded tool call counted under its upstream", f'mcp_tool_calls_total'
         f'{{{g}, upstream="up", tool="up__rate_limit_status", status="ok"}} > 0'),
        ("a timed-out tool call", f'mcp_tool_calls_total'
         f'{{{g}, upstream="slow", tool="test_tool_with_progress", status="timeout"}} > 0'),
        ("the gateway's own tool", f'mcp_tool_calls_total{{{g}, tool="server_health", status="ok"}} > 0'),
        ("error ratio of the failing tool is 1", f'instance_upstream_tool:mcp_tool_error_ratio:'
         f'rate5m{{{g}, upstream="up", tool="up__test_error_handling"}} == 1'),
        ("error ratio of a working tool is 0", f'instance_upstream_tool:mcp_tool_error_ratio:'
         f'rate5m{{{g}, upstream="up", tool="up__rate_limit_status"}} == 0'),
        ("slow's breaker opened", f'max_over_time(circuit_breaker_state{{{g}, upstream="slow"}}[5m]) > 0'),
        # The OpenTelemetry MCP semantic-convention histograms.
        ("semconv: a tool_error over HTTP", f'mcp_server_operation_duration_seconds_count{{{g}, '
         f'mcp_method_name="tools/call", gen_ai_tool_name="up__test_error_handling", '
         f'gen_ai_operation_name="execute_tool", error_type="tool_error", network_transport="tcp"}} > 0'),
        ("semconv: initialize with the negotiated version", f'mcp_server_operation_duration_seconds_count'
         f'{{{g}, mcp_method_name="initialize", error_type="", mcp_protocol_version=~"20.+"}} > 0'),
        ("semconv: the gateway's upstream call timed out", f'mcp_client_operation_duration_seconds_count'
         f'{{{g}, upstream="slow", mcp_method_name="tools/call", error_type="timeout"}} > 0'),
        ("semconv: up's p95 from the gateway's side",
         f'instance_upstream_method:mcp_client_operation_duration_seconds:p95_rate5m'
         f'{{{g}, upstream="up", mcp_method_name="tools/call"}} > 0'),
        ("semconv: tools/call fails (tool errors, timeouts)",
         f'instance_method:mcp_server_operation_error_ratio:rate5m{{{g}, mcp_method_name="tools/call"}} > 0'),
    ]


# (alert, labels, states): alerts the gateway traffic must trigger (pending or firing at some
# point, read back from Prometheus' ALERTS series) ...
GATEWAY_ALERTS = [
    ("VitalsUpstreamFailed", {"upstream": "broken"}, "firing"),
    ("VitalsGatewayNameConflicts", {}, "pending"),
    ("VitalsUpstreamRequestsFailing", {"upstream": "slow"}, "pending"),
    ("VitalsUpstreamQueueBacklog", {"upstream": "up"}, "pending"),
    ("VitalsToolErrorRatioHigh", {"upstream": "up", "tool": "up__test_error_handling"}, "pending"),
    ("VitalsCircuitBreakerOpen", {"upstream": "slow"}, "pending"),
]
# ... and alerts that must not be active at the end: a failed upstream is VitalsUpstreamFailed's
# alone; the upstreams that serve are not down.
GATEWAY_QUIET = [
    ("VitalsUpstreamDown", {}),
    ("VitalsUpstreamRestarting", {}),
    ("VitalsToolErrorRatioHigh", {"tool": "up__rate_limit_status"}),
    ("VitalsUpstreamRequestsFailing", {"upstream": "up"}),
    ("VitalsMcpOperationErrorRatioHigh", {}),
]


def alerts_selector(name, labels, inst, state=None):
    extra = "".join(f', {k}="{v}"' for k, v in {**labels, **({"alertstate": state} if state else {})}.items())
    return f'ALERTS{{alertname="{name}", instance="{inst}"{extra}}}'


def leftover_processes(marker):
    """Pids of processes whose environment has MARKER=marker (upstreams of the test gateway)."""
    needle = f"{MARKER}={marker}".encode()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            pids.append(int(d.name))
    return pids


# --------------------------------------------------------------------------------- PromQL

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "offset", "bool", "inf", "nan", "atan2",
                   # aggregation operators, which may be followed by `by (...)` instead of `(`
                   "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                   "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<num>0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?(?:ms|[smhdwy])?(?:[0-9]+(?:ms|[smhdwy]))*)
  | (?P<id>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@])
""", re.X)


def metric_names(expr):
    """Metric names of the selectors in a PromQL expression: identifiers that are not functions,
    keywords, label names, or inside braces, brackets and by/on(...) label lists."""
    tokens = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group()))
    names = set()
    brace = bracket = 0
    skip_parens = 0  # inside a by/on/... label list
    for i, (kind, text) in enumerate(tokens):
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if text == "{":
            brace += 1
        elif text == "}":
            brace -= 1
        elif text == "[":
            bracket += 1
        elif text == "]":
            bracket -= 1
        elif skip_parens and text == "(":
            skip_parens += 1
        elif skip_parens and text == ")":
            skip_parens -= 1
            if skip_parens == 1:
                skip_parens = 0
        if kind != "id" or brace or bracket or skip_parens:
            continue
        if text.lower() in LABEL_LIST_KEYWORDS and nxt == "(":
            skip_parens = 1
            continue
        if text.lower() in PROMQL_KEYWORDS or nxt == "(":
            continue
        prev = tokens[i - 1][1] if i else None
        if prev == "@":  # @ start() / @ end()
            continue
        names.add(text)
    return names


def grafana_to_promql(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable left in {expr!r}")
    return expr


def label_values_to_promql(query):
    """`label_values(selector, label)` (a Grafana variable query) → the selector."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", query)
    if not m:
        raise ValueError(f"unsupported variable query {query!r}")
    return m.group(1)


# --------------------------------------------------------------------------------- dashboard

def walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_dashboard(dash):
    """Static checks; returns [(label, promql, is_core)] to query."""
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 39:
        fail(f"dashboard schemaVersion {dash.get('schemaVersion')} is older than 39")
    if dash.get("id") is not None:
        fail("dashboard id must be null so that import creates a new dashboard")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail("dashboard needs a `datasource` template variable of type datasource, query prometheus")
    # Every datasource reference is the variable: no uid of somebody's Grafana.
    for node in walk(dash):
        if isinstance(node, dict) and "datasource" in node:
            ref = node["datasource"]
            if ref != {"type": "prometheus", "uid": "${datasource}"}:
                fail(f"datasource reference {ref!r} is not the ${{datasource}} variable")
    ids = [p.get("id") for p in all_panels(dash)]
    if len(ids) != len(set(ids)) or None in ids:
        fail(f"panel ids must be unique and set: {ids}")
    titles = [p.get("title") for p in all_panels(dash)]
    for t in REQUIRED_PANELS:
        if t not in titles:
            fail(f"dashboard has no panel titled {t!r}")
    queries = []
    for p in all_panels(dash):
        g = p.get("gridPos", {})
        if p.get("type") != "row" and not (0 <= g.get("x", -1) and g.get("x", 0) + g.get("w", 99) <= 24):
            fail(f"panel {p.get('title')!r} has a bad gridPos {g}")
        for t in p.get("targets", []):
            queries.append((f"panel {p['title']!r} {t['refId']}", grafana_to_promql(t["expr"]),
                            p["title"] in CORE_PANELS))
        if p.get("type") not in ("row", None) and not p.get("targets"):
            fail(f"panel {p.get('title')!r} has no query")
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v["query"]
            if not isinstance(q, str):
                fail(f"variable {name}: query should be a label_values(...) string")
                continue
            queries.append((f"variable {name}", grafana_to_promql(label_values_to_promql(q)), True))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            queries.append((f"annotation {a['name']!r}", grafana_to_promql(a["expr"]), False))
    return queries


# --------------------------------------------------------------------------------- rules

def rule_names_in_files():
    """(alerts, records) named in the rule files: the cross-check of what Prometheus loaded."""
    alerts, records = [], []
    for f in RULE_FILES:
        for line in f.read_text().splitlines():
            m = re.match(r"\s*-\s*(alert|record):\s*(\S+)\s*$", line)
            if m:
                (alerts if m.group(1) == "alert" else records).append(m.group(2))
    return alerts, records


def pending_metrics():
    """Metric names monitoring/NEEDS.md says the server does not export yet (`- \\`name\\``
    lines between the PENDING markers)."""
    if not NEEDS.exists():
        return set()
    text = NEEDS.read_text()
    m = re.search(r"<!-- pending -->(.*?)<!-- /pending -->", text, re.S)
    return set(re.findall(r"^\s*[-*]\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`", m.group(1), re.M)) if m else set()


def exported_names(metrics_text):
    """Sample names on /metrics, plus the series names of every declared family (`# TYPE`), so a
    labelled family that has no series yet still counts as exported."""
    names = set()
    for line in metrics_text.splitlines():
        m = re.match(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)", line)
        if m:
            name, kind = m.groups()
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            elif kind == "summary":
                names.update({name + "_sum", name + "_count"})
            continue
        if not line or line.startswith("#"):
            continue
        names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group())
    return names


# --------------------------------------------------------------------------------- bearer token

def prometheus_config(text, server_ports):
    """The shipped config, for the test: 1 s scrapes and evaluations, the test servers as targets,
    rule files by absolute path."""
    targets = ", ".join(f'"127.0.0.1:{port}"' for port in server_ports)
    subs = [("scrape_interval: 15s", "scrape_interval: 1s"),
            ("scrape_timeout: 10s", "scrape_timeout: 1s"),
            ("evaluation_interval: 15s", "evaluation_interval: 1s"),
            ('"127.0.0.1:8000"', targets),
            ("- rules/", f"- {MON}/rules/")]
    for old, new in subs:
        if old not in text:
            die(f"the Prometheus config no longer contains {old!r}: update live_test.py")
        text = text.replace(old, new)
    return text


def start_prometheus(config_text, tmp, name):
    port = free_port()
    (tmp / f"{name}.yml").write_text(config_text)
    logf = tmp / f"{name}.log"
    proc = spawn(["prometheus", f"--config.file={tmp / (name + '.yml')}",
                  f"--storage.tsdb.path={tmp / (name + '-tsdb')}",
                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], logf)
    return proc, logf, f"http://127.0.0.1:{port}/api/v1"


def api_get(papi, path, **params):
    status, _, body = http("GET", f"{papi}/{path}?{urllib.parse.urlencode(params)}")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"status": "error", "error": body[:300].decode(errors="replace")}


def wait_target_up(papi, proc, logf):
    def up():
        _, r = api_get(papi, "targets", state="active")
        ts = [t for t in r.get("data", {}).get("activeTargets", [])
              if t["labels"].get("job") == "vitals"]
        return bool(ts) and all(t["health"] == "up" for t in ts), ts
    return wait_for("the vitals targets to be up in Prometheus", up, TIMEOUT_START, proc, logf)


def check_bearer_variant(config_path, server_bin, tmp):
    """A server with --metrics-token refuses scrapes without it; Prometheus with the bearer-token
    variant of prometheus.yml scrapes it."""
    text = config_path.read_text()
    m = re.search(r"credentials_file:\s*(\S+)", text)
    if not m or "type: Bearer" not in text:
        die(f"{config_path} has no bearer authorization with a credentials_file")
    token = pathlib.Path(m.group(1)).read_text().strip()
    sport = free_port()
    slog = tmp / "server-token.log"
    server = spawn([str(server_bin), "--listen", f"127.0.0.1:{sport}", "--metrics-token", token], slog)
    base = f"http://127.0.0.1:{sport}"
    wait_for("vitals-server (with a metrics token) /healthz",
             lambda: (http("GET", base + "/healthz")[0] == 200, "not 200"), TIMEOUT_START, server, slog)
    status = http("GET", base + "/metrics")[0]
    if status != 401:
        fail(f"/metrics without the token: expected 401, got {status}")
    status = http("GET", base + "/metrics", headers={"Authorization": f"Bearer {token}"})[0]
    if status != 200:
        fail(f"/metrics with the token: expected 200, got {status}")
    proc, logf, papi = start_prometheus(prometheus_config(text, [sport]), tmp, "prometheus-token")
    wait_target_up(papi, proc, logf)
    log("bearer-token variant: /metrics refuses a scrape without the token (401), "
        "Prometheus with the variant's config scrapes it (target up)")


# --------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", required=True, help="path of the vitals-server binary")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, TSDB)")
    ap.add_argument("--bearer-variant", metavar="CONFIG",
                    help="prometheus.yml with its bearer-token variant uncommented (as "
                         "scripts/test.d/80-monitoring.sh writes it): also run a server that "
                         "requires the token and check that Prometheus scrapes it with that config")
    args = ap.parse_args()
    started = time.monotonic()

    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            die(f"`{tool}` not found on PATH: install Debian's `prometheus` package (scripts/setup)")
    server_bin = pathlib.Path(args.server_bin).resolve()
    if not os.access(server_bin, os.X_OK):
        die(f"server binary {server_bin} does not exist or is not executable")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(kill_children)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vitals-monitoring-"))
    if not args.keep:
        atexit.register(shutil.rmtree, tmp, True)
    else:
        log(f"temp dir: {tmp}")

    # 1. static checks
    dash = json.loads(DASHBOARD.read_text())
    dash_queries = check_dashboard(dash)
    file_alerts, file_records = rule_names_in_files()
    for a in ["VitalsTargetDown", "VitalsTargetMissing", "VitalsToolErrorRatioHigh",
              "VitalsToolLatencyHigh", "VitalsCircuitBreakerOpen", "VitalsRateLimitRejectionsSurge",
              "VitalsQuotaNearExhaustion", "VitalsProcessMemoryGrowth", "VitalsLabelOverflow",
              "VitalsUpstreamDown", "VitalsUpstreamFailed", "VitalsUpstreamRestarting",
              "VitalsUpstreamRequestsFailing", "VitalsUpstreamQueueBacklog",
              "VitalsGatewayNameConflicts"]:
        if a not in file_alerts:
            fail(f"alert {a} is missing from the rule files")
    log(f"dashboard: {len(dash_queries)} queries; rules: {len(file_alerts)} alerts, "
        f"{len(file_records)} recording rules")

    # 2a. the reference server, and traffic
    sport = free_port()
    slog = tmp / "server.log"
    server = spawn([str(server_bin), "--listen", f"127.0.0.1:{sport}"], slog,
                   env={"VITALS_RATE_LIMIT_PER_CLIENT_TOOLS": CLIENT_TOOL_RATE})
    base = f"http://127.0.0.1:{sport}"
    wait_for("vitals-server /healthz", lambda: (http("GET", base + "/healthz")[0] == 200, "not 200"),
             TIMEOUT_START, server, slog)
    log(f"vitals-server up on {base}")
    stop = threading.Event()
    stats = {"ok": 0, "bad": 0, "unknown": 0, "rate_limited": 0}
    t = threading.Thread(target=traffic, args=(base + "/mcp", stop, stats), daemon=True)
    t.start()
    threads = [t]

    # 2b. the gateway in front of three upstreams (this same binary over stdio), and traffic
    (tmp / "gateway.json").write_text(json.dumps(gateway_config(server_bin, str(tmp)), indent=2))
    gport = free_port()
    glog = tmp / "gateway.log"
    gateway = spawn([str(server_bin), "--listen", f"127.0.0.1:{gport}",
                     "--config", str(tmp / "gateway.json"), "--log-level", "warn",
                     # every test client is 127.0.0.1: no HTTP or tools/call limit in the way
                     "--rate-limit", "100000/1m", "--client-tool-rate-limit", "100000/1m"], glog)
    gbase = f"http://127.0.0.1:{gport}"
    ginst = f"127.0.0.1:{gport}"
    wait_for("the gateway's /readyz (its required upstreams up)",
             lambda: (http("GET", gbase + "/readyz")[0] == 200, "not 200"), TIMEOUT_START, gateway, glog)
    lister = Mcp(gbase + "/mcp")
    lister.initialize()
    _, m = lister.request("tools/list", {})
    listed = [x["name"] for x in m.get("result", {}).get("tools", [])]
    if GATEWAY_TOOLS - set(listed):
        fail(f"the gateway does not list {sorted(GATEWAY_TOOLS - set(listed))}; it lists {listed}")
    if len(listed) != len(set(listed)):
        fail(f"the gateway lists a name twice: {listed}")
    log(f"gateway up on {gbase}: {len(listed)} tools listed, the forwarded ones included")
    tally = Tally()
    slow_go = threading.Event()
    for target, targs in [(gateway_traffic, (gbase + "/mcp", stop, tally)),
                          (slow_traffic, (gbase + "/mcp", stop, slow_go, tally))] + \
            [(queue_traffic, (gbase + "/mcp", stop, tally))] * 3:
        threads.append(threading.Thread(target=target, args=targs, daemon=True))
        threads[-1].start()
    wait_for("the first tool calls",
             lambda: ("error" in stats or tally.errors or
                      (stats["ok"] >= 3 and tally.kinds("up__rate_limit_status")), (stats, tally.counts)),
             TIMEOUT_START, server, slog)
    if "error" in stats:
        die(f"MCP traffic failed: {stats['error']}\n{tail(slog)}")
    if tally.errors:
        die(f"gateway MCP traffic failed: {tally.errors}\n{tail(glog)}")

    # 3. Prometheus with the shipped config, rewritten for the test
    prom, plog, papi = start_prometheus(
        prometheus_config((MON / "prometheus.yml").read_text(), [sport, gport]), tmp, "prometheus")

    def api(path, **params):
        return api_get(papi, path, **params)

    def query(q):
        status, r = api("query", query=q)
        if r.get("status") != "success":
            die(f"Prometheus refused {q!r}: HTTP {status} {r.get('error')}")
        return r["data"]["result"]

    wait_target_up(papi, prom, plog)
    log(f"Prometheus ({papi}) scrapes the server and the gateway")
    # From now on Prometheus sees every one of slow's timeouts (their rate, not only their count).
    slow_go.set()

    # One burst above the per-client budget: refusals for the rate-limit panels.
    burst = Mcp(base + "/mcp")
    burst.initialize()
    refused = sum(outcome(burst.call_tool("server_health")) == "rate_limited" for _ in range(60))
    log(f"burst of 60 calls over the {CLIENT_TOOL_RATE} per-client budget: {refused} refused")
    if not refused:
        fail("a burst of 60 tool calls above the per-client budget was never rate limited")

    # 4. every expression parses; rules are healthy; core panels have data; gateway series and
    # alerts are what the traffic implies
    def rules_evaluated():
        _, r = api("rules")
        rules = [x for g in r.get("data", {}).get("groups", []) for x in g["rules"]]
        return bool(rules) and all(x.get("health") != "unknown" for x in rules), rules

    rules = wait_for("every rule to be evaluated", rules_evaluated, TIMEOUT_START, prom, plog)
    loaded = sorted(x["name"] for x in rules)
    if loaded != sorted(file_alerts + file_records):
        fail(f"Prometheus loaded rules {loaded}, the files name {sorted(file_alerts + file_records)}")
    for x in rules:
        if x.get("health") != "ok":
            fail(f"rule {x['name']} health {x.get('health')}: {x.get('lastError')}")
    rule_queries = [(f"rule {x['name']}", x["query"], False) for x in rules]
    expectations = [(f"gateway: {what}", q) for what, q in gateway_expectations(ginst)]
    expectations += [(f"alert {name} {labels or ''} was {state}",
                      f'count_over_time({alerts_selector(name, labels, ginst, state)}[5m])')
                     for name, labels, state in GATEWAY_ALERTS]

    missing = {}
    deadline = time.monotonic() + TIMEOUT_DATA
    while True:
        missing = {}
        for label, q, core in rule_queries + dash_queries:
            status, r = api("query", query=q)
            if r.get("status") != "success":
                die(f"{label}: Prometheus refused {q!r}: HTTP {status} {r.get('error')}")
            if core and not r["data"]["result"]:
                missing[label] = q
        for label, q in expectations:
            if not query(q):
                missing[label] = q
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    log(f"{len(rule_queries) + len(dash_queries)} expressions: status success "
        f"({len(rule_queries)} from rules, {len(dash_queries)} from the dashboard)")
    for label, q in missing.items():
        fail(f"{label}: no data after {TIMEOUT_DATA}s: {q}")
    if not missing:
        log(f"every core panel and variable returned data "
            f"({sum(1 for _, _, c in dash_queries if c)} queries); the gateway series and alerts "
            f"are as its traffic implies ({len(expectations)} checks, after "
            f"{time.monotonic() - started:.0f}s)")
    for name, labels in GATEWAY_QUIET:
        active = query(alerts_selector(name, labels, ginst))
        if active:
            fail(f"alert {name} {labels} is active for the gateway: {[a['metric'] for a in active]}")
    # Annotation templates expand (Prometheus writes the error into the text otherwise).
    _, r = api("alerts")
    active = r.get("data", {}).get("alerts", [])
    for a in active:
        for k, v in a.get("annotations", {}).items():
            if "<error expanding template" in v or "<no value>" in v:
                fail(f"alert {a['labels'].get('alertname')} annotation {k} did not expand: {v}")
    log(f"{len(active)} active alerts, annotations expanded; quiet: "
        f"{', '.join(n for n, _ in GATEWAY_QUIET)}")

    # 5. metric names against the live /metrics of both servers
    exported = set()
    for b in (base, gbase):
        status, _, body = http("GET", b + "/metrics")
        if status != 200:
            die(f"GET {b}/metrics: HTTP {status}")
        exported |= exported_names(body.decode())
    recorded = set(file_records)
    used = {}
    for label, q, _ in rule_queries + dash_queries:
        for n in metric_names(q):
            if n not in recorded and n not in SYNTHETIC:
                used.setdefault(n, set()).add(label)
    # The extractor must see the selectors (an extractor that finds nothing would pass anything).
    for n in ("mcp_tool_calls_total", "mcp_tool_duration_seconds_bucket", "circuit_breaker_state",
              "process_resident_memory_bytes", "mcp_upstream_up", "mcp_upstream_requests_total",
              "mcp_upstream_request_duration_seconds_bucket", "mcp_gateway_name_conflicts"):
        if n not in used:
            fail(f"metric name extraction missed {n}")
    pending = pending_metrics()
    for n in sorted(used):
        if n in exported:
            continue
        if n in pending:
            log(f"PENDING: {n} is not exported yet (listed in monitoring/NEEDS.md); used by "
                f"{', '.join(sorted(used[n]))}")
        else:
            fail(f"metric {n} is not exported by vitals-server; used by {', '.join(sorted(used[n]))}")
    for n in sorted(pending & exported):
        log(f"NOTE: {n} is exported now: remove it from the pending list in monitoring/NEEDS.md")
    log(f"{len(used)} metric names used, {len(set(used) & exported)} exported by the servers, "
        f"{len(set(used) - exported)} pending")

    stop.set()
    slow_go.set()  # (if the test ended before Prometheus was up)
    for th in threads:
        th.join(timeout=5)
    log(f"reference server tool calls: {stats['ok']} server_health ok, {stats['rate_limited']} "
        f"rate limited, {stats['unknown']} unknown tool")
    if "error" in stats:
        fail(f"MCP traffic failed: {stats['error']}")
    if stats["bad"]:
        fail(f"server_health answered with an error {stats['bad']} times")
    # 6. what each gateway call got
    log("gateway tool calls: " + "; ".join(
        f"{tool} {kind} {n}" for (tool, kind), n in sorted(tally.counts.items())))
    if tally.errors:
        fail(f"gateway MCP traffic failed: {tally.errors}")
    allowed = {"server_health": {"ok"}, "up__rate_limit_status": {"ok"},
               "up__test_error_handling": {"tool_error"}, "up__test_tool_with_progress": {"ok"},
               "no_such_tool_for_monitoring_test": {"jsonrpc_error"},
               # timed out (a JSON-RPC error), then refused by its open breaker
               "test_tool_with_progress": {"jsonrpc_error", "tool_error:circuit_open"}}
    for tool, kinds in allowed.items():
        got = tally.kinds(tool)
        if not got or set(got) - kinds:
            fail(f"gateway: {tool} answered {got}, expected only {sorted(kinds)}")
    kill_children()
    left = leftover_processes(str(tmp))
    if left:
        fail(f"gateway upstream processes left after the gateway stopped: {left}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    else:
        log("no upstream process left after the gateway stopped")

    if args.bearer_variant:
        check_bearer_variant(pathlib.Path(args.bearer_variant), server_bin, tmp)
        kill_children()
    if FAILURES:
        print(f"live_test: {len(FAILURES)} failure(s)", flush=True)
        return 1
    log(f"passed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
