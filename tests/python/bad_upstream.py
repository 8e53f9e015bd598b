"""A deliberately misbehaving stdio "MCP server" for the gateway's fault tests.

usage: bad_upstream.py MODE

It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout, written by hand (no SDK), so each fault is
exactly the one asked for. `initialize` echoes the client's protocolVersion when it is 2025-11-25,
2025-06-18 or 2025-03-26 (otherwise it answers 2025-11-25). Requests are served one by one, except
`tools/call`, which runs in a thread of its own so that a slow call does not hold up `ping` or other
calls. The process exits 0 when stdin closes.

Modes:
  exit-now          exits with status 3 at once, before reading anything.
  hang              answers initialize and tools/list (one tool, `wait`) and never answers tools/call.
  garbage           answers initialize normally, then writes non-JSON lines to stdout before and
                    after every later response; tool `ok`.
  stderr-flood      writes 1 MiB to stderr at start and during each tools/call, then answers
                    normally; tool `ok`. A parent that does not drain stderr makes it block.
  slow-then-ok      tool `ok` answers after its argument `delay` seconds, else BAD_UPSTREAM_DELAY
                    seconds (env, default 0); tool `pid` answers the process id.
  spawn-grandchild  starts a `sleep 1000` grandchild (same process group, stdio on /dev/null),
                    writes its pid to the file named by env BAD_UPSTREAM_PIDFILE, then serves
                    normally with tool `ok`.

The tool `ok` answers {"content": [{"type": "text", "text": "ok"}]}; an unknown tool name is a
JSON-RPC error -32602; an unknown method is -32601.
"""
import json
import os
import subprocess
import sys
import threading
import time

MODES = ["exit-now", "hang", "garbage", "stderr-flood", "slow-then-ok", "spawn-grandchild"]
SUPPORTED_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]
GARBAGE_LINES = ["this line is not JSON", '{"jsonrpc": "2.0", "unterminated": ', "]]]"]
FLOOD_BYTES = 1 << 20

_stdout_lock = threading.Lock()


def send(mode, message, initialized):
    """Sends one JSON-RPC message; in garbage mode, after initialize, wraps it in non-JSON lines."""
    garbage = mode == "garbage" and initialized
    with _stdout_lock:
        if garbage:
            sys.stdout.write(GARBAGE_LINES[0] + "\n" + GARBAGE_LINES[1] + "\n")
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        if garbage:
            sys.stdout.write(GARBAGE_LINES[2] + "\n")
        sys.stdout.flush()


def flood_stderr(what):
    """Writes FLOOD_BYTES to stderr in 1 KiB lines (blocks if nobody reads the pipe)."""
    line = (f"bad_upstream stderr-flood {what} ".ljust(1023, "x") + "\n").encode()
    for _ in range(FLOOD_BYTES // len(line)):
        sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()


def tool(name, description):
    return {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": {}},
    }


def tools_for(mode):
    if mode == "hang":
        return [tool("wait", "Never answers.")]
    if mode == "slow-then-ok":
        ok = tool("ok", "Answers ok, after `delay` seconds.")
        ok["inputSchema"]["properties"]["delay"] = {"type": "number"}
        return [ok, tool("pid", "Answers this process's id (which process serves a session).")]
    return [tool("ok", "Answers ok.")]


def result(req_id, value):
    return {"jsonrpc": "2.0", "id": req_id, "result": value}


def error(req_id, code, message):
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def call_tool(mode, req_id, params, state):
    """Runs one tools/call (in its own thread)."""
    name = (params or {}).get("name")
    if name not in [t["name"] for t in tools_for(mode)]:
        send(mode, error(req_id, -32602, f"unknown tool: {name}"), state["initialized"])
        return
    if mode == "hang":
        return  # never answered
    if mode == "stderr-flood":
        flood_stderr(f"call {req_id}")
    if name == "pid":
        reply = {"content": [{"type": "text", "text": str(os.getpid())}], "isError": False}
        send(mode, result(req_id, reply), state["initialized"])
        return
    if mode == "slow-then-ok":
        delay = (params.get("arguments") or {}).get("delay")
        time.sleep(float(delay if delay is not None else os.environ.get("BAD_UPSTREAM_DELAY", "0")))
    reply = {"content": [{"type": "text", "text": "ok"}], "isError": False}
    send(mode, result(req_id, reply), state["initialized"])


def handle(mode, msg, state):
    """Handles one incoming message (request or notification)."""
    method = msg.get("method")
    req_id = msg.get("id")
    if method is None:
        return  # a response to nothing we asked: ignore
    if req_id is None:
        if method == "notifications/cancelled":
            # Said on stderr, so a test can see the cancellation reached this process.
            cancelled = (msg.get("params") or {}).get("requestId")
            sys.stderr.write(f"bad_upstream: cancelled request {cancelled}\n")
            sys.stderr.flush()
        return  # other notifications (initialized, ...): nothing to do
    if method == "initialize":
        asked = (msg.get("params") or {}).get("protocolVersion")
        version = asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0]
        send(mode, result(req_id, {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": f"bad-upstream-{mode}", "version": "0.1.0"},
        }), False)
        state["initialized"] = True
    elif method == "ping":
        send(mode, result(req_id, {}), state["initialized"])
    elif method == "tools/list":
        send(mode, result(req_id, {"tools": tools_for(mode)}), state["initialized"])
    elif method == "tools/call":
        threading.Thread(
            target=call_tool, args=(mode, req_id, msg.get("params"), state), daemon=True
        ).start()
    else:
        send(mode, error(req_id, -32601, f"method not found: {method}"), state["initialized"])


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        sys.exit(f"usage: bad_upstream.py MODE  (MODE: {', '.join(MODES)})")
    mode = sys.argv[1]
    if mode == "exit-now":
        sys.exit(3)
    if mode == "stderr-flood":
        flood_stderr("start")
    if mode == "spawn-grandchild":
        pidfile = os.environ.get("BAD_UPSTREAM_PIDFILE")
        if not pidfile:
            sys.exit("spawn-grandchild needs env BAD_UPSTREAM_PIDFILE")
        child = subprocess.Popen(
            ["sleep", "1000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        tmp = pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{child.pid}\n")
        os.replace(tmp, pidfile)  # readers never see a half-written file
    state = {"initialized": False}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            send(mode, error(None, -32700, "parse error"), state["initialized"])
            continue
        if isinstance(msg, dict):
            handle(mode, msg, state)
        else:
            send(mode, error(None, -32600, "invalid request (batches are not supported)"),
                 state["initialized"])


if __name__ == "__main__":
    main()
