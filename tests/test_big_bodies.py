"""Large transfers: a 64 MiB streamed response and a 100 MiB upload read in 64 KiB pieces
with bounded server memory."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time

import pytest

from tests.apps.basic import pattern_block
from tests.conftest import BASIC, build_request, chunked, read_proc_status

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


def _server_pid(srv) -> int:
    with srv.connect() as c:
        return int(c.request("GET", "/pid").body)


@pytest.mark.heavy
@pytest.mark.parametrize("cl", ["", "1"], ids=["chunked", "content-length"])
def test_download_64mib(start_server, cl):
    srv = start_server(BASIC, "--workers", "1")
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
            piece = resp.read(64 * 1024)
            if not piece:
                break
            total += len(piece)
            h.update(piece)
        assert total == size
        assert h.hexdigest() == expected_sha256(size)
        # The connection is still usable afterwards.
        conn.request("GET", "/")
        r2 = conn.getresponse()
        assert r2.read() == b"hello"
    finally:
        conn.close()


@pytest.mark.heavy
def test_download_backpressure_bounded_memory(start_server):
    """A client that stops reading must not make the server buffer the whole 64 MiB body:
    the generator is only advanced as the socket drains."""
    srv = start_server(BASIC, "--workers", "1", fresh=True)
    pid = _server_pid(srv)
    size = 64 * MiB
    before = read_proc_status(pid)["VmRSS"]
    with srv.connect(timeout=60) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(build_request("GET", f"/big?size={size}", port=srv.port))
        c.read_head()
        c.read_exact(1 * MiB)
        # Stop reading for a while; a server without backpressure would now run the generator dry.
        peak = before
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, read_proc_status(pid)["VmRSS"])
            time.sleep(0.05)
        growth = peak - before
    # The client went away mid-body: the server must survive and keep serving.
    with srv.connect() as c:
        assert c.request("GET", "/").body == b"hello"
    assert growth < 32 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB while the client was not reading"


@pytest.mark.heavy
def test_upload_100mib_bounded_memory(start_server):
    srv = start_server(BASIC, "--workers", "1", fresh=True)
    pid = _server_pid(srv)
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
        samples.append(read_proc_status(pid)["VmRSS"])
        r = c.read_response()
    st1 = read_proc_status(pid)
    samples.append(st1["VmRSS"])
    assert r.status == 200, r
    res = json.loads(r.body)
    assert res["bytes"] == size
    assert res["sha256"] == h.hexdigest()
    assert 0 < res["largest_read"] <= 64 * 1024
    growth = max(samples) - rss_before
    print(f"\n100 MiB upload: server RSS grew by at most {growth / MiB:.1f} MiB")
    assert growth < 64 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB during a 100 MiB upload"
    hwm_growth = st1["VmHWM"] - max(st0["VmHWM"], rss_before)
    assert hwm_growth < 64 * MiB, f"server peak RSS (VmHWM) grew by {hwm_growth / MiB:.1f} MiB"


@pytest.mark.heavy
def test_upload_chunked_16mib(server):
    size = 16 * MiB
    h = hashlib.sha256()
    with server.connect(timeout=60) as c:
        c.send(build_request("POST", "/upload", headers={"Transfer-Encoding": "chunked"}, port=server.port))
        sent = 0
        odd = 0
        while sent < size:
            # vary the chunk sizes so chunk boundaries do not line up with the app's reads
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


def test_upload_chunked_big_chunks_arriving_in_pieces(server):
    """Chunk data past the read buffer goes from the socket straight into the app's read: chunks far
    bigger than one read, each arriving in odd pieces (some ending inside a chunk-size line or its
    CRLF), an extension and a trailer; the app sees every byte once, in order."""
    body = bytes(range(256)) * 6000 + b"odd tail"  # 1.5 MiB + 8
    sizes = [300_001, 1, 65_536, 16_383, 1_048_576 + 3]
    pieces, at = [], 0
    for n in sizes:
        pieces.append(body[at:at + n])
        at += n
    pieces.append(body[at:])
    wire = chunked(*pieces, ext=";x=1", trailers="X-T: 1\r\n")
    with server.connect(timeout=30) as c:
        c.send(build_request("POST", "/upload", headers={"Transfer-Encoding": "chunked"}, port=server.port))
        cut = 0
        for step in (5, 70_000, 3, 123_457, 2, 400_000, 9, 65_536, 1_000_000):
            c.sock.sendall(wire[cut:cut + step])
            cut += step
            time.sleep(0.01)
        c.sock.sendall(wire[cut:])
        r = c.read_response()
    res = json.loads(r.body)
    assert res["bytes"] == len(body)
    assert res["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_medium_content_length(server):
    body = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4
    with server.connect(timeout=30) as c:
        r = c.request("POST", "/upload", body=body)
    res = json.loads(r.body)
    assert res["bytes"] == len(body)
    assert res["sha256"] == hashlib.sha256(body).hexdigest()


def test_echo_medium_chunked_both_ways(server):
    body = bytes(range(256)) * 2000
    with server.connect(timeout=30) as c:
        r = c.request("POST", "/echo", body=chunked(body[:100_000], body[100_000:]),
                      headers={"Transfer-Encoding": "chunked"})
    assert r.body == body
