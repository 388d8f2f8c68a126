"""Issue 6: TLS (HTTPS) end to end against real server processes on 127.0.0.1.

Certificates come from trustme (a throwaway CA per session). Clients: the ssl module (through
TLSConn, a RawConn over an SSLSocket), httpx and `openssl s_client`. Everything that needs the engine
to do TLS is skipped when luath._core.HAS_TLS is False (a build without OpenSSL); that build is then
checked to refuse the ssl options with a clear message instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HOST, IO_TIMEOUT, REPO_ROOT, SERVER_KIND, ConnectionClosed, RawConn
from tests.robust_util import fd_count, wait_fds, worker_pids

trustme = pytest.importorskip("trustme", reason="trustme (test extra) makes the certificates")


def _engine_has_tls() -> bool:
    try:
        from luath import _core
    except ImportError:
        return False
    return bool(getattr(_core, "HAS_TLS", False))


HAS_TLS = _engine_has_tls()
needs_tls = pytest.mark.skipif(
    not HAS_TLS or SERVER_KIND != "luath",
    reason="luath._core.HAS_TLS is False: this build of luath has no TLS (OpenSSL was not found when it "
           "was compiled)" if SERVER_KIND == "luath" else "luath's own TLS options")

WSGI = "tests.apps.tls_app:app"
ASGI = "tests.apps.tls_app:asgi_app"
MiB = 1 << 20
HANDSHAKE_TIMEOUT = 1.5  # --timeout-tls-handshake of the bad-peer server
PASSWORD = "s3cret-pw"

# IANA numbers of the suites a modern OpenSSL negotiates (ASGI's tls extension gives the number).
CIPHER_IDS = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
}
TLS_VERSION_IDS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


# ---------------------------------------------------------------------------------------------
# Certificates and clients
# ---------------------------------------------------------------------------------------------

@dataclass
class Certs:
    dir: Path
    ca: str            # the CA clients trust for the server
    cert: str          # server certificate (chain)
    key: str           # its key
    both: str          # key + certificate in one file
    enc_key: str       # the key encrypted with PASSWORD
    other_key: str     # a key that does not match cert
    client_ca: str     # the CA the server verifies client certificates against
    client: str        # client certificate + key, issued by client_ca
    client_cert_pem: str
    rogue_client: str  # client certificate + key from a CA the server does not trust


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    from cryptography.hazmat.primitives import serialization

    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA(organization_name="luath test CA")
    leaf = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(d / "cert.pem"), append=i > 0)
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "both.pem"))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    (d / "enc_key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode())))
    ca.issue_cert("other.test").private_key_pem.write_to_path(str(d / "other_key.pem"))

    client_ca = trustme.CA(organization_name="luath test client CA")
    client_ca.cert_pem.write_to_path(str(d / "client_ca.pem"))
    client = client_ca.issue_cert("client.test", common_name="luath-test-client")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    rogue = trustme.CA(organization_name="rogue CA").issue_cert("rogue.test", common_name="rogue-client")
    rogue.private_key_and_cert_chain_pem.write_to_path(str(d / "rogue_client.pem"))
    return Certs(d, str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem"), str(d / "both.pem"),
                 str(d / "enc_key.pem"), str(d / "other_key.pem"), str(d / "client_ca.pem"),
                 str(d / "client.pem"), client.cert_chain_pems[0].bytes().decode(), str(d / "rogue_client.pem"))


def client_ctx(certs: Certs, *, client: str | None = None, max_version=None, alpn=True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    if client:
        ctx.load_cert_chain(client)
    if max_version is not None:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class TLSConn(RawConn):
    """RawConn over TLS: the same request/response helpers on an ssl-module socket."""

    def __init__(self, port: int, ctx: ssl.SSLContext, *, server_hostname: str = "localhost",
                 session: ssl.SSLSession | None = None, timeout: float = IO_TIMEOUT):
        raw = socket.create_connection((HOST, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.port = port


def tls_get(port: int, ctx: ssl.SSLContext, path: str = "/", **kw):
    with TLSConn(port, ctx, **kw) as c:
        r = c.request("GET", path, headers={"Connection": "close"})
        return r, c.sock.version(), c.sock.cipher(), c.sock.selected_alpn_protocol()


def expect_rejected(port: int, ctx: ssl.SSLContext, what: str) -> str:
    """The server must not serve this client: the handshake fails, or (TLS 1.3, where the client's
    side of the handshake completes before the server has checked its certificate) the connection
    fails or is closed before a response. Returns how it ended."""
    try:
        with TLSConn(port, ctx, timeout=IO_TIMEOUT) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            r = c.read_response()
    except (ssl.SSLError, ConnectionError, ConnectionClosed, BrokenPipeError) as e:
        return f"{type(e).__name__}: {e}"
    except (socket.timeout, TimeoutError):
        pytest.fail(f"{what}: the server neither answered nor closed within {IO_TIMEOUT} s")
    pytest.fail(f"{what}: the server answered {r!r}")


def start_tls(start_server, certs: Certs, *extra: str, app: str = WSGI, workers: int = 1, fresh: bool = False):
    args = ["--workers", str(workers), "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key, *extra]
    if app == ASGI:
        args += ["--interface", "asgi"]
    return start_server(app, *args, fresh=fresh)


def scope_of(port: int, ctx: ssl.SSLContext) -> tuple[dict, tuple]:
    r, version, cipher, _ = tls_get(port, ctx, "/scope")
    assert r.status == 200, r
    return r.json(), (version, cipher)


def _server_env(env_extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(env_extra or {})
    return env


def run_luath(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run `python -m luath` expecting it to exit by itself (a start-up error)."""
    try:
        return subprocess.run([sys.executable, "-m", "luath", *args], cwd=str(REPO_ROOT), env=_server_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"luath {' '.join(args)} did not exit within {timeout} s (it should refuse to start); "
                    f"stderr: {e.stderr!r}")


