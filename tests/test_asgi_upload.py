"""The ASGI request body, message by message: a receive() takes every body byte that is in (the
read buffer's, then the socket's) up to a cap of 1 MiB per http.request message, and completes at
once when there are any; the rest stays in the socket until the app asks again (backpressure).
Pinned here: message sizes (bounded by the cap, far fewer than one per 16 KiB socket read),
more_body on exactly the last message, memory while the app does not read, chunked bodies in odd
pieces, the client leaving mid-upload (http.disconnect), 100 Continue on the first receive(), and
the same over TLS. (The 100 MiB flat-memory upload is tests/test_asgi_big.py.)"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid

import pytest

from tests.apps.asgi_basic import pattern_block
from tests.asgi_helpers import start_asgi, stats, wait_flag
from tests.conftest import build_request, chunked, read_proc_status
from tests.test_tls import TLSConn, certs, client_ctx, needs_tls  # noqa: F401  (certs: a fixture)

MiB = 1024 * 1024
CAP = 1 * MiB          # body bytes in one http.request message at most (asgi/handler.cpp kMaxReceive)
OLD_READ = 16 * 1024   # one socket read: what a message carried before
BLOCK = pattern_block()


@pytest.fixture
def server(start_server):
    return start_asgi(start_server)


def body_of(size: int) -> bytes:
    reps = size // len(BLOCK) + 1
    return (BLOCK * reps)[:size]


def check_messages(res: dict, body: bytes) -> list[int]:
    """The /upload-log report: the whole body, every message within the cap, more_body True on
    every message but the last, and no empty message before the end."""
    assert res["bytes"] == len(body)
    assert res["sha256"] == hashlib.sha256(body).hexdigest()
    msgs = res["messages"]
    sizes = [n for n, _ in msgs]
    assert all(n <= CAP for n in sizes), f"a message over the {CAP} byte cap: {max(sizes)}"
    assert [more for _, more in msgs] == [True] * (len(msgs) - 1) + [False], msgs
    assert all(n > 0 for n in sizes[:-1]), f"an empty message before the end: {msgs}"
    return sizes


def post_in_thread(c, head: bytes, body: bytes, pieces: int = 64 * 1024) -> threading.Thread:
    """Send head + body from a thread (sendall blocks while the server is not reading)."""
    def run():
        try:
            c.sock.sendall(head)
            for i in range(0, len(body), pieces):
                c.sock.sendall(body[i:i + pieces])
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def upload(srv, target: str, body: bytes, headers: dict | None = None, timeout: float = 60) -> dict:
    hdrs = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream", **(headers or {})}
    with srv.connect(timeout=timeout) as c:
        t = post_in_thread(c, build_request("POST", target, headers=hdrs, port=srv.port), body)
        r = c.read_response()
        t.join(timeout)
    assert r.status == 200, r
    return json.loads(r.body)


# ------------------------------------------------------------------------------ message sizes

@pytest.mark.parametrize("pace", ["eager", "slow-start", "slow"])
def test_messages_bounded_by_cap(server, pace):
    """8 MiB in messages of at most 1 MiB, more_body right; the app eager (it may get what each TCP
    segment brings: small messages are right then), late to start, or slow between messages. An app
    slower than the client gets far fewer messages than one per 16 KiB read (the old design: ~512)."""
    q = {"eager": "", "slow-start": "first=0.5", "slow": "first=0.3&each=0.02"}[pace]
    body = body_of(8 * MiB + 123)
    sizes = check_messages(upload(server, f"/upload-log?{q}", body), body)
    if pace != "eager":
        assert max(sizes) > 4 * OLD_READ, sizes
    if pace == "slow":
        assert len(sizes) <= len(body) // (4 * OLD_READ), \
            f"{len(sizes)} messages for 8 MiB: the body still arrives about one socket read at a time"


def test_message_takes_what_is_buffered_up_to_the_cap(server):
    """The app starts reading only after the client has sent what the socket takes: the messages
    then carry far more than one read each, never more than the cap."""
    body = body_of(3 * MiB)
    sizes = check_messages(upload(server, "/upload-log?first=1.0", body), body)
    assert max(sizes) > 4 * OLD_READ, sizes


def test_small_body_one_message(server):
    with server.connect() as c:
        r = c.request("POST", "/upload-log", body=b"0123456789")
    assert json.loads(r.body)["messages"] == [[10, False]]


def test_more_body_false_on_the_message_with_the_last_bytes(server):
    """Content-Length: the message carrying the last byte says more_body False (no empty message
    after it), also when that byte arrives on its own, later."""
    body = body_of(2 * MiB + 5)
    with server.connect(timeout=30) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(build_request("POST", "/upload-log", headers={"Content-Length": str(len(body))},
                             port=server.port))
        c.sock.sendall(body[:-1])
        time.sleep(0.5)
        c.sock.sendall(body[-1:])
        r = c.read_response()
    res = json.loads(r.body)
    sizes = check_messages(res, body)
    assert sizes[-1] == 1, res["messages"]


def test_chunked_last_chunk_with_terminator_is_the_last_message(server):
    """A chunked body all in before the app reads it, terminator included: one message, with
    more_body False."""
    data = body_of(90_000)
    with server.connect() as c:
        c.send(build_request("POST", "/upload-log?first=0.5", headers={"Transfer-Encoding": "chunked"},
                             port=server.port) + chunked(data[:30_000], data[30_000:]))
        r = c.read_response()
    res = json.loads(r.body)
    check_messages(res, data)
    assert res["messages"] == [[len(data), False]]


# ------------------------------------------------------------------------------ chunked in odd pieces

def test_chunked_upload_in_odd_pieces(server):
    """Chunk sizes around the read buffer and the cap, chunk-size lines, extensions and CRLFs split
    across TCP segments, sent with pauses: the body arrives whole, every message within the cap."""
    sizes = [1, 7, 4093, 16383, 16384, 16385, 65537, CAP - 1, CAP, CAP + 3, 3 * MiB + 11, 2]
    pieces = []
    total = bytearray()
    for i, n in enumerate(sizes):
        data = body_of(n + i)[i:]
        total += data
        pieces.append(b"%x" % n + (b";ext=1" if i % 3 == 0 else b"") + b"\r\n" + data + b"\r\n")
    wire = b"".join(pieces) + b"0\r\nx-trailer: 1\r\n\r\n"
    with server.connect(timeout=60) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(build_request("POST", "/upload-log?each=0.001", headers={"Transfer-Encoding": "chunked"},
                             port=server.port))
        # odd cuts: 1, 2, 3 bytes (inside size lines and CRLFs), then bigger odd runs
        pos, cuts = 0, [1, 2, 3, 5, 8, 13, 4099, 70001, 333333]
        k = 0
        while pos < len(wire):
            n = cuts[k % len(cuts)]
            c.sock.sendall(wire[pos:pos + n])
            pos += n
            k += 1
            if k % 7 == 0:
                time.sleep(0.002)
        r = c.read_response()
    assert r.status == 200, r
    check_messages(json.loads(r.body), bytes(total))


# ------------------------------------------------------------------------------ memory / backpressure

@pytest.mark.heavy
def test_app_not_reading_pauses_the_upload(start_server):
    """While the app has not asked for the body, the server must not read it into memory: the
    client's send stalls, server RSS stays flat; then the app reads all of it."""
    srv = start_asgi(start_server, fresh=True)
    pid = stats(srv)["pid"]
    size = 64 * MiB
    tag = uuid.uuid4().hex
    before = read_proc_status(pid)["VmRSS"]
    sent = [0]
    with srv.connect(timeout=60) as c:
        c.send(build_request("POST", f"/upload-log?first=2.0&tag={tag}", headers={"Content-Length": str(size)},
                             port=srv.port))

        def run():
            try:
                while sent[0] < size:
                    n = min(len(BLOCK), size - sent[0])
                    c.sock.sendall(BLOCK[:n])
                    sent[0] += n
            except OSError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        peak = before
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, read_proc_status(pid)["VmRSS"])
            time.sleep(0.05)
        stalled_at = sent[0]
        r = c.read_response()
        t.join(60)
        peak = max(peak, read_proc_status(pid)["VmRSS"])
    assert r.status == 200, r
    res = json.loads(r.body)
    assert res["bytes"] == size
    assert stalled_at < size // 2, f"the client sent {stalled_at} bytes to an app that was not reading"
    assert all(n <= CAP for n, _ in res["messages"])
    assert peak - before < 48 * MiB, f"server RSS grew by {(peak - before) / MiB:.1f} MiB"


