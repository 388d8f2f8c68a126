"""Applications for tests/test_tls.py: a WSGI one (``app``) and an ASGI one (``asgi_app``).

Routes (both):
    /            "Hello, TLS!"
    /pid         the worker's pid
    /env         (WSGI) JSON: wsgi.url_scheme, SERVER_PORT, HTTPS-related keys, pid
    /scope       (ASGI) JSON: scheme, server, the "tls" extension (bytes as text), pid
    /big?n=N     N bytes of a fixed 256-byte pattern, with Content-Length
    /upload      the body read fully; JSON {"length": N, "sha256": hex}
    /sleep?s=S   (WSGI) blocks the worker S seconds, then answers its pid
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

from tests.apps.lifespan import accept_lifespan

PATTERN = bytes(range(256))
BLOCK = PATTERN * 256  # 64 KiB


def pattern_bytes(n: int) -> bytes:
    """The body /big?n=N sends."""
    return (PATTERN * (n // 256 + 1))[:n]


def _qs(raw: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _big(n: int):
    full, rest = divmod(n, len(BLOCK))
    for _ in range(full):
        yield BLOCK
    if rest:
        yield BLOCK[:rest]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = _qs(environ.get("QUERY_STRING", ""))
    if path == "/big":
        n = int(q.get("n", "0"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return _big(n)
    if path == "/upload":
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        total = 0
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            total += len(piece)
            h.update(piece)
        body = json.dumps({"length": total, "sha256": h.hexdigest()}).encode()
    elif path == "/env":
        body = json.dumps({
            "url_scheme": environ.get("wsgi.url_scheme"),
            "server_port": environ.get("SERVER_PORT"),
            "https": environ.get("HTTPS"),
            "pid": os.getpid(),
        }).encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/sleep":
        time.sleep(float(q.get("s", "1")))
        body = str(os.getpid()).encode()
    else:
        body = b"Hello, TLS!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _jsonable(obj):
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("latin-1")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


async def _read_body(receive) -> tuple[int, str]:
    h = hashlib.sha256()
    total = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        total += len(chunk)
        h.update(chunk)
        if not msg.get("more_body", False):
            break
    return total, h.hexdigest()


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await accept_lifespan(receive, send)
    if scope["type"] != "http":
        return
    path = scope["path"]
    q = _qs(scope.get("query_string", b"").decode("latin-1"))
    if path == "/big":
        n = int(q.get("n", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(n).encode())]})
        for piece in _big(n):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/upload":
        total, digest = await _read_body(receive)
        body = json.dumps({"length": total, "sha256": digest}).encode()
    elif path == "/scope":
        ext = scope.get("extensions") or {}
        body = json.dumps({
            "scheme": scope.get("scheme"),
            "server": _jsonable(scope.get("server")),
            "has_tls": "tls" in ext,
            "tls": _jsonable(ext.get("tls")),
            "pid": os.getpid(),
        }).encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/sleep":
        await asyncio.sleep(float(q.get("s", "1")))
        body = str(os.getpid()).encode()
    else:
        body = b"Hello, TLS!"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