# ---------------------------------------------------------------------------------------------
# Clients: ssl module, httpx, openssl s_client; versions
# ---------------------------------------------------------------------------------------------

@needs_tls
def test_ssl_module_client_gets_response_over_tls13(start_server, certs):
    srv = start_tls(start_server, certs)
    r, version, cipher, alpn = tls_get(srv.port, client_ctx(certs))
    assert r.status == 200 and r.body == b"Hello, TLS!", r
    assert version == "TLSv1.3", f"default negotiation gave {version} ({cipher})"
    assert alpn == "http/1.1"


@needs_tls
def test_log_line_says_https(start_server, certs):
    srv = start_tls(start_server, certs)
    srv.wait_for_log(f"https://{HOST}:{srv.port}")


@needs_tls
def test_httpx_client(start_server, certs):
    httpx = pytest.importorskip("httpx")
    srv = start_tls(start_server, certs)
    with httpx.Client(verify=client_ctx(certs), timeout=IO_TIMEOUT) as client:
        r = client.get(f"https://{HOST}:{srv.port}/")
        assert r.status_code == 200 and r.content == b"Hello, TLS!"
        assert r.http_version == "HTTP/1.1"
        r = client.get(f"https://{HOST}:{srv.port}/env")  # the same pooled connection
        assert r.json()["url_scheme"] == "https"
        body = os.urandom(300_000)
        r = client.post(f"https://{HOST}:{srv.port}/upload", content=body)
        assert r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@needs_tls
@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_openssl_s_client(start_server, certs):
    srv = start_tls(start_server, certs)
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    cmd = ["openssl", "s_client", "-connect", f"{HOST}:{srv.port}", "-servername", "localhost",
           "-alpn", "http/1.1", "-CAfile", certs.ca, "-verify_return_error", "-ign_eof", "-nocommands"]
    p = subprocess.run(cmd, input=req, capture_output=True, timeout=30)
    out = p.stdout.decode("latin-1")
    assert p.returncode == 0, f"s_client exit {p.returncode}\n{out[-3000:]}\n{p.stderr.decode('latin-1')[-2000:]}"
    assert "HTTP/1.1 200" in out and "Hello, TLS!" in out, out[-3000:]
    assert "ALPN protocol: http/1.1" in out, out[-3000:]
    assert "TLSv1.3" in out, out[-3000:]
    assert "Verify return code: 0 (ok)" in out, out[-3000:]


def _cpu_has_aes() -> bool:
    try:
        flags = next((l for l in open("/proc/cpuinfo") if l.startswith(("flags", "Features"))), "")
    except OSError:
        return True
    return platform.machine() not in ("x86_64", "i686") or " aes" in flags