# ------------------------------------------------------------------------------ the client leaves

@pytest.mark.parametrize("how", ["close", "rst"])
@pytest.mark.parametrize("when", ["reading", "not-reading"])
def test_client_vanishes_mid_upload(server, how, when):
    """The client announced 16 MiB, sent 3 MiB and left: the app, waiting in receive() or coming
    back to it later, gets http.disconnect (not a fake end of body); the server keeps serving."""
    tag = uuid.uuid4().hex
    q = f"tag={tag}" + ("&first=1.0" if when == "not-reading" else "")
    c = server.connect(timeout=30)
    c.sock.sendall(build_request("POST", f"/upload-log?{q}", headers={"Content-Length": str(16 * MiB)},
                                 port=server.port))
    if when == "reading":
        c.sock.sendall(body_of(3 * MiB))
        wait_flag(server, tag, lambda f: f.get("bytes", 0) >= 3 * MiB - 256 * 1024)
    else:  # the app sleeps: the send stalls once the socket buffers are full
        post_in_thread(c, b"", body_of(3 * MiB)).join(0.5)
    time.sleep(0.2)
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    closed_at = time.time()
    c.close()
    flag = wait_flag(server, tag, lambda f: f.get("state") in ("disconnected", "done"), timeout=10)
    assert flag.get("state") == "disconnected", f"the app never saw http.disconnect: {flag}"
    assert flag["bytes"] <= 3 * MiB
    if when == "reading":
        assert flag["at"] - closed_at < 1.0, "http.disconnect came late"
    with server.connect() as c2:
        assert c2.request("GET", "/").body == b"hello"


