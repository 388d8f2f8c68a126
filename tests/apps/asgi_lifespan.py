"""ASGI apps for the lifespan tests.  Each writes what happened to the file named by
$LUATH_ASGI_MARKER (one event per line), so the test can observe the worker from outside."""

from __future__ import annotations

import json
import os


def _mark(line: str) -> None:
    path = os.environ.get("LUATH_ASGI_MARKER")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
            f.flush()


async def _http(scope, receive, send, body: bytes):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    """Normal lifespan: startup/shutdown markers, state for requests."""
    _mark(f"call {scope['type']}")
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from startup"
                scope["state"]["counter"] = 0
                _mark("startup")
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                _mark("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    st = scope.get("state")
    body = json.dumps({"state": {k: v for k, v in st.items()} if isinstance(st, dict) else None,
                       "lifespan_scope": scope["asgi"].get("version")}).encode()
    await _http(scope, receive, send, body)


async def startup_failed_app(scope, receive, send):
    if scope["type"] == "lifespan":
        m = await receive()
        assert m["type"] == "lifespan.startup"
        _mark("startup-failing")
        await send({"type": "lifespan.startup.failed", "message": "luath-test-startup-failed-msg"})
        return
    await _http(scope, receive, send, b"{}")


async def startup_raises_app(scope, receive, send):
    if scope["type"] == "lifespan":
        m = await receive()
        assert m["type"] == "lifespan.startup"
        _mark("startup-raising")
        raise RuntimeError("luath-test-startup-raised")
    await _http(scope, receive, send, b"{}")


async def no_lifespan_app(scope, receive, send):
    """Raises at once on the lifespan scope (does not support it)."""
    _mark(f"call {scope['type']}")
    if scope["type"] == "lifespan":
        raise RuntimeError("luath-test-lifespan-unsupported")
    await _http(scope, receive, send, b'{"ok": true}')


async def shutdown_failed_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                _mark("shutdown-failing")
                await send({"type": "lifespan.shutdown.failed", "message": "luath-test-shutdown-failed-msg"})
                return
    await _http(scope, receive, send, b"{}")
