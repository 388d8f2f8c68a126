"""The main WSGI test application for the luath test suite.

Every route is a plain PEP 3333 application (no framework) so that the tests
observe exactly what the server does.  State that tests need to observe (how
often the app was called, how often close() was called on a returned
iterable, ...) lives in module-level counters; run the server with one worker
so the counters live in a single process, and read them through ``/__stats``.

``validated_app`` is the same application wrapped in
``wsgiref.validate.validator``; the routes used by test_validator.py are kept
strictly PEP 3333 compliant (e.g. they only ever call ``wsgi.input.read`` with
a size argument, because the validator asserts exactly one argument).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

CHUNK = 64 * 1024

_lock = threading.Lock()
TOTAL_CALLS = 0               # every app call except /__stats
CALLS: dict[str, int] = {}    # per ?tag=
CLOSES: dict[str, int] = {}   # close() calls on tracked iterables, per ?tag=
ITERATED: dict[str, int] = {} # items produced by tracked iterables, per ?tag=
FILES: dict[str, object] = {} # files handed to wsgi.file_wrapper, per ?tag=
FLAGS: dict[str, object] = {} # misc results (e.g. did start_response re-raise), per ?tag=


def _bump(d: dict, key: str, n: int = 1) -> None:
    with _lock:
        d[key] = d.get(key, 0) + n


def pattern_block() -> bytes:
    """64 KiB of a deterministic byte pattern used for big transfers."""
    return bytes(range(256)) * (CHUNK // 256)


_BLOCK = pattern_block()


def _qs(environ) -> dict[str, str]:
    q = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return {k: v[-1] for k, v in q.items()}


def _text(start_response, body: bytes | str, status: str = "200 OK", extra=(), ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _json(start_response, obj, status: str = "200 OK"):
    return _text(start_response, json.dumps(obj, sort_keys=True), status=status, ctype="application/json")


def _read_all_n(inp, n: int = CHUNK) -> bytes:
    """Read the whole body using read(n) only (validator-safe)."""
    parts = []
    while True:
        piece = inp.read(n)
        if not piece:
            break
        parts.append(piece)
    return b"".join(parts)


class TrackedIterable:
    """An iterable whose close() calls are counted per tag.

    mode:
      normal      - yields ``items`` pieces then stops
      raise-first - raises on the first next() (before any body)
      raise-mid   - yields one piece then raises
      endless     - yields 64 KiB pieces with a short sleep, up to ``limit`` pieces
                    (bounded so it ends by itself), for client-disconnect tests
    """

    def __init__(self, tag: str, mode: str, items: int = 3, limit: int = 3000):
        self.tag = tag
        self.mode = mode
        self.items = items
        self.limit = limit

    def __iter__(self):
        if self.mode == "raise-first":
            raise RuntimeError("tracked-raise-first " + self.tag)
        if self.mode == "raise-mid":
            yield b"first piece;"
            time.sleep(0.2)
            raise RuntimeError("tracked-raise-mid " + self.tag)
        if self.mode == "endless":
            for _ in range(self.limit):
                _bump(ITERATED, self.tag)
                yield _BLOCK
                time.sleep(0.01)
            return
        for i in range(self.items):
            _bump(ITERATED, self.tag)
            yield b"piece-%d;" % i

    def close(self):
        _bump(CLOSES, self.tag)


def app(environ, start_response):
    global TOTAL_CALLS
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "")
    q = _qs(environ)
    tag = q.get("tag", "")

    if path == "/__stats":
        with _lock:
            stats = {
                "total": TOTAL_CALLS,
                "calls": CALLS.get(tag, 0),
                "closes": CLOSES.get(tag, 0),
                "iterated": ITERATED.get(tag, 0),
                "flag": FLAGS.get(tag),
                "file_closed": (getattr(FILES[tag], "closed", None) if tag in FILES else None),
                "pid": os.getpid(),
            }
        return _json(start_response, stats)

    with _lock:
        TOTAL_CALLS += 1
    if tag:
        _bump(CALLS, tag)

    # ------------------------------------------------------------------ basics
    if path == "/":
        return _text(start_response, b"hello")

    if path == "/pid":
        return _text(start_response, str(os.getpid()))

    if path == "/marker":
        # Used by the malformed-request tests: it must never be reached.
        return _text(start_response, b"MARKER-REACHED")

    if path == "/echo":
        # Echo the request body (read with read(n), validator-safe) and some request facts.
        body = _read_all_n(environ["wsgi.input"])
        extra = [("X-Method", method), ("X-Query", environ.get("QUERY_STRING", "")),
                 ("X-Body-Length", str(len(body)))]
        return _text(start_response, body, extra=extra, ctype="application/octet-stream")

    if path == "/noread":
        # Never touches wsgi.input (100-continue must not be sent).
        return _text(start_response, b"noread")

    if path == "/cl":
        # The app supplies its own Content-Length.
        body = b"0123456789" * int(q.get("n", "10"))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                  ("X-Route", "cl")])
        return [body]

    if path == "/list":
        # Several items, no Content-Length: the server may compute one.
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Route", "list")])
        return [b"alpha-", b"beta-", b"", b"gamma"]

    if path == "/one":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Route", "one")])
        return [b"single item body"]

    if path == "/gen":
        # A generator without Content-Length.
        n = int(q.get("n", "5"))
        size = int(q.get("size", "10"))
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Route", "gen")])

        def gen():
            for i in range(n):
                yield (b"%d" % (i % 10)) * size
        return gen()

    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        reasons = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
                   404: "Not Found", 418: "I'm a teapot", 500: "Internal Server Error"}
        status = "%d %s" % (code, reasons.get(code, "Whatever"))
        if code in (204, 304):
            start_response(status, [("X-Route", "status")])
            if q.get("gen"):
                def empty():
                    if False:
                        yield b""
                return empty()
            return []
        return _text(start_response, "status %d" % code, status=status)

    if path == "/custom-headers":
        # The app supplies its own Date and two Set-Cookie headers.
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                                  ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
                                  ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                                  ("X-Mixed-Case", "Value With Spaces")])
        return [b"ok"]

    if path == "/headers":
        # Return the HTTP_* part of the environ as JSON.
        h = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        return _json(start_response, h)

    if path == "/query":
        # Small per-request-unique answer for pipelining/concurrency tests.
        body = ("q=" + environ.get("QUERY_STRING", "")).encode()
        if method == "POST":
            body += b";body=" + _read_all_n(environ["wsgi.input"])
        return _text(start_response, body)

    if path == "/big":
        size = int(q.get("size", str(64 * 1024 * 1024)))
        headers = [("Content-Type", "application/octet-stream")]
        if q.get("cl"):
            headers.append(("Content-Length", str(size)))
        start_response("200 OK", headers)

        def big():
            left = size
            while left > 0:
                n = min(left, CHUNK)
                yield _BLOCK if n == CHUNK else _BLOCK[:n]
                left -= n
        return big()

    if path == "/upload":
        # Read the body in 64 KiB pieces; answer with byte count and sha256.
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        total = 0
        biggest = 0
        while True:
            piece = inp.read(CHUNK)
            if not piece:
                break
            biggest = max(biggest, len(piece))
            total += len(piece)
            h.update(piece)
        return _json(start_response, {"bytes": total, "sha256": h.hexdigest(), "largest_read": biggest})

    # ------------------------------------------------------------------ environ
    if path.startswith("/environ"):
        out = {}
        for k, v in environ.items():
            if isinstance(v, (str, bool, int)) or v is None:
                out[k] = v
            elif isinstance(v, tuple):
                out[k] = list(v)
            else:
                out[k] = "<%s>" % type(v).__name__
        for name in ("wsgi.input", "wsgi.errors"):
            obj = environ.get(name)
            out[name + ".methods"] = sorted(m for m in ("read", "readline", "readlines", "__iter__",
                                                         "write", "writelines", "flush")
                                            if hasattr(obj, m))
        out["wsgi.file_wrapper.callable"] = callable(environ.get("wsgi.file_wrapper"))
        if q.get("errors"):
            err = environ["wsgi.errors"]
            err.write(q["errors"] + "\n")
            err.writelines(["second-line-" + q["errors"] + "\n"])
            err.flush()
        if method in ("POST", "PUT"):
            out["__body__"] = _read_all_n(environ["wsgi.input"]).decode("latin-1")
        return _json(start_response, out)

    if path == "/input":
        # Exercise the wsgi.input reading API; answers a JSON list of latin-1 pieces.
        inp = environ["wsgi.input"]
        mode = q.get("mode", "read")
        n = int(q.get("n", "4"))
        pieces: list[bytes] = []
        if mode == "read":
            pieces.append(inp.read())
        elif mode == "readn":
            while True:
                p = inp.read(n)
                if not p:
                    break
                pieces.append(p)
        elif mode == "readline":
            while True:
                p = inp.readline()
                if not p:
                    break
                pieces.append(p)
        elif mode == "readline_n":
            while True:
                p = inp.readline(n)
                if not p:
                    break
                pieces.append(p)
        elif mode == "readlines":
            pieces.extend(inp.readlines())
        elif mode == "iter":
            pieces.extend(iter(inp))
        elif mode == "mixed":
            pieces.append(inp.readline())
            pieces.append(inp.read(3))
            pieces.append(inp.readline(2))
            pieces.extend(inp.readlines())
        else:
            raise ValueError(mode)
        # Reading past the end must keep returning b"".
        after = [inp.read(10), inp.readline(), inp.read(1)]
        if type(inp).__module__ != "wsgiref.validate":  # the validator allows read(n) only
            after.append(inp.read())
        return _json(start_response, {
            "pieces": [p.decode("latin-1") for p in pieces],
            "types": sorted({type(p).__name__ for p in pieces}),
            "after": [a.decode("latin-1") for a in after],
        })

    # ------------------------------------------------------------------ file_wrapper
    if path == "/file":
        size = int(q.get("size", "100000"))
        fd, fname = tempfile.mkstemp(prefix="luath-test-")
        with os.fdopen(fd, "wb") as f:
            left = size
            while left > 0:
                n = min(left, CHUNK)
                f.write(_BLOCK[:n])
                left -= n
        f = open(fname, "rb")
        os.unlink(fname)
        if tag:
            FILES[tag] = f
        headers = [("Content-Type", "application/octet-stream")]
        if q.get("cl"):
            headers.append(("Content-Length", str(size)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 8192)

    # ------------------------------------------------------------------ start_response / write()
    if path == "/write":
        body_cl = q.get("cl")
        headers = [("Content-Type", "text/plain")]
        if body_cl:
            headers.append(("Content-Length", str(len(b"first-second-third-fourth"))))
        write = start_response("200 OK", headers)
        write(b"first-")
        write(b"second-")
        if q.get("gen"):
            def rest():
                yield b"third-"
                yield b"fourth"
            return rest()
        return [b"third-", b"fourth"]

    if path == "/sr/second-call":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            start_response("201 Created", [("Content-Type", "text/plain")])
            raised = "no"
        except BaseException as e:  # noqa: BLE001 - we report what happened
            raised = type(e).__name__
        return [("raised=" + raised).encode()]

    if path == "/sr/replace":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise ValueError("replace me")
        except ValueError:
            start_response("503 Service Unavailable",
                           [("Content-Type", "text/plain"), ("X-Second", "1")], sys.exc_info())
        return [b"replaced"]

    if path == "/sr/after-sent":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            yield b"headers-sent;"
            time.sleep(0.2)
            reraised = "no"
            try:
                raise ValueError("after-sent " + tag)
            except ValueError as exc:
                try:
                    start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                                   sys.exc_info())
                except ValueError as again:
                    reraised = "yes" if again is exc else "other-valueerror"
                except BaseException as other:  # noqa: BLE001
                    reraised = "wrong:" + type(other).__name__
            FLAGS[tag] = reraised
            yield ("reraised=" + reraised).encode()
        return gen()

    # ------------------------------------------------------------------ close() tracking
    if path == "/close":
        mode = q.get("mode", "normal")
        headers = [("Content-Type", "text/plain")]
        if q.get("cl"):
            headers.append(("Content-Length", q["cl"]))
        start_response("200 OK", headers)
        return TrackedIterable(tag, mode, items=int(q.get("items", "3")), limit=int(q.get("limit", "3000")))

    # ------------------------------------------------------------------ failures
    if path == "/error/before":
        raise RuntimeError("luath-test-boom-before " + tag)

    if path == "/error/midgen":
        headers = [("Content-Type", "text/plain")]
        if q.get("cl"):
            headers.append(("Content-Length", "1000"))
        start_response("200 OK", headers)

        def gen():
            yield b"partial-data;"
            time.sleep(0.2)
            raise RuntimeError("luath-test-boom-midgen " + tag)
        return gen()

    if path == "/error/first-next":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            raise RuntimeError("luath-test-boom-first-next " + tag)
            yield b"never"  # pragma: no cover
        return gen()

    if path == "/error/nostart":
        if q.get("empty"):
            return []
        return [b"returned without start_response"]

    if path == "/error/bad-header":
        case = q.get("case", "")
        status = "200 OK"
        headers = [("Content-Type", "text/plain")]
        if case == "value-crlf":
            headers.append(("X-Evil", "a\r\nX-Injected: 1"))
        elif case == "value-lf":
            headers.append(("X-Evil", "a\nX-Injected: 1"))
        elif case == "value-cr":
            headers.append(("X-Evil", "a\rX-Injected: 1"))
        elif case == "value-nul":
            headers.append(("X-Evil", "a\x00X-Injected: 1"))
        elif case == "name-crlf":
            headers.append(("X-Evil\r\nX-Injected", "1"))
        elif case == "name-cr":
            headers.append(("X-Evil\rX-Injected", "1"))
        elif case == "name-nul":
            headers.append(("X-Evil\x00X-Injected", "1"))
        elif case == "status-crlf":
            status = "200 OK\r\nX-Injected: 1"
        elif case == "status-lf":
            status = "200 OK\nX-Injected: 1"
        else:
            raise ValueError(case)
        start_response(status, headers)
        return [b"should not be sent"]

    return _text(start_response, b"not found: " + path.encode("latin-1", "replace"),
                 status="404 Not Found")


validated_app = validator(app)
