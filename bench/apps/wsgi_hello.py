"""WSGI benchmark apps.

``app`` is the plaintext app (13-byte "Hello, World!").  The other callables
are the later scenarios; each is a separate callable so the plaintext path
stays as small as possible (no routing):

    app          GET  -> b"Hello, World!"            text/plain
    json_app     GET  -> {"message":"Hello, World!"} application/json
    app_12k      GET  -> 12 KiB of b"x"               application/octet-stream
    app_1m       GET  -> 1 MiB of b"x"                application/octet-stream
    upload_app   POST -> reads the whole body, answers its length as text
"""
import json

HELLO = b"Hello, World!"
BODY_12K = b"x" * (12 * 1024)
BODY_1M = b"x" * (1024 * 1024)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "13")])
    return [HELLO]


def json_app(environ, start_response):
    body = json.dumps({"message": "Hello, World!"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def app_12k(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(BODY_12K)))])
    return [BODY_12K]


def app_1m(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(BODY_1M)))])
    return [BODY_1M]


def upload_app(environ, start_response):
    stream = environ["wsgi.input"]
    total = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
    body = str(total).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
