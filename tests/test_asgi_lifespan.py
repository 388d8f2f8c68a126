"""Lifespan protocol, interface detection, the CLI/Python API for ASGI and the --loop option."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.asgi_helpers import ASGI, kill_group, luath_cmd, spawn, stop, wait_listening
from tests.conftest import REPO_ROOT, SERVER_KIND, RawConn, free_port

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own CLI and API")

LS = "tests.apps.asgi_lifespan"



def _lines(path) -> list[str]:
    try:
        return [x for x in path.read_text().splitlines() if x]
    except FileNotFoundError:
        return []


def _get_json(port, target="/"):
    with RawConn(port) as c:
        r = c.request("GET", target)
    assert r.status == 200, r
    return r.json()


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_and_shutdown_run(tmp_path, mode):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:app", port, "--interface", "asgi", "--lifespan", mode, "--workers", "1"),
                 {"LUATH_ASGI_MARKER": str(marker)})
    try:
        wait_listening(proc, port)
        # (the listening socket may be bound before the worker runs startup; requests must wait for it)
        j = _get_json(port)
        assert "startup" in _lines(marker), f"a request was served before startup ran: {_lines(marker)}"
        assert j["state"] is not None and j["state"].get("greeting") == "hello from startup", j
        assert "shutdown" not in _lines(marker)
        err = stop(proc)
        assert proc.returncode == 0, err[-3000:]
        lines = _lines(marker)
        assert lines.count("startup") == 1 and lines.count("shutdown") == 1, lines
        assert lines.index("startup") < lines.index("shutdown")
    finally:
        kill_group(proc)


def test_state_shallow_copy_per_request(tmp_path):
    """Each request gets its own copy of the startup state: a value written into scope["state"] by
    the app is not seen by other requests."""
    port = free_port()
    proc = spawn(luath_cmd(ASGI, port, "--interface", "asgi", "--workers", "1"))
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            a = c.request("GET", "/state?set=x").json()
            b = c.request("GET", "/state").json()
        assert a["state"]["from_startup"] == "yes"
        assert "leak_x" not in b["keys"]
        assert "x" in b["shared"]
    finally:
        kill_group(proc)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_message_exits_nonzero(tmp_path, mode):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:startup_failed_app", port, "--interface", "asgi", "--lifespan", mode,
                           "--workers", "1"), {"LUATH_ASGI_MARKER": str(marker)})
    try:
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the server kept running after lifespan.startup.failed")
        err = err.decode("utf-8", "replace")
        assert proc.returncode not in (0, None), err[-3000:]
        assert "luath-test-startup-failed-msg" in err, f"the failure message is not in stderr:\n{err[-3000:]}"
        assert "startup-failing" in _lines(marker)
    finally:
        kill_group(proc)


def test_startup_exception_with_lifespan_on_exits_nonzero(tmp_path):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:startup_raises_app", port, "--interface", "asgi", "--lifespan", "on",
                           "--workers", "1"), {"LUATH_ASGI_MARKER": str(marker)})
    try:
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the server kept running after an exception in lifespan startup (--lifespan on)")
        err = err.decode("utf-8", "replace")
        assert proc.returncode not in (0, None), err[-3000:]
        assert "luath-test-startup-raised" in err, err[-3000:]
    finally:
        kill_group(proc)


def test_lifespan_off_never_calls_lifespan(tmp_path):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:app", port, "--interface", "asgi", "--lifespan", "off", "--workers", "1"),
                 {"LUATH_ASGI_MARKER": str(marker)})
    try:
        wait_listening(proc, port)
        j = _get_json(port)
        assert not (j["state"] or {}).get("greeting"), j
        err = stop(proc)
        assert proc.returncode == 0, err[-3000:]
        lines = _lines(marker)
        assert "call http" in lines
        assert "call lifespan" not in lines, f"--lifespan off called the app with a lifespan scope: {lines}"
    finally:
        kill_group(proc)


def test_lifespan_auto_app_without_lifespan_still_serves(tmp_path):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:no_lifespan_app", port, "--interface", "asgi", "--workers", "1"),
                 {"LUATH_ASGI_MARKER": str(marker)})
    try:
        wait_listening(proc, port)
        for _ in range(3):
            assert _get_json(port) == {"ok": True}
        err = stop(proc)
        assert proc.returncode == 0, err[-3000:]
        assert "call lifespan" in _lines(marker), "--lifespan auto should try the lifespan scope"
    finally:
        kill_group(proc)


def test_lifespan_on_app_without_lifespan_fails(tmp_path):
    """With --lifespan on, an app that raises on the lifespan scope is a startup failure."""
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:no_lifespan_app", port, "--interface", "asgi", "--lifespan", "on",
                           "--workers", "1"))
    try:
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("--lifespan on: the server kept running although lifespan failed")
        assert proc.returncode not in (0, None)
        assert "luath-test-lifespan-unsupported" in err.decode("utf-8", "replace")
    finally:
        kill_group(proc)


def test_shutdown_failed_is_logged(tmp_path):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:shutdown_failed_app", port, "--interface", "asgi", "--workers", "1"),
                 {"LUATH_ASGI_MARKER": str(marker)})
    try:
        wait_listening(proc, port)
        assert _get_json(port) == {}  # startup has completed once a request is answered
        err = stop(proc)
        assert "shutdown-failing" in _lines(marker)
        assert "luath-test-shutdown-failed-msg" in err, err[-3000:]
    finally:
        kill_group(proc)


def test_two_workers_each_run_lifespan(tmp_path):
    marker = tmp_path / "events"
    port = free_port()
    proc = spawn(luath_cmd(f"{LS}:app", port, "--interface", "asgi", "--workers", "2"),
                 {"LUATH_ASGI_MARKER": str(marker)})
    try:
        wait_listening(proc, port)
        deadline = time.monotonic() + 15
        while _lines(marker).count("startup") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _lines(marker).count("startup") == 2, _lines(marker)
        stop(proc)
        assert proc.returncode == 0
        assert _lines(marker).count("shutdown") == 2, _lines(marker)
    finally:
        kill_group(proc)


# ------------------------------------------------------------------------------ interface detection

@pytest.mark.parametrize("attr", ["app", "three_param_app", "class_app"])
def test_interface_auto_detects_asgi(attr):
    port = free_port()
    proc = spawn(luath_cmd(f"tests.apps.asgi_basic:{attr}", port, "--interface", "auto", "--workers", "1"))
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            r = c.request("GET", "/scope?x=1")
        assert r.status == 200, r
        assert r.json()["type"] == "http"
        err = stop(proc)
        assert proc.returncode == 0, err[-3000:]
    finally:
        kill_group(proc)


def test_interface_default_is_auto():
    port = free_port()
    proc = spawn(luath_cmd(ASGI, port, "--workers", "1"))
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            assert c.request("GET", "/").body == b"hello"
    finally:
        kill_group(proc)


def test_wsgi_still_detected_as_wsgi():
    port = free_port()
    proc = spawn(luath_cmd("tests.apps.basic:app", port, "--interface", "auto", "--workers", "1"))
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            assert c.request("GET", "/").body == b"hello"
            assert c.request("GET", "/environ").json()["wsgi.version"] == [1, 0]
    finally:
        kill_group(proc)


# ------------------------------------------------------------------------------ Python API

def test_python_api_serve_asgi(tmp_path):
    port = free_port()
    code = ("import luath, tests.apps.asgi_basic as b; "
            f"luath.serve_asgi(b.app, host='127.0.0.1', port={port}, workers=1, lifespan='on', loop='asyncio',"
            " max_body_size=1024)")
    proc = spawn([sys.executable, "-c", code])
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            assert c.request("GET", "/").body == b"hello"
            assert c.request("GET", "/state").json()["state"]["from_startup"] == "yes"
            assert c.request("POST", "/echo", body=b"x" * 1024).status == 200
        with RawConn(port) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048)
            assert c.read_response(allow_incomplete=True).status == 413
        err = stop(proc)
        assert proc.returncode == 0, err[-3000:]
    finally:
        kill_group(proc)


@pytest.mark.parametrize("interface", ["auto", "asgi"])
def test_python_api_run_string(interface):
    port = free_port()
    code = (f"import luath; luath.run('tests.apps.asgi_basic:app', interface='{interface}', "
            f"host='127.0.0.1', port={port}, workers=1)")
    proc = spawn([sys.executable, "-c", code])
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            assert c.request("GET", "/scope").json()["asgi"]["version"] == "3.0"
        stop(proc)
        assert proc.returncode == 0
    finally:
        kill_group(proc)


def test_python_api_serve_asgi_rejects_bad_options():
    for kw in ("lifespan='sometimes'", "loop='nope'", "no_such_option=1"):
        code = f"import luath, tests.apps.asgi_basic as b; luath.serve_asgi(b.app, port=0, {kw})"
        proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO_ROOT), capture_output=True, timeout=60)
        assert proc.returncode != 0, kw


def test_cli_rejects_bad_lifespan_and_loop():
    port = free_port()
    for extra in (["--lifespan", "sometimes"], ["--loop", "nope"]):
        proc = subprocess.run(luath_cmd(ASGI, port, "--interface", "asgi", *extra), cwd=str(REPO_ROOT),
                              capture_output=True, timeout=60)
        assert proc.returncode != 0, extra
        assert proc.stderr, extra


# ------------------------------------------------------------------------------ event loops

@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "auto"])
def test_loop_option(loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    port = free_port()
    proc = spawn(luath_cmd(ASGI, port, "--interface", "asgi", "--loop", loop, "--workers", "1"))
    try:
        wait_listening(proc, port)
        with RawConn(port) as c:
            info = c.request("GET", "/loop").json()
            assert c.request("GET", "/sleep?t=0.05&i=1").body == b"slept 1"
            assert c.request("POST", "/echo", body=b"loop-body").body == b"loop-body"
        if loop == "uvloop":
            assert info["loop"].startswith("uvloop"), info
        elif loop == "asyncio":
            assert info["loop"].startswith("asyncio"), info
        err = stop(proc, signal.SIGINT)
        assert proc.returncode == 0, err[-3000:]
    finally:
        kill_group(proc)


def test_sigterm_with_open_asgi_request():
    """SIGTERM while a request is in flight: the server exits within the graceful timeout."""
    port = free_port()
    proc = spawn(luath_cmd(ASGI, port, "--interface", "asgi", "--workers", "1",
                           "--timeout-graceful-shutdown", "2"))
    try:
        wait_listening(proc, port)
        c = RawConn(port)
        c.send(b"GET /sleep?t=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        t0 = time.monotonic()
        stop(proc, timeout=15)
        assert time.monotonic() - t0 < 10
        c.close()
    finally:
        kill_group(proc)
