"""luath's own TLS 1.3 record layer (src/core/net/tls.cpp): after a TLS 1.3 handshake done by OpenSSL,
application data, alerts and KeyUpdate go through luath's code.

Servers run with LUATH_TLS_RECORDS=own (a TLS 1.3 connection that cannot use the own layer is refused,
so every TLS 1.3 test here proves the own layer served it) and, for comparison, =openssl (OpenSSL's
record layer). The crafted-record tests drive a TLS 1.3 client whose handshake is done by Python's ssl
module over memory BIOs and whose application records are then sealed by the test itself (keys from the
client's key log), so that padding, empty records, KeyUpdate, tampered records and other post-handshake
messages can be sent.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

from tests.conftest import HOST, IO_TIMEOUT
from tests.test_tls import ASGI, WSGI, MiB, TLSConn, certs, client_ctx, needs_tls, start_tls  # noqa: F401

MODES = ["own", "openssl"]


@pytest.fixture
def tls_server(start_server, certs, monkeypatch):  # noqa: F811
    def start(mode: str, *extra: str, app: str = WSGI, workers: int = 1):
        monkeypatch.setenv("LUATH_TLS_RECORDS", mode)
        try:
            return start_tls(start_server, certs, *extra, app=app, workers=workers, fresh=True)
        finally:
            monkeypatch.delenv("LUATH_TLS_RECORDS")
    return start


# ---------------------------------------------------------------------------------------------
# Real clients
# ---------------------------------------------------------------------------------------------

@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("mode", MODES)
def test_many_keep_alive_requests_ssl_module(tls_server, certs, mode, app):  # noqa: F811
    srv = tls_server(mode, app=app)
    with TLSConn(srv.port, client_ctx(certs)) as c:
        assert c.sock.version() == "TLSv1.3"
        for i in range(300):
            r = c.request("GET", f"/big?n={i % 700}")
            assert r.status == 200 and len(r.body) == i % 700, (i, r)
        r = c.request("POST", "/upload", body=b"x" * 5000)
        assert r.json()["length"] == 5000


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("mode", MODES)
def test_many_keep_alive_requests_httpx(tls_server, certs, mode, app):  # noqa: F811
    httpx = pytest.importorskip("httpx")
    srv = tls_server(mode, app=app)
    with httpx.Client(verify=client_ctx(certs), http2=False) as cl:
        for i in range(200):
            r = cl.get(f"https://localhost:{srv.port}/")
            assert r.status_code == 200 and r.content == b"Hello, TLS!"
        r = cl.post(f"https://localhost:{srv.port}/upload", content=b"y" * 70000)
        assert r.json()["length"] == 70000


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("mode", MODES)
def test_1mib_response_and_upload_in_odd_pieces(tls_server, certs, mode, app):  # noqa: F811
    from tests.apps.tls_app import pattern_bytes

    srv = tls_server(mode, app=app)
    with TLSConn(srv.port, client_ctx(certs), timeout=60) as c:
        r = c.request("GET", f"/big?n={MiB}")
        assert r.status == 200 and r.body == pattern_bytes(MiB)
        body = os.urandom(MiB + 3)
        c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body))
        sizes = [1, 7, 16384, 16385, 3, 40000, 999, 16383]
        off = k = 0
        while off < len(body):  # every send is one or more records of that size
            n = sizes[k % len(sizes)]
            c.sock.sendall(body[off:off + n])
            off += n
            k += 1
        r = c.read_response()
        assert r.status == 200 and r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        assert c.request("GET", "/").body == b"Hello, TLS!"


@needs_tls
@pytest.mark.parametrize("mode", MODES)
def test_session_resumption(tls_server, certs, mode):  # noqa: F811
    srv = tls_server(mode)
    ctx = client_ctx(certs)
    with TLSConn(srv.port, ctx) as c:
        assert c.request("GET", "/").status == 200
        session = c.sock.session
    for _ in range(3):
        with TLSConn(srv.port, ctx, session=session) as c:
            assert c.request("GET", "/").body == b"Hello, TLS!"
            assert c.sock.session_reused
            session = c.sock.session


@needs_tls
def test_tls12_client_still_served(tls_server, certs):  # noqa: F811
    srv = tls_server("own")
    with TLSConn(srv.port, client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2)) as c:
        assert c.sock.version() == "TLSv1.2"
        for _ in range(20):
            assert c.request("GET", "/").body == b"Hello, TLS!"
        r = c.request("GET", f"/big?n={MiB}")
        assert len(r.body) == MiB


@needs_tls
@pytest.mark.skipif(not shutil.which("g++"), reason="no g++ to build bench/http_client")
@pytest.mark.parametrize("mode", MODES)
def test_bench_http_client_both_record_layers(tls_server, start_server, certs, mode):  # noqa: F811
    """bench/http_client.cpp, the load generator of the bench's tls scenario, against each server record
    layer, with its own records (EVP, keys from the key log, the session tickets skipped: an implementation
    apart from the server's) and with OpenSSL's: every response whole (one record, and two for 20,000
    bytes), no error, no status but 200."""
    from bench import measure

    err = measure.build_http_client(log=lambda *_: None)
    assert err is None, err
    srv = tls_server(mode)
    for path in ("/", "/big?n=20000"):
        for extra in ([], ["--openssl-records"]):
            cmd = [str(measure.HTTP_CLIENT_BIN), "-c", "8", "-d", "0.5", *extra, f"https://{HOST}:{srv.port}{path}"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            r = measure.parse_wrk(out.stdout)
            assert out.returncode == 0 and r["requests"] and r["requests"] > 20, (cmd, out.stdout, out.stderr)
            assert r["socket_errors"] == 0 and r["non2xx"] == 0, (cmd, out.stdout)
            m = re.search(r"TLS handshakes: (\d+) own records, (\d+) OpenSSL's", out.stdout)
            assert m, out.stdout
            own, theirs = int(m.group(1)), int(m.group(2))
            assert (own, theirs) == ((0, 8) if extra else (8, 0)), out.stdout
    if mode == "own":  # and plain HTTP, the tls scenario's luath-plain
        plain = start_server(WSGI, "--workers", "1")
        out = subprocess.run([str(measure.HTTP_CLIENT_BIN), "-c", "8", "-d", "0.5", f"http://{HOST}:{plain.port}/"],
                             capture_output=True, text=True, timeout=30)
        r = measure.parse_wrk(out.stdout)
        assert r["requests"] and r["requests"] > 20 and r["socket_errors"] == 0 and r["non2xx"] == 0, out.stdout


@needs_tls
@pytest.mark.parametrize("mode", MODES)
def test_close_notify_both_ways(tls_server, certs, mode):  # noqa: F811
    srv = tls_server(mode)
    c = TLSConn(srv.port, client_ctx(certs))
    assert c.request("GET", "/").status == 200
    raw = c.sock.unwrap()  # our close_notify, then the server's
    raw.settimeout(IO_TIMEOUT)
    assert raw.recv(100) == b""
    raw.close()
    # Server-initiated: Connection: close ends with the server's close_notify.
    c = TLSConn(srv.port, client_ctx(certs))
    r = c.request("GET", "/", headers={"Connection": "close"})
    assert r.status == 200
    assert c.sock.recv(100) == b""  # a clean TLS EOF (close_notify), not an SSLEOFError
    c.close()


@needs_tls
@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl binary")
@pytest.mark.parametrize(("mode", "suite"), [
    ("own", "TLS_AES_128_GCM_SHA256"), ("own", "TLS_AES_256_GCM_SHA384"), ("own", "TLS_CHACHA20_POLY1305_SHA256"),
    ("openssl", "TLS_AES_128_GCM_SHA256")])
def test_openssl_s_client_key_update(tls_server, certs, mode, suite):  # noqa: F811
    """s_client's interactive 'k' (KeyUpdate) and 'K' (KeyUpdate, update_requested): the connection keeps
    working, the server answers 'K' with its own KeyUpdate (s_client follows it, or the next response
    would fail to decrypt). Each TLS 1.3 suite (s_client offers only that one), a multi-record response
    at the end."""
    srv = tls_server(mode)
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"{HOST}:{srv.port}", "-servername", "localhost",
                          "-CAfile", certs.ca, "-tls1_3", "-ciphersuites", suite,
                          "-crlf"],  # no -ign_eof: it turns the commands off
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    req = b"GET / HTTP/1.1\nHost: localhost\n\n"
    try:
        out = b""

        def wait_for(count: int) -> None:
            nonlocal out
            deadline = time.monotonic() + IO_TIMEOUT
            while out.count(b"Hello, TLS!") < count and time.monotonic() < deadline:
                os.set_blocking(p.stdout.fileno(), False)
                try:
                    chunk = p.stdout.read()
                except BlockingIOError:
                    chunk = None
                if chunk:
                    out += chunk
                else:
                    time.sleep(0.05)
            assert out.count(b"Hello, TLS!") >= count, out.decode(errors="replace")

        p.stdin.write(req)
        p.stdin.flush()
        wait_for(1)
        for i, cmd in enumerate([b"k\n", b"K\n", b"K\n", b"k\n"]):
            p.stdin.write(cmd)
            p.stdin.flush()
            time.sleep(0.1)
            p.stdin.write(req)
            p.stdin.flush()
            wait_for(2 + i)
        assert b"KEYUPDATE" in out, out.decode(errors="replace")
        assert suite.encode() in out
        p.stdin.write(b"GET /big?n=40000 HTTP/1.1\nHost: localhost\n\n" + req)
        p.stdin.flush()
        wait_for(6)
        assert b"Content-Length: 40000" in out
    finally:
        p.kill()
        p.wait()
    assert srv.alive()
    with TLSConn(srv.port, client_ctx(certs)) as c:
        assert c.request("GET", "/").status == 200


# ---------------------------------------------------------------------------------------------
# Crafted records
# ---------------------------------------------------------------------------------------------

def _expand_label(hash_cls, secret: bytes, label: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm=hash_cls(), length=length, info=info).derive(secret)


class CraftedClient:
    """TLS 1.3 client: Python's ssl does the handshake (memory BIOs over a raw socket) and decrypts what
    the server sends; the test seals the client's application records itself."""

    def __init__(self, port: int, certs, tmp_path):  # noqa: F811
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

        keylog = tmp_path / f"keylog-{time.monotonic_ns()}.txt"
        ctx = client_ctx(certs)
        ctx.keylog_filename = str(keylog)
        self.sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.raw = b""  # what read_until() received, as is
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(data)
        self._flush()  # the client's Finished
        assert self.obj.version() == "TLSv1.3"
        suite = self.obj.cipher()[0]
        secret = None
        for line in keylog.read_text().splitlines():
            if line.startswith("CLIENT_TRAFFIC_SECRET_0 "):
                secret = bytes.fromhex(line.split()[2])
        assert secret is not None
        if suite == "TLS_AES_256_GCM_SHA384":
            self.hash, aead, klen = hashes.SHA384, AESGCM, 32
        elif suite == "TLS_CHACHA20_POLY1305_SHA256":
            self.hash, aead, klen = hashes.SHA256, ChaCha20Poly1305, 32
        else:
            self.hash, aead, klen = hashes.SHA256, AESGCM, 16
        self.aead_cls, self.klen = aead, klen
        self._install(secret)

    def _install(self, secret: bytes) -> None:
        self.secret = secret
        self.key = self.aead_cls(_expand_label(self.hash, secret, b"key", self.klen))
        self.iv = _expand_label(self.hash, secret, b"iv", 12)
        self.seq = 0

    def update_key(self) -> None:
        self._install(_expand_label(self.hash, self.secret, b"traffic upd", len(self.secret)))

    def _flush(self) -> None:
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def record(self, content: bytes, ctype: int = 23, pad: int = 0, outer: int = 23) -> bytes:
        inner = content + bytes([ctype]) + b"\x00" * pad
        header = struct.pack("!BHH", outer, 0x0303, len(inner) + 16)
        nonce = (int.from_bytes(self.iv, "big") ^ self.seq).to_bytes(12, "big")
        self.seq += 1
        return header + self.key.encrypt(nonce, inner, header)

    def send(self, data: bytes, pieces: int | None = None) -> None:
        if pieces is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), pieces):
            self.sock.sendall(data[i:i + pieces])
            time.sleep(0.001)

    def read_until(self, needle: bytes, count: int = 1) -> bytes:
        """Decrypted bytes from the server until `needle` was seen `count` times."""
        got = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while got.count(needle) < count:
            try:
                got += self.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(got)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed; got {got!r}")
            self.raw += data
            self.inc.write(data)
        return got

    def expect_alert(self) -> str:
        """The server must send a fatal alert and close: returns the ssl error's text."""
        try:
            while True:
                try:
                    if not self.obj.read(65536):
                        return "eof"
                    continue
                except ssl.SSLWantReadError:
                    pass
                data = self.sock.recv(65536)
                if not data:
                    return "closed without an alert"
                self.inc.write(data)
        except ssl.SSLError as e:
            rest = b""
            self.sock.settimeout(IO_TIMEOUT)
            try:
                while chunk := self.sock.recv(65536):
                    rest += chunk
            except ConnectionError:
                pass
            assert rest == b"", "the server sent more after its alert"
            return str(e)

    def close(self) -> None:
        self.sock.close()


