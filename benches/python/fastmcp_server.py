"""The approach the MCP server tutorials document, for the load test beside vitals-server:
a FastMCP server (official `mcp` SDK, Streamable HTTP) whose tools are instrumented by hand with
prometheus_client, and /metrics rendered by prometheus_client's generate_latest, under uvicorn.

Usage: python fastmcp_server.py PORT LINES
LINES: pad /metrics with labelled series until it has this many sample lines (to match the
exposition of the server it is compared with).
"""

import sys
import time
from functools import wraps

import uvicorn
from mcp.server.fastmcp import FastMCP
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.routing import Route

port = int(sys.argv[1])
target_lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

CALLS = Counter("mcp_tool_calls", "Tool calls.", ["tool", "status"])
DURATION = Histogram(
    "mcp_tool_duration_seconds",
    "Tool call duration.",
    ["tool"],
    buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
)
ACTIVE = Gauge("mcp_active_requests", "Requests in flight.")
PADDING = Counter("bench_padding", "Series to match the other server's exposition.", ["series"])
# The tool's own series exist once it has been called: count them as if it had.
DURATION.labels("server_health")
CALLS.labels("server_health", "ok")


def sample_lines():
    return sum(1 for l in generate_latest().decode().splitlines() if l and not l.startswith("#"))


# Each padding series adds two lines (_total and _created).
for i in range(max(0, (target_lines - sample_lines()) // 2)):
    PADDING.labels(str(i)).inc(i)


def instrumented(fn):
    """What the tutorials write by hand: count, time and track every tool call."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        ACTIVE.inc()
        start = time.perf_counter()
        status = "ok"
        try:
            return fn(*args, **kwargs)
        except Exception:
            status = "error"
            raise
        finally:
            DURATION.labels(fn.__name__).observe(time.perf_counter() - start)
            CALLS.labels(fn.__name__, status).inc()
            ACTIVE.dec()

    return wrapper


mcp = FastMCP("bench-python", host="127.0.0.1", port=port, log_level="WARNING")


@mcp.tool()
@instrumented
def server_health() -> dict:
    """Health of the server's components."""
    return {"status": "healthy", "components": [{"name": "server", "status": "healthy"}]}


app = mcp.streamable_http_app()


async def metrics(_request):
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


app.router.routes.append(Route("/metrics", metrics))

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