@needs_tls
@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_tls13_cipher_preference(start_server, certs):
    """The server picks AES-128-GCM (with AES instructions) over OpenSSL's default AES-256-GCM, but a
    client that lists ChaCha20 first (no AES hardware) gets ChaCha20."""
    srv = start_tls(start_server, certs)
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

    def cipher_with(suites: str) -> str:
        cmd = ["openssl", "s_client", "-connect", f"{HOST}:{srv.port}", "-servername", "localhost",
               "-CAfile", certs.ca, "-ign_eof", "-nocommands", "-ciphersuites", suites]
        p = subprocess.run(cmd, input=req, capture_output=True, timeout=30)
        out = p.stdout.decode("latin-1")
        assert p.returncode == 0 and "Hello, TLS!" in out, out[-3000:]
        m = re.search(r"Cipher is (\S+)", out)
        assert m, out[-3000:]
        return m.group(1)

    first = "TLS_AES_128_GCM_SHA256" if _cpu_has_aes() else "TLS_CHACHA20_POLY1305_SHA256"
    assert cipher_with("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") == first
    assert cipher_with("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256") == \
        "TLS_CHACHA20_POLY1305_SHA256"
    assert cipher_with("TLS_AES_256_GCM_SHA384") == "TLS_AES_256_GCM_SHA384"


@needs_tls
def test_tls12_only_client_works_by_default(start_server, certs):
    srv = start_tls(start_server, certs)
    r, version, cipher, alpn = tls_get(srv.port, client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2))
    assert r.status == 200 and r.body == b"Hello, TLS!", r
    assert version == "TLSv1.2", cipher
    assert alpn == "http/1.1"


@needs_tls
def test_min_version_13_refuses_tls12_client(start_server, certs):
    srv = start_tls(start_server, certs, "--ssl-min-version", "1.3")
    ctx12 = client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with TLSConn(srv.port, ctx12):
            pass
    r, version, _, _ = tls_get(srv.port, client_ctx(certs))
    assert r.status == 200 and version == "TLSv1.3"


