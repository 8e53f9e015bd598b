"""OpenTelemetry for the trace propagation tests: the official Python SDK exporting every span as
it ends (SimpleSpanProcessor) over OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_ENDPOINT (the
exporter reads the variable and appends /v1/traces), with the W3C trace context propagator.

The MCP Python SDK (mcp 2.3.0) does the MCP side itself through the OpenTelemetry API: its
client opens a CLIENT span `MCP send {method} {target}` per request and injects `traceparent`
into `params._meta` (mcp/shared/jsonrpc_dispatcher.py), and every server runs
OpenTelemetryMiddleware, a SERVER span whose parent is extracted from `_meta`
(mcp/server/_otel.py). Without a tracer provider those spans are no-ops; this one records them.
"""
import atexit
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def start_tracing(service_name):
    """Installs the global tracer provider (service.name = `service_name`); spans are flushed at
    exit. Fails when OTEL_EXPORTER_OTLP_ENDPOINT is unset: these tests must export."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        raise SystemExit("OTEL_EXPORTER_OTLP_ENDPOINT is not set")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    return provider
