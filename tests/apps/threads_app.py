"""A WSGI app for tests/test_threads.py (--threads N): routes that block, read bodies and stream.

Routes:
    /info            JSON: wsgi.multithread, the thread's name and id, pid
    /sleep?ms=M      sleeps M ms, then answers JSON {"thread": id, "slept": M}
    /echo            reads the body with read() (any framing); JSON {"length", "sha256"}
    /lines           reads the body line by line (iteration); JSON {"lines", "length"}
    /pieces?n=N&size=S&ms=M   a generator: N pieces of S bytes (byte i % 256 of the piece index),
                     M ms apart
    /blob?size=N&tag=T       a list of one N-byte body; counts T
    /error           raises before start_response
    /error/midgen    yields one piece, then raises
    /tracked?tag=T&ms=M      sleeps M ms, then answers through an iterable whose close() is counted
                     under T (to see close() called when the client left)
    /read-tracked?tag=T      reads the whole body; counts "T:ok" or "T:disconnected"
    /stats?tag=T     JSON of the counters for T
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_counters: dict[str, int] = {}


def _bump(key: str) -> None:
    with _lock:
        _counters[key] = _counters.get(key, 0) + 1


def _qs(environ) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Tracked:
    def __init__(self, tag: str, body: bytes):
        self.tag = tag
        self.body = body

    def __iter__(self):
        yield self.body

    def close(self):
        _bump(self.tag + ":closed")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = _qs(environ)
    if path == "/info":
        return _json(start_response, {"multithread": environ["wsgi.multithread"],
                                       "thread": threading.current_thread().name,
                                       "ident": threading.get_ident(), "pid": os.getpid()})
    if path == "/sleep":
        ms = int(q.get("ms", "200"))
        time.sleep(ms / 1000)
        return _json(start_response, {"thread": threading.get_ident(), "slept": ms})
    if path == "/echo":
        data = environ["wsgi.input"].read()
        return _json(start_response, {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if path == "/lines":
        n = total = 0
        for line in environ["wsgi.input"]:
            n += 1
            total += len(line)
        return _json(start_response, {"lines": n, "length": total})
    if path == "/pieces":
        n, size, ms = int(q.get("n", "5")), int(q.get("size", "10")), int(q.get("ms", "0"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def gen():
            for i in range(n):
                if ms and i:
                    time.sleep(ms / 1000)
                yield bytes([i % 256]) * size
        return gen()
    if path == "/blob":
        _bump(q.get("tag", "blob"))
        body = b"b" * int(q.get("size", "1000000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/error":
        raise RuntimeError("boom in a thread")
    if path == "/error/midgen":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def bad():
            yield b"first"
            raise RuntimeError("boom mid-stream")
        return bad()
    if path == "/tracked":
        time.sleep(int(q.get("ms", "300")) / 1000)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q.get("tag", "t"), b"x" * 100)
    if path == "/read-tracked":
        tag = q.get("tag", "r")
        try:
            environ["wsgi.input"].read()
        except OSError:
            _bump(tag + ":disconnected")
            raise
        _bump(tag + ":ok")
        return _json(start_response, {"ok": True})
    if path == "/stats":
        tag = q.get("tag", "")
        with _lock:
            return _json(start_response, {k: v for k, v in _counters.items() if k.startswith(tag)})
    return _json(start_response, {"error": "not found"}, "404 Not Found")
