"""luath.gunicorn.Worker: gunicorn's arbiter with luath's engine in the workers (needs gunicorn)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.apps.proc import HOST, Load, Proc, children, free_port, request, wait_children, wait_serving

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")


def gunicorn_cmd(*args: str) -> list[str]:
    exe = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
    return [exe, "-k", "luath.gunicorn.Worker", *args]


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


def test_serves_and_stops(procs, tmp_path):
    port = free_port()
    p = Proc(gunicorn_cmd("-b", f"{HOST}:{port}", "-w", "2", "--timeout", "5", "--access-logfile", "-",
                          "tests.apps.ops:app"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    workers = wait_children(p.pid, 2)
    env = json.loads(request((HOST, port), "/env")[1])
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["pid"] in workers
    p.wait_log('"GET /env HTTP/1.1" 200', stdout=True)
    # the heartbeat thread keeps gunicorn's --timeout 5 from killing idle workers
    time.sleep(7)
    assert children(p.pid) == workers, p.stderr()[-2000:]
    p.signal(signal.SIGTERM)
    assert p.wait(20) == 0


def test_max_requests_and_kill(procs, tmp_path):
    port = free_port()
    p = Proc(gunicorn_cmd("-b", f"{HOST}:{port}", "-w", "2", "--max-requests", "50", "tests.apps.ops:app"),
             tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    load = Load((HOST, port), threads=3)
    try:
        load.wait_more(300, timeout=60)
    finally:
        load.stop()
    assert len({b for _, b in load.bodies}) >= 4  # workers were recycled
    p.signal(signal.SIGTERM)
    assert p.wait(20) == 0
