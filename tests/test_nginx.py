"""A real nginx (Debian's nginx-light) in front of luath over a unix socket: with --proxy-headers the
application sees the client's address from X-Forwarded-For, and a client cannot spoof it."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.apps.proc import HOST, Load, Proc, free_port, get_via_proxy, luath, wait_serving
from tests.conftest import SERVER_KIND

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(p, os.X_OK)), None)
pytestmark = [
    pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own options"),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)"),
]

CLIENT_ADDR = "127.0.0.2"  # the client connects from here, so it differs from nginx's own 127.0.0.1

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream luath {{ server unix:{sock}; keepalive 8; }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://luath;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    return get_via_proxy(port, path, headers, CLIENT_ADDR)[:2]


@pytest.fixture
def stack(tmp_path):
    procs = []

    def start(*luath_args):
        sock = str(tmp_path / "luath.sock")
        app = Proc(luath("tests.apps.ops:app", "--uds", sock, *luath_args), tmp_path, name="luath")
        procs.append(app)
        wait_serving(sock, app)
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(CONF.format(tmp=tmp_path, sock=sock, host=HOST, port=port))
        ngx = Proc([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "nginx-error.log")],
                   tmp_path, name="nginx")
        procs.append(ngx)
        deadline = time.monotonic() + 15
        while True:
            try:
                if get(port, "/")[0] == 200:
                    break
            except OSError:
                pass
            if ngx.proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "nginx-error.log")
                raise AssertionError(f"nginx did not start: {ngx.stderr()}\n"
                                     f"{log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        return port

    yield start
    for p in procs:
        p.kill()


def test_app_sees_the_client_address(stack):
    port = stack("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1,unix", "--workers", "2")
    status, body = get(port, "/env")
    env = json.loads(body)
    assert status == 200
    assert env["REMOTE_ADDR"] == CLIENT_ADDR
    assert env["url_scheme"] == "http" and env["HTTP_HOST"] == f"app.example:{port}"
    # a client's own X-Forwarded-For is kept by nginx at the left; the rightmost untrusted address wins
    env = json.loads(get(port, "/env", {"X-Forwarded-For": "6.6.6.6"})[1])
    assert env["REMOTE_ADDR"] == CLIENT_ADDR
    # and under a little load through nginx's keep-alive upstream connections, nothing fails
    load = Load((HOST, port), threads=3)
    try:
        load.wait_more(200, timeout=30)
    finally:
        load.stop()
    assert load.failures == []


def test_without_proxy_headers_the_peer_is_the_unix_socket(stack):
    port = stack()
    env = json.loads(get(port, "/env")[1])
    assert env["REMOTE_ADDR"] == ""  # a unix socket peer has no address


def test_unix_peer_not_trusted_when_not_listed(stack):
    port = stack("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
    env = json.loads(get(port, "/env")[1])
    assert env["REMOTE_ADDR"] == ""
