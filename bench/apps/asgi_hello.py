"""ASGI benchmark apps: the same callables as wsgi_hello, for ASGI servers.

    app          GET  -> b"Hello, World!"            text/plain
    json_app     GET  -> {"message":"Hello, World!"} application/json
    app_12k      GET  -> 12 KiB of b"x"
    app_1m       GET  -> 1 MiB of b"x"
    upload_app   POST -> reads the whole body, answers its length as text
"""
import json

HELLO = b"Hello, World!"
BODY_12K = b"x" * (12 * 1024)
BODY_1M = b"x" * (1024 * 1024)

_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO}


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send_bytes(send, body, content_type):
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send(_HELLO_START)
    await send(_HELLO_BODY)


async def json_app(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    body = json.dumps({"message": "Hello, World!"}).encode()
    await _send_bytes(send, body, b"application/json")


async def app_12k(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await _send_bytes(send, BODY_12K, b"application/octet-stream")


async def app_1m(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await _send_bytes(send, BODY_1M, b"application/octet-stream")


async def upload_app(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    total = 0
    while True:
        message = await receive()
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _send_bytes(send, str(total).encode(), b"text/plain")
