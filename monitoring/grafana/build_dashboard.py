#!/usr/bin/env python3
"""Writes vitals-dashboard.json, the Grafana dashboard for vitals-server.

The JSON is generated so that every panel has the same datasource reference, ids and grid
positions stay consistent, and a reviewer reads the queries here, in one place. Run it after a
change; the monitoring test fails when the committed JSON differs from what this prints.

    python3 monitoring/grafana/build_dashboard.py            # rewrite vitals-dashboard.json
    python3 monitoring/grafana/build_dashboard.py --check    # exit 1 if it is out of date

Classic dashboard model (the import format of Grafana 12 and 13). schemaVersion 41: the JSON
already has what the migrations up to 42 would change (string `refresh`, no
`timepicker.time_options`, no `hideFrom` overrides), so Grafana imports it as is.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).with_name("vitals-dashboard.json")
SCHEMA_VERSION = 41
DS = {"type": "prometheus", "uid": "${datasource}"}

# Selectors shared by every query; the variables are defined in `templating` below.
SEL = 'job=~"$job", instance=~"$instance"'
TOOL = SEL + ', tool=~"$tool"'
UPSTREAM = SEL + ', upstream=~"$upstream"'

# tools/call outcomes (the `status` label): the calls that ran, and those of them that failed.
RAN = "ok|tool_error|jsonrpc_error|timeout|transport"
FAILED = "tool_error|jsonrpc_error|timeout|transport"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w, h):
        if self.x + w > 24:
            self.newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self):
        self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def id(self):
        i = self.next_id
        self.next_id += 1
        return i


L = Layout()


def target(expr, legend="__auto", ref="A", instant=False):
    t = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }
    if instant:
        t["instant"] = True
        t["range"] = False
    else:
        t["range"] = True
    return t


def targets(*items, instant=False):
    return [target(e, l, chr(ord("A") + i), instant) for i, (e, l) in enumerate(items)]


def row(title):
    L.newline()
    p = {
        "collapsed": False,
        "gridPos": L.place(24, 1),
        "id": L.id(),
        "panels": [],
        "title": title,
        "type": "row",
    }
    L.newline()
    return p


def timeseries(title, description, unit, items, w=12, h=8, stack=False, min_=0, max_=None,
               overrides=None):
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        },
        "unit": unit,
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "gridPos": L.place(w, h),
        "id": L.id(),
        "options": {
            "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table",
                       "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets(*items),
        "title": title,
        "type": "timeseries",
    }


def stat(title, description, unit, expr, thresholds=None, w=6, h=4, mappings=None, decimals=None):
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": {"mode": "absolute",
                       "steps": thresholds or [{"color": "green", "value": None}]},
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": L.place(w, h),
        "id": L.id(),
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": targets((expr, "__auto")),
        "title": title,
        "type": "stat",
    }


BREAKER_MAPPINGS = [{
    "type": "value",
    "options": {
        "0": {"color": "green", "index": 0, "text": "closed"},
        "1": {"color": "red", "index": 1, "text": "open"},
        "2": {"color": "orange", "index": 2, "text": "half-open"},
    },
}]


UPSTREAM_MAPPINGS = [{
    "type": "value",
    "options": {
        "0": {"color": "red", "index": 0, "text": "down"},
        "1": {"color": "green", "index": 1, "text": "up"},
        "2": {"color": "dark-red", "index": 2, "text": "failed"},
    },
}]


def state_timeline(title, description, expr, legend, mappings, steps, w=12, h=8):
    return {
        "datasource": DS,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
                "mappings": mappings,
                "thresholds": {"mode": "absolute", "steps": steps},
                "unit": "short",
            },
            "overrides": [],
        },
        "gridPos": L.place(w, h),
        "id": L.id(),
        "options": {
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": targets((expr, legend)),
        "title": title,
        "type": "state-timeline",
    }


def gateway_panels():
    """Gateway mode (vitals-server in front of other MCP servers): empty for a server without
    upstreams, which exports no mcp_upstream_* series."""
    out = [row("Gateway upstreams")]
    out.append(stat(
        "Upstreams up", "Upstreams the gateway has a working connection to, out of all "
        "(mcp_upstream_up). VitalsUpstreamDown fires after 2 minutes down.", "short",
        f'sum(mcp_upstream_up{{{UPSTREAM}}}) / count(mcp_upstream_up{{{UPSTREAM}}})',
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        decimals=2))
    out.append(stat(
        "Upstreams failed", "Upstreams that crash-looped and are no longer restarted "
        "(mcp_upstream_failed == 1) until the gateway restarts. VitalsUpstreamFailed fires at once.",
        "short", f'count(mcp_upstream_failed{{{UPSTREAM}}} == 1) or vector(0)',
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]))
    out.append(stat(
        "Upstream restarts", "Upstream restarts in the dashboard's time range "
        "(mcp_upstream_restarts_total). VitalsUpstreamRestarting fires at 3 in 15 minutes.",
        "short",
        f'sum(increase(mcp_upstream_restarts_total{{{UPSTREAM}}}[$__range])) or vector(0)',
        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        decimals=0))
    out.append(stat(
        "Name conflicts", "Tool and prompt names listed by more than one source; all but the "
        "first are hidden from clients (mcp_gateway_name_conflicts). "
        "VitalsGatewayNameConflicts fires after 2 minutes.", "short",
        f'max(mcp_gateway_name_conflicts{{{SEL}}})',
        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}]))
    out.append(state_timeline(
        "Upstream state", "Per upstream: up (green), down: starting, restarting or unreachable "
        "(red), failed: restarts given up (dark red).",
        f'max by (upstream) (mcp_upstream_up{{{UPSTREAM}}})'
        f' + 2 * max by (upstream) (mcp_upstream_failed{{{UPSTREAM}}})',
        "{{upstream}}", UPSTREAM_MAPPINGS,
        [{"color": "red", "value": None}, {"color": "green", "value": 1},
         {"color": "dark-red", "value": 2}]))
    out.append(timeseries(
        "Upstream restarts and exits", "Restarts, and connections or processes that ended by "
        "reason (exited, failed, killed, signaled, transport, unresponsive, init_timeout, ...), per "
        "upstream.", "short",
        [(f'sum by (upstream) (increase(mcp_upstream_restarts_total{{{UPSTREAM}}}'
          f'[$__rate_interval]))', "restart {{upstream}}"),
         (f'sum by (upstream, reason) (increase(mcp_upstream_exits_total{{{UPSTREAM}}}'
          f'[$__rate_interval]))', "exit {{upstream}} {{reason}}")]))
    out.append(timeseries(
        "Upstream requests by outcome", "Requests forwarded to each upstream per second (every "
        "MCP method) by outcome: ok, tool_error, jsonrpc_error, timeout, transport, cancelled, "
        "unavailable.", "reqps",
        [(f'sum by (upstream, outcome) (instance_upstream_method_outcome:mcp_upstream_requests:'
          f'rate5m{{{UPSTREAM}}})', "{{upstream}} {{outcome}}")]))
    out.append(timeseries(
        "Tool calls by upstream and status", "tools/call per second per upstream by status, "
        "including calls refused before reaching it (unavailable, circuit_open, rate_limited, "
        "quota_exhausted).", "reqps",
        [(f'sum by (upstream, status) (instance_upstream_tool_status:mcp_tool_calls:rate5m'
          f'{{{UPSTREAM}}})', "{{upstream}} {{status}}")]))
    out.append(timeseries(
        "Upstream unanswered ratio", "Share of forwarded requests that timed out or lost the "
        "connection, of those sent. VitalsUpstreamRequestsFailing fires above 5 % for 5 "
        "minutes.", "percentunit",
        [(f'max by (upstream) (instance_upstream:mcp_upstream_request_failure_ratio:rate5m'
          f'{{{UPSTREAM}}})', "{{upstream}}")], max_=1))
    out.append(timeseries(
        "Upstream latency p50 / p99", "Quantiles of mcp_upstream_request_duration_seconds per "
        "upstream and method (5-minute window): the upstream's answer time, queueing excluded. "
        "Requests that timed out or lost the connection are not in it.", "s",
        [(f'max by (upstream, method) (instance_upstream_method:mcp_upstream_request_duration_'
          f'seconds:p50_rate5m{{{UPSTREAM}}})', "p50 {{upstream}} {{method}}"),
         (f'max by (upstream, method) (instance_upstream_method:mcp_upstream_request_duration_'
          f'seconds:p99_rate5m{{{UPSTREAM}}})', "p99 {{upstream}} {{method}}")]))
    out.append(timeseries(
        "Upstream in flight and queued", "Requests sent to each upstream and not answered yet, "
        "and requests waiting for one of its concurrency slots. VitalsUpstreamQueueBacklog fires "
        "when requests wait for 5 minutes.", "short",
        [(f'sum by (upstream) (mcp_upstream_in_flight{{{UPSTREAM}}})', "in flight {{upstream}}"),
         (f'sum by (upstream) (mcp_upstream_queued{{{UPSTREAM}}})', "queued {{upstream}}")]))
    out.append(timeseries(
        "Upstream catalogue", "Tools, prompts and resources each upstream lists (as of its last "
        "start). A drop to 0 after a restart means the upstream came back without its tools.",
        "short",
        [(f'max by (upstream) (mcp_upstream_tools{{{UPSTREAM}}})', "tools {{upstream}}"),
         (f'max by (upstream) (mcp_upstream_prompts{{{UPSTREAM}}})', "prompts {{upstream}}"),
         (f'max by (upstream) (mcp_upstream_resources{{{UPSTREAM}}})', "resources {{upstream}}")]))
    return out


def panels():
    out = []
    out.append(row("Overview"))
    out.append(stat(
        "Targets up", "Scrapes of vitals-server that succeeded (up == 1) out of all targets.",
        "short", f'sum(up{{{SEL}}}) / count(up{{{SEL}}})',
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        mappings=[], decimals=2))
    out.append(stat(
        "Tool calls/s", "All tools/call requests per second (5-minute rate), every outcome.",
        "reqps", f'sum(instance_upstream_tool_status:mcp_tool_calls:rate5m{{{TOOL}}})'))
    out.append(stat(
        "Error ratio (all tools)", "Failed calls (tool_error, jsonrpc_error, timeout, transport) / "
        "calls that ran (those and ok), all tools, unknown ones included. Refusals, unavailable "
        "upstreams and cancelled calls are left out.",
        "percentunit",
        f'sum(instance_upstream_tool_status:mcp_tool_calls:rate5m{{{TOOL}, status=~"{FAILED}"}})'
        f' / sum(instance_upstream_tool_status:mcp_tool_calls:rate5m{{{TOOL}, status=~"{RAN}"}})',
        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.01},
                    {"color": "red", "value": 0.05}]))
    out.append(stat(
        "Breakers not closed", "Circuit breakers currently open or half-open.", "short",
        f'count(circuit_breaker_state{{{SEL}}} != 0) or vector(0)',
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]))

    out.append(row("Tool calls"))
    out.append(timeseries(
        "Tool call rate", "tools/call requests per second by tool and outcome: ok, tool_error "
        "(a result with isError), jsonrpc_error, timeout, transport (upstream connection lost), "
        "cancelled, rate_limited, circuit_open, quota_exhausted, unavailable (upstream down or "
        "busy).", "reqps",
        [(f'sum by (tool, status) (instance_upstream_tool_status:mcp_tool_calls:rate5m{{{TOOL}}})',
          "{{tool}} {{status}}")]))
    out.append(timeseries(
        "Tool error ratio", "Share of the calls that ran (ok, tool_error, jsonrpc_error, "
        "timeout, transport) that failed, per tool. The VitalsToolErrorRatioHigh alert fires "
        "above 5 % for 10 minutes.", "percentunit",
        [(f'max by (tool) (instance_upstream_tool:mcp_tool_error_ratio:rate5m{{{TOOL}}})',
          "{{tool}}")],
        max_=1))
    out.append(timeseries(
        "Tool latency p50 / p95 / p99", "Quantiles of mcp_tool_duration_seconds per tool "
        "(5-minute window). VitalsToolLatencyHigh fires when p99 stays above 2.5 s.", "s",
        [(f'max by (tool) (instance_upstream_tool:mcp_tool_duration_seconds:p50_rate5m{{{TOOL}}})',
          "p50 {{tool}}"),
         (f'max by (tool) (instance_upstream_tool:mcp_tool_duration_seconds:p95_rate5m{{{TOOL}}})',
          "p95 {{tool}}"),
         (f'max by (tool) (instance_upstream_tool:mcp_tool_duration_seconds:p99_rate5m{{{TOOL}}})',
          "p99 {{tool}}")]))
    p99 = timeseries(
        "Tool latency p99 with exemplars", "p99 of mcp_tool_duration_seconds per tool from the "
        "raw buckets, with each bucket's exemplar drawn as a dot: the trace id and span id of a "
        "recent call in that bucket (recorded while vitals exports traces; Prometheus needs "
        "--enable-feature=exemplar-storage). Click a dot to open its trace when the datasource "
        "links trace ids to your tracing backend (grafana/provisioning/datasources/prometheus.yml).",
        "s",
        [(f'histogram_quantile(0.99, sum by (tool, le) (rate(mcp_tool_duration_seconds_bucket{{{TOOL}}}[$__rate_interval])))',
          "p99 {{tool}}")])
    for t in p99["targets"]:
        t["exemplar"] = True
    out.append(p99)
    out.append(timeseries(
        "Tool errors by type", "Failed tool calls per second by tool and error_type: "
        "tool_error, a JSON-RPC error code (-32602 invalid params, -32603 internal error, ...), "
        "timeout, transport, cancelled, unavailable.",
        "reqps",
        [(f'sum by (tool, error_type) (rate(mcp_tool_errors_total{{{TOOL}}}[$__rate_interval]))',
          "{{tool}} {{error_type}}")]))
    out.append(timeseries(
        "Active tool calls", "Tool calls in progress (mcp_active_requests).", "short",
        [(f'sum by (instance) (mcp_active_requests{{{SEL}}})', "{{instance}}")]))
    out.append(timeseries(
        "HTTP requests", "HTTP requests per second by path and status code.", "reqps",
        [(f'sum by (path, status) (rate(http_requests_total{{{SEL}}}[$__rate_interval]))',
          "{{path}} {{status}}")]))

    out.append(row("MCP operations (OpenTelemetry semantic conventions)"))
    out.append(timeseries(
        "Operations by method", "MCP requests and notifications per second by method "
        "(mcp_server_operation_duration_seconds_count, every method, not only tools/call).",
        "reqps",
        [(f'sum by (mcp_method_name) (instance_method:mcp_server_operations:rate5m{{{SEL}}})',
          "{{mcp_method_name}}")], w=8))
    out.append(timeseries(
        "Operation latency p50 / p95", "Quantiles of mcp_server_operation_duration_seconds per "
        "method (the conventions' buckets, 10 ms to 300 s).", "s",
        [(f'max by (mcp_method_name) (instance_method:mcp_server_operation_duration_seconds:p50_rate5m{{{SEL}}})',
          "p50 {{mcp_method_name}}"),
         (f'max by (mcp_method_name) (instance_method:mcp_server_operation_duration_seconds:p95_rate5m{{{SEL}}})',
          "p95 {{mcp_method_name}}")], w=8))
    out.append(timeseries(
        "Operation failures by error_type", "Failed MCP operations per second by method and "
        "error_type (a JSON-RPC code such as -32603, tool_error, cancelled). The client's "
        "mistakes (-32602, -32601, -32002) carry rpc_response_status_code only. "
        "VitalsMcpOperationErrorRatioHigh fires above 5 % for 10 minutes.", "reqps",
        [(f'sum by (mcp_method_name, error_type) (rate(mcp_server_operation_duration_seconds_count{{{SEL}, error_type!=""}}[$__rate_interval]))',
          "{{mcp_method_name}} {{error_type}}")], w=8))

    out.append(row("Resilience"))
    out.append(state_timeline(
        "Circuit breaker state", "Circuit breaker per upstream: closed (green), half-open "
        "(orange), open (red). VitalsCircuitBreakerOpen fires after 2 minutes not closed.",
        f'max by (upstream) (circuit_breaker_state{{{SEL}}})', "{{upstream}}", BREAKER_MAPPINGS,
        [{"color": "green", "value": None}, {"color": "red", "value": 1},
         {"color": "orange", "value": 2}]))
    out.append(timeseries(
        "Rate-limit rejections", "Requests refused by a rate limiter per second, by scope "
        "(http_client, tool_client, tool), and tool calls refused by status (rate_limited, "
        "circuit_open, quota_exhausted).", "reqps",
        [(f'sum by (scope) (instance_scope:rate_limit_rejected:rate5m{{{SEL}}})',
          "limiter {{scope}}"),
         (f'sum by (tool, status) (instance_upstream_tool_status:mcp_tool_calls:rate5m'
          f'{{{TOOL}, status=~"rate_limited|circuit_open|quota_exhausted"}})',
          "{{tool}} {{status}}")]))
    out.append(timeseries(
        "Rate-limit tokens available", "Tokens each tool's limiter could hand out now, against "
        "the burst (capacity) of each limiter scope.", "short",
        [(f'min by (tool) (rate_limit_available_tokens{{{TOOL}}})', "available {{tool}}"),
         (f'max by (scope) (rate_limit_burst_tokens{{{SEL}}})', "burst {{scope}}")]))
    out.append(timeseries(
        "Quota usage", "Share of each quota's window budget spent (1 = exhausted). "
        "VitalsQuotaNearExhaustion fires above 90 %.", "percentunit",
        [(f'max by (quota) (instance_quota:quota_used:ratio{{{SEL}}})', "{{quota}}")],
        max_=1))

    out.extend(gateway_panels())

    out.append(row("Process"))
    out.append(timeseries(
        "CPU", "CPU time per second (1 = one core busy).", "percentunit",
        [(f'sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval]))',
          "{{instance}}")], w=8))
    out.append(timeseries(
        "Resident memory", "process_resident_memory_bytes. VitalsProcessMemoryGrowth fires on "
        "sustained growth.", "bytes",
        [(f'sum by (instance) (process_resident_memory_bytes{{{SEL}}})', "{{instance}}")], w=8))
    out.append(timeseries(
        "Open file descriptors", "Open fds against the process limit.", "short",
        [(f'sum by (instance) (process_open_fds{{{SEL}}})', "open {{instance}}"),
         (f'sum by (instance) (process_max_fds{{{SEL}}})', "max {{instance}}")], w=8))
    return out


def variables():
    def query_var(name, label, query, include_all, default):
        return {
            "current": default,
            "datasource": DS,
            "definition": query,
            "includeAll": include_all,
            "allValue": ".+" if include_all else None,
            "label": label,
            "multi": include_all,
            "name": name,
            "options": [],
            # A classic query string: every Grafana version parses `label_values(...)` itself.
            "query": query,
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "type": "query",
        }

    all_ = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return [
        {
            "current": {},
            "hide": 0,
            "includeAll": False,
            "label": "Prometheus",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "type": "datasource",
        },
        query_var("job", "Job", "label_values(mcp_active_requests, job)", False,
                  {"selected": True, "text": "vitals", "value": "vitals"}),
        query_var("instance", "Instance", 'label_values(mcp_active_requests{job=~"$job"}, instance)',
                  True, all_),
        query_var("tool", "Tool",
                  'label_values(mcp_tool_calls_total{job=~"$job", instance=~"$instance"}, tool)',
                  True, all_),
        query_var("upstream", "Upstream",
                  'label_values(mcp_upstream_up{job=~"$job", instance=~"$instance"}, upstream)',
                  True, all_),
    ]


def dashboard():
    vs = variables()
    for v in vs:
        if v.get("allValue") is None:
            v.pop("allValue", None)
    return {
        "annotations": {"list": [{
            "datasource": DS,
            "enable": True,
            "expr": 'ALERTS{alertname=~"Vitals.+", alertstate="firing", job=~"$job"}',
            "iconColor": "red",
            "name": "Vitals alerts",
            "step": "60s",
            "tagKeys": "alertname,severity",
            "textFormat": "{{alertname}} {{instance}} {{tool}}{{upstream}}{{scope}}{{quota}}",
            "titleFormat": "{{alertname}}",
            "useValueForTime": False,
        }]},
        "description": "vitals-server: MCP tool calls, latency, rate limits, circuit breakers, "
                       "quotas, gateway upstreams and the process. Needs "
                       "monitoring/rules/recording.yml loaded.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": panels(),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["vitals", "mcp", "prometheus"],
        "templating": {"list": vs},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "vitals-server",
        "uid": "vitals-server",
        "version": 1,
        "weekStart": "",
    }


def render():
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 {__file__}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
