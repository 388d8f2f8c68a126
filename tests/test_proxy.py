"""--proxy-headers: X-Forwarded-* and Forwarded, applied only for trusted peers."""

from __future__ import annotations

import asyncio
import json

import pytest

from luath._proxy import ProxyHeadersASGI, ProxyHeadersWSGI, TrustedPeers, resolve
from tests.apps.proc import HOST, Proc, free_port, luath, request, wait_serving
from tests.conftest import SERVER_KIND


def wsgi_env(remote="127.0.0.1", **headers):
    environ = {"REMOTE_ADDR": remote, "REMOTE_PORT": "5555", "wsgi.url_scheme": "http", "HTTP_HOST": "inner:8000",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}
    for k, v in headers.items():
        environ["HTTP_" + k.upper()] = v
    seen = {}

    def app(env, start_response):
        seen.update(env)
        return []

    return environ, app, seen


def call_wsgi(allow, remote="127.0.0.1", **headers):
    environ, app, seen = wsgi_env(remote, **headers)
    ProxyHeadersWSGI(app, allow)(environ, None)
    return seen


def test_trusted_peers():
    t = TrustedPeers("127.0.0.1, 10.0.0.0/8 ,unix,::1")
    assert "127.0.0.1" in t and "10.1.2.3" in t and "::1" in t and "" in t and None in t
    assert "192.168.1.1" not in t and "garbage" not in t
    assert "" not in TrustedPeers("127.0.0.1")
    assert "8.8.8.8" in TrustedPeers("*")
    with pytest.raises(ValueError, match="not-an-ip"):
        TrustedPeers("not-an-ip")


def test_wsgi_trusted_peer():
    env = call_wsgi("127.0.0.1", x_forwarded_for="203.0.113.7", x_forwarded_proto="https",
                    x_forwarded_host="example.com")
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["REMOTE_PORT"] == "0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "example.com" and env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "443"


def test_wsgi_untrusted_peer_is_ignored():
    env = call_wsgi("127.0.0.1", remote="192.0.2.50", x_forwarded_for="203.0.113.7", x_forwarded_proto="https",
                    x_forwarded_host="evil.example")
    assert env["REMOTE_ADDR"] == "192.0.2.50" and env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "inner:8000"


def test_rightmost_untrusted_address_wins():
    # the client wrote "1.1.1.1" itself; 10.0.0.2 is our own second proxy
    env = call_wsgi("127.0.0.1,10.0.0.0/8", x_forwarded_for="1.1.1.1, 203.0.113.7, 10.0.0.2")
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    env = call_wsgi("*", x_forwarded_for="1.1.1.1, 203.0.113.7, 10.0.0.2")
    assert env["REMOTE_ADDR"] == "1.1.1.1"  # everyone trusted: the leftmost
    env = call_wsgi("127.0.0.1,10.0.0.0/8", x_forwarded_for="10.0.0.9, 10.0.0.2")
    assert env["REMOTE_ADDR"] == "10.0.0.9"


def test_port_and_host_with_port():
    env = call_wsgi("127.0.0.1", x_forwarded_host="example.com:8443", x_forwarded_port="9443",
                    x_forwarded_proto="http, https")
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "9443"
    assert env["wsgi.url_scheme"] == "https"  # the last (nearest proxy's) value


def test_forwarded_rfc7239():
    env = call_wsgi("127.0.0.1,10.0.0.2", forwarded='for=192.0.2.60;proto=http, '
                                                   'for="[2001:db8:cafe::17]:4711";proto=https;host=a.example, '
                                                   'for=10.0.0.2', x_forwarded_for="6.6.6.6")
    assert env["REMOTE_ADDR"] == "2001:db8:cafe::17" and env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "a.example"


def test_unix_peer_trusted_by_default():
    env = call_wsgi("127.0.0.1,unix", remote="", x_forwarded_for="203.0.113.7")
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    env = call_wsgi("127.0.0.1", remote="", x_forwarded_for="203.0.113.7")
    assert env["REMOTE_ADDR"] == ""


def _asgi(allow, client, headers, type_="http"):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": type_, "client": client, "scheme": "http" if type_ == "http" else "ws",
             "server": ("127.0.0.1", 8000), "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(ProxyHeadersASGI(app, allow)(scope, None, None))
    return seen


def test_asgi_trusted_and_untrusted():
    h = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "ex.com")]
    s = _asgi("127.0.0.1", ("127.0.0.1", 4000), h)
    assert s["client"] == ("203.0.113.7", 0) and s["scheme"] == "https" and s["server"] == ("ex.com", 443)
    s = _asgi("127.0.0.1", ("192.0.2.1", 4000), h)
    assert s["client"] == ("192.0.2.1", 4000) and s["scheme"] == "http" and s["server"] == ("127.0.0.1", 8000)
    s = _asgi("127.0.0.1,unix", None, h, type_="websocket")
    assert s["client"] == ("203.0.113.7", 0) and s["scheme"] == "wss"
    s = _asgi("127.0.0.1", None, h)
    assert s["client"] is None


def test_resolve_without_headers_changes_nothing():
    assert resolve(TrustedPeers("*"), "127.0.0.1", lambda name: None) == {}


# ---- end to end


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
@pytest.mark.parametrize("app", ["tests.apps.ops:app", "tests.apps.ops:asgi_app"])
def test_server_trusted_peer(procs, tmp_path, app):
    port = free_port()
    p = Proc(luath(app, "--port", str(port), "--proxy-headers"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    env = json.loads(request((HOST, port), "/env", headers={"X-Forwarded-For": "203.0.113.7",
                                                            "X-Forwarded-Proto": "https"})[1])
    if "REMOTE_ADDR" in env:
        assert env["REMOTE_ADDR"] == "203.0.113.7" and env["url_scheme"] == "https"
    else:
        assert env["client"][0] == "203.0.113.7" and env["scheme"] == "https"


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
@pytest.mark.parametrize("app", ["tests.apps.ops:app", "tests.apps.ops:asgi_app"])
def test_server_untrusted_peer(procs, tmp_path, app):
    port = free_port()
    p = Proc(luath(app, "--port", str(port), "--proxy-headers", "--forwarded-allow-ips", "10.9.9.9"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    env = json.loads(request((HOST, port), "/env", headers={"X-Forwarded-For": "203.0.113.7",
                                                            "X-Forwarded-Proto": "https"})[1])
    if "REMOTE_ADDR" in env:
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["url_scheme"] == "http"
    else:
        assert env["client"][0] == "127.0.0.1" and env["scheme"] == "http"


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
def test_headers_ignored_without_the_option(procs, tmp_path):
    port = free_port()
    p = Proc(luath("tests.apps.ops:app", "--port", str(port)), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    env = json.loads(request((HOST, port), "/env", headers={"X-Forwarded-For": "203.0.113.7"})[1])
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
def test_bad_forwarded_allow_ips_is_an_error():
    import subprocess

    from tests.apps.proc import REPO_ROOT, env

    r = subprocess.run(luath("tests.apps.ops:app", "--proxy-headers", "--forwarded-allow-ips", "nonsense"),
                       cwd=str(REPO_ROOT), env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nonsense" in r.stderr and len(r.stderr.strip().splitlines()) == 1
