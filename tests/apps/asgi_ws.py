"""ASGI WebSocket apps for tests/test_websocket.py."""

import asyncio

from tests.apps.lifespan import accept_lifespan


async def app(scope, receive, send):
    """Routes by path: /echo echoes, /close/<code> closes, /deny answers HTTP, /reject closes before
    accept, /scope sends the scope back as text, /sub accepts the first subprotocol."""
    if scope["type"] == "lifespan":
        return await accept_lifespan(receive, send)
    if scope["type"] == "http":
        body = b"plain http " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]})
        await send({"type": "websocket.http.response.body", "body": b"denied ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"by app"})
        return
    if path == "/raise-before":
        raise RuntimeError("boom before accept")
    if path == "/sub":
        subs = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": subs[0] if subs else None,
                    "headers": [(b"x-extra", b"1")]})
        await send({"type": "websocket.send", "text": ",".join(subs)})
        await receive()
        return
    await send({"type": "websocket.accept"})
    if path == "/scope":
        import json

        s = {k: v for k, v in scope.items() if k not in ("state",)}
        s["headers"] = [[k.decode(), v.decode()] for k, v in s["headers"]]
        s["raw_path"] = s["raw_path"].decode()
        s["query_string"] = s["query_string"].decode()
        await send({"type": "websocket.send", "text": json.dumps(s, default=str)})
        await receive()
        return
    if path.startswith("/close/"):
        code = int(path.rsplit("/", 1)[1])
        await send({"type": "websocket.close", "code": code, "reason": "bye from app"})
        return
    if path == "/raise-after":
        raise RuntimeError("boom after accept")
    if path == "/return":
        return
    if path == "/disconnect-info":
        # Reports the disconnect it receives on a second connection's... simply store it globally.
        msg = await receive()
        DISCONNECTS.append(msg)
        return
    if path == "/last-disconnect":
        await send({"type": "websocket.send", "text": repr(DISCONNECTS[-1] if DISCONNECTS else None)})
        await receive()
        return
    if path == "/slow":
        # Reads slowly: backpressure on the client's sends.
        n = 0
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            n += 1
            await asyncio.sleep(0.01)
            if msg.get("text") == "count":
                await send({"type": "websocket.send", "text": str(n)})
    if path == "/flood":
        # Sends n bytes messages quickly (send backpressure).
        msg = await receive()
        count, size = map(int, msg["text"].split())
        data = b"x" * size
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": data})
        await send({"type": "websocket.send", "text": "done"})
        await receive()
        return
    # echo
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


DISCONNECTS = []
