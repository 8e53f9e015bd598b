"""The official MCP Python SDK as a client, instrumented with the OpenTelemetry Python SDK
(otel_setup.py, service.name `py-client`): inside a root span `test-root` it connects over
Streamable HTTP (2025-11-25 handshake), calls one tool and prints one JSON line:
{"trace_id", "root_span_id", "is_error", "text"} (ids in lowercase hex).

usage: traced_client.py URL TOOL [ARGUMENTS_JSON]
"""
import asyncio
import json
import sys

from otel_setup import start_tracing

from mcp import Client
from opentelemetry import trace


async def run(url, tool, arguments):
    tracer = trace.get_tracer("vitals-tests")
    with tracer.start_as_current_span("test-root") as root:
        async with Client(url, mode="legacy") as client:
            r = await client.call_tool(tool, arguments)
    ctx = root.get_span_context()
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "root_span_id": format(ctx.span_id, "016x"),
        "is_error": bool(r.is_error),
        "text": "".join(getattr(c, "text", "") for c in r.content),
    }


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    provider = start_tracing("py-client")
    arguments = json.loads(sys.argv[3]) if len(sys.argv) == 4 else {}
    seen = asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2], arguments), timeout=60))
    provider.shutdown()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
