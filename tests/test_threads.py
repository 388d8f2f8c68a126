"""--threads N (WSGI): a pool of Python threads per worker runs the application, so an app that
blocks does not stall the other connections of its worker. Real server processes, raw sockets.

The rest of the suite can run with threads on too: LUATH_THREADS=4 pytest tests/test_http_basic.py
(every server the fixtures start reads the variable).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import HOST, IO_TIMEOUT, REPO_ROOT, SERVER_KIND, RawConn, free_port

try:  # the TLS test's fixtures (certs is a fixture)
    from tests.test_tls import HAS_TLS, TLSConn, certs, client_ctx, start_tls  # noqa: F401
except BaseException:  # trustme missing: pytest's Skipped
    HAS_TLS, certs = False, None

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's --threads")

APP = "tests.apps.threads_app:app"
MiB = 1 << 20


def threaded(start_server, n: int = 10, *extra: str):
    return start_server(APP, "--workers", "1", "--threads", str(n), *extra)


def get_json(port: int, target: str):
    with RawConn(port) as c:
        r = c.request("GET", target, headers={"Connection": "close"})
    assert r.status == 200, r
    return r.json()


def concurrent_gets(port: int, targets: list[str]) -> tuple[float, list]:
    """Open one connection per target, send every request at once, read all the responses.
    Returns (seconds from the sends to the last response, responses in order)."""
    conns = [RawConn(port) for _ in targets]
    results: list = [None] * len(targets)
    try:
        go = threading.Barrier(len(targets) + 1)

        def one(i):
            go.wait()
            conns[i].send(f"GET {targets[i]} HTTP/1.1\r\nHost: x\r\n\r\n")
            results[i] = conns[i].read_response()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
        for t in threads:
            t.start()
        go.wait()
        t0 = time.monotonic()
        for t in threads:
            t.join(IO_TIMEOUT)
        elapsed = time.monotonic() - t0
    finally:
        for c in conns:
            c.close()
    assert all(r is not None for r in results), results
    return elapsed, results


# ------------------------------------------------------------------------------------------------
# The acceptance test, and the environ
# ------------------------------------------------------------------------------------------------

def test_ten_blocking_requests_in_parallel(start_server):
    srv = threaded(start_server, 10)
    get_json(srv.port, "/sleep?ms=1")  # warm: the pool's threads are up
    best = None
    for _attempt in range(3):  # a loaded 2-core box may hiccup once
        elapsed, rs = concurrent_gets(srv.port, ["/sleep?ms=200"] * 10)
        assert all(r.status == 200 for r in rs), rs
        assert len({r.json()["thread"] for r in rs}) == 10  # ten different threads
        best = elapsed if best is None else min(best, elapsed)
        if best < 0.5:
            break
    assert best < 0.5, f"10 x 200 ms on --threads 10 took {best:.3f} s"


def test_one_thread_serialises(start_server):
    """Without --threads the app runs on the loop thread: the same requests take 10 x 200 ms."""
    srv = start_server(APP, "--workers", "1", "--threads", "1")
    elapsed, rs = concurrent_gets(srv.port, ["/sleep?ms=100"] * 4)
    assert all(r.status == 200 for r in rs)
    assert elapsed >= 0.39


def test_blocked_threads_do_not_stall_other_connections(start_server):
    srv = threaded(start_server, 4)
    slow = RawConn(srv.port)
    try:
        slow.send("GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        for _ in range(5):
            assert get_json(srv.port, "/info")["multithread"] is True
        assert time.monotonic() - t0 < 1.0
        assert slow.read_response().status == 200
    finally:
        slow.close()


def test_multithread_flag(start_server):
    info = get_json(threaded(start_server, 2).port, "/info")
    assert info["multithread"] is True
    assert info["thread"] in ("luath-wsgi-1", "luath-wsgi-2")  # threading.current_thread().name
    srv1 = start_server(APP, "--workers", "1", "--threads", "1")
    info = get_json(srv1.port, "/info")
    assert info["multithread"] is False
    assert info["thread"] == "MainThread"  # the loop thread


def test_threads_in_supervised_workers(start_server):
    srv = start_server(APP, "--workers", "2", "--threads", "3")
    for _ in range(20):
        info = get_json(srv.port, "/info")
        assert info["multithread"] is True and info["thread"].startswith("luath-wsgi-")
    elapsed, rs = concurrent_gets(srv.port, ["/sleep?ms=200"] * 3)
    assert all(r.status == 200 for r in rs) and elapsed < 0.5


def test_more_requests_than_threads_queue(start_server):
    srv = threaded(start_server, 2)
    elapsed, rs = concurrent_gets(srv.port, ["/sleep?ms=150"] * 6)
    assert all(r.status == 200 for r in rs)
    assert len({r.json()["thread"] for r in rs}) == 2
    assert elapsed >= 0.44  # three rounds of two


# ------------------------------------------------------------------------------------------------
# Keep-alive, pipelining, bodies, streaming
# ------------------------------------------------------------------------------------------------

def test_keep_alive_across_threaded_requests(start_server):
    srv = threaded(start_server, 4)
    with srv.connect() as c:
        for i in range(20):
            r = c.request("GET", f"/sleep?ms={i % 3}")
            assert r.status == 200 and "close" not in r.connection_tokens(), r
        r = c.request("POST", "/echo", body=b"abc" * 1000)
        assert r.json() == {"length": 3000, "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()}
        assert c.is_open_after(0.2)


def test_pipelining_across_threaded_requests(start_server):
    srv = threaded(start_server, 4)
    body = b"hello pipelined body"
    reqs = (b"GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            b"GET /pieces?n=3&size=4 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /sleep?ms=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") % (len(body), body)
    with srv.connect() as c:
        c.send(reqs)
        assert c.read_response().json()["slept"] == 50
        assert c.read_response().json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert c.read_response().json()["multithread"] is True
        assert c.read_response().json() == {"length": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}
        r5 = c.read_response()
        assert r5.body == b"\x00" * 4 + b"\x01" * 4 + b"\x02" * 4
        r6 = c.read_response()
        assert r6.status == 200 and "close" in r6.connection_tokens()
        assert c.wait_closed()[0]


@pytest.mark.parametrize("size", [0, 1, 70_000, 8 * MiB])
def test_content_length_upload(start_server, size):
    srv = threaded(start_server, 4)
    data = os.urandom(size)
    with srv.connect() as c:
        r = c.request("POST", "/echo", body=data)
        assert r.json() == {"length": size, "sha256": hashlib.sha256(data).hexdigest()}
        assert c.request("GET", "/info").status == 200  # still keep-alive


def test_chunked_upload_large(start_server):
    srv = threaded(start_server, 4)
    pieces = [os.urandom(n) for n in (1, 100, 65536, 300_000, 1 << 20, 7)] * 3
    data = b"".join(pieces)
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for p in pieces:
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        assert r.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_slow_upload_with_expect_continue(start_server):
    srv = threaded(start_server, 2)
    lines = b"".join(b"line %d\n" % i for i in range(2000))
    with srv.connect() as c:
        c.send(b"POST /lines HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
               % len(lines))
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100
        for i in range(0, len(lines), 4000):
            c.send(lines[i:i + 4000])
            time.sleep(0.01)
        assert c.read_response().json() == {"lines": 2000, "length": len(lines)}


def test_uploads_in_parallel_threads(start_server):
    srv = threaded(start_server, 4)
    blobs = [os.urandom(2 * MiB + i) for i in range(4)]
    out: list = [None] * 4

    def up(i):
        with srv.connect() as c:
            out[i] = c.request("POST", "/echo", body=blobs[i]).json()

    ts = [threading.Thread(target=up, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(IO_TIMEOUT)
    for i in range(4):
        assert out[i] == {"length": len(blobs[i]), "sha256": hashlib.sha256(blobs[i]).hexdigest()}


def test_streaming_response(start_server):
    srv = threaded(start_server, 4)
    with srv.connect() as c:
        c.send(b"GET /pieces?n=5&size=3&ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        head = c.read_head()
        assert head[2] == 200
        first = c.read_line()  # the first chunk arrives before the generator ends
        assert first == b"3" and time.monotonic() - t0 < 0.35
        body = c.read_line()
        assert body == b"\x00\x00\x00"
    with srv.connect() as c:
        r = c.request("GET", "/pieces?n=5&size=3&ms=20")
        assert r.framing == "chunked" and r.chunks == [bytes([i]) * 3 for i in range(5)]


def test_large_streamed_response_to_slow_reader(start_server):
    """Over the high-water mark the thread waits for the socket (without the GIL) and goes on."""
    srv = threaded(start_server, 2)
    n, size = 200, 64 * 1024
    with srv.connect() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.send(f"GET /pieces?n={n}&size={size} HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # the server fills the socket and blocks
        # Meanwhile another connection is served by the other thread.
        assert get_json(srv.port, "/info")["multithread"] is True
        r = c.read_response()
        assert len(r.body) == n * size
        assert r.body[:size] == b"\x00" * size and r.body[-size:] == bytes([(n - 1) % 256]) * size
        assert c.request("GET", "/info").status == 200


def test_pipelined_requests_wait_for_a_client_that_does_not_read(start_server):
    """Backpressure: the loop parses no further pipelined request while the responses pile up."""
    srv = threaded(start_server, 4)
    tag = f"bp{time.monotonic_ns()}"
    n, size = 30, 1_000_000
    with srv.connect() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        c.send(f"GET /blob?size={size}&tag={tag} HTTP/1.1\r\nHost: x\r\n\r\n" * n)
        time.sleep(1.0)
        ran = get_json(srv.port, f"/stats?tag={tag}").get(tag, 0)
        assert ran < n // 2, f"{ran} of {n} responses were made for a client that reads none"
        for _ in range(n):
            r = c.read_response()
            assert r.status == 200 and len(r.body) == size
    assert get_json(srv.port, f"/stats?tag={tag}")[tag] == n


# ------------------------------------------------------------------------------------------------
# Errors and clients that leave
# ------------------------------------------------------------------------------------------------

def test_app_exception_is_500_and_worker_goes_on(start_server):
    srv = threaded(start_server, 4)
    off = srv.log_size()
    for _ in range(3):
        with srv.connect() as c:
            r = c.request("GET", "/error")
            assert r.status == 500
            assert "close" in r.connection_tokens()
    srv.wait_for_log("boom in a thread", off)
    assert get_json(srv.port, "/info")["multithread"] is True


def test_exception_mid_stream_closes_and_worker_goes_on(start_server):
    srv = threaded(start_server, 4)
    with srv.connect() as c:
        c.send(b"GET /error/midgen HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200 and not r.complete
    assert get_json(srv.port, "/info")["multithread"] is True


def test_client_leaves_while_app_runs(start_server):
    srv = threaded(start_server, 4)
    tag = f"leave{time.monotonic_ns()}"
    for _ in range(3):
        c = RawConn(srv.port)
        c.send(f"GET /tracked?tag={tag}&ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if get_json(srv.port, f"/stats?tag={tag}").get(f"{tag}:closed") == 3:
            break
        time.sleep(0.1)
    assert get_json(srv.port, f"/stats?tag={tag}") == {f"{tag}:closed": 3}
    assert get_json(srv.port, "/sleep?ms=1")["slept"] == 1


def test_client_leaves_mid_upload(start_server):
    srv = threaded(start_server, 4)
    tag = f"up{time.monotonic_ns()}"
    c = RawConn(srv.port)
    c.send(f"POST /read-tracked?tag={tag} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    c.send(b"x" * 300_000)
    time.sleep(0.2)
    c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if get_json(srv.port, f"/stats?tag={tag}"):
            break
        time.sleep(0.1)
    assert get_json(srv.port, f"/stats?tag={tag}") == {f"{tag}:disconnected": 1}
    assert get_json(srv.port, "/info")["multithread"] is True


def test_body_timeout_in_a_thread(start_server):
    srv = threaded(start_server, 2, "--timeout-request-body", "0.5")
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        t0 = time.monotonic()
        closed, extra = c.wait_closed(5)
        assert closed and time.monotonic() - t0 < 3
    assert get_json(srv.port, "/info")["multithread"] is True


# ------------------------------------------------------------------------------------------------
# Graceful stop
# ------------------------------------------------------------------------------------------------

def _spawn(tmp_path, *extra: str) -> tuple[subprocess.Popen, int, object]:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    err = open(tmp_path / f"server-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "luath", APP, "--host", HOST, "--port", str(port), *extra],
                            cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc, port, err
        except OSError:
            assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


def test_sigterm_waits_for_threaded_requests(tmp_path):
    proc, port, err = _spawn(tmp_path, "--threads", "4")
    try:
        conns = [RawConn(port) for _ in range(4)]
        for c in conns:
            c.send(b"GET /sleep?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # every request is in a thread
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for c in conns:
            r = c.read_response()
            assert r.status == 200 and r.json()["slept"] == 600
            assert "close" in r.connection_tokens()
            assert c.wait_closed(5)[0]
            c.close()
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


def test_graceful_timeout_with_a_stuck_thread(tmp_path):
    """Past --timeout-graceful-shutdown the socket of a request still in a thread is shut down; the
    worker exits once the app returns."""
    proc, port, err = _spawn(tmp_path, "--threads", "2", "--timeout-graceful-shutdown", "0.5")
    try:
        c = RawConn(port)
        c.send(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        closed, extra = c.wait_closed(5)
        assert closed and extra == b""
        assert time.monotonic() - t0 < 1.5  # the client sees the close at the timeout
        assert proc.wait(10) == 0
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


# ------------------------------------------------------------------------------------------------
# TLS, Flask, the environment variable
# ------------------------------------------------------------------------------------------------

@pytest.mark.skipif(certs is None or not HAS_TLS, reason="TLS: trustme or an engine with TLS missing")
def test_tls_with_threads(start_server, certs):
    from tests.apps.tls_app import pattern_bytes

    srv = start_tls(start_server, certs, "--threads", "8")
    ctx = client_ctx(certs)
    conns = [TLSConn(srv.port, ctx) for _ in range(6)]
    try:
        t0 = time.monotonic()
        for c in conns:
            c.send(b"GET /sleep?s=0.3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        for c in conns:
            assert c.read_response().status == 200
        assert time.monotonic() - t0 < 1.5  # 6 x 0.3 s in parallel, not 1.8 s
        # keep-alive, pipelining, an upload and a large response over TLS in a thread
        data = os.urandom(3 * MiB)
        c = conns[0]
        c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(data) + data
               + b"GET /big?n=3000000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert c.read_response().json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert c.read_response().body == pattern_bytes(3_000_000)
        assert c.request("GET", "/").body == b"Hello, TLS!"
    finally:
        for c in conns:
            c.close()


def test_flask_app_under_threads(start_server):
    pytest.importorskip("flask")
    srv = start_server("tests.apps.flask_app:app", "--workers", "1", "--threads", "4")
    out: list = [None] * 8

    def one(i):
        with srv.connect() as c:
            r1 = c.request("GET", "/")
            body = json.dumps({"numbers": [i, i + 1]}).encode()
            r2 = c.request("POST", "/json", body=body, headers={"Content-Type": "application/json"})
            out[i] = (r1.status, r1.body, r2.status, r2.json())

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(IO_TIMEOUT)
    for i in range(8):
        assert out[i] is not None
        s1, b1, s2, j = out[i]
        assert (s1, b1, s2) == (200, b"flask says hi", 200)
        assert j["doubled"] == [2 * i, 2 * i + 2]


def test_env_var_and_validation(tmp_path):
    env = dict(os.environ, LUATH_THREADS="3", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO_ROOT)
    from luath.cli import parse_args

    old = os.environ.get("LUATH_THREADS")
    os.environ["LUATH_THREADS"] = "3"
    try:
        assert parse_args(["m:app"]).threads == 3
        assert parse_args(["m:app", "--threads", "5"]).threads == 5
    finally:
        if old is None:
            del os.environ["LUATH_THREADS"]
        else:
            os.environ["LUATH_THREADS"] = old
    r = subprocess.run([sys.executable, "-m", "luath", APP, "--threads", "0"], cwd=str(REPO_ROOT), env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "threads" in r.stderr


def test_gunicorn_worker_threads(tmp_path):
    """gunicorn -k luath.gunicorn.Worker --threads 8: gunicorn's option gives the pool its size."""
    pytest.importorskip("gunicorn")
    import shutil
    from pathlib import Path

    from tests.apps.proc import Proc, wait_serving

    exe = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
    port = free_port()
    p = Proc([exe, "-k", "luath.gunicorn.Worker", "-b", f"{HOST}:{port}", "-w", "1", "--threads", "8", APP],
             tmp_path)
    try:
        wait_serving((HOST, port), p, path="/info")
        assert get_json(port, "/info")["multithread"] is True
        elapsed, rs = concurrent_gets(port, ["/sleep?ms=200"] * 8)
        assert all(r.status == 200 for r in rs)
        assert elapsed < 0.6, elapsed
        p.signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        p.kill()
