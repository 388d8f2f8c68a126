"""Large transfers through the ASGI path: a 64 MiB streamed response (more_body), backpressure
(a client that does not read must not make the server buffer the body), and a 100 MiB upload the
app reads message by message with flat server memory."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
import uuid

import pytest

from tests.apps.asgi_basic import pattern_block
from tests.asgi_helpers import start_asgi, stats
from tests.conftest import build_request, read_proc_status

MiB = 1024 * 1024
BLOCK = pattern_block()


def expected_sha256(size: int) -> str:
    h = hashlib.sha256()
    left = size
    while left > 0:
        n = min(left, len(BLOCK))
        h.update(BLOCK[:n])
        left -= n
    return h.hexdigest()


@pytest.mark.heavy
@pytest.mark.parametrize("cl", ["", "1"], ids=["chunked", "content-length"])
def test_download_64mib(start_server, cl):
    srv = start_asgi(start_server)
    size = 64 * MiB
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    try:
        conn.request("GET", f"/big?size={size}&cl={cl}")
        resp = conn.getresponse()
        assert resp.status == 200
        if cl:
            assert resp.getheader("Content-Length") == str(size)
        else:
            assert (resp.getheader("Transfer-Encoding") or "").lower() == "chunked"
        h = hashlib.sha256()
        total = 0
        while True:
            piece = resp.read(256 * 1024)
            if not piece:
                break
            total += len(piece)
            h.update(piece)
        assert total == size
        assert h.hexdigest() == expected_sha256(size)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


@pytest.mark.heavy
def test_download_backpressure_bounded_memory(start_server):
    """send() must wait while the socket does not drain: the app must not be able to push 64 MiB
    into server memory when the client stops reading."""
    srv = start_asgi(start_server, fresh=True)
    pid = stats(srv)["pid"]
    tag = uuid.uuid4().hex
    size = 64 * MiB
    before = read_proc_status(pid)["VmRSS"]
    with srv.connect(timeout=60) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(build_request("GET", f"/big?size={size}&tag={tag}", port=srv.port))
        c.read_head()
        c.read_exact(1 * MiB)
        peak = before
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, read_proc_status(pid)["VmRSS"])
            time.sleep(0.05)
        produced = stats(srv, tag)["flag"]
    growth = peak - before
    with srv.connect() as c:
        assert c.request("GET", "/").body == b"hello"
    assert produced is not None and produced < 32 * MiB, \
        f"the app could send {produced} bytes to a client that read 1 MiB: send() applies no backpressure"
    assert growth < 32 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB while the client was not reading"


@pytest.mark.heavy
def test_upload_100mib_bounded_memory(start_server):
    srv = start_asgi(start_server, fresh=True)
    pid = stats(srv)["pid"]
    size = 100 * MiB
    st0 = read_proc_status(pid)
    rss_before = st0["VmRSS"]
    samples = [rss_before]
    h = hashlib.sha256()
    with srv.connect(timeout=60) as c:
        c.send(build_request("POST", "/upload", headers={"Content-Length": str(size),
                                                         "Content-Type": "application/octet-stream"},
                             port=srv.port))
        sent = 0
        while sent < size:
            n = min(len(BLOCK), size - sent)
            piece = BLOCK if n == len(BLOCK) else BLOCK[:n]
            c.sock.sendall(piece)
            h.update(piece)
            sent += n
            if sent % (4 * MiB) == 0:
                samples.append(read_proc_status(pid)["VmRSS"])
        r = c.read_response()
    st1 = read_proc_status(pid)
    samples.append(st1["VmRSS"])
    assert r.status == 200, r
    res = json.loads(r.body)
    assert res["bytes"] == size
    assert res["sha256"] == h.hexdigest()
    assert res["messages"] > 1, "a 100 MiB body must reach the app in several http.request messages"
    growth = max(samples) - rss_before
    print(f"\n100 MiB upload: server RSS grew by at most {growth / MiB:.1f} MiB")
    assert growth < 64 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB during a 100 MiB upload"
    hwm_growth = st1["VmHWM"] - max(st0["VmHWM"], rss_before)
    assert hwm_growth < 64 * MiB, f"server peak RSS (VmHWM) grew by {hwm_growth / MiB:.1f} MiB"


@pytest.mark.heavy
def test_upload_chunked_16mib(start_server):
    srv = start_asgi(start_server)
    size = 16 * MiB
    h = hashlib.sha256()
    with srv.connect(timeout=60) as c:
        c.send(build_request("POST", "/upload", headers={"Transfer-Encoding": "chunked"}, port=srv.port))
        sent = 0
        odd = 0
        while sent < size:
            n = min(len(BLOCK) - (odd % 1000), size - sent)
            piece = BLOCK[:n]
            c.sock.sendall(b"%x\r\n" % n + piece + b"\r\n")
            h.update(piece)
            sent += n
            odd += 7
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    res = json.loads(r.body)
    assert res["bytes"] == size
    assert res["sha256"] == h.hexdigest()
