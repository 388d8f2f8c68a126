"""Many simultaneous keep-alive connections."""

from __future__ import annotations

import http.client
import threading
import time

from tests.conftest import build_request

N_CONN = 100
N_REQ = 20


def test_100_connections_20_keepalive_requests_each(server):
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(N_CONN, timeout=60)

    def worker(t: int):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            conn.connect()
            sock = conn.sock
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            for i in range(N_REQ):
                if i % 4 == 3:
                    body = f"body-{t}-{i}".encode()
                    conn.request("POST", f"/query?t={t}&i={i}", body=body)
                    expected = f"q=t={t}&i={i};body=body-{t}-{i}".encode()
                else:
                    conn.request("GET", f"/query?t={t}&i={i}")
                    expected = f"q=t={t}&i={i}".encode()
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200 or data != expected:
                    raise AssertionError(f"conn {t} req {i}: {resp.status} {data!r} != {expected!r}")
                if conn.sock is not sock:
                    raise AssertionError(f"conn {t} req {i}: connection was not kept alive")
                with lock:
                    done[0] += 1
        except Exception as e:  # noqa: BLE001 - collected and reported below
            with lock:
                errors.append(f"conn {t}: {type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(N_CONN)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=max(1.0, 120 - (time.monotonic() - t0)))
    alive = sum(th.is_alive() for th in threads)
    assert not errors, f"{len(errors)} connections failed, e.g. {errors[:5]}"
    assert alive == 0, f"{alive} client threads still running after 120 s"
    assert done[0] == N_CONN * N_REQ


def test_many_connections_open_idle_then_used(server):
    """Hold 100 idle connections open, then use each one: none may be starved or dropped."""
    conns = [server.connect(timeout=30) for _ in range(N_CONN)]
    try:
        for i, c in enumerate(conns):
            c.send(build_request("GET", f"/query?idle={i}", port=server.port))
        for i, c in enumerate(conns):
            r = c.read_response()
            assert r.body == f"q=idle={i}".encode()
    finally:
        for c in conns:
            c.close()


def test_slow_client_does_not_block_others(server):
    """A client that sends half a request head must not stop the server answering others."""
    slow = server.connect()
    try:
        slow.send(b"GET /query?slow HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        t0 = time.monotonic()
        for i in range(10):
            with server.connect() as c:
                assert c.request("GET", f"/query?fast={i}").body == f"q=fast={i}".encode()
        assert time.monotonic() - t0 < 30
        slow.send(b"done\r\n\r\n")
        assert slow.read_response().body == b"q=slow"
    finally:
        slow.close()