REQ = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture
def crafted(tls_server, certs, tmp_path):  # noqa: F811
    made = []

    def connect(mode: str = "own", app: str = WSGI):
        if not made or made[-1][0] != (mode, app):
            made.append(((mode, app), tls_server(mode, app=app)))
        srv = made[-1][1]
        c = CraftedClient(srv.port, certs, tmp_path)
        c.srv = srv
        return c
    return connect


def _still_serves(srv, certs) -> None:  # noqa: F811
    assert srv.alive()
    with TLSConn(srv.port, client_ctx(certs)) as c:
        assert c.request("GET", "/").body == b"Hello, TLS!"


@needs_tls
@pytest.mark.parametrize("mode", MODES)
def test_crafted_padding_empty_records_and_split_requests(crafted, certs, mode):  # noqa: F811
    c = crafted(mode)
    c.send(c.record(REQ))
    assert b"Hello, TLS!" in c.read_until(b"Hello, TLS!")
    # Padding, empty application data records, a request spread over 1-byte records.
    c.send(c.record(b"") + c.record(REQ[:10], pad=300) + c.record(b"", pad=5) + c.record(REQ[10:], pad=1))
    c.read_until(b"Hello, TLS!")
    c.send(b"".join(c.record(REQ[i:i + 1]) for i in range(len(REQ))))
    c.read_until(b"Hello, TLS!")
    # Several records and requests in one write, then records split at every byte across writes.
    c.send(c.record(REQ + REQ) + c.record(REQ, pad=16384 - len(REQ)))
    c.read_until(b"Hello, TLS!", 3)
    c.send(c.record(REQ) + c.record(REQ), pieces=1)
    c.read_until(b"Hello, TLS!", 2)
    c.send(c.record(REQ) + c.record(REQ), pieces=3)
    c.read_until(b"Hello, TLS!", 2)
    # A full-size record (2^14 content bytes): a POST body.
    body = b"z" * 16384
    c.send(c.record(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % (3 * len(body))))
    c.send(c.record(body) + c.record(body[:-1], pad=1) + c.record(body) + c.record(b"z"), pieces=1000)
    assert b'"length": 49152' in c.read_until(b"}")
    c.close()


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("mode", MODES)
def test_crafted_key_update(crafted, certs, mode, app):  # noqa: F811
    c = crafted(mode, app)
    c.send(c.record(REQ))
    c.read_until(b"Hello, TLS!")
    for requested in (0, 1, 1, 0):
        c.send(c.record(bytes([24, 0, 0, 1, requested]), ctype=22))
        c.update_key()
        c.send(c.record(REQ))  # update_requested: the server's KeyUpdate comes before this response
        c.read_until(b"Hello, TLS!")
    # A KeyUpdate followed by a request in the same write, the request under the new key.
    ku = c.record(bytes([24, 0, 0, 1, 1]), ctype=22)
    c.update_key()
    c.send(ku + c.record(REQ), pieces=2)
    c.read_until(b"Hello, TLS!")
    c.close()


