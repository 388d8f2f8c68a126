"""The supervisor under load: a killed worker is replaced, SIGTERM drains, SIGHUP reloads code without a
failed request, --max-requests recycles workers, TTIN/TTOU, USR1, a crash loop gives up."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.apps.proc import (HOST, Load, Proc, children, free_port, luath, request, wait_children,
                             wait_serving)
from tests.conftest import SERVER_KIND

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own supervisor")

OPS = "tests.apps.ops:app"
ASGI = "tests.apps.ops:asgi_app"



@pytest.fixture
def server(tmp_path):
    procs = []

    def start(*args, cwd=None, **envvars):
        port = free_port()
        p = Proc(luath(*args, "--host", HOST, "--port", str(port)), tmp_path, cwd=cwd,
                 name=f"server{len(procs)}", **envvars)
        procs.append(p)
        p.addr = (HOST, port)
        wait_serving(p.addr, p)
        return p

    yield start
    for p in procs:
        p.kill()


def test_kill9_worker_replaced_fast_no_failures_elsewhere(server):
    srv = server(OPS, "--workers", "3")
    workers = wait_children(srv.pid, 3)
    load = Load(srv.addr, threads=4)
    try:
        load.wait_more(50)
        victim = sorted(workers)[0]
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_children(srv.pid, 1, timeout=5, exclude=workers)  # the replacement
        replaced_in = time.monotonic() - t_kill
        assert replaced_in < 1.0, f"replacement took {replaced_in:.2f}s"
        load.wait_more(100)
        # the replacement serves
        deadline = time.monotonic() + 15
        replacement = (children(srv.pid) - workers).pop()
        while str(replacement).encode() not in {b for _, b in load.bodies[-300:]}:
            assert time.monotonic() < deadline, "the replacement worker serves nothing"
            time.sleep(0.05)
    finally:
        load.stop()
    # Only a request the victim had accepted when it was killed can fail: at most one per client thread,
    # and none of them after the kill moment.
    assert len(load.failures) <= 4, load.failures
    assert all(abs(t - t_kill) < 1.0 for t, _ in load.failures), load.failures
    assert f"pid {victim}) died (signal SIGKILL)" in srv.stderr()
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0


def _early_failures(load, t_sig):
    """Failures of requests sent well before the signal (those after it may be refused: the server is
    stopping)."""
    return [f for t, f in load.failures if t < t_sig - 0.05]



def test_sigterm_wsgi_lets_started_requests_finish(server):
    import socket as _socket

    srv = server(OPS, "--workers", "2", "--timeout-graceful-shutdown", "10")
    wait_children(srv.pid, 2)
    load = Load(srv.addr, threads=2)
    try:
        load.wait_more(20)
        slow = _socket.create_connection(srv.addr, timeout=15)
        slow.sendall(b"GET /sleep?s=1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)  # a worker is inside the application with it
        t_sig = time.monotonic()
        srv.signal(signal.SIGTERM)
        buf = b""
        while True:
            chunk = slow.recv(4096)
            if not chunk:
                break
            buf += chunk
        slow.close()
        code = srv.wait(15)
        elapsed = time.monotonic() - t_sig
    finally:
        load.stop()
    assert buf.startswith(b"HTTP/1.1 200") and buf.endswith(b"\r\n\r\n" + buf.split(b"\r\n\r\n", 1)[1]), buf
    assert buf.split(b"\r\n\r\n", 1)[1].isdigit(), buf  # the pid: the whole body arrived
    assert code == 0, srv.stderr()[-3000:]
    assert elapsed < 8, elapsed
    assert not _early_failures(load, t_sig), load.failures


def test_sigterm_asgi_lets_started_requests_finish(server):
    srv = server(ASGI, "--workers", "2", "--timeout-graceful-shutdown", "10")
    wait_children(srv.pid, 2)
    load = Load(srv.addr, threads=2)
    slow = []
    import socket as _socket

    try:
        load.wait_more(20)
        for _ in range(6):
            s = _socket.create_connection(srv.addr, timeout=15)
            s.sendall(b"GET /slow?s=1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            slow.append(s)
        got = {}
        for s in slow:  # each one is in progress: its head and first piece arrived
            buf = b""
            while b"start\n" not in buf:
                chunk = s.recv(4096)
                assert chunk, buf
                buf += chunk
            got[s] = buf
        t_sig = time.monotonic()
        srv.signal(signal.SIGTERM)
        for s in slow:
            buf = got[s]
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 200"), buf
            assert b"end\n" in buf and buf.rstrip().endswith(b"0"), buf  # the chunked body completed
            s.close()
        code = srv.wait(15)
        elapsed = time.monotonic() - t_sig
    finally:
        load.stop()
        for s in slow:
            s.close()
    assert code == 0, srv.stderr()[-3000:]
    assert elapsed < 13, elapsed
    assert not _early_failures(load, t_sig), load.failures
    assert elapsed <= 9, f"the graceful stop took {elapsed:.1f} s: a finished connection stayed open"


def _write_module(path, version: str) -> None:
    path.write_text(
        "import os\n"
        f"VERSION = {version!r}\n"
        "def app(environ, start_response):\n"
        "    body = (VERSION + ' ' + str(os.getpid())).encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n")


def test_sighup_reloads_code_without_failed_requests(server, tmp_path):
    mod = tmp_path / "hupapp.py"
    _write_module(mod, "v1")
    srv = server("hupapp:app", "--workers", "2", cwd=tmp_path)
    old = wait_children(srv.pid, 2)
    load = Load(srv.addr, threads=4)
    try:
        load.wait_more(50)
        _write_module(mod, "version2")
        t_hup = time.monotonic()
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            recent = [b for t, b in load.bodies[-40:] if t > t_hup]
            if len(recent) >= 40 and all(b.startswith(b"version2 ") for b in recent):
                break
            assert time.monotonic() < deadline, f"new code not served: {load.bodies[-5:]}"
            time.sleep(0.05)
        load.wait_more(50)
    finally:
        load.stop()
    new = wait_children(srv.pid, 2)
    assert not (new & old), (old, new)
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert load.failures == [], load.failures[:10]


def test_sighup_with_broken_new_code_keeps_old_workers(server, tmp_path):
    mod = tmp_path / "hupbad.py"
    _write_module(mod, "v1")
    srv = server("hupbad:app", "--workers", "2", cwd=tmp_path)
    old = wait_children(srv.pid, 2)
    mod.write_text("this is not python\n")
    srv.signal(signal.SIGHUP)
    srv.wait_log("reload failed")
    assert wait_children(srv.pid, 2) == old
    assert request(srv.addr)[1].startswith(b"v1 ")
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0


def test_max_requests_recycles_workers_without_failures(server):
    srv = server(OPS, "--workers", "2", "--max-requests", "40", "--max-requests-jitter", "10")
    load = Load(srv.addr, threads=4)
    try:
        load.wait_more(400, timeout=60)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:10]
    pids = {b for _, b in load.bodies}
    assert len(pids) >= 6, pids  # 400+ requests, at most 50 per worker
    assert "exited (max requests)" in srv.stderr()
    assert "died" not in srv.stderr()
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0


def test_max_requests_with_one_worker(server):
    srv = server(OPS, "--max-requests", "5")
    load = Load(srv.addr, threads=2)
    try:
        load.wait_more(30, timeout=60)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:10]
    assert len({b for _, b in load.bodies}) >= 5


def test_ttin_ttou_change_the_number_of_workers(server):
    srv = server(OPS, "--workers", "2")
    wait_children(srv.pid, 2)
    srv.signal(signal.SIGTTIN)
    wait_children(srv.pid, 3)
    srv.signal(signal.SIGTTOU)
    wait_children(srv.pid, 2)
    srv.signal(signal.SIGTTOU)
    wait_children(srv.pid, 1)
    srv.signal(signal.SIGTTOU)  # never fewer than one
    time.sleep(0.5)
    assert len(children(srv.pid)) == 1
    assert request(srv.addr)[0] == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0


def test_usr1_reopens_log_files(server, tmp_path):
    log = tmp_path / "luath.log"
    conf = tmp_path / "log.json"
    conf.write_text(json.dumps({
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log)}},
        "loggers": {"luath": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }))
    srv = server(OPS, "--workers", "2", "--log-config", str(conf), "--access-log")
    wait_children(srv.pid, 2)
    assert "listening" in log.read_text()
    log.rename(tmp_path / "luath.log.1")
    srv.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not log.exists():
        assert time.monotonic() < deadline, "the master did not reopen its log file"
        time.sleep(0.05)
    srv.signal(signal.SIGTTIN)  # the master logs this to the new file
    deadline = time.monotonic() + 10
    while "SIGTTIN" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    # the workers reopen too (on their next request): access lines land in the new file
    for _ in range(10):
        request(srv.addr, "/after-rotation")
    deadline = time.monotonic() + 10
    while log.read_text().count("/after-rotation") < 10:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_crash_loop_gives_up(tmp_path):
    mod = tmp_path / "crashy.py"
    mod.write_text(
        "import os, threading\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'x']\n"
        "if os.environ.get('CRASHY_PARENT') != str(os.getppid()):\n"
        "    threading.Timer(0.05, os._exit, (1,)).start()\n")
    port = free_port()
    p = Proc(luath("crashy:app", "--workers", "2", "--port", str(port)), tmp_path, cwd=tmp_path)
    try:
        code = p.wait(60)
        assert code == 1, p.stderr()[-3000:]
        assert "workers keep crashing" in p.stderr()
        assert not children(p.pid)
    finally:
        p.kill()


def test_app_failing_in_workers_stops_the_server(tmp_path):
    mod = tmp_path / "lsfail.py"
    mod.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive()\n"
        "        await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n")
    port = free_port()
    p = Proc(luath("lsfail:app", "--workers", "2", "--port", str(port)), tmp_path, cwd=tmp_path)
    try:
        assert p.wait(30) == 3, p.stderr()[-3000:]
        assert "no database" in p.stderr()
    finally:
        p.kill()


def test_python_api_app_object_hup_restarts_workers(tmp_path):
    """luath.serve(app_object, workers=2): the workers are forked with the object; SIGHUP replaces them
    (it cannot reload code) and serving goes on."""
    import sys

    port = free_port()
    code = ("import luath, tests.apps.ops as o; "
            f"luath.serve(o.app, host='127.0.0.1', port={port}, workers=2)")
    p = Proc([sys.executable, "-c", code], tmp_path)
    try:
        wait_serving((HOST, port), p)
        old = wait_children(p.pid, 2)
        load = Load((HOST, port), threads=3)
        try:
            load.wait_more(30)
            p.signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while children(p.pid) & old or len(children(p.pid)) != 2:
                assert time.monotonic() < deadline, (old, children(p.pid), p.stderr()[-2000:])
                time.sleep(0.05)
            load.wait_more(30)
        finally:
            load.stop()
        p.signal(signal.SIGTERM)
        assert p.wait(15) == 0
        assert load.failures == [], load.failures[:10]
    finally:
        p.kill()
