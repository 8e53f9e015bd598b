"""A FastMCP (MCPServer) stdio server built with the official MCP Python SDK, instrumented with
the OpenTelemetry Python SDK (otel_setup.py, service.name `py-upstream`): the SDK's
OpenTelemetryMiddleware makes a SERVER span per request, its parent taken from `params._meta`,
exported to OTEL_EXPORTER_OTLP_ENDPOINT. It sits behind the gateway in the propagation test.

usage: traced_upstream.py

Tool: forecast(city: str) -> text "sunny in CITY; traceparent=TP" where TP is the `traceparent`
the request carried in `_meta` (empty when none), so the caller sees what the upstream got.
"""
from otel_setup import start_tracing

from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("traced_upstream", version="1.0.0", log_level="WARNING")


@mcp.tool(description="The weather, and the traceparent this request carried.", structured_output=False)
def forecast(city: str, ctx: Context) -> str:
    meta = ctx.request_context.meta
    tp = ""
    if meta is not None:
        tp = (meta.get("traceparent") if isinstance(meta, dict) else getattr(meta, "traceparent", None)) or ""
    return f"sunny in {city}; traceparent={tp}"


if __name__ == "__main__":
    start_tracing("py-upstream")
    mcp.run()
