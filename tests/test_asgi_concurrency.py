"""Concurrency on one ASGI worker: requests that await are interleaved on the event loop; an app
can call other HTTP servers with an asyncio client; many keep-alive connections."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.asgi_helpers import ASGI, ASGI_ARGS
from tests.conftest import HOST, build_request
from tests.test_concurrency import (  # noqa: F401
    test_100_connections_20_keepalive_requests_each,
    test_many_connections_open_idle_then_used,
    test_slow_client_does_not_block_others,
)


@pytest.fixture
def server(start_server):
    return start_server(ASGI, *ASGI_ARGS)


async def _burst(port: int, n: int, delay: float) -> tuple[float, list[bytes]]:
    """Open n connections first, then send one /sleep request on each at once; return the time from
    the first send to the last complete response, and the bodies."""
    conns = await asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in range(n)))
    try:
        # warm-up request on each connection so accept/handshake costs are out of the measurement
        for i, (r, w) in enumerate(conns):
            w.write(build_request("GET", "/", port=port))
        for r, w in conns:
            await _read_one(r)

        async def one(i, r, w):
            w.write(build_request("GET", f"/sleep?t={delay}&i={i}", port=port))
            return await _read_one(r)
        t0 = time.monotonic()
        bodies = await asyncio.wait_for(asyncio.gather(*(one(i, r, w) for i, (r, w) in enumerate(conns))), 60)
        return time.monotonic() - t0, bodies
    finally:
        for _, w in conns:
            w.close()


async def _read_one(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert length is not None, head
    return await reader.readexactly(length)


def test_100_concurrent_sleeping_requests_one_worker(server):
    """100 requests that each await asyncio.sleep(0.1) finish in < 0.5 s in total (serially it
    would be 10 s).  Best of 3 bursts, so a momentarily busy machine does not fail the test."""
    times = []
    for _ in range(3):
        elapsed, bodies = asyncio.run(_burst(server.port, 100, 0.1))
        assert sorted(bodies) == sorted(b"slept %d" % i for i in range(100))
        times.append(elapsed)
        if elapsed < 0.5:
            break
    print(f"\n100 concurrent asyncio.sleep(0.1) requests, one worker: {min(times):.3f} s")
    assert min(times) < 0.5, f"100 concurrent 0.1 s sleeps took {times} s: requests are not interleaved"


def test_slow_request_does_not_block_fast_ones(server):
    with server.connect() as slow:
        slow.send(build_request("GET", "/sleep?t=2&i=slow", port=server.port))
        t0 = time.monotonic()
        for i in range(5):
            with server.connect() as c:
                assert c.request("GET", f"/query?fast={i}").body == f"q=fast={i}".encode()
        assert time.monotonic() - t0 < 1.5, "fast requests waited for a sleeping one"
        assert slow.read_response().body == b"slept slow"


class _TinyAsyncioServer:
    """A minimal asyncio HTTP server in a background thread (the app's upstream)."""

    def __init__(self):
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.hits = 0

    async def _handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1]
            self.hits += 1
            await asyncio.sleep(0.05)
            body = b"upstream says " + target
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        finally:
            writer.close()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        srv = self.loop.run_until_complete(asyncio.start_server(self._handle, HOST, 0))
        self.port = srv.sockets[0].getsockname()[1]
        self.srv = srv
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_app_calls_upstream_with_async_client(server):
    pytest.importorskip("httpx")
    with _TinyAsyncioServer() as up:
        with server.connect(timeout=30) as c:
            r = c.request("GET", f"/proxy?url=http://{HOST}:{up.port}/hello")
            assert r.status == 200, r
            assert r.json() == {"status": 200, "body": "upstream says /hello"}
        # several at once, interleaved on the worker's loop
        conns = [server.connect(timeout=30) for _ in range(10)]
        try:
            t0 = time.monotonic()
            for i, c in enumerate(conns):
                c.send(build_request("GET", f"/proxy?url=http://{HOST}:{up.port}/n{i}", port=server.port))
            for i, c in enumerate(conns):
                assert c.read_response().json()["body"] == f"upstream says /n{i}"
            assert time.monotonic() - t0 < 10
        finally:
            for c in conns:
                c.close()
        assert up.hits == 11


def test_app_calls_its_own_server(server):
    """The app calls another route of the same one-worker server: only works if the worker's event
    loop keeps serving while the first request awaits."""
    pytest.importorskip("httpx")
    with server.connect(timeout=30) as c:
        r = c.request("GET", f"/proxy?url=http://{HOST}:{server.port}/query?inner=1")
    assert r.status == 200, r
    assert r.json() == {"status": 200, "body": "q=inner=1"}
