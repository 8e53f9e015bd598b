"""Connects to vitals-server with the official MCP Python SDK, over Streamable HTTP (a URL) or
stdio (a command), lists the tools, calls each operator tool and checks the structured results.
Prints one JSON line with what it saw; exits non-zero on any mismatch.

usage: operator_client.py [--mode M] http URL | operator_client.py [--mode M] stdio SERVER_BINARY [ARGS...]

--mode is the SDK's connection mode: legacy (default; the 2025-11-25 initialize handshake), auto
(server/discover first) or 2026-07-28. vitals-server is dual-era: auto and 2026-07-28 must
negotiate 2026-07-28, legacy 2025-11-25.
"""
import asyncio
import json
import sys

from mcp import Client, MCPError, StdioServerParameters

OPERATOR_TOOLS = ["server_health", "server_metrics", "rate_limit_status", "circuit_breaker_status"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def run(target, mode):
    seen = {}
    async with Client(target, mode=mode) as client:
        want = "2025-11-25" if mode == "legacy" else "2026-07-28"
        check(client.protocol_version == want,
              f"mode {mode} negotiated {client.protocol_version}, want {want}")
        seen["protocol_version"] = client.protocol_version
        listed = await client.list_tools()
        names = [t.name for t in listed.tools]
        seen["tools"] = names
        for name in OPERATOR_TOOLS:
            check(name in names, f"{name} not listed: {names}")
            tool = next(t for t in listed.tools if t.name == name)
            check(tool.output_schema is not None, f"{name} has no outputSchema")
        check(not any(n.startswith("test_") for n in names), f"fixtures listed by default: {names}")

        r = await client.call_tool("server_health", {})
        check(not r.is_error, f"server_health failed: {r}")
        s = r.structured_content
        # A fresh server with nothing failing is healthy, and so is each of its components.
        check(s["status"] == "healthy", f"a fresh server is not healthy: {s}")
        check(all(c["status"] == "healthy" for c in s["components"]), f"a fresh component is not healthy: {s}")
        check(any(c["name"] == "server" for c in s["components"]), f"no server component {s}")
        check(len(r.content) >= 1 and json.loads(r.content[0].text) == s, "text differs from structured")

        r = await client.call_tool("server_metrics", {"format": "openmetrics"})
        check(not r.is_error, f"server_metrics failed: {r}")
        s = r.structured_content
        check(s["format"] == "openmetrics", s["format"])
        check(s["text"].endswith("# EOF\n"), "openmetrics text does not end with # EOF")
        check("mcp_tool_calls" in s["text"], "no mcp_tool_calls in exposition")
        check(s["series_count"] > 0, "no series")

        r = await client.call_tool("rate_limit_status", {})
        check(not r.is_error, f"rate_limit_status failed: {r}")
        s = r.structured_content
        check(s["tool"]["tokens"] > 0 and s["tool_client"]["period_seconds"] > 0, f"limits {s}")
        q = s["tool_quota"]
        check(q["name"] == "daily_tool_calls" and q["limit"] > 0 and q["used"] >= 1, f"quota {s}")

        r = await client.call_tool("circuit_breaker_status", {})
        check(not r.is_error, f"circuit_breaker_status failed: {r}")
        s = r.structured_content
        ups = {b["upstream"]: b for b in s["breakers"]}
        check("server_health" in ups and ups["server_health"]["state"] == "closed", f"breakers {s}")

        try:
            await client.call_tool("server_metrics", {"format": "xml"})
            raise AssertionError("bad format accepted")
        except MCPError as e:
            check(e.code == -32602, f"bad params gave {e.code}, want -32602")
        seen["ok"] = True
    return seen


def main():
    args = sys.argv[1:]
    conn = "legacy"
    if args[:1] == ["--mode"]:
        conn = args[1]
        args = args[2:]
        if conn not in ("legacy", "auto", "2026-07-28"):
            raise SystemExit(f"--mode legacy, auto or 2026-07-28, not {conn!r}")
    transport = args[0]
    if transport == "http":
        target = args[1]
    elif transport == "stdio":
        target = StdioServerParameters(command=args[1], args=args[2:])
    else:
        raise SystemExit(f"unknown transport {transport}")
    seen = asyncio.run(asyncio.wait_for(run(target, conn), timeout=60))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
