"""receive() and send(): http.disconnect, send after the client left, the
http.response.pathsend and http.response.trailers extensions."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid

import pytest

from tests.apps.asgi_basic import pattern_block
from tests.asgi_helpers import ASGI, ASGI_ARGS, stats, wait_flag
from tests.conftest import build_request


@pytest.fixture
def server(start_server):
    return start_server(ASGI, *ASGI_ARGS)


def _still_serving(srv):
    with srv.connect() as c:
        r = c.request("GET", "/")
    assert r.status == 200 and r.body == b"hello", r


# ------------------------------------------------------------------------------ http.disconnect

@pytest.mark.parametrize("how", ["close", "rst"])
def test_disconnect_while_app_waits_in_receive(server, how):
    """The app sent nothing and sits in receive(): closing the client must deliver http.disconnect
    within 1 s."""
    tag = uuid.uuid4().hex
    c = server.connect()
    c.send(build_request("GET", f"/disconnect?tag={tag}", port=server.port))
    flag = wait_flag(server, tag, lambda f: f.get("state") == "waiting")
    assert flag == {"state": "waiting"}, flag
    time.sleep(0.2)
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    closed_at = time.time()
    c.close()
    flag = wait_flag(server, tag, lambda f: f.get("state") != "waiting", timeout=10)
    assert flag.get("state") == "disconnected", f"app never saw http.disconnect: {flag}"
    assert flag["msgs"][0] == "http.request" and flag["msgs"][-1] == "http.disconnect", flag
    delay = flag["at"] - closed_at
    print(f"\nhttp.disconnect ({how}) reached the app {delay * 1000:.0f} ms after the client closed")
    assert delay < 1.0, f"http.disconnect reached the app {delay:.2f}s after the client closed"
    _still_serving(server)


def test_disconnect_with_body_pending(server):
    """The client announced a body, sent half and left: the app's receive() must end with
    http.disconnect (not hang, not a fake complete body)."""
    tag = uuid.uuid4().hex
    c = server.connect()
    c.send(build_request("POST", f"/disconnect?tag={tag}", headers={"Content-Length": "1000"},
                         port=server.port) + b"x" * 100)
    wait_flag(server, tag, lambda f: f.get("state") == "waiting")
    time.sleep(0.3)
    closed_at = time.time()
    c.close()
    flag = wait_flag(server, tag, lambda f: f.get("state") != "waiting", timeout=10)
    assert flag.get("state") == "disconnected", flag
    assert flag["at"] - closed_at < 1.0
    _still_serving(server)


def test_receive_after_response_returns_disconnect(server):
    """After the response is complete, receive() must return http.disconnect promptly
    (ASGI HTTP spec), not block until the connection closes."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/receive-after-response?tag={tag}")
        assert r.body == b"done"
        flag = wait_flag(server, tag, lambda f: "type" in f, timeout=15)
        # connection still open (keep-alive) while the app's receive() returned
        assert c.request("GET", "/").body == b"hello"
    assert flag.get("type") == "http.disconnect", flag
    assert flag["elapsed"] < 2.0, flag


def test_send_after_client_gone_raises_or_stops(server):
    """A client reading a never-ending stream goes away: the app's send() must raise (ASGI spec 2.4:
    a subclass of OSError) so it stops, rather than streaming into the void."""
    tag = uuid.uuid4().hex
    c = server.connect()
    c.send(build_request("GET", f"/stream-forever?tag={tag}", port=server.port))
    c.read_head()
    c.read_exact(256 * 1024)
    c.close()
    flag = wait_flag(server, tag, lambda f: f.get("state") != "streaming", timeout=10)
    assert flag.get("state") == "send-raised", f"the app kept streaming after the client left: {flag}"
    assert "OSError" in flag["mro"], f"send() after disconnect should raise an OSError subclass: {flag}"
    _still_serving(server)


# ------------------------------------------------------------------------------ pathsend

@pytest.mark.parametrize("size,cl", [(0, ""), (1, ""), (100_000, ""), (100_000, "1"), (3 * 1024 * 1024 + 7, "")])
def test_pathsend(server, tmp_path, size, cl):
    block = pattern_block()
    data = (block * (size // len(block) + 1))[:size]
    f = tmp_path / "payload.bin"
    f.write_bytes(data)
    with server.connect(timeout=30) as c:
        r = c.request("GET", f"/pathsend?path={f}&cl={cl}")
        assert r.status == 200, r
        assert r.complete
        assert len(r.body) == size and r.body == data
        if r.framing == "length":
            assert r.header("content-length") == str(size)
        assert c.request("GET", "/").body == b"hello", "connection unusable after pathsend"


def test_pathsend_head(server, tmp_path):
    f = tmp_path / "payload.bin"
    f.write_bytes(b"p" * 5000)
    with server.connect() as c:
        r = c.request("HEAD", f"/pathsend?path={f}&cl=1")
        assert r.status == 200 and r.header("content-length") == "5000"
        assert c.request("GET", "/query?after").body == b"q=after", "HEAD + pathsend leaked the file"


def test_pathsend_http10(server, tmp_path):
    f = tmp_path / "payload.bin"
    f.write_bytes(b"q" * 70000)
    with server.connect() as c:
        c.send(f"GET /pathsend?path={f} HTTP/1.0\r\n\r\n".encode())
        r = c.read_response()
    assert r.status == 200 and r.body == b"q" * 70000
    assert not r.has_header("transfer-encoding")


# ------------------------------------------------------------------------------ trailers

def _expected_checksum(n: int) -> str:
    return hashlib.sha256(b"".join(b"part-%d;" % i for i in range(n))).hexdigest()


def test_trailers_sent_when_requested(server):
    with server.connect() as c:
        r = c.request("GET", "/trailers?n=4", headers={"TE": "trailers"})
        assert r.status == 200
        assert r.framing == "chunked", f"a response with trailers must be chunked: {r!r}"
        assert r.body == b"part-0;part-1;part-2;part-3;"
        tr = {k.lower(): v for k, v in r.trailers}
        assert tr.get("x-checksum") == _expected_checksum(4), r.trailers
        assert tr.get("x-count") == "4"
        assert not r.has_header("x-checksum"), "trailer fields must not be sent as headers"
        assert c.request("GET", "/").body == b"hello"


def test_trailers_dropped_without_te(server):
    with server.connect() as c:
        r = c.request("GET", "/trailers?n=2")
        assert r.status == 200 and r.body == b"part-0;part-1;"
        assert r.trailers == [], f"trailers sent to a client that did not ask for them: {r.trailers}"
        assert not r.has_header("x-checksum")
        assert c.request("GET", "/").body == b"hello"


def test_trailers_http10_no_chunked(server):
    with server.connect() as c:
        c.send(b"GET /trailers?n=2 HTTP/1.0\r\nTE: trailers\r\n\r\n")
        r = c.read_response()
    assert r.status == 200 and r.body == b"part-0;part-1;"
    assert not r.has_header("transfer-encoding")


def test_trailers_pipelined(server):
    data = build_request("GET", "/trailers?n=1", headers={"TE": "trailers"}, port=server.port) * 3
    data += build_request("GET", "/query?end", port=server.port)
    with server.connect() as c:
        c.send(data)
        for _ in range(3):
            r = c.read_response()
            assert r.body == b"part-0;" and dict((k.lower(), v) for k, v in r.trailers)["x-count"] == "1"
        assert c.read_response().body == b"q=end"
