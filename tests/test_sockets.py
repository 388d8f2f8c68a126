"""Listening sockets: IPv4, IPv6, unix domain sockets, an inherited --fd, systemd socket activation."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys

import pytest

from tests.apps.proc import HOST, Proc, children, free_port, luath, request, wait_children, wait_serving
from tests.conftest import SERVER_KIND

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own sockets")

OPS = "tests.apps.ops:app"
ASGI = "tests.apps.ops:asgi_app"


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_any_serves_v6_and_v4(procs, tmp_path):
    port = free_port()
    p = Proc(luath(OPS, "--host", "::", "--port", str(port)), tmp_path)
    procs.append(p)
    wait_serving(("::1", port), p)
    status, body = request(("::1", port), "/env")
    assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "::1"
    assert request((HOST, port))[0] == 200  # dual stack
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_asgi(procs, tmp_path):
    port = free_port()
    p = Proc(luath(ASGI, "--host", "::1", "--port", str(port)), tmp_path)
    procs.append(p)
    wait_serving(("::1", port), p)
    env = json.loads(request(("::1", port), "/env")[1])
    assert env["client"][0] == "::1" and env["server"] == ["::1", port]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unix_socket_wsgi(procs, tmp_path, workers):
    path = str(tmp_path / "s.sock")
    p = Proc(luath(OPS, "--uds", path, "--workers", workers), tmp_path)
    procs.append(p)
    wait_serving(path, p)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    env = json.loads(request(path, "/env")[1])
    assert env["REMOTE_ADDR"] == "" and env["SERVER_NAME"] == "localhost" and env["SERVER_PORT"] == "80"
    assert "unix:" + path in p.stderr()
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert not os.path.exists(path), "the socket file is removed at exit"


def test_unix_socket_asgi_and_mode(procs, tmp_path):
    path = str(tmp_path / "a.sock")
    p = Proc(luath(ASGI, "--uds", path, "--uds-mode", "600"), tmp_path)
    procs.append(p)
    wait_serving(path, p)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    env = json.loads(request(path, "/env")[1])
    assert env["client"] is None and env["server"] == [path, None]


def test_unix_socket_stale_file_replaced_and_busy_refused(procs, tmp_path):
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # a socket file nobody listens on
    p = Proc(luath(OPS, "--uds", path), tmp_path)
    procs.append(p)
    wait_serving(path, p)
    busy = Proc(luath(OPS, "--uds", path), tmp_path, name="busy")
    procs.append(busy)
    assert busy.wait(30) != 0
    assert "another server is listening" in busy.stderr()
    assert request(path)[0] == 200


def test_inherited_fd(procs, tmp_path):
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    p = Proc(luath(OPS, "--fd", str(fd), "--workers", "2"), tmp_path, pass_fds=[fd])
    procs.append(p)
    lsock.close()  # the server holds its own copy
    wait_serving((HOST, port), p)
    wait_children(p.pid, 2)
    assert request((HOST, port))[0] == 200
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0


def test_fd_that_is_not_a_listening_socket(procs, tmp_path):
    r, w = os.pipe()
    p = Proc(luath(OPS, "--fd", str(r)), tmp_path, pass_fds=[r])
    procs.append(p)
    os.close(r)
    os.close(w)
    assert p.wait(30) != 0
    assert "not a socket" in p.stderr()


@pytest.mark.parametrize("app", [OPS, ASGI])
def test_systemd_socket_activation(procs, tmp_path, app):
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    # What systemd does: the socket at fd 3, LISTEN_FDS=1 and LISTEN_PID = the server's own pid.
    launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                "os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_PID'] = str(os.getpid()); "
                "os.execv(sys.executable, [sys.executable, '-m', 'luath'] + sys.argv[2:])")
    p = Proc([sys.executable, "-c", launcher, str(lsock.fileno()), app, "--port", "1"], tmp_path,
             pass_fds=[lsock.fileno()])
    procs.append(p)
    lsock.close()
    wait_serving((HOST, port), p)
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert not children(p.pid)


def test_port_in_use_is_one_line(procs, tmp_path):
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    p = Proc(luath(OPS, "--port", str(port)), tmp_path)
    procs.append(p)
    try:
        assert p.wait(30) != 0
    finally:
        blocker.close()
    err = p.stderr().strip().splitlines()
    assert err and err[-1].startswith(f"luath: cannot listen on {HOST}:{port}"), err
    assert "Traceback" not in p.stderr()
