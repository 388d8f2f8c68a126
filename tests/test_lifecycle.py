"""Starting and stopping: the CLI, the luath.serve() Python API, signals, several workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import (BASIC, HOST, REPO_ROOT, SERVER_KIND, ConnectionClosed, RawConn, build_request,
                            free_port)

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own CLI and API")


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}: {proc.stderr.read()!r}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start listening")


def _spawn(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(args, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        tree = os.popen(f"ps -o pid,ppid,stat,wchan:20,args -g {proc.pid}").read()
        _killgroup(proc)
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        raise AssertionError(f"server did not exit within {timeout}s of {sig!r}; processes:\n{tree}\n"
                             f"stderr:\n{err[-3000:]}")
    return time.monotonic() - t0


def _killgroup(proc):
    """Kill the process group this test started (workers included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _cleanup(proc):
    _killgroup(proc)
    if proc.stderr:
        proc.stderr.close()


def test_python_api_serve():
    port = free_port()
    code = ("import luath, tests.apps.basic as b; "
            f"luath.serve(b.app, host='127.0.0.1', port={port}, workers=1, max_body_size=1024)")
    proc = _spawn([sys.executable, "-c", code])
    try:
        _wait_listening(proc, port)
        with RawConn(port) as c:
            assert c.request("GET", "/").body == b"hello"
            assert c.request("POST", "/echo", body=b"x" * 1024).status == 200
        with RawConn(port) as c:
            c.send(build_request("POST", "/echo", body=b"x" * 2048, port=port))
            assert c.read_response(allow_incomplete=True).status == 413
        _stop(proc)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        _cleanup(proc)


def test_python_api_rejects_unknown_option():
    code = "import luath, tests.apps.basic as b; luath.serve(b.app, port=0, no_such_option=1)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO_ROOT), capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"no_such_option" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_stops_on_signal_with_idle_connection(sig):
    port = free_port()
    proc = _spawn([sys.executable, "-m", "luath", BASIC, "--host", HOST, "--port", str(port), "--workers", "1"])
    try:
        _wait_listening(proc, port)
        idle = RawConn(port)
        assert idle.request("GET", "/").status == 200  # an idle keep-alive connection stays open
        elapsed = _stop(proc, sig)
        assert proc.returncode == 0, (proc.returncode, proc.stderr.read())
        assert elapsed < 10
        closed, _ = idle.wait_closed(5)
        assert closed
        idle.close()
    finally:
        _cleanup(proc)


def test_cli_bad_app_spec_exits_nonzero():
    port = free_port()
    for spec in ("tests.apps.no_such_module:app", "tests.apps.basic:no_such_attr", "no-colon"):
        proc = subprocess.run([sys.executable, "-m", "luath", spec, "--host", HOST, "--port", str(port)],
                              cwd=str(REPO_ROOT), capture_output=True, timeout=60)
        assert proc.returncode != 0, spec
        assert proc.stderr, spec


def test_two_workers_serve_and_stop_together():
    port = free_port()
    proc = _spawn([sys.executable, "-m", "luath", BASIC, "--host", HOST, "--port", str(port), "--workers", "2"])
    try:
        _wait_listening(proc, port)
        pids = set()
        for _ in range(20):
            with RawConn(port) as c:
                pids.add(int(c.request("GET", "/pid").body))
        assert pids, "no worker answered"
        _stop(proc)
        assert proc.returncode == 0
        deadline = time.monotonic() + 10
        for pid in pids:
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().split(") ", 1)[1].startswith("Z"):
                            break
                except FileNotFoundError:
                    break
                time.sleep(0.05)
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] == "Z", \
                f"worker {pid} still running after the server stopped"
    finally:
        _cleanup(proc)


def _children(pid: int) -> set[int]:
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(rest[1]) == pid and rest[0] != "Z":
                out.add(int(d))
    return out


def _start_two_workers():
    port = free_port()
    proc = _spawn([sys.executable, "-m", "luath", BASIC, "--host", HOST, "--port", str(port), "--workers", "2"])
    _wait_listening(proc, port)
    deadline = time.monotonic() + 15
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_children(proc.pid)) == 2, "the supervisor did not start two workers"
    return proc, port


def test_worker_crash_is_replaced():
    """With several workers, a worker that dies is restarted and the server keeps serving."""
    proc, port = _start_two_workers()
    try:
        with RawConn(port) as c:
            victim = int(c.request("GET", "/pid").body)
        assert victim != proc.pid
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        ok = 0
        while time.monotonic() < deadline and ok < 10:
            try:
                with RawConn(port, timeout=5) as c:
                    if c.request("GET", "/").body == b"hello":
                        ok += 1
            except (OSError, AssertionError, ConnectionClosed):
                time.sleep(0.1)
        assert ok == 10, "server did not keep serving after a worker was killed"
        # the replacement worker appears
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            kids = _children(proc.pid)
            if len(kids) == 2 and victim not in kids:
                break
            time.sleep(0.05)
        assert len(kids) == 2 and victim not in kids, f"no replacement worker: children {kids}"
        _stop(proc)
        assert proc.returncode == 0
    finally:
        _cleanup(proc)


def test_sigterm_during_worker_restart_backoff():
    """SIGTERM that arrives while the supervisor is about to restart a crashed worker must still
    stop everything: no worker may be (re)started after the stop began."""
    proc, port = _start_two_workers()
    try:
        with RawConn(port) as c:
            victim = int(c.request("GET", "/pid").body)
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.01)  # inside the supervisor's restart back-off
        _stop(proc)
        assert proc.returncode == 0
        assert not _children(proc.pid)
    finally:
        _cleanup(proc)
