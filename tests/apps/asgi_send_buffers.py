"""ASGI app for tests/test_asgi_send_buffers.py: what the server does with the objects an app passes
as http.response.body, and responses of mixed shapes on keep-alive connections.

    /mutate?kind=bytearray&cl=0|1
        sends 3 pieces of 64 KiB (b"a", b"b", b"c" repeated) from ONE mutable buffer: after each
        send returns, the app overwrites the buffer with the next letter (and then with b"!" after
        the last one). The client must see aaa...bbb...ccc..., never the later contents.
    /shape?n=N&kind=small|big|chunked
        small: N bytes, one message; big: N bytes of bytes (zero-copy path) with Content-Length;
        chunked: N bytes in 4 messages without Content-Length.
"""
from __future__ import annotations

from urllib.parse import parse_qs

from tests.apps.lifespan import accept_lifespan

PIECE = 64 * 1024


def _qs(scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}


def body_for(n: int) -> bytes:
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await accept_lifespan(receive, send)
    q = _qs(scope)
    if scope["path"] == "/mutate":
        headers = [(b"content-type", b"application/octet-stream")]
        if q.get("cl") == "1":
            headers.append((b"content-length", str(3 * PIECE).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        buf = bytearray(b"a" * PIECE)
        for i, nxt in enumerate((b"b", b"c", b"!")):
            body = buf if q.get("kind") == "bytearray" else memoryview(buf)
            await send({"type": "http.response.body", "body": body, "more_body": i < 2})
            if isinstance(body, memoryview):
                body.release()
            buf[:] = nxt * PIECE  # the bytes just sent must already be the server's own
        return
    if scope["path"] == "/shape":
        n = int(q.get("n", "0"))
        kind = q.get("kind", "small")
        data = body_for(n)
        if kind == "chunked":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            step = max(1, n // 4)
            for off in range(0, n, step):
                await send({"type": "http.response.body", "body": data[off:off + step], "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(n).encode())]})
        await send({"type": "http.response.body", "body": data})
        return
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