@needs_tls
@pytest.mark.parametrize(("what", "alert"), [
    ("tampered", "BAD_RECORD_MAC"),
    ("tampered_header", "BAD_RECORD_MAC"),
    ("wrong_seq", "BAD_RECORD_MAC"),
    ("ticket_from_client", "UNEXPECTED_MESSAGE"),
    ("key_update_not_last", "UNEXPECTED_MESSAGE"),
    ("bad_key_update", "DECODE_ERROR"),
    ("all_zeros", "UNEXPECTED_MESSAGE"),
    ("empty_handshake", "UNEXPECTED_MESSAGE"),
    ("ccs", "UNEXPECTED_MESSAGE"),
    ("plaintext_too_long", "RECORD_OVERFLOW"),
    ("ciphertext_too_long", "RECORD_OVERFLOW"),
    ("too_short", "DECODE_ERROR"),
])
def test_crafted_bad_records_get_an_alert_and_close(crafted, certs, what, alert):  # noqa: F811
    c = crafted("own")
    c.send(c.record(REQ))
    c.read_until(b"Hello, TLS!")
    if what == "tampered":
        rec = bytearray(c.record(REQ))
        rec[12] ^= 0x40
    elif what == "tampered_header":  # the header is the AAD
        rec = bytearray(c.record(REQ))
        rec[2] = 1
    elif what == "wrong_seq":
        c.seq += 1
        rec = c.record(REQ)
    elif what == "ticket_from_client":
        rec = c.record(bytes([4, 0, 0, 4, 0, 0, 0, 0]), ctype=22)
    elif what == "key_update_not_last":
        rec = c.record(bytes([24, 0, 0, 1, 0]) + REQ, ctype=22)
    elif what == "bad_key_update":
        rec = c.record(bytes([24, 0, 0, 1, 2]), ctype=22)
    elif what == "all_zeros":
        rec = c.record(b"", ctype=0, pad=10)
    elif what == "empty_handshake":
        rec = c.record(b"", ctype=22)
    elif what == "ccs":
        rec = b"\x14\x03\x03\x00\x01\x01"
    elif what == "plaintext_too_long":
        rec = c.record(b"a" * 16385)
    elif what == "ciphertext_too_long":
        rec = struct.pack("!BHH", 23, 0x0303, 16384 + 257) + b"\x00" * (16384 + 257)
    elif what == "too_short":
        rec = struct.pack("!BHH", 23, 0x0303, 16) + b"\x00" * 16
    c.send(bytes(rec))
    got = c.expect_alert()
    assert alert in got.upper().replace(" ", "_"), got
    c.close()
    _still_serves(c.srv, certs)


