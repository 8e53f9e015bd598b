"""One MCP session through several vitals-server replicas, with the official MCP Python SDK: a
transport under the SDK's HTTP client sends each request to the next replica in turn, as a
round-robin load balancer would. Prints one JSON line with every request's replica and session
id; exits non-zero on any failure.

usage: replicas_client.py TOKEN URL [URL...]   (URLs of /mcp on each replica, same path)
"""
import asyncio
import json
import sys
from urllib.parse import urlsplit

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends request n to replica n mod len(ports) (same host and path, another port)."""

    def __init__(self, ports):
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = ports
        self.n = 0
        self.seen = []

    async def handle_async_request(self, request):
        port = self.ports[self.n % len(self.ports)]
        self.n += 1
        request.url = request.url.copy_with(port=port)
        response = await self.inner.handle_async_request(request)
        self.seen.append({"method": request.method, "port": port, "status": response.status_code,
                          "session": request.headers.get("mcp-session-id")})
        return response

    async def aclose(self):
        await self.inner.aclose()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def run(token, urls):
    ports = [urlsplit(u).port for u in urls]
    rr = RoundRobin(ports)
    http = httpx2.AsyncClient(transport=rr, headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx2.Timeout(30.0, read=60.0))
    calls = 0
    async with http:
        async with Client(streamable_http_client(urls[0], http_client=http), mode="legacy") as client:
            check(client.protocol_version == "2025-11-25", client.protocol_version)
            listed = await client.list_tools()
            check("server_health" in [t.name for t in listed.tools], "server_health not listed")
            for _ in range(2 * len(ports)):
                r = await client.call_tool("server_health", {})
                check(not r.is_error, f"server_health failed: {r}")
                calls += 1
    return {"ok": True, "calls": calls, "requests": rr.seen}


def main():
    token, urls = sys.argv[1], sys.argv[2:]
    print(json.dumps(asyncio.run(run(token, urls))))


if __name__ == "__main__":
    main()
