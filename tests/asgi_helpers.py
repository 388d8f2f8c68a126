"""Shared constants and helpers for the ASGI tests (tests/test_asgi_*.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.conftest import HOST, REPO_ROOT

ASGI = "tests.apps.asgi_basic:app"
ASGI_ARGS = ("--interface", "asgi", "--workers", "1")


def start_asgi(start_server, *extra: str, app: str = ASGI, fresh: bool = False):
    return start_server(app, *ASGI_ARGS, *extra, fresh=fresh)


def stats(srv, tag: str = "") -> dict:
    with srv.connect() as c:
        r = c.request("GET", f"/__stats?tag={tag}", headers={"Connection": "close"})
    assert r.status == 200, r
    return json.loads(r.body)


def wait_flag(srv, tag: str, pred, timeout: float = 10.0) -> object:
    """Poll /__stats?tag= until pred(flag) is true; return the last flag seen."""
    deadline = time.monotonic() + timeout
    while True:
        flag = stats(srv, tag)["flag"]
        if flag is not None and pred(flag):
            return flag
        if time.monotonic() > deadline:
            return flag
        time.sleep(0.05)


# ------------------------------------------------------------------ processes started by a test itself

def spawn(args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(env_extra or {})
    return subprocess.Popen(args, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def luath_cmd(app_spec: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "luath", app_spec, "--host", HOST, "--port", str(port), *extra]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            raise AssertionError(f"server exited early with {proc.returncode}; stderr:\n{err[-3000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start listening")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10.0) -> str:
    """Signal the server, wait for it, return its stderr."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"server did not exit within {timeout}s of {sig!r}")
    return err.decode("utf-8", "replace")


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    if proc.stderr and not proc.stderr.closed:
        proc.stderr.close()