@needs_tls
def test_crafted_fatal_alert_from_client_closes(crafted, certs):  # noqa: F811
    c = crafted("own")
    c.send(c.record(REQ))
    c.read_until(b"Hello, TLS!")
    c.send(c.record(bytes([2, 40]), ctype=21))  # handshake_failure
    c.sock.settimeout(IO_TIMEOUT)
    assert c.sock.recv(1000) == b""  # closed, no answer
    c.close()
    c = crafted("own")
    c.send(c.record(bytes([1, 90]), ctype=21) + c.record(REQ))  # user_canceled is only a warning
    c.read_until(b"Hello, TLS!")
    c.send(c.record(bytes([1, 0]), ctype=21))  # close_notify
    c.sock.settimeout(IO_TIMEOUT)
    rest = b""
    while chunk := c.sock.recv(1000):
        rest += chunk
    c.inc.write(rest)
    assert c.obj.read(100) == b""  # the server's close_notify (no data would raise SSLWantReadError)
    c.close()
    _still_serves(c.srv, certs)


@needs_tls
def test_crafted_client_eof_mid_record(crafted, certs):  # noqa: F811
    c = crafted("own")
    rec = c.record(REQ)
    c.send(rec[:20])
    c.sock.shutdown(socket.SHUT_WR)
    c.sock.settimeout(IO_TIMEOUT)
    while c.sock.recv(65536):  # the tickets, maybe a close_notify; then the server closes
        pass
    c.close()
    _still_serves(c.srv, certs)


