"""Applications for the operations tests (CLI, supervisor, sockets, proxy headers, access log, nginx).

WSGI ``app`` / ASGI ``asgi_app``:
  /          the worker's pid
  /env       JSON: the request facts the proxy-header tests look at, and $LUATH_TEST_VAR
  /slow?s=N  (ASGI) the response head and "start\\n" at once, "end\\n" after N seconds
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from urllib.parse import parse_qs

from tests.apps.lifespan import accept_lifespan


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/env":
        body = json.dumps({
            "REMOTE_ADDR": environ.get("REMOTE_ADDR"),
            "REMOTE_PORT": environ.get("REMOTE_PORT"),
            "url_scheme": environ.get("wsgi.url_scheme"),
            "HTTP_HOST": environ.get("HTTP_HOST"),
            "SERVER_NAME": environ.get("SERVER_NAME"),
            "SERVER_PORT": environ.get("SERVER_PORT"),
            "var": os.environ.get("LUATH_TEST_VAR"),
            "pid": os.getpid(),
        }).encode()
    elif path == "/sleep":
        q = parse_qs(environ.get("QUERY_STRING", ""))
        time.sleep(float(q.get("s", ["0.2"])[0]))
        body = str(os.getpid()).encode()
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def factory():
    return app


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await accept_lifespan(receive, send)
    path = scope["path"]
    if path == "/slow":
        q = parse_qs(scope["query_string"].decode())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"start\n", "more_body": True})
        await asyncio.sleep(float(q.get("s", ["1"])[0]))
        await send({"type": "http.response.body", "body": b"end\n"})
        return
    if path == "/env":
        body = json.dumps({"client": scope.get("client"), "scheme": scope.get("scheme"),
                           "server": scope.get("server"), "pid": os.getpid()}).encode()
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
