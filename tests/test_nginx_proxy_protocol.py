"""A real nginx (Debian's nginx-light with its stream module, libnginx-mod-stream) forwards TCP to luath
with `proxy_protocol on`: luath (--proxy-protocol) reads the PROXY v1 header nginx writes and the
application sees the client's address; a client's own X-Forwarded-For gets nowhere.

Skipped when nginx or its stream module is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.apps.proc import HOST, Load, Proc, free_port, get_via_proxy, luath
from tests.conftest import SERVER_KIND


def _stream_module() -> str | None:
    """"" when nginx has the stream module built in, the .so path when it is a loadable module that is
    installed, None otherwise (or when there is no nginx)."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if nginx is None:
        return None
    try:
        info = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    if re.search(r"--with-stream(\s|$)", info):
        return ""
    if "--with-stream=dynamic" not in info:
        return None
    m = re.search(r"--modules-path=(\S+)", info)
    for d in ([m.group(1)] if m else []) + ["/usr/lib/nginx/modules", "/usr/lib64/nginx/modules"]:
        so = os.path.join(d, "ngx_stream_module.so")
        if os.path.exists(so):
            return so
    return None


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM = _stream_module()
pytestmark = [
    pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own options"),
    pytest.mark.skipif(STREAM is None, reason="nginx with the stream module is not installed "
                                              "(Debian: apt-get install nginx-light libnginx-mod-stream)"),
]

CLIENT_ADDR = "127.0.0.2"  # the client connects from here, so it differs from nginx's own 127.0.0.1

CONF = """
{load}
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
stream {{
    server {{
        listen {host}:{port};
        proxy_pass {upstream};
        proxy_protocol on;
    }}
}}
"""


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes, int]:
    """(status, body, the client's own port), from CLIENT_ADDR through nginx."""
    return get_via_proxy(port, path, headers, CLIENT_ADDR)


@pytest.fixture
def stack(tmp_path):
    procs = []

    def start(app: str, *luath_args, uds: bool = True):
        if uds:
            sock = str(tmp_path / "luath.sock")
            listen, upstream = ["--uds", sock], f"unix:{sock}"
        else:
            lport = free_port()
            listen, upstream = ["--host", HOST, "--port", str(lport)], f"{HOST}:{lport}"
        srv = Proc(luath(app, *listen, "--proxy-protocol", *luath_args), tmp_path, name="luath")
        procs.append(srv)
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(CONF.format(tmp=tmp_path, host=HOST, port=port, upstream=upstream,
                                    load=f"load_module {STREAM};" if STREAM else ""))
        ngx = Proc([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "nginx-error.log")],
                   tmp_path, name="nginx")
        procs.append(ngx)
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(port, "/env")[0] == 200:
                    break
            except OSError:
                pass
            if ngx.proc.poll() is not None or srv.proc.poll() is not None or time.monotonic() > deadline:
                log = tmp_path / "nginx-error.log"
                raise AssertionError(f"the stack did not start: nginx {ngx.stderr()}\n"
                                     f"{log.read_text() if log.exists() else ''}\nluath {srv.stderr()[-2000:]}")
            time.sleep(0.05)
        return port

    yield start
    for p in procs:
        p.kill()


@pytest.mark.parametrize("uds", [True, False], ids=["unix-socket", "tcp"])
def test_wsgi_sees_the_client_address(stack, uds):
    port = stack("tests.apps.ops:app", "--proxy-headers", "--workers", "2", uds=uds)
    status, body, client_port = get(port, "/env", {"X-Forwarded-For": "6.6.6.6"})
    env = json.loads(body)
    assert status == 200
    # from the PROXY header; the client (127.0.0.2 is not a trusted proxy) cannot set its own address
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (CLIENT_ADDR, str(client_port))
    assert env["HTTP_HOST"] == f"app.example:{port}"
    load = Load((HOST, port), threads=3, path="/env")
    try:
        load.wait_more(200, timeout=30)
    finally:
        load.stop()
    assert load.failures == []
    assert all(json.loads(b)["REMOTE_ADDR"] == "127.0.0.1" for _, b in load.bodies)  # Load connects from .1


def test_asgi_sees_the_client_address(stack):
    port = stack("tests.apps.ops:asgi_app", "--interface", "asgi")
    status, body, client_port = get(port, "/env")
    assert status == 200
    assert json.loads(body)["client"] == [CLIENT_ADDR, client_port]
