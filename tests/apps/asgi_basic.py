"""The main ASGI 3 test application for the luath test suite (no framework).

Routes mirror tests/apps/basic.py where the HTTP behaviour is the same (``/``, ``/query``,
``/echo``, ``/noread``, ``/cl``, ``/gen``, ``/big``, ``/upload``, ``/status/N``, ``/marker``,
``/__stats``) so that the protocol tests written for WSGI can be re-run unchanged against the
ASGI path; the ASGI-specific routes (``/scope``, ``/disconnect``, ``/upload-log``, ``/pathsend``, ``/trailers``,
``/misuse/...``, ...) are below.

Observable state lives in module-level dicts and is read through ``/__stats?tag=``; run the server
with one worker.  Everything runs on the worker's event loop, so no locking is needed.

Lifespan: startup puts {"from_startup": "yes", "startup_pid": pid, "shared": {}} in
scope["state"]; when $LUATH_ASGI_MARKER names a file, "startup <pid>" and "shutdown <pid>" lines
are appended to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
import traceback
from urllib.parse import parse_qs

CHUNK = 64 * 1024

TOTAL_CALLS = 0               # every http call except /__stats
CALLS: dict[str, int] = {}    # per ?tag=
FLAGS: dict[str, object] = {} # misc results, per ?tag=
LIFESPAN_EVENTS: list[str] = []


def pattern_block() -> bytes:
    return bytes(range(256)) * (CHUNK // 256)


_BLOCK = pattern_block()


def _qs(scope) -> dict[str, str]:
    q = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in q.items()}


def _marker(line: str) -> None:
    path = os.environ.get("LUATH_ASGI_MARKER")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


async def _send_text(send, body, status=200, extra=(), ctype=b"text/plain"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send, obj, status=200):
    await _send_text(send, json.dumps(obj, sort_keys=True), status=status, ctype=b"application/json")


async def _read_body(receive) -> tuple[bytes, list]:
    """Read the whole request body; returns (body, [[len, more_body], ...] per message)."""
    parts, msgs = [], []
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            msgs.append(["disconnect"])
            break
        assert m["type"] == "http.request", m
        body = m.get("body", b"")
        more = m.get("more_body", False)
        msgs.append([len(body), more])
        parts.append(body)
        if not more:
            break
    return b"".join(parts), msgs


def _jsonable(v):
    if isinstance(v, bytes):
        return {"__bytes__": v.decode("latin-1")}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return "<%s>" % type(v).__name__


async def lifespan(scope, receive, send):
    while True:
        m = await receive()
        LIFESPAN_EVENTS.append(m["type"])
        if m["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["from_startup"] = "yes"
                scope["state"]["startup_pid"] = os.getpid()
                scope["state"]["shared"] = {}
            _marker(f"startup {os.getpid()}")
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            _marker(f"shutdown {os.getpid()}")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    global TOTAL_CALLS
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    method = scope["method"]
    q = _qs(scope)
    tag = q.get("tag", "")

    if path == "/__stats":
        return await _send_json(send, {
            "total": TOTAL_CALLS,
            "calls": CALLS.get(tag, 0),
            "flag": _jsonable(FLAGS.get(tag)),
            "pid": os.getpid(),
            "lifespan_events": LIFESPAN_EVENTS,
        })

    TOTAL_CALLS += 1
    if tag:
        CALLS[tag] = CALLS.get(tag, 0) + 1

    # ------------------------------------------------------------------ basics (as tests/apps/basic.py)
    if path == "/":
        return await _send_text(send, b"hello")

    if path == "/pid":
        return await _send_text(send, str(os.getpid()))

    if path == "/marker":
        return await _send_text(send, b"MARKER-REACHED")

    if path == "/echo":
        body, msgs = await _read_body(receive)
        extra = [(b"x-method", method.encode()), (b"x-query", scope["query_string"]),
                 (b"x-body-length", str(len(body)).encode()), (b"x-messages", json.dumps(msgs).encode())]
        return await _send_text(send, body, extra=extra, ctype=b"application/octet-stream")

    if path == "/body-messages":
        body, msgs = await _read_body(receive)
        return await _send_json(send, {"messages": msgs, "body": body.decode("latin-1")})

    if path == "/noread":
        return await _send_text(send, b"noread")

    if path == "/cl":
        body = b"0123456789" * int(q.get("n", "10"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                                (b"x-route", b"cl")]})
        # in two body messages, to show Content-Length framing across messages
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:], "more_body": False})
        return

    if path == "/gen":
        # Streaming without Content-Length (more_body), like the WSGI generator route.
        n = int(q.get("n", "5"))
        size = int(q.get("size", "10"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"x-route", b"gen")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": (b"%d" % (i % 10)) * size, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return

    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        if code in (204, 304):
            await send({"type": "http.response.start", "status": code, "headers": [(b"x-route", b"status")]})
            if q.get("gen"):
                await send({"type": "http.response.body", "body": b"", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        return await _send_text(send, "status %d" % code, status=code)

    if path == "/custom-headers":
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/plain"), (b"content-length", b"2"),
            (b"date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
            (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/"),
            (b"X-Mixed-Case", b"Value With Spaces")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return

    if path == "/query":
        body = b"q=" + scope["query_string"]
        if method == "POST":
            body += b";body=" + (await _read_body(receive))[0]
        return await _send_text(send, body)

    if path == "/big":
        size = int(q.get("size", str(64 * 1024 * 1024)))
        headers = [(b"content-type", b"application/octet-stream")]
        if q.get("cl"):
            headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        left = size
        sent = 0
        while left > 0:
            n = min(left, CHUNK)
            left -= n
            await send({"type": "http.response.body", "body": _BLOCK if n == CHUNK else _BLOCK[:n],
                        "more_body": left > 0})
            sent += n
            if tag:
                FLAGS[tag] = sent
        if size == 0:
            await send({"type": "http.response.body", "body": b""})
        return

    if path == "/upload":
        h = hashlib.sha256()
        total = 0
        biggest = 0
        messages = 0
        while True:
            m = await receive()
            if m["type"] != "http.request":
                return  # client went away
            piece = m.get("body", b"")
            messages += 1
            biggest = max(biggest, len(piece))
            total += len(piece)
            h.update(piece)
            if not m.get("more_body", False):
                break
        return await _send_json(send, {"bytes": total, "sha256": h.hexdigest(), "largest_read": biggest,
                                       "messages": messages})

    if path == "/upload-log":
        # The body message by message, paced: ?first=S before the first receive(), ?each=S before
        # each later one. Reports {"bytes", "sha256", "messages": [[len, more_body], ...]}; with a
        # tag, FLAGS[tag] follows along ({"state": "reading"|"done"|"disconnected", "bytes", "n"}).
        h = hashlib.sha256()
        total, msgs = 0, []
        first, each = float(q.get("first", 0)), float(q.get("each", 0))
        if tag:
            FLAGS[tag] = {"state": "waiting", "bytes": 0, "n": 0}
        if first:
            await asyncio.sleep(first)
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                if tag:
                    FLAGS[tag] = {"state": "disconnected", "bytes": total, "n": len(msgs), "at": time.time()}
                return
            piece = m.get("body", b"")
            more = m.get("more_body", False)
            msgs.append([len(piece), more])
            total += len(piece)
            h.update(piece)
            if tag:
                FLAGS[tag] = {"state": "reading" if more else "done", "bytes": total, "n": len(msgs)}
            if not more:
                break
            if each:
                await asyncio.sleep(each)
        return await _send_json(send, {"bytes": total, "sha256": h.hexdigest(), "messages": msgs})

    # ------------------------------------------------------------------ scope
    if path.startswith("/scope") or path.startswith("/caf"):
        out = _jsonable({k: v for k, v in scope.items() if k not in ("state", "extensions")})
        out["__types__"] = {k: type(v).__name__ for k, v in scope.items()}
        out["__header_types__"] = sorted({f"{type(n).__name__}/{type(v).__name__}/{type(pair).__name__}"
                                          for pair in scope["headers"] for n, v in [pair]})
        out["__extensions__"] = _jsonable(scope.get("extensions"))
        out["__has_state__"] = "state" in scope
        out["__state_keys__"] = sorted(scope["state"]) if isinstance(scope.get("state"), dict) else None
        if method in ("POST", "PUT"):
            out["__body__"] = (await _read_body(receive))[0].decode("latin-1")
        return await _send_json(send, out)

    if path == "/state":
        st = scope.get("state")
        if not isinstance(st, dict):
            return await _send_json(send, {"state": None, "type": type(st).__name__})
        before = sorted(st)
        view = {k: v for k, v in st.items() if k != "shared"}
        if q.get("set"):
            st["leak_" + q["set"]] = True          # top-level: must not leak (shallow copy)
            st["shared"][q["set"]] = True          # nested: shared by design of a shallow copy
        return await _send_json(send, {"keys": before, "state": _jsonable(view),
                                       "shared": sorted(st.get("shared", {}))})

    if path == "/loop":
        loop = asyncio.get_running_loop()
        return await _send_json(send, {"loop": type(loop).__module__ + "." + type(loop).__name__,
                                       "policy": type(asyncio.get_event_loop_policy()).__module__})

    # ------------------------------------------------------------------ receive / disconnect
    if path == "/disconnect":
        # Send nothing; keep awaiting receive() until http.disconnect, report when it arrived.
        FLAGS[tag] = {"state": "waiting"}
        t0 = time.time()
        msgs = []
        while time.time() - t0 < 60:
            m = await receive()
            msgs.append(m["type"])
            if m["type"] == "http.disconnect":
                FLAGS[tag] = {"state": "disconnected", "at": time.time(), "msgs": msgs}
                return
        FLAGS[tag] = {"state": "timeout", "msgs": msgs}
        return

    if path == "/receive-after-response":
        await _send_text(send, b"done")
        t0 = time.monotonic()
        try:
            m = await asyncio.wait_for(receive(), 10)
            FLAGS[tag] = {"type": m["type"], "elapsed": time.monotonic() - t0}
        except asyncio.TimeoutError:
            FLAGS[tag] = {"type": "timeout", "elapsed": time.monotonic() - t0}
        return

    if path == "/stream-forever":
        # Stream 64 KiB pieces until send() fails (client gone) or 3000 pieces; record the outcome.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        FLAGS[tag] = {"state": "streaming"}
        n = 0
        try:
            for n in range(3000):
                await send({"type": "http.response.body", "body": _BLOCK, "more_body": True})
                await asyncio.sleep(0.005)
            FLAGS[tag] = {"state": "finished", "n": n}
            await send({"type": "http.response.body", "body": b""})
        except BaseException as e:  # noqa: BLE001 - reported through /__stats
            FLAGS[tag] = {"state": "send-raised", "exc": type(e).__name__,
                          "mro": [c.__name__ for c in type(e).__mro__], "n": n}
            raise
        return

    if path == "/expect-late":
        # Sleep first, then read the body: 100 Continue must only go out at the receive() call.
        await asyncio.sleep(float(q.get("t", "0.8")))
        FLAGS[tag] = {"receive_at": time.time()}
        body, _ = await _read_body(receive)
        return await _send_text(send, body)

    # ------------------------------------------------------------------ concurrency
    if path == "/sleep":
        await asyncio.sleep(float(q.get("t", "0.1")))
        return await _send_text(send, b"slept " + q.get("i", "").encode())

    if path == "/proxy":
        import httpx
        async with httpx.AsyncClient(timeout=15) as client:
            r = await client.get(q["url"])
        return await _send_json(send, {"status": r.status_code, "body": r.text})

    # ------------------------------------------------------------------ send extensions
    if path == "/pathsend":
        fname = q["path"]
        headers = [(b"content-type", b"application/octet-stream")]
        if q.get("cl"):
            headers.append((b"content-length", str(os.path.getsize(fname)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": fname})
        return

    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum, x-count")]})
        h = hashlib.sha256()
        n = int(q.get("n", "3"))
        for i in range(n):
            piece = b"part-%d;" % i
            h.update(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "more_trailers": False,
                    "headers": [(b"x-checksum", h.hexdigest().encode()), (b"x-count", str(n).encode())]})
        return

    # ------------------------------------------------------------------ failures
    if path == "/error/before":
        raise RuntimeError("luath-test-boom-before " + tag)

    if path == "/error/midstream":
        headers = [(b"content-type", b"text/plain")]
        if q.get("cl"):
            headers.append((b"content-length", b"1000"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"partial-data;", "more_body": True})
        await asyncio.sleep(0.2)
        raise RuntimeError("luath-test-boom-midstream " + tag)

    if path == "/error/nostart":
        if q.get("body"):
            # read the body, then return without responding
            await _read_body(receive)
        return

    if path == "/error/start-only":
        # start sent, no body message at all, then return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        return

    if path == "/error/bad-header":
        case = q.get("case", "")
        headers = [(b"content-type", b"text/plain")]
        evil = {
            "value-crlf": (b"x-evil", b"a\r\nX-Injected: 1"),
            "value-lf": (b"x-evil", b"a\nX-Injected: 1"),
            "value-cr": (b"x-evil", b"a\rX-Injected: 1"),
            "value-nul": (b"x-evil", b"a\x00X-Injected: 1"),
            "name-crlf": (b"x-evil\r\nX-Injected", b"1"),
            "name-cr": (b"x-evil\rX-Injected", b"1"),
            "name-nul": (b"x-evil\x00X-Injected", b"1"),
            "name-colon": (b"x-evil: X-Injected", b"1"),
            "name-space": (b"x-evil X-Injected", b"1"),
        }
        headers.append(evil[case])
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"should not be sent"})
            FLAGS[tag] = {"raised": None}
        except BaseException as e:  # noqa: BLE001
            FLAGS[tag] = {"raised": type(e).__name__}
            raise
        return

    if path.startswith("/misuse/"):
        # Wrong message order/type: record the exception send() raised, then re-raise it.
        kind = path[len("/misuse/"):]
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        steps = {
            "body-before-start": [{"type": "http.response.body", "body": b"too early"}],
            "unknown-type": [{"type": "http.response.bogus"}],
            "unknown-type-after-start": [start, {"type": "http.response.bogus"}],
            "start-twice": [start, dict(start, status=201)],
            "body-after-complete": [start, {"type": "http.response.body", "body": b"done"},
                                    {"type": "http.response.body", "body": b"again"}],
            "start-after-complete": [start, {"type": "http.response.body", "body": b"done"}, start],
            "bad-status": [{"type": "http.response.start", "status": "200", "headers": []}],
            "str-body": [start, {"type": "http.response.body", "body": "not bytes"}],
            "str-headers": [{"type": "http.response.start", "status": 200, "headers": [("x-a", "b")]}],
        }[kind]
        done = 0
        try:
            for msg in steps:
                await send(msg)
                done += 1
        except BaseException as e:  # noqa: BLE001
            FLAGS[tag] = {"raised": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                          "msg": str(e)[:200], "done": done}
            raise
        FLAGS[tag] = {"raised": None, "done": done}
        return

    return await _send_text(send, b"not found: " + path.encode("utf-8", "replace"), status=404)


# --------------------------------------------------------------------- shapes for --interface auto

def three_param_app(scope, receive, send):
    """A plain (non-async) 3-parameter callable returning the coroutine: still ASGI 3."""
    return app(scope, receive, send)


class ClassApp:
    """An instance with an async __call__."""

    async def __call__(self, scope, receive, send):
        await app(scope, receive, send)


class_app = ClassApp()


async def no_lifespan_app(scope, receive, send):
    """Raises on the lifespan scope (like many simple apps): with --lifespan auto HTTP still works."""
    if scope["type"] != "http":
        raise RuntimeError("luath-test-no-lifespan-support")
    await app(scope, receive, send)


def _debug(*a):  # pragma: no cover - handy when debugging the suite
    print(*a, file=sys.stderr)
    traceback.print_stack()
