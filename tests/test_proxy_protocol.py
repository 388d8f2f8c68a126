"""--proxy-protocol: every connection begins with a PROXY protocol header (v1 text or v2 binary), parsed
by the engine; its source address becomes the peer (REMOTE_ADDR/REMOTE_PORT, ASGI client, the access
log), and a malformed, unsupported or missing header closes the connection without a response.

Raw sockets against real server processes (WSGI and ASGI), TLS behind the header, and the interplay with
--proxy-headers. The parser's byte-level rules are covered by tests/cpp/test_proxy_protocol.cpp.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import time

import pytest

from tests.conftest import BASIC, HOST, IO_TIMEOUT, SERVER_KIND, RawConn

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own --proxy-protocol")

ASGI = "tests.apps.asgi_basic:app"
APPS = {"wsgi": (BASIC, "/environ"), "asgi": (ASGI, "/scope")}
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(proto: str = "TCP4", src: str = "203.0.113.9", dst: str = "10.0.0.1", sport: int = 4444,
       dport: int = 80) -> bytes:
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(command: int, family: int, body: bytes, length: int | None = None) -> bytes:
    return SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(body) if length is None else length) + body


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: an implementation independent of the engine's table."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def v2_crc(src: str, sport: int, flip: int | None = None) -> bytes:
    """A v2 PROXY header for INET with a PP2_TYPE_CRC32C TLV (HAProxy's send-proxy-v2 crc32c), optionally
    with one bit flipped after the checksum is computed."""
    h = bytearray(v2(1, 0x11, inet(src, "10.0.0.1", sport, 443) + tlv(0x01, b"h2") + tlv(0x03, b"\0" * 4)))
    at = len(h) - 4
    h[at:] = struct.pack("!I", crc32c(bytes(h)))
    if flip is not None:
        h[flip] ^= 0x01
    return bytes(h)


def get(path: str, close: bool = False, extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: app.example\r\n{extra}"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def peer_seen(kind: str, resp) -> tuple[str, int, int]:
    """(client address, client port, server port) as the application saw them."""
    assert resp.status == 200, resp
    d = resp.json()
    if kind == "wsgi":
        return d["REMOTE_ADDR"], int(d["REMOTE_PORT"]), int(d["SERVER_PORT"])
    return d["client"][0], d["client"][1], d["server"][1]


@pytest.fixture(params=["wsgi", "asgi"])
def pp(request, start_server):
    app, path = APPS[request.param]
    srv = start_server(app, "--workers", "1", "--proxy-protocol")
    srv.kind, srv.path = request.param, path
    return srv


def ask(srv, header: bytes, extra: str = "") -> tuple[tuple[str, int, int], RawConn]:
    c = srv.connect()
    c.send(header + get(srv.path, extra=extra))
    return peer_seen(srv.kind, c.read_response()), c


def assert_closed_silently(c: RawConn, what) -> None:
    closed, data = c.wait_closed(timeout=IO_TIMEOUT)
    assert closed, f"{what!r}: the server kept the connection open"
    assert data == b"", f"{what!r}: the server answered {data[:200]!r}"


def assert_serving(srv) -> None:
    (addr, port, _), c = ask(srv, v1(src="192.0.2.77", sport=7777))
    c.close()
    assert (addr, port) == ("192.0.2.77", 7777)
    assert srv.alive()


# ---------------------------------------------------------------------------------------------
# Valid headers
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header,expect", [
    (v1(), ("203.0.113.9", 4444)),
    (v1(src="0.0.0.0", dst="255.255.255.255", sport=0, dport=65535), ("0.0.0.0", 0)),
    (v1("TCP6", "2001:db8::7", "2001:db8::1", 65535, 443), ("2001:db8::7", 65535)),
    (v1("TCP6", "::ffff:198.51.100.4", "::1", 1, 2), ("::ffff:198.51.100.4", 1)),
    (v2(1, 0x11, inet("198.51.100.20", "10.0.0.1", 50000, 8080)), ("198.51.100.20", 50000)),
    (v2(1, 0x11, inet("198.51.100.21", "10.0.0.1", 1, 2) + tlv(0x01, b"h2") + tlv(0x04, b"\0" * 8)
        + tlv(0xEA, b"\x01vpce-0123456789abcdef") + tlv(0x20, b"\x07\0\0\0\0" + tlv(0x21, b"TLSv1.3"))),
     ("198.51.100.21", 1)),
    (v2(1, 0x21, inet6("2001:db8::99", "2001:db8::1", 60000, 443)), ("2001:db8::99", 60000)),
    (v2(1, 0x12, inet("198.51.100.22", "10.0.0.1", 3, 4)), ("198.51.100.22", 3)),  # DGRAM
    (v2_crc("198.51.100.23", 5), ("198.51.100.23", 5)),
], ids=["v1-tcp4", "v1-tcp4-extremes", "v1-tcp6", "v1-tcp6-mapped", "v2-inet", "v2-inet-tlvs", "v2-inet6",
        "v2-dgram", "v2-crc32c"])
def test_header_gives_the_peer(pp, header, expect):
    (addr, port, server_port), c = ask(pp, header)
    c.close()
    assert (addr, port) == expect
    assert server_port == pp.port  # the destination in the header does not change SERVER_PORT


@pytest.mark.parametrize("header", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    v2(0, 0x00, b""),                                         # LOCAL (a health check by the proxy)
    v2(0, 0x11, inet("203.0.113.1", "10.0.0.1", 1, 2)),       # LOCAL: addresses ignored
    v2(1, 0x00, b""),                                         # PROXY, UNSPEC
    v2(1, 0x31, b"/run/client.sock".ljust(108, b"\0") + b"/run/proxy.sock".ljust(108, b"\0")),  # AF_UNIX
], ids=["v1-unknown", "v1-unknown-rest", "v2-local", "v2-local-addresses", "v2-unspec", "v2-unix"])
def test_header_without_address_keeps_the_real_peer(pp, header):
    (addr, port, _), c = ask(pp, header)
    local_port = c.local_port
    c.close()
    assert (addr, port) == ("127.0.0.1", local_port)


@pytest.mark.parametrize("header", [
    v1("TCP6", "2001:db8::5", "2001:db8::1", 12345, 443),
    v2(1, 0x11, inet("198.51.100.30", "10.0.0.1", 2222, 80) + tlv(0x02, b"authority.example")),
], ids=["v1", "v2"])
def test_split_byte_by_byte(pp, header):
    c = pp.connect()
    data = header + get(pp.path)
    for i in range(len(header) + 10):  # the header and the start of the request, one byte per segment
        c.send(data[i:i + 1])
        time.sleep(0.003)
    c.send(data[len(header) + 10:])
    addr, port, _ = peer_seen(pp.kind, c.read_response())
    c.close()
    assert (addr, port) == (("2001:db8::5", 12345) if header.startswith(b"PROXY") else ("198.51.100.30", 2222))


def test_pipelined_requests_in_the_header_packet_and_keep_alive(pp):
    c = pp.connect()
    c.send(v1(src="198.51.100.40", sport=4040) + get(pp.path) + get(pp.path) + get("/"))
    for _ in range(2):
        addr, port, _ = peer_seen(pp.kind, c.read_response())
        assert (addr, port) == ("198.51.100.40", 4040)
    assert c.read_response().status == 200
    # Later requests on the connection carry no header and keep the proxied peer.
    for _ in range(2):
        c.send(get(pp.path))
        assert peer_seen(pp.kind, c.read_response())[:2] == ("198.51.100.40", 4040)
    # The header comes once: a second one is not HTTP.
    c.send(v1() + get(pp.path))
    assert c.read_response().status == 400
    c.close()


# ---------------------------------------------------------------------------------------------
# Malformed, unsupported or missing headers
# ---------------------------------------------------------------------------------------------

BAD = {
    "plain-http": get("/"),
    "http-10": b"GET / HTTP/1.0\r\n\r\n",
    "garbage": b"\x00\xff" * 40,
    "tls-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40,
    "v1-lowercase": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-udp": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-bad-address": v1(src="1.2.3.256"),
    "v1-leading-zero-address": v1(src="1.2.3.04"),
    "v1-v6-in-tcp4": v1(src="::1"),
    "v1-bad-port": v1(sport=65536),
    "v1-leading-zero-port": b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "v1-bare-lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v1-extra-field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    "v1-oversized": b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n",
    "v2-bad-signature": SIG[:-2] + b"X\n" + b"\x21\x11\x00\x0c" + inet("1.2.3.4", "5.6.7.8", 1, 2),
    "v2-version-1": SIG + b"\x11\x11\x00\x0c" + inet("1.2.3.4", "5.6.7.8", 1, 2),
    "v2-bad-command": v2(2, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2)),
    "v2-bad-family": v2(1, 0x41, b"\0" * 12),
    "v2-bad-transport": v2(1, 0x13, inet("1.2.3.4", "5.6.7.8", 1, 2)),
    "v2-short-length": v2(1, 0x21, inet("1.2.3.4", "5.6.7.8", 1, 2)),
    "v2-oversized": v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2), length=0xFFFF),
    "v2-oversized-tlv": v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x30, b"z" * 2000)),
    "v2-tlv-overrun": v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00\x09abc"),
    "v2-crc32c-address-changed": v2_crc("198.51.100.24", 6, flip=19),
    "v2-crc32c-zero": v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x03, b"\0" * 4)),
    "v2-crc32c-short": v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x03, b"\0" * 3)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_header_closes_without_response(pp, name):
    c = pp.connect()
    c.send(BAD[name] + get("/"))
    assert_closed_silently(c, name)
    c.close()
    assert_serving(pp)


@pytest.fixture(params=["wsgi", "asgi"])
def pp_fast(request, start_server):
    app, path = APPS[request.param]
    srv = start_server(app, "--workers", "1", "--proxy-protocol", "--timeout-request-head", "1")
    srv.kind, srv.path = request.param, path
    return srv


@pytest.mark.parametrize("sent", [b"", b"PROXY TCP4 1.2.3.4 ", SIG + b"\x21\x11\x00\x0c\x01\x02"],
                         ids=["nothing", "half-v1", "half-v2"])
def test_missing_or_incomplete_header_times_out(pp_fast, sent):
    c = pp_fast.connect()
    t0 = time.monotonic()
    if sent:
        c.send(sent)
    assert_closed_silently(c, sent)
    elapsed = time.monotonic() - t0
    c.close()
    assert 0.8 <= elapsed < 6, elapsed  # the request-head timeout (1 s), checked by a periodic sweep
    assert_serving(pp_fast)


def test_without_the_option_a_header_is_a_bad_request(start_server):
    srv = start_server(BASIC, "--workers", "1")
    with srv.connect() as c:
        c.send(v1() + get("/"))
        assert c.read_response().status == 400


# ---------------------------------------------------------------------------------------------
# --proxy-headers: trust is decided against the address from the PROXY header
# ---------------------------------------------------------------------------------------------

@pytest.fixture(params=["wsgi", "asgi"])
def pp_headers(request, start_server):
    app, path = APPS[request.param]
    # default --forwarded-allow-ips: 127.0.0.1 and unix sockets
    srv = start_server(app, "--workers", "1", "--proxy-protocol", "--proxy-headers")
    srv.kind, srv.path = request.param, path
    return srv


def test_forwarded_headers_from_an_untrusted_proxied_client_are_ignored(pp_headers):
    # The real peer (127.0.0.1) is trusted, but the client the PROXY header names is not: its own
    # X-Forwarded-For must not count.
    (addr, port, _), c = ask(pp_headers, v1(src="203.0.113.50", sport=5050), extra="X-Forwarded-For: 6.6.6.6\r\n")
    c.close()
    assert (addr, port) == ("203.0.113.50", 5050)


def test_forwarded_headers_from_a_trusted_proxied_address_apply(pp_headers):
    (addr, _, _), c = ask(pp_headers, v1(src="127.0.0.1", sport=5051), extra="X-Forwarded-For: 198.51.100.60\r\n")
    c.close()
    assert addr == "198.51.100.60"


def test_forwarded_headers_with_local_command_use_the_real_peer(pp_headers):
    (addr, _, _), c = ask(pp_headers, v2(0, 0x00, b""), extra="X-Forwarded-For: 198.51.100.61\r\n")
    c.close()
    assert addr == "198.51.100.61"  # LOCAL: the real peer, 127.0.0.1, is the trusted proxy itself


# ---------------------------------------------------------------------------------------------
# The access log
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("app", [BASIC, ASGI], ids=["wsgi", "asgi"])
def test_access_log_shows_the_proxied_address(start_server, app):
    srv = start_server(app, "--workers", "1", "--proxy-protocol", "--access-log")
    with srv.connect() as c:
        c.send(v1(src="198.51.100.77", sport=7070) + get("/?access-log-marker"))
        assert c.read_response().status == 200
    deadline = time.monotonic() + 10
    line = None
    while time.monotonic() < deadline and line is None:
        for path in (srv.stdout_path, srv.stderr_path):
            text = path.read_text("utf-8", "replace") if path.exists() else ""
            line = next((ln for ln in text.splitlines() if "access-log-marker" in ln), None)
            if line:
                break
        time.sleep(0.1)
    assert line is not None, "no access log line"
    assert line.startswith("198.51.100.77 - - ["), line


# ---------------------------------------------------------------------------------------------
# TLS: the PROXY header comes before the TLS handshake
# ---------------------------------------------------------------------------------------------

def _engine_has_tls() -> bool:
    try:
        from luath import _core
    except ImportError:
        return False
    return bool(getattr(_core, "HAS_TLS", False))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not _engine_has_tls():
        pytest.skip("this build of luath has no TLS")
    trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the certificates")
    d = tmp_path_factory.mktemp("pp-tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "both.pem"))
    return str(d / "ca.pem"), str(d / "both.pem")


@pytest.fixture(params=["wsgi", "asgi"])
def pp_tls(request, start_server, tls_files):
    app, path = APPS[request.param]
    srv = start_server(app, "--workers", "1", "--proxy-protocol", "--ssl-certfile", tls_files[1])
    srv.kind, srv.path = request.param, path
    srv.ctx = ssl.create_default_context(cafile=tls_files[0])
    return srv


def tls_exchange(port: int, ctx: ssl.SSLContext, header: bytes, request: bytes, same_packet: bool) -> bytes:
    """Sends the PROXY header, then a TLS handshake (the ClientHello in the header's packet, or after
    it), then the request; returns the decrypted response bytes up to the server's close."""
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with sock:
        if not same_packet:
            sock.sendall(header)
            time.sleep(0.05)
            header = b""
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = out.read()
                if first:
                    pending, first = header + pending, False
                if pending:
                    sock.sendall(pending)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                inc.write(data)
        tls.write(request)
        sock.sendall(out.read())
        resp = b""
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                if not data:
                    break
                inc.write(data)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            resp += chunk
        return resp


@pytest.mark.parametrize("same_packet", [True, False], ids=["hello-in-header-packet", "hello-after"])
@pytest.mark.parametrize("version", [1, 2])
def test_tls_behind_the_header(pp_tls, same_packet, version):
    header = (v1(src="198.51.100.90", sport=9090) if version == 1
              else v2(1, 0x11, inet("198.51.100.90", "10.0.0.1", 9090, 443)))
    raw = tls_exchange(pp_tls.port, pp_tls.ctx, header, get(pp_tls.path, close=True), same_packet)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    d = json.loads(body)
    if pp_tls.kind == "wsgi":
        assert (d["REMOTE_ADDR"], d["REMOTE_PORT"], d["wsgi.url_scheme"]) == ("198.51.100.90", "9090", "https")
    else:
        assert (d["client"], d["scheme"]) == (["198.51.100.90", 9090], "https")


def test_tls_without_the_header_is_closed(pp_tls):
    raw = socket.create_connection((HOST, pp_tls.port), timeout=IO_TIMEOUT)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with pp_tls.ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(get("/", close=True))
            if not s.recv(1):
                raise ConnectionError("closed")
    raw.close()
    # A valid header followed by something that is not TLS: the handshake fails, the connection closes.
    c = RawConn(pp_tls.port)
    c.send(v1() + get("/"))
    closed, data = c.wait_closed(timeout=IO_TIMEOUT)
    c.close()
    assert closed and b"HTTP/" not in data
    raw = tls_exchange(pp_tls.port, pp_tls.ctx, v1(), get("/", close=True), True)
    assert raw.startswith(b"HTTP/1.1 200")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

def test_option_environment_and_config():
    from luath import cli
    from luath.config import Config

    parser = cli.build_parser()
    cli.apply_environment(parser, {"LUATH_PROXY_PROTOCOL": "1"})
    args = parser.parse_args(["m:app"])
    assert args.proxy_protocol is True
    assert cli.build_parser().parse_args(["m:app", "--proxy-protocol"]).proxy_protocol is True
    assert cli.build_parser().parse_args(["m:app"]).proxy_protocol is False
    opts = cli.options_of(args)
    cfg = Config.from_kwargs(**{k: v for k, v in opts.items() if k not in ("lifespan", "loop")})
    assert cfg.engine_options()["proxy_protocol"] is True
    assert "PROXY protocol" in parser.format_help()


def test_gunicorn_proxy_protocol_setting_turns_it_on():
    gconfig = pytest.importorskip("gunicorn.config")
    from luath.gunicorn import Worker

    class W(Worker):
        def __init__(self, cfg):  # only the settings, no arbiter
            self.cfg = cfg

    c = gconfig.Config()
    assert W(c).luath_config().proxy_protocol is False
    if "proxy_protocol" not in c.settings:
        pytest.skip("this gunicorn has no --proxy-protocol")
    c.set("proxy_protocol", "v1" if c.settings["proxy_protocol"].validator.__name__ != "validate_bool" else True)
    assert W(c).luath_config().proxy_protocol is True


@pytest.mark.parametrize("call", [
    "luath.serve(basic.app, port=PORT, proxy_protocol=True)",
    "luath.serve_asgi(asgi_basic.app, port=PORT, proxy_protocol=True, lifespan='off')",
], ids=["serve", "serve_asgi"])
def test_python_api(tmp_path, call):
    from tests.apps.proc import Proc, free_port

    port = free_port()
    code = ("import luath\nfrom tests.apps import basic, asgi_basic\n" + call.replace("PORT", str(port)))
    proc = Proc([sys.executable, "-c", code], tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                c = RawConn(port)
                break
            except OSError:
                assert proc.proc.poll() is None and time.monotonic() < deadline, proc.stderr()
                time.sleep(0.05)
        with c:
            c.send(v1(src="198.51.100.99", sport=9999) + get("/environ" if "asgi" not in call else "/scope"))
            kind = "asgi" if "asgi" in call else "wsgi"
            assert peer_seen(kind, c.read_response())[:2] == ("198.51.100.99", 9999)
        with RawConn(port) as c:
            c.send(get("/"))
            assert_closed_silently(c, "plain HTTP")
    finally:
        proc.kill()