@needs_tls
@pytest.mark.parametrize("mode", MODES)
def test_file_wrapper_over_tls(tls_server, certs, mode):  # noqa: F811
    """wsgi.file_wrapper: with TLS the file is read into a record buffer (no sendfile)."""
    from tests.apps.basic import pattern_block

    srv = tls_server(mode, app="tests.apps.basic:app")
    with TLSConn(srv.port, client_ctx(certs), timeout=60) as c:
        for size, cl in [(0, ""), (1, ""), (100_000, ""), (1_000_003, "1"), (16_384, "1"), (16_385, "")]:
            r = c.request("GET", f"/file?size={size}&cl={cl}")
            assert r.status == 200
            expected = (pattern_block() * (size // 65536 + 1))[:size]
            assert len(r.body) == size and r.body == expected, size
        assert c.request("GET", "/").body == b"hello"


def _record_sizes(raw: bytes) -> list[int]:
    sizes, i = [], 0
    while i + 5 <= len(raw):
        n = int.from_bytes(raw[i + 3:i + 5], "big")
        sizes.append(n)
        i += 5 + n
    assert i == len(raw)
    return sizes


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_own_layer_puts_head_and_body_in_as_few_records_as_fit(crafted, certs, app):  # noqa: F811
    c = crafted("own", app)
    c.send(c.record(REQ))
    c.read_until(b"Hello, TLS!")
    for n, records in [(12000, 1), (16000, 1), (40000, 3)]:  # (a long stream sends what it has)
        c.raw = b""
        c.send(c.record(b"GET /big?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % n + REQ))
        c.read_until(b"Hello, TLS!")
        sizes = _record_sizes(c.raw)
        assert len(sizes) == records + 1, (n, sizes)  # + the next response
        assert all(s == 16384 + 17 for s in sizes[:records - 1]), sizes



_SUITE_CHILD = """
import sys, types, pathlib
sys.path.insert(0, {root!r})
from tests.test_tls_records import CraftedClient, REQ
c = CraftedClient({port}, types.SimpleNamespace(ca={ca!r}), pathlib.Path({tmp!r}))
print("suite", c.obj.cipher()[0])
c.send(c.record(REQ))
c.read_until(b"Hello, TLS!")
c.send(c.record(bytes([24, 0, 0, 1, 1]), ctype=22))
c.update_key()
c.send(c.record(REQ + b"GET /big?n=50000 HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"))
c.read_until(b"Hello, TLS!")
rec = bytearray(c.record(REQ))
rec[-1] ^= 1  # the tag
c.send(bytes(rec))
print("alert", c.expect_alert())
"""


@needs_tls
@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
def test_crafted_each_suite_key_update_and_tampered_tag(tls_server, certs, tmp_path, suite):  # noqa: F811
    """The crafted client in a child process whose OpenSSL offers only `suite` (OPENSSL_CONF): a KeyUpdate,
    a multi-record response, then a record with a flipped tag bit gets bad_record_mac."""
    import sys

    from tests.conftest import REPO_ROOT

    srv = tls_server("own")
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n[ssl_sect]\n"
                    "system_default = system_default_sect\n[system_default_sect]\n"
                    f"Ciphersuites = {suite}\n")
    code = _SUITE_CHILD.format(root=str(REPO_ROOT), port=srv.port, ca=certs.ca, tmp=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, OPENSSL_CONF=str(conf)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"suite {suite}" in r.stdout, r.stdout
    assert "BAD_RECORD_MAC" in r.stdout.upper().replace(" ", "_"), r.stdout
    _still_serves(srv, certs)