# ------------------------------------------------------------------------------ 100-continue

def test_100_continue_on_first_receive_then_large_body(server):
    """Expect: 100-continue with a 2 MiB body: no 100 before the app's first receive() (it waits
    0.6 s), then the body, read in bounded messages; the next request on the connection works."""
    body = body_of(2 * MiB)
    with server.connect(timeout=30) as c:
        c.send(build_request("POST", "/upload-log?first=0.6", headers={"Expect": "100-continue",
                                                                       "Content-Length": str(len(body))},
                             port=server.port))
        early = c.silent_for(0.3)
        assert early == b"", f"the server answered before the app called receive(): {early!r}"
        c.settimeout(15)
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100, interim
        c.sock.sendall(body)
        r = c.read_response()
        assert r.status == 200, r
        check_messages(json.loads(r.body), body)
        assert c.request("GET", "/").body == b"hello"


def test_100_continue_not_sent_when_app_never_receives(server):
    with server.connect() as c:
        c.send(build_request("POST", "/noread", headers={"Expect": "100-continue", "Content-Length": "1000"},
                             port=server.port))
        r = c.read_response(keep_interim=True)
    assert r.status == 200 and r.body == b"noread", r


# ------------------------------------------------------------------------------ limits

def test_chunked_over_limit_while_app_waits_gets_413(start_server):
    """--max-body-size: a chunked body that crosses the limit after the app is already waiting in
    receive(): 413 at once (not a wait for the body timeout), the app sees http.disconnect."""
    srv = start_asgi(start_server, "--max-body-size", "100000")
    tag = uuid.uuid4().hex
    with srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(build_request("POST", f"/upload-log?tag={tag}", headers={"Transfer-Encoding": "chunked"},
                             port=srv.port) + b"10000\r\n" + b"a" * 0x10000 + b"\r\n")
        wait_flag(srv, tag, lambda f: f.get("bytes", 0) == 0x10000)
        time.sleep(0.2)
        t0 = time.monotonic()
        c.send(b"10000\r\n" + b"b" * 0x10000 + b"\r\n")
        r = c.read_response()
        elapsed = time.monotonic() - t0
        closed, _ = c.wait_closed(timeout=5)
    assert r.status == 413, r
    assert elapsed < 3, f"413 took {elapsed:.1f} s"
    assert closed
    assert wait_flag(srv, tag, lambda f: f.get("state") == "disconnected").get("state") == "disconnected"


# ------------------------------------------------------------------------------ TLS

@needs_tls
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_tls_upload_messages(start_server, certs, framing):
    """The same reads through TLS (one record per SSL_read): whole body, bounded messages, the
    connection still good afterwards."""
    srv = start_server("tests.apps.asgi_basic:app", "--interface", "asgi", "--workers", "1",
                       "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key)
    body = body_of(5 * MiB + 17)
    if framing == "chunked":
        hdrs = {"Transfer-Encoding": "chunked"}
        wire = chunked(*[body[i:i + 300_001] for i in range(0, len(body), 300_001)])
    else:
        hdrs = {"Content-Length": str(len(body))}
        wire = body
    with TLSConn(srv.port, client_ctx(certs), timeout=60) as c:
        c.send(build_request("POST", "/upload-log?first=0.3", headers=hdrs, port=srv.port))
        for i in range(0, len(wire), 256 * 1024):
            c.send(wire[i:i + 256 * 1024])
        r = c.read_response()
        assert r.status == 200, r
        check_messages(json.loads(r.body), body)
        assert c.request("GET", "/").body == b"hello"
