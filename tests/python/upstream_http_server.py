"""A small MCP server over Streamable HTTP, built with the official Python SDK (`mcp` 2.3.0,
MCPServer), to sit behind the gateway as an HTTP upstream.

usage: upstream_http_server.py PORT [--json-response] [--stateless]

Listens on 127.0.0.1:PORT (0 picks a free port) at /mcp and prints
`listening on http://127.0.0.1:PORT/mcp` (the real port) on stdout once it accepts connections.
Logs go to stderr. --json-response answers POSTs with application/json instead of an SSE stream;
--stateless serves without sessions. With --json-response a call's progress notifications are
dropped (there is no stream to carry them).

Tools:
  add(a: int, b: int)    structured output {"sum": a + b} (outputSchema listed), text is its JSON
  echo(message: str)     text "py:" + message (the name clashes with server-everything's `echo`
                         on purpose: a gateway with both upstreams must keep them apart)
  fail()                 a tool failure: isError true, text
                         "Error executing tool fail: this tool always fails" (the SDK's prefix)
  slow(seconds: float)   sleeps in ceil(seconds / 0.1) equal steps, reporting progress i of steps
                         after each when the call carries a progress token, then returns text
                         "slept SECONDS"; cancellable
Prompt:   greet(name)    one user message "Hello, NAME!"
Resource: py://info      application/json {"server": "upstream_http_server", "tools": [...]}
"""
import asyncio
import json
import math
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

TOOLS = ["add", "echo", "fail", "slow"]

mcp = MCPServer("upstream_http_server", version="1.0.0", log_level="WARNING")


class Sum(BaseModel):
    sum: int


@mcp.tool(description="Adds two integers.")
def add(a: int, b: int) -> Sum:
    return Sum(sum=a + b)


@mcp.tool(description="Echoes the message with a py: prefix.", structured_output=False)
def echo(message: str) -> str:
    return "py:" + message


@mcp.tool(description="Always fails (isError result).", structured_output=False)
def fail() -> str:
    raise ToolError("this tool always fails")


@mcp.tool(description="Sleeps for the given seconds, reporting progress.", structured_output=False)
async def slow(seconds: float, ctx: Context) -> str:
    steps = max(1, math.ceil(seconds / 0.1))
    for i in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await ctx.report_progress(i, steps)  # sent only when the call carries a progress token
    return f"slept {seconds:g}"


@mcp.prompt(description="Greets someone.")
def greet(name: str) -> str:
    return f"Hello, {name}!"


@mcp.resource("py://info", name="info", description="What this server is.", mime_type="application/json")
def info() -> str:
    return json.dumps({"server": "upstream_http_server", "tools": TOOLS})


async def serve(port, json_response, stateless):
    # Bind first: a clear error when the port is taken, and the real port when it is 0.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sys.exit(f"upstream_http_server: cannot listen on 127.0.0.1:{port}: {e.strerror}")
    real_port = sock.getsockname()[1]
    app = mcp.streamable_http_app(json_response=json_response, stateless_http=stateless, host="127.0.0.1")
    # A SIGTERM must not wait for a slow call still running (uvicorn waits for them by default).
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            sys.exit("upstream_http_server: the HTTP server stopped while starting")
        await asyncio.sleep(0.01)
    print(f"listening on http://127.0.0.1:{real_port}/mcp", flush=True)
    await task


def main():
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("--")}
    rest = [a for a in args if not a.startswith("--")]
    unknown = flags - {"--json-response", "--stateless"}
    if len(rest) != 1 or not rest[0].isdigit() or unknown:
        sys.exit(__doc__)
    asyncio.run(serve(int(rest[0]), "--json-response" in flags, "--stateless" in flags))


if __name__ == "__main__":
    main()
