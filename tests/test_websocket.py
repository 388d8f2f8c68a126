"""WebSocket (RFC 6455) for ASGI apps, against a real server: the `websockets` client library for the
normal paths, raw sockets for handshakes and protocol errors."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import socket
import struct
import time

import pytest

from tests.asgi_helpers import ASGI_ARGS
from tests.conftest import HOST

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect as ws_connect  # noqa: E402

WS_APP = "tests.apps.asgi_ws:app"
FASTAPI_WS = "tests.apps.asgi_ws_fastapi:app"


@pytest.fixture
def srv(start_server):
    return start_server(WS_APP, *ASGI_ARGS)


def url(s, path: str) -> str:
    return f"ws://{HOST}:{s.port}{path}"


def connect(s, path="/echo", **kw):
    kw.setdefault("proxy", None)
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 15)
    return ws_connect(url(s, path), **kw)


# ------------------------------------------------------------------ raw frames

KEY = base64.b64encode(b"0123456789abcdef").decode()


def client_frame(first: int, payload: bytes, mask: bool = True, key: bytes = b"\x11\x22\x33\x44",
                 length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, m | n])
    elif n < 65536:
        head = bytes([first, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    if not n:
        return head + key
    mask_bytes = (key * (len(payload) // 4 + 1))[:len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(mask_bytes, "big")
    return head + key + masked.to_bytes(len(payload), "big")


class RawWs:
    """A WebSocket client on a raw socket: handshake, frames in, frames out."""

    def __init__(self, s, path="/echo", extra_headers: str = "", expect=101, ssl_context=None):
        self.sock = socket.create_connection((HOST, s.port), timeout=15)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=HOST)
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed during the handshake: {self.buf!r}"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if expect is not None:
            assert self.status == expect, head

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def frame(self):
        """(fin, opcode, payload), or None at EOF."""
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames are never masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        assert self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect_close(self) -> tuple[int, bytes]:
        """Reads frames until the close frame; returns (code, reason) and checks the server then closes
        the TCP connection."""
        while True:
            f = self.frame()
            assert f is not None, "EOF before a close frame"
            if f[1] == 8:
                break
            assert f[1] in (1, 2, 9, 10), f
        payload = f[2]
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        self.sock.settimeout(10)
        assert self.frame() is None, "the server should close the TCP connection after its close frame"
        return code, payload[2:]

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------ echo

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


@pytest.mark.parametrize("compression", ["deflate", None], ids=["deflate", "plain"])
def test_echo_sizes(srv, compression):
    with connect(srv, compression=compression) as ws:
        exts = [type(e).__name__ for e in ws.protocol.extensions]
        assert exts == (["PerMessageDeflate"] if compression else [])
        for n in SIZES:
            data = os.urandom(n) if n < (1 << 20) else (b"\x00\x01abc" * (n // 5 + 1))[:n]
            ws.send(data)
            got = ws.recv(timeout=60)
            assert isinstance(got, bytes) and got == data, n
            text = ("héllo wörld ✓ " * (n // 15 + 1))[:n] if n < (1 << 20) else "x" * n
            ws.send(text)
            got = ws.recv(timeout=60)
            assert isinstance(got, str) and got == text, n


def test_fragmented_messages(srv):
    with connect(srv) as ws:
        ws.send(["frag", "mented ", "tëxt"])
        assert ws.recv() == "fragmented tëxt"
        ws.send([b"a" * 70000, b"b", b"c" * 10])
        assert ws.recv() == b"a" * 70000 + b"b" + b"c" * 10
    # Raw: a text message split inside a UTF-8 sequence, with a ping in the middle.
    r = RawWs(srv)
    euro = "€".encode()
    r.send(client_frame(0x01, b"pay " + euro[:1]) + client_frame(0x89, b"mid") +
           client_frame(0x00, euro[1:2]) + client_frame(0x80, euro[2:] + b"!"))
    assert r.frame() == (True, 0xA, b"mid")
    assert r.frame() == (True, 0x1, "pay €!".encode())
    r.send(client_frame(0x88, struct.pack("!H", 1000)))
    assert r.expect_close()[0] == 1000


def test_ping_pong(srv):
    with connect(srv) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(10)
        ws.send("still fine")
        assert ws.recv() == "still fine"
    r = RawWs(srv)
    r.send(client_frame(0x89, b"x" * 125))
    assert r.frame() == (True, 0xA, b"x" * 125)
    r.send(client_frame(0x8A, b"unsolicited pong is ignored"))
    r.send(client_frame(0x81, b"ok"))
    assert r.frame() == (True, 0x1, b"ok")
    r.close()


def test_server_pings_and_times_out(start_server):
    s = start_server(WS_APP, *ASGI_ARGS, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.5")
    # A client that answers pings stays connected.
    with connect(s) as ws:
        time.sleep(1.5)
        ws.send("alive")
        assert ws.recv() == "alive"
    # A client that never answers is closed with 1011.
    r = RawWs(s)
    f = r.frame()
    assert f[1] == 0x9, f
    t0 = time.monotonic()
    code, reason = r.expect_close()
    assert code == 1011 and b"ping" in reason
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------ closing

def last_disconnect(s) -> str:
    with connect(s, "/last-disconnect") as ws:
        return ws.recv()


def test_client_closes_with_code_and_reason(srv):
    with connect(srv, "/disconnect-info") as ws:
        ws.close(4321, "client says bye")
        assert ws.close_code == 4321  # the server echoed the code
    time.sleep(0.3)
    assert last_disconnect(srv) == repr({"type": "websocket.disconnect", "code": 4321, "reason": "client says bye"})
    # A close frame without a code: the app sees 1005 and the server answers with an empty close.
    r = RawWs(srv, "/disconnect-info")
    r.send(client_frame(0x88, b""))
    assert r.expect_close() == (1005, b"")
    time.sleep(0.3)
    assert "'code': 1005" in last_disconnect(srv)


def test_client_vanishes(srv):
    r = RawWs(srv, "/disconnect-info")
    r.close()  # no close frame
    time.sleep(0.5)
    assert "'code': 1006" in last_disconnect(srv)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4001])
def test_app_closes(srv, code):
    r = RawWs(srv, f"/close/{code}")
    # The server waits for our close frame; answering it completes the handshake.
    f = r.frame()
    assert f[1] == 8 and struct.unpack("!H", f[2][:2])[0] == code and f[2][2:] == b"bye from app"
    r.send(client_frame(0x88, f[2][:2]))
    r.sock.settimeout(10)
    assert r.frame() is None
    with connect(srv, f"/close/{code}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.rcvd.code == code and ei.value.rcvd.reason == "bye from app"


def test_app_returns_or_raises_after_accept(srv):
    with connect(srv, "/return") as ws:
        with pytest.raises(websockets.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.rcvd.code == 1000
    off = srv.log_size()
    with connect(srv, "/raise-after") as ws:
        with pytest.raises(websockets.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.rcvd.code == 1011
    srv.wait_for_log("boom after accept", off)


def test_close_timeout_when_peer_never_answers(start_server):
    s = start_server(WS_APP, *ASGI_ARGS, "--ws-ping-interval", "0")
    r = RawWs(s, "/close/1000")
    f = r.frame()
    assert f[1] == 8
    r.sock.settimeout(15)
    t0 = time.monotonic()
    assert r.frame() is None  # closed after the close timeout (5 s) without our answer
    assert 3 < time.monotonic() - t0 < 12


# ------------------------------------------------------------------ protocol errors

ERRORS = {
    "unmasked": (client_frame(0x81, b"hi", mask=False), 1002),
    "rsv1_without_extension": (client_frame(0xC1, b"hi"), 1002),
    "rsv2": (client_frame(0xA1, b"hi"), 1002),
    "rsv3": (client_frame(0x91, b"hi"), 1002),
    "opcode_3": (client_frame(0x83, b"hi"), 1002),
    "opcode_11": (client_frame(0x8B, b""), 1002),
    "control_over_125": (client_frame(0x89, b"p" * 126), 1002),
    "fragmented_ping": (client_frame(0x09, b"p"), 1002),
    "continuation_first": (client_frame(0x80, b"x"), 1002),
    "new_message_in_fragments": (client_frame(0x01, b"a") + client_frame(0x81, b"b"), 1002),
    "invalid_utf8": (client_frame(0x81, b"ok \xff"), 1007),
    "invalid_utf8_in_fragments": (client_frame(0x01, b"\xe2\x82") + client_frame(0x80, b"("), 1007),
    "surrogate": (client_frame(0x81, b"\xed\xa0\x80"), 1007),
    "bad_close_code": (client_frame(0x88, struct.pack("!H", 1005)), 1002),
    "close_one_byte": (client_frame(0x88, b"\x03"), 1002),
    "close_bad_reason": (client_frame(0x88, struct.pack("!H", 1000) + b"\xff"), 1007),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_protocol_errors(srv, name):
    bad, code = ERRORS[name]
    r = RawWs(srv, "/disconnect-info")
    r.send(bad)
    got, _ = r.expect_close()
    assert got == code
    time.sleep(0.2)
    # The app saw no data, only the disconnect with the code the server closed with.
    assert last_disconnect(srv) == repr({"type": "websocket.disconnect", "code": code,
                                         "reason": last_disconnect_reason(srv)})


def last_disconnect_reason(s) -> str:
    text = last_disconnect(s)
    return eval(text)["reason"]  # noqa: S307 - our own repr()


def test_protocol_error_after_valid_message(srv):
    r = RawWs(srv)
    r.send(client_frame(0x81, b"first"))
    assert r.frame() == (True, 1, b"first")
    r.send(client_frame(0x81, b"\xc3\x28") + client_frame(0x81, b"never"))
    assert r.expect_close()[0] == 1007


def test_oversized_message(start_server):
    s = start_server(WS_APP, *ASGI_ARGS, "--ws-max-size", "1000")
    with connect(s) as ws:
        ws.send(b"x" * 1000)
        assert ws.recv() == b"x" * 1000
        ws.send(b"x" * 1001)
        with pytest.raises(websockets.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.rcvd.code == 1009
    # Fragments adding up to too much; the length alone is enough (no payload sent).
    r = RawWs(s)
    r.send(client_frame(0x02, b"y" * 600) + client_frame(0x80, b"y" * 600))
    assert r.expect_close()[0] == 1009
    r = RawWs(s)
    r.send(client_frame(0x82, b"", length=1 << 40)[:14])
    assert r.expect_close()[0] == 1009
    # Compressed: the limit applies to the inflated size (a zip bomb stops at max size).
    with connect(s, compression="deflate") as ws:
        ws.send(b"\x00" * 5000)  # compresses to a few bytes
        with pytest.raises(websockets.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.rcvd.code == 1009


# ------------------------------------------------------------------ handshake and HTTP answers

def raw_http(s, path: str, headers: str) -> tuple[int, dict, bytes]:
    with socket.create_connection((HOST, s.port), timeout=15) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\r\n0\r\n\r\n"):
                break
            if b"\r\n\r\n" in data and b"chunked" not in data.split(b"\r\n\r\n")[0].lower():
                head, body = data.split(b"\r\n\r\n", 1)
                hs = {k.lower(): v.strip() for k, v in
                      (ln.split(":", 1) for ln in head.decode("latin-1").split("\r\n")[1:])}
                if len(body) >= int(hs.get("content-length", "0")):
                    break
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hs = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    if hs.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            size_line, body = body.split(b"\r\n", 1)
            n = int(size_line, 16)
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        body = out
    return int(lines[0].split()[1]), hs, body


UPGRADE = f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"


def test_accept_header_and_subprotocol(srv):
    r = RawWs(srv)
    assert r.headers["sec-websocket-accept"] == base64.b64encode(
        __import__("hashlib").sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert r.headers["upgrade"].lower() == "websocket"
    r.close()
    with connect(srv, "/sub", subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-extra"] == "1"
        assert ws.recv() == "chat,superchat"


def test_scope(srv):
    import json

    with connect(srv, "/scope?a=1&b=%20", compression=None) as ws:
        scope = json.loads(ws.recv())
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope" and scope["raw_path"] == "/scope"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["http_version"] == "1.1"
    assert scope["subprotocols"] == []
    assert "websocket.http.response" in scope["extensions"]
    assert "method" not in scope
    assert scope["asgi"]["version"] == "3.0"
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == srv.port
    assert scope["root_path"] == ""
    assert ["upgrade", "websocket"] in [[k, v.lower()] for k, v in scope["headers"]]


def test_deny_with_http_response(srv):
    status, headers, body = raw_http(srv, "/deny", UPGRADE)
    assert status == 401 and headers["x-denied"] == "yes" and body == b"denied by app"
    with pytest.raises(websockets.InvalidStatus) as ei:
        with connect(srv, "/deny"):
            pass
    assert ei.value.response.status_code == 401


def test_close_before_accept_is_403(srv):
    status, _, _ = raw_http(srv, "/reject", UPGRADE)
    assert status == 403
    off = srv.log_size()
    status, _, _ = raw_http(srv, "/raise-before", UPGRADE)
    assert status == 500
    srv.wait_for_log("boom before accept", off)


def test_bad_handshakes(srv):
    status, headers, _ = raw_http(srv, "/echo", UPGRADE.replace("Version: 13", "Version: 8"))
    assert status == 426 and headers["sec-websocket-version"] == "13"
    status, _, _ = raw_http(srv, "/echo", UPGRADE.replace(KEY, "short"))
    assert status == 400
    # Not a WebSocket upgrade at all: plain HTTP to the app.
    status, _, body = raw_http(srv, "/echo", "Upgrade: h2c\r\nConnection: Upgrade\r\n")
    assert status == 200 and body == b"plain http /echo"


def test_ws_none_answers_plain_http(start_server):
    s = start_server(WS_APP, *ASGI_ARGS, "--ws", "none")
    status, _, body = raw_http(s, "/echo", UPGRADE)
    assert status == 200 and body == b"plain http /echo"


def test_wsgi_app_gets_no_upgrade(start_server):
    s = start_server("tests.apps.basic:app")
    status, headers, _ = raw_http(s, "/", UPGRADE + "Connection: close\r\n")
    assert status != 101 and "sec-websocket-accept" not in headers


# ------------------------------------------------------------------ backpressure

def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_send_backpressure(srv):
    """The app sends 200 x 1 MiB to a client that does not read for a while: send() waits instead of
    buffering everything in the server."""
    before = rss_kib(srv.proc.pid)
    with connect(srv, "/flood", compression=None, max_queue=1) as ws:
        ws.send("200 1048576")
        time.sleep(1.5)
        grown = rss_kib(srv.proc.pid) - before
        n = 0
        while True:
            m = ws.recv(timeout=60)
            if m == "done":
                break
            assert len(m) == 1 << 20
            n += 1
        assert n == 200
    assert grown < 100 * 1024, f"server RSS grew by {grown} KiB while the client was not reading"


def test_receive_backpressure(srv):
    """A client floods an app that reads slowly: the server stops reading instead of queueing."""
    before = rss_kib(srv.proc.pid)
    r = RawWs(srv, "/slow")
    msg = client_frame(0x82, b"z" * 65536)
    r.sock.setblocking(False)
    sent = 0
    t0 = time.monotonic()
    total = len(msg) * 2000
    data = msg * 2000
    while sent < total and time.monotonic() - t0 < 3:
        try:
            sent += r.sock.send(data[sent:sent + 1 << 20])
        except BlockingIOError:
            time.sleep(0.01)
    assert sent < total, "the server should push back on a fast sender"
    grown = rss_kib(srv.proc.pid) - before
    assert grown < 60 * 1024, grown
    r.close()


# ------------------------------------------------------------------ frameworks, scale

def test_fastapi_websocket(start_server):
    pytest.importorskip("fastapi")
    s = start_server(FASTAPI_WS, *ASGI_ARGS)
    with connect(s, "/ws/alice?greeting=hi") as ws:
        assert ws.recv() == "hi alice"
        ws.send("ping")
        assert ws.recv() == "alice said: ping"
        ws.send('{"n": 41}')
        assert ws.recv() == '{"n":42}'
        ws.send(b"\x01\x02")
        assert ws.recv() == b"\x02\x01"
        ws.close()
    time.sleep(0.3)
    with connect(s, "/ws-last") as ws:
        assert ws.recv() == "1000"
    with pytest.raises(websockets.InvalidStatus) as ei:
        with connect(s, "/ws-reject"):
            pass
    assert ei.value.response.status_code == 403


def test_thousand_connections_one_worker(start_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    s = start_server(WS_APP, *ASGI_ARGS, "--limit-concurrency", "5000")  # its own process, limit raised

    async def one(i: int):
        async with websockets.connect(url(s, "/echo"), proxy=None, compression=None, open_timeout=60,
                                      ping_interval=None) as ws:
            for k in range(100):
                m = f"{i}:{k}"
                await ws.send(m)
                assert await ws.recv() == m
            return 1

    async def main():
        return await asyncio.gather(*(one(i) for i in range(1000)))

    t0 = time.monotonic()
    assert sum(asyncio.run(main())) == 1000
    assert time.monotonic() - t0 < 60


# ------------------------------------------------------------------ shutdown, TLS

def test_graceful_shutdown_closes_with_1001():
    from tests.asgi_helpers import kill_group, luath_cmd, spawn, stop, wait_listening
    from tests.conftest import free_port

    port = free_port()
    proc = spawn(luath_cmd(WS_APP, port, *ASGI_ARGS))
    try:
        wait_listening(proc, port)
        with ws_connect(f"ws://{HOST}:{port}/echo", proxy=None, open_timeout=15) as ws:
            ws.send("before")
            assert ws.recv() == "before"
            t0 = time.monotonic()
            err = stop(proc)  # SIGTERM: open WebSockets get a close frame 1001 (going away)
            assert time.monotonic() - t0 < 10, err
            with pytest.raises(websockets.ConnectionClosed) as ei:
                ws.recv(timeout=15)
            assert ei.value.rcvd is not None and ei.value.rcvd.code == 1001
    finally:
        kill_group(proc)


def _wss_server(start_server, tmp_path, *extra: str):
    """A TLS WebSocket server and a client context that trusts it."""
    trustme = pytest.importorskip("trustme")
    import ssl

    from luath import _core

    if not getattr(_core, "HAS_TLS", False):
        pytest.skip("built without TLS")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    s = start_server(WS_APP, *ASGI_ARGS, "--ssl-certfile", str(tmp_path / "both.pem"), *extra, fresh=True)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return s, ctx


# Over TLS these tests use websockets' asyncio client. Its threaded (sync) client reads the TLS
# socket in a background thread while the caller's thread writes the upgrade request, two threads in
# one OpenSSL session, which OpenSSL does not allow: when the server's session tickets arrive during
# that write (luath sends them within a millisecond of the handshake), about one connection in 500
# lost its request (the socket's receive queue on the server side stayed empty) and waited for the
# keep-alive timeout. The asyncio client ran 9,000 connections against the same server without one.


def test_wss_echo(start_server, tmp_path):
    import json

    s, ctx = _wss_server(start_server, tmp_path)

    async def main():
        async with websockets.connect(f"wss://{HOST}:{s.port}/scope", ssl=ctx, proxy=None, open_timeout=15) as ws:
            scope = json.loads(await ws.recv())
            assert scope["scheme"] == "wss" and "tls" in scope["extensions"]
        async with websockets.connect(
            f"wss://{HOST}:{s.port}/echo", ssl=ctx, proxy=None, max_size=None, open_timeout=15
        ) as ws:
            for n in (0, 10, 70000, 3 << 20):
                data = os.urandom(n)
                await ws.send(data)
                assert await asyncio.wait_for(ws.recv(), 30) == data
            await ws.send(["a", "b", "c"])
            assert await ws.recv() == "abc"

    asyncio.run(main())


def test_wss_big_messages_never_wait_for_a_ping(start_server, tmp_path):
    """Over TLS, the last records of a big message can sit in the TLS session while the socket has
    nothing more to say: the server must take them at once, not when the next ping's pong wakes the
    socket (it once waited the 20 s ping interval). Pings are off here, so a stall would be a timeout."""
    s, ctx = _wss_server(start_server, tmp_path, "--ws-ping-interval", "0")

    # One thread per TLS session (see above): a raw client. Where the records fall against the
    # server's reads is timing: on the old code about one connection in four stalled, so ten.
    for _ in range(10):
        ws = RawWs(s, ssl_context=ctx)
        try:
            for n in (0, 10, 70_000, 3 << 20):
                data = os.urandom(n)
                t0 = time.monotonic()
                ws.send(client_frame(0x82, data))
                assert ws.frame() == (True, 2, data)
                assert time.monotonic() - t0 < 10, n
        finally:
            ws.close()


def test_frames_right_behind_the_handshake(srv):
    """A client that does not wait for the 101: its first frames arrive with the request head."""
    with socket.create_connection((HOST, srv.port), timeout=15) as c:
        req = (f"GET /echo HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n").encode()
        c.sendall(req + client_frame(0x81, b"early 1") + client_frame(0x82, b"early 2"))
        data = b""
        while data.count(b"early") < 2:
            chunk = c.recv(65536)
            assert chunk, data
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        assert rest == b"\x81\x07early 1\x82\x07early 2"