@needs_tls
def test_ssl_ciphers_limit_tls12(start_server, certs):
    srv = start_tls(start_server, certs, "--ssl-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    r, version, cipher, _ = tls_get(srv.port, client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2))
    assert r.status == 200 and version == "TLSv1.2"
    assert cipher[0] == "ECDHE-ECDSA-AES128-GCM-SHA256", cipher


@needs_tls
def test_key_in_certfile_and_encrypted_key(start_server, certs):
    srv = start_server(WSGI, "--workers", "1", "--ssl-certfile", certs.both)
    r, *_ = tls_get(srv.port, client_ctx(certs))
    assert r.status == 200
    srv = start_server(WSGI, "--workers", "1", "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.enc_key,
                       "--ssl-keyfile-password", PASSWORD)
    r, *_ = tls_get(srv.port, client_ctx(certs))
    assert r.status == 200


# ---------------------------------------------------------------------------------------------
# What the application sees
# ---------------------------------------------------------------------------------------------

@needs_tls
def test_wsgi_url_scheme_is_https(start_server, certs):
    srv = start_tls(start_server, certs)
    r, *_ = tls_get(srv.port, client_ctx(certs), "/env")
    env = r.json()
    assert env["url_scheme"] == "https", env
    assert env["server_port"] == str(srv.port)


@needs_tls
@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_asgi_scheme_and_tls_extension(start_server, certs, max_version):
    srv = start_tls(start_server, certs, app=ASGI)
    scope, (version, cipher) = scope_of(srv.port, client_ctx(certs, max_version=max_version))
    assert scope["scheme"] == "https", scope
    assert scope["has_tls"], f"no tls extension in scope['extensions']: {scope}"
    tls = scope["tls"]
    assert tls["tls_version"] == TLS_VERSION_IDS[version], (tls, version)
    if cipher[0] in CIPHER_IDS:
        assert tls["cipher_suite"] == CIPHER_IDS[cipher[0]], (tls, cipher)
    else:
        assert isinstance(tls["cipher_suite"], int), tls
    assert not tls.get("client_cert_chain"), tls  # no client certificate asked for
    assert tls.get("client_cert_name") is None and tls.get("client_cert_error") is None, tls


# ---------------------------------------------------------------------------------------------
# Client certificates (mTLS)
# ---------------------------------------------------------------------------------------------

def _same_pem(a: str, b: str) -> bool:
    return "".join(a.split()) == "".join(b.split())


@needs_tls
def test_mtls_required(start_server, certs):
    srv = start_tls(start_server, certs, "--ssl-ca-certs", certs.client_ca, "--ssl-cert-reqs", "required", app=ASGI)
    how = expect_rejected(srv.port, client_ctx(certs), "no client certificate under --ssl-cert-reqs required")
    assert how
    expect_rejected(srv.port, client_ctx(certs, client=certs.rogue_client),
                    "a client certificate from an untrusted CA under required")
    scope, _ = scope_of(srv.port, client_ctx(certs, client=certs.client))
    tls = scope["tls"]
    chain = tls["client_cert_chain"]
    assert chain and _same_pem(chain[0], certs.client_cert_pem), tls
    assert "luath-test-client" in (tls.get("client_cert_name") or ""), tls
    assert tls.get("client_cert_error") is None, tls
    # and after the refusals it still serves
    scope, _ = scope_of(srv.port, client_ctx(certs, client=certs.client))
    assert scope["scheme"] == "https"


@needs_tls
def test_mtls_optional(start_server, certs):
    srv = start_tls(start_server, certs, "--ssl-ca-certs", certs.client_ca, "--ssl-cert-reqs", "optional", app=ASGI)
    scope, _ = scope_of(srv.port, client_ctx(certs))
    assert not scope["tls"].get("client_cert_chain"), scope
    assert scope["tls"].get("client_cert_name") is None
    scope, _ = scope_of(srv.port, client_ctx(certs, client=certs.client))
    tls = scope["tls"]
    assert tls["client_cert_chain"] and _same_pem(tls["client_cert_chain"][0], certs.client_cert_pem), tls
    assert "luath-test-client" in (tls.get("client_cert_name") or ""), tls
    assert tls.get("client_cert_error") is None, tls
    # An untrusted certificate is refused, or let through with the error reported, never as verified.
    try:
        r, *_ = tls_get(srv.port, client_ctx(certs, client=certs.rogue_client), "/scope")
    except (ssl.SSLError, ConnectionError, ConnectionClosed):
        pass
    else:
        assert r.status == 200, r
        assert r.json()["tls"].get("client_cert_error"), f"an untrusted client certificate was taken: {r.json()}"
    scope, _ = scope_of(srv.port, client_ctx(certs))
    assert scope["scheme"] == "https"


@needs_tls
def test_mtls_none_does_not_ask(start_server, certs):
    srv = start_tls(start_server, certs, app=ASGI)
    scope, _ = scope_of(srv.port, client_ctx(certs, client=certs.client))
    assert not scope["tls"].get("client_cert_chain"), scope


@needs_tls
def test_mtls_required_wsgi(start_server, certs):
    srv = start_tls(start_server, certs, "--ssl-ca-certs", certs.client_ca, "--ssl-cert-reqs", "required")
    expect_rejected(srv.port, client_ctx(certs), "no client certificate (WSGI)")
    r, *_ = tls_get(srv.port, client_ctx(certs, client=certs.client), "/env")
    assert r.status == 200 and r.json()["url_scheme"] == "https"


# ---------------------------------------------------------------------------------------------
# Session resumption
# ---------------------------------------------------------------------------------------------

def _session_after_response(port: int, ctx: ssl.SSLContext) -> tuple[ssl.SSLSession, int]:
    """Connect, read a response (TLS 1.3 tickets come after the handshake), keep the session."""
    with TLSConn(port, ctx) as c:
        r = c.request("GET", "/pid")
        assert r.status == 200, r
        return c.sock.session, int(r.body)


@needs_tls
@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_session_resumption(start_server, certs, max_version):
    srv = start_tls(start_server, certs)
    ctx = client_ctx(certs, max_version=max_version)
    session, _ = _session_after_response(srv.port, ctx)
    assert session is not None
    for _ in range(3):
        with TLSConn(srv.port, ctx, session=session) as c:
            r = c.request("GET", "/pid")
            assert r.status == 200
            assert c.sock.session_reused, "the server did not resume the session"
            session = c.sock.session


@needs_tls
def test_session_resumption_across_workers(start_server, certs):
    """Ticket keys are made once in the master: a worker resumes a session another one issued. The
    worker that issued the ticket is kept busy (/sleep on its keep-alive connection) so the new
    connection is accepted by the other one; a few rounds, best effort."""
    srv = start_tls(start_server, certs, workers=2)
    worker_pids(srv.proc.pid, 2)
    ctx = client_ctx(certs)
    results = []
    for _ in range(6):
        with TLSConn(srv.port, ctx) as issuer:
            r = issuer.request("GET", "/pid")
            issuer_pid = int(r.body)
            session = issuer.sock.session
            issuer.send(b"GET /sleep?s=1.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(0.2)  # the issuing worker is now blocked in the application
            with TLSConn(srv.port, ctx, session=session) as c:
                r = c.request("GET", "/pid")
                assert r.status == 200, r
                results.append((issuer_pid, int(r.body), c.sock.session_reused))
            assert issuer.read_response().status == 200
        if any(a != b and reused for a, b, reused in results) and len(results) >= 2:
            break
    cross = [(a, b, reused) for a, b, reused in results if a != b]
    if not cross:
        pytest.skip(f"every reconnection landed on the issuing worker: {results}")
    assert all(reused for _, _, reused in cross), \
        f"a worker did not resume a session another worker issued (issuer, resumer, reused): {results}"


# ---------------------------------------------------------------------------------------------
# Keep-alive, pipelining, big bodies
# ---------------------------------------------------------------------------------------------

@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_keep_alive_and_pipelining(start_server, certs, app):
    srv = start_tls(start_server, certs, app=app)
    with TLSConn(srv.port, client_ctx(certs)) as c:
        pids = set()
        for _ in range(5):
            r = c.request("GET", "/pid")
            assert r.status == 200 and "close" not in r.connection_tokens(), r
            pids.add(r.body)
        assert len(pids) == 1
        n = 20
        c.send(b"".join(b"GET /big?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % (1000 + i) for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and len(r.body) == 1000 + i, (i, r)
        r = c.request("GET", "/")
        assert r.body == b"Hello, TLS!"


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_keep_alive_after_idle(start_server, certs, app):
    """An idle keep-alive connection gives OpenSSL's record buffers back after a second; it must
    serve requests (single and pipelined) as before afterwards."""
    srv = start_tls(start_server, certs, app=app)
    with TLSConn(srv.port, client_ctx(certs)) as c:
        for rnd in range(2):
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"Hello, TLS!", r
            time.sleep(1.6)
            c.send(b"".join(b"GET /big?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % (20000 + i) for i in range(3)))
            for i in range(3):
                r = c.read_response()
                assert r.status == 200 and len(r.body) == 20000 + i, (rnd, i, r)
            time.sleep(1.6)


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_large_response(start_server, certs, app):
    from tests.apps.tls_app import pattern_bytes

    srv = start_tls(start_server, certs, app=app)
    n = 8 * MiB + 123
    with TLSConn(srv.port, client_ctx(certs), timeout=60) as c:
        r = c.request("GET", f"/big?n={n}")
        assert r.status == 200 and len(r.body) == n
        assert r.body == pattern_bytes(n)
        r = c.request("GET", "/")  # the connection is still good after it
        assert r.body == b"Hello, TLS!"


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_large_upload(start_server, certs, app):
    srv = start_tls(start_server, certs, app=app)
    body = os.urandom(8 * MiB + 7)
    with TLSConn(srv.port, client_ctx(certs), timeout=60) as c:
        r = c.request("POST", "/upload", body=body)
        assert r.status == 200, r
        assert r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        r = c.request("GET", "/")
        assert r.body == b"Hello, TLS!"


@needs_tls
@pytest.mark.parametrize("app", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_upload_sizes_around_tls_records(start_server, certs, app):
    """Bodies that fill one 16 KiB TLS record and more, with the head in the same write or apart
    (a short --timeout-request-body makes a stalled read fail fast)."""
    srv = start_tls(start_server, certs, "--timeout-request-body", "5", app=app)
    ctx = client_ctx(certs)
    failures = []
    for n in (1, 16000, 16384, 16385, 20000, 65536, 200_000):
        for split in (False, True):
            body = os.urandom(n)
            head = b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % n
            try:
                with TLSConn(srv.port, ctx) as c:
                    if split:
                        c.send(head)
                        time.sleep(0.05)
                        c.send(body)
                    else:
                        c.send(head + body)
                    r = c.read_response()
                    if r.status != 200 or r.json()["length"] != n:
                        failures.append((n, split, repr(r)[:200]))
            except (ConnectionClosed, ConnectionError, ssl.SSLError, socket.timeout) as e:
                failures.append((n, split, f"{type(e).__name__}: {e}"[:200]))
    assert not failures, "uploads that failed (size, head sent apart, what happened):\n" + "\n".join(
        map(str, failures))


# ---------------------------------------------------------------------------------------------
# Bad peers: each is closed, the server keeps serving, the worker's fds return to baseline
# ---------------------------------------------------------------------------------------------

def client_hello() -> bytes:
    """A real ClientHello record, as the ssl module would send it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def _peer_plain_http(s: socket.socket) -> None:
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")


def _peer_garbage(s: socket.socket) -> None:
    s.sendall(b"\x00\xff" + os.urandom(4000))


def _peer_bad_record(s: socket.socket) -> None:
    s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(200))  # a handshake record "too long", then junk


def _peer_truncated_hello_eof(s: socket.socket) -> None:
    hello = client_hello()
    s.sendall(hello[: len(hello) // 2])
    s.shutdown(socket.SHUT_WR)


def _peer_hello_then_garbage(s: socket.socket) -> None:
    s.sendall(client_hello())
    time.sleep(0.2)
    s.sendall(os.urandom(3000))


def _peer_silent(s: socket.socket) -> None:
    pass


def _peer_half_hello_stall(s: socket.socket) -> None:
    hello = client_hello()
    s.sendall(hello[: len(hello) // 2])


def _peer_hello_then_stall(s: socket.socket) -> None:
    s.sendall(client_hello())  # and never answers the server's flight


BAD_PEERS = {
    "plain-http": (_peer_plain_http, False),
    "garbage": (_peer_garbage, False),
    "bad-record": (_peer_bad_record, False),
    "truncated-hello-eof": (_peer_truncated_hello_eof, False),
    "hello-then-garbage": (_peer_hello_then_garbage, False),
    # (peer, stalls): these are closed only by --timeout-tls-handshake
    "silent": (_peer_silent, True),
    "half-hello-stall": (_peer_half_hello_stall, True),
    "hello-then-stall": (_peer_hello_then_stall, True),
}


def _bad_peer_server(start_server, certs):
    srv = start_tls(start_server, certs, "--timeout-tls-handshake", str(HANDSHAKE_TIMEOUT),
                    "--ssl-ca-certs", certs.client_ca, "--ssl-cert-reqs", "optional")
    pid = worker_pids(srv.proc.pid, 1)[0]
    ctx = client_ctx(certs)
    for _ in range(3):  # warm up
        r, *_ = tls_get(srv.port, ctx)
        assert r.status == 200
    time.sleep(0.3)
    return srv, pid, ctx


def _assert_settled(srv, pid: int, baseline: int, ctx) -> None:
    r, *_ = tls_get(srv.port, ctx)
    assert r.status == 200 and r.body == b"Hello, TLS!", r
    n = wait_fds(pid, baseline, timeout=15.0)
    assert n <= baseline, f"worker {pid} has {n} fds open, baseline {baseline}: {os.listdir(f'/proc/{pid}/fd')}"


@needs_tls
@pytest.mark.parametrize("kind", list(BAD_PEERS))
def test_bad_peer_is_closed(start_server, certs, kind):
    peer, stalls = BAD_PEERS[kind]
    srv, pid, ctx = _bad_peer_server(start_server, certs)
    baseline = fd_count(pid)
    s = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT)
    try:
        t0 = time.monotonic()
        try:
            peer(s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # already closed by the server: fine
        # the server answers nothing usable and closes
        limit = HANDSHAKE_TIMEOUT + 13.0 if stalls else IO_TIMEOUT
        s.settimeout(limit)
        got = bytearray()
        closed = False
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    closed = True
                    break
                got += data
        except ConnectionResetError:
            closed = True
        except (socket.timeout, TimeoutError):
            pass
        elapsed = time.monotonic() - t0
        assert closed, f"{kind}: still open after {elapsed:.1f} s (got {bytes(got[:100])!r})"
        assert not bytes(got).startswith(b"HTTP/1.1 2"), f"{kind}: served: {bytes(got[:200])!r}"
        if stalls:
            assert elapsed >= HANDSHAKE_TIMEOUT * 0.6, f"{kind}: closed after {elapsed:.2f} s, before the timeout"
        # the server is still up for the others meanwhile
        assert srv.alive()
    finally:
        s.close()
    _assert_settled(srv, pid, baseline, ctx)


@needs_tls
def test_stalled_handshakes_do_not_block_others(start_server, certs):
    srv, pid, ctx = _bad_peer_server(start_server, certs)
    baseline = fd_count(pid)
    stallers = [socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT) for _ in range(20)]
    try:
        hello = client_hello()
        for i, s in enumerate(stallers):
            if i % 2:
                s.sendall(hello[:50])
        t0 = time.monotonic()
        r, *_ = tls_get(srv.port, ctx)
        assert r.status == 200
        assert time.monotonic() - t0 < HANDSHAKE_TIMEOUT + 5
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT + 13.0
        for i, s in enumerate(stallers):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            except (socket.timeout, TimeoutError):
                pytest.fail(f"stalled connection {i} still open {HANDSHAKE_TIMEOUT + 13.0} s later")
    finally:
        for s in stallers:
            s.close()
    _assert_settled(srv, pid, baseline, ctx)


@needs_tls
def test_client_cert_failing_verification_is_closed(start_server, certs):
    strict = start_tls(start_server, certs, "--ssl-ca-certs", certs.client_ca, "--ssl-cert-reqs", "required",
                       "--timeout-tls-handshake", str(HANDSHAKE_TIMEOUT))
    strict_pid = worker_pids(strict.proc.pid, 1)[0]
    tls_get(strict.port, client_ctx(certs, client=certs.client))
    time.sleep(0.3)
    baseline = fd_count(strict_pid)
    for _ in range(3):
        expect_rejected(strict.port, client_ctx(certs, client=certs.rogue_client), "an untrusted client certificate")
    r, *_ = tls_get(strict.port, client_ctx(certs, client=certs.client))
    assert r.status == 200
    n = wait_fds(strict_pid, baseline, timeout=15.0)
    assert n <= baseline, f"worker {strict_pid} has {n} fds open, baseline {baseline}"


@needs_tls
def test_abrupt_client_mid_handshake(start_server, certs):
    """The client sends its ClientHello and resets the connection (RST) before the handshake ends."""
    import struct

    srv, pid, ctx = _bad_peer_server(start_server, certs)
    baseline = fd_count(pid)
    hello = client_hello()
    for _ in range(10):
        s = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT)
        s.sendall(hello)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    _assert_settled(srv, pid, baseline, ctx)


# ---------------------------------------------------------------------------------------------
# Start-up errors
# ---------------------------------------------------------------------------------------------

def _startup_error(*args: str) -> str:
    p = run_luath(WSGI, "--host", HOST, "--port", "0", *args)
    assert p.returncode != 0, f"luath started with {args}: {p.stderr[-2000:]}"
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines, "no message"
    return p.stderr


@needs_tls
def test_startup_missing_certfile(certs):
    missing = str(certs.dir / "nope.pem")
    err = _startup_error("--ssl-certfile", missing, "--ssl-keyfile", certs.key)
    assert missing in err and "No such file" in err, err


@needs_tls
def test_startup_missing_keyfile(certs):
    missing = str(certs.dir / "nokey.pem")
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", missing)
    assert missing in err and "No such file" in err, err


@needs_tls
def test_startup_key_does_not_match(certs):
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.other_key)
    assert certs.other_key in err and "does not match" in err, err


@needs_tls
def test_startup_wrong_password(certs):
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.enc_key,
                         "--ssl-keyfile-password", "wrong")
    assert certs.enc_key in err and "wrong ssl_keyfile_password" in err, err


@needs_tls
def test_startup_encrypted_key_without_password(certs):
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.enc_key)
    assert certs.enc_key in err and "encrypted" in err, err


@needs_tls
def test_startup_cert_reqs_without_ca(certs):
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key, "--ssl-cert-reqs", "required")
    assert "ssl_ca_certs" in err, err


@needs_tls
def test_startup_not_a_certificate(certs):
    err = _startup_error("--ssl-certfile", certs.key, "--ssl-keyfile", certs.key)
    assert certs.key in err and "certificate" in err, err


@pytest.mark.skipif(HAS_TLS, reason="this build has TLS")
def test_build_without_tls_refuses_ssl_options(certs):
    err = _startup_error("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key)
    assert "luath was built without TLS support" in err, err


# ---------------------------------------------------------------------------------------------
# Config: what the engine gets
# ---------------------------------------------------------------------------------------------

def test_config_engine_options(certs, monkeypatch):
    from luath import _tls
    from luath.config import Config

    monkeypatch.setattr(_tls, "has_tls", lambda: True)
    cfg = Config.from_kwargs(ssl_certfile=certs.cert, ssl_keyfile=certs.key, ssl_ca_certs=certs.client_ca,
                             ssl_cert_reqs="required", ssl_min_version="1.3", timeout_tls_handshake=2)
    opts = cfg.engine_options()
    assert opts["ssl_certfile"] == certs.cert and opts["ssl_keyfile"] == certs.key
    assert opts["ssl_ca_certs"] == certs.client_ca and opts["ssl_cert_reqs"] == 2
    assert opts["ssl_min_version"] == "1.3" and opts["timeout_tls_handshake"] == 2.0
    assert opts["ssl_ciphers"] is None and opts["ssl_keyfile_password"] is None
    keys = opts["ssl_ticket_keys"]
    assert isinstance(keys, bytes) and len(keys) == 80
    assert cfg.engine_options()["ssl_ticket_keys"] == keys  # made once, not per worker
    assert "s3cret" not in repr(Config(ssl_keyfile_password="s3cret"))

    cfg = Config.from_kwargs(ssl_certfile=certs.both)
    assert cfg.engine_options()["ssl_keyfile"] == certs.both
    assert cfg.engine_options()["ssl_cert_reqs"] == 0 and cfg.ssl_min_version == "1.2"
    assert Config.from_kwargs(ssl_certfile=certs.both, ssl_cert_reqs=ssl.CERT_OPTIONAL,
                              ssl_ca_certs=certs.ca).ssl_cert_reqs == 1

    plain = Config.from_kwargs().engine_options()
    assert not any(k.startswith("ssl_") for k in plain) and "timeout_tls_handshake" not in plain
    with pytest.raises(ValueError, match="without ssl_certfile"):
        Config.from_kwargs(ssl_keyfile=certs.key)
    with pytest.raises(ValueError, match="ssl_min_version"):
        Config.from_kwargs(ssl_certfile=certs.both, ssl_min_version="1.1")
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        Config.from_kwargs(ssl_certfile=certs.both, ssl_cert_reqs="sometimes")


def test_config_refuses_tls_without_engine_support(certs, monkeypatch):
    from luath import _tls
    from luath.config import Config

    monkeypatch.setattr(_tls, "has_tls", lambda: False)
    with pytest.raises(ValueError, match="built without TLS support"):
        Config.from_kwargs(ssl_certfile=certs.both)
    Config.from_kwargs()  # no TLS option: fine


def test_cli_parses_tls_options(certs):
    from luath.cli import build_parser, options_of

    args = build_parser().parse_args([WSGI, "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key,
                                      "--ssl-keyfile-password", "pw", "--ssl-ca-certs", certs.ca,
                                      "--ssl-cert-reqs", "optional", "--ssl-ciphers", "ECDHE+AESGCM",
                                      "--ssl-min-version", "1.3", "--timeout-tls-handshake", "3.5"])
    opts = options_of(args)
    assert opts["ssl_certfile"] == certs.cert and opts["ssl_keyfile"] == certs.key
    assert opts["ssl_keyfile_password"] == "pw" and opts["ssl_ca_certs"] == certs.ca
    assert opts["ssl_cert_reqs"] == "optional" and opts["ssl_ciphers"] == "ECDHE+AESGCM"
    assert opts["ssl_min_version"] == "1.3" and opts["timeout_tls_handshake"] == 3.5
