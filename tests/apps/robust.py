"""Routes for the robustness tests (tests/test_robustness.py, scripts/soak).

Everything not listed here is served by tests.apps.basic.app, and the counters are basic's
(module-level, read through ``/__stats?tag=``): ``calls`` counts app calls per tag and ``closes``
counts close() calls on the returned iterables, so a test can check that every call's iterable was
closed even when the client vanished.

    /sleep?ms=N&tag=T     sleeps N ms (the app is "running" when the client leaves), then a tracked body
    /upload?tag=T         reads the whole body (tolerating a vanished client), then a tracked body
    /stream?tag=T         an endless-ish generator of 64 KiB pieces (bounded), for abandoned downloads
"""

from __future__ import annotations

import time

from tests.apps import basic
from tests.apps.basic import FLAGS, TrackedIterable, _bump, _qs


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = _qs(environ)
    tag = q.get("tag", "")

    if path == "/sleep":
        _bump(basic.CALLS, tag)
        time.sleep(min(int(q.get("ms", "100")), 10000) / 1000.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return TrackedIterable(tag, "normal", items=int(q.get("items", "3")))

    if path == "/upload":
        _bump(basic.CALLS, tag)
        inp = environ["wsgi.input"]
        total = 0
        outcome = "complete"
        try:
            for _ in range(1 << 20):  # bounded: at most 64 GiB in 64 KiB reads
                piece = inp.read(65536)
                if not piece:
                    break
                total += len(piece)
        except Exception as e:  # noqa: BLE001 - the client vanished mid-body
            outcome = type(e).__name__
        FLAGS[tag] = outcome
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bytes", str(total))])
        return TrackedIterable(tag, "normal", items=1)

    if path == "/stream":
        _bump(basic.CALLS, tag)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return TrackedIterable(tag, "endless", limit=int(q.get("limit", "3000")))

    return basic.app(environ, start_response)
