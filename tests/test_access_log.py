"""The access log: the formatter, and one correct line per request from a real server."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from luath._access import AccessLogger, format_combined, format_json
from tests.apps.proc import HOST, Proc, free_port, luath, request, wait_serving
from tests.conftest import SERVER_KIND

ENVIRON = {"REMOTE_ADDR": "10.1.2.3", "REQUEST_METHOD": "GET", "RAW_URI": "/a/b?x=1&y=%20",
           "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_REFERER": "http://ref.example/", "HTTP_USER_AGENT": 'curl "8"'}
SCOPE = {"type": "http", "client": ("10.1.2.3", 5000), "method": "POST", "path": "/a/b", "raw_path": b"/a/b",
         "query_string": b"x=1", "http_version": "1.0",
         "headers": [(b"user-agent", b"ua/1"), (b"referer", b"http://r/")]}
COMBINED = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "([^"]*)" (\d{3}) (\d+|-) '
                      r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$')


def test_combined_wsgi():
    line = format_combined(ENVIRON, 200, 1234, 0.01, now=0)
    m = COMBINED.match(line)
    assert m, line
    assert m.group(1) == "10.1.2.3" and m.group(3) == "GET /a/b?x=1&y=%20 HTTP/1.1"
    assert m.group(4) == "200" and m.group(5) == "1234"
    assert m.group(6) == "http://ref.example/" and m.group(7) == 'curl \\"8\\"'


def test_combined_asgi_and_unix_peer():
    line = format_combined(SCOPE, 404, 0, 0.5)
    m = COMBINED.match(line)
    assert m, line
    assert m.group(1) == "10.1.2.3" and m.group(3) == "POST /a/b?x=1 HTTP/1.0" and m.group(5) == "-"
    assert m.group(7) == "ua/1"
    assert format_combined(dict(SCOPE, client=None), 200, 1, 0).startswith("- - - [")
    assert format_combined(dict(ENVIRON, REMOTE_ADDR=""), 200, 1, 0).startswith("- - - [")


def test_no_log_injection():
    line = format_combined(dict(ENVIRON, HTTP_USER_AGENT="x\n127.0.0.1 - - fake"), 200, 1, 0)
    assert "\n" not in line and "\\x0a" in line


def test_json():
    d = json.loads(format_json(ENVIRON, 201, 7, 0.25))
    assert d["remote_addr"] == "10.1.2.3" and d["method"] == "GET" and d["path"] == "/a/b"
    assert d["query"] == "x=1&y=%20" and d["status"] == 201 and d["length"] == 7 and d["duration"] == 0.25
    assert d["user_agent"] == 'curl "8"' and d["protocol"] == "HTTP/1.1"
    d = json.loads(format_json(SCOPE, 200, 0, 0))
    assert d["method"] == "POST" and d["protocol"] == "HTTP/1.0" and d["referer"] == "http://r/"


def test_logger_level_and_name(caplog):
    with caplog.at_level(logging.INFO, logger="luath.access"):
        AccessLogger("combined")(ENVIRON, 200, 1, 0.0)
    assert [r.name for r in caplog.records] == ["luath.access"]
    assert caplog.records[0].levelno == logging.INFO


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
@pytest.mark.parametrize("app", ["tests.apps.ops:app", "tests.apps.ops:asgi_app"])
@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_one_line_per_request(procs, tmp_path, app, fmt):
    port = free_port()
    p = Proc(luath(app, "--port", str(port), "--access-log", "--access-log-format", fmt), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    n = 20
    for i in range(n):
        assert request((HOST, port), f"/r{i}?q={i}", headers={"User-Agent": f"agent-{i}"})[0] == 200
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in p.stdout().splitlines() if "/r" in ln]
        if len(lines) >= n:
            break
        assert time.monotonic() < deadline, p.stdout()[-3000:]
        time.sleep(0.05)
    time.sleep(0.2)
    lines = [ln for ln in p.stdout().splitlines() if "/r" in ln]
    assert len(lines) == n, lines
    for i, line in enumerate(lines):
        if fmt == "combined":
            m = COMBINED.match(line)
            assert m, line
            assert m.group(1) == "127.0.0.1" and m.group(3) == f"GET /r{i}?q={i} HTTP/1.1"
            assert m.group(4) == "200" and m.group(5) != "-" and m.group(7) == f"agent-{i}"
        else:
            d = json.loads(line)
            assert d["path"] == f"/r{i}" and d["query"] == f"q={i}" and d["status"] == 200
            assert d["remote_addr"] == "127.0.0.1" and d["user_agent"] == f"agent-{i}" and d["length"] > 0


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
def test_off_by_default(procs, tmp_path):
    port = free_port()
    p = Proc(luath("tests.apps.ops:app", "--port", str(port)), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    request((HOST, port), "/quiet")
    time.sleep(0.3)
    assert "/quiet" not in p.stdout() + p.stderr()


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own option")
def test_websocket_handshakes_are_logged(procs, tmp_path):
    """One line per WebSocket handshake, written when the app answers it: 101 when accepted (at once,
    not when the socket closes), the refusal's status otherwise (a close before accept 403, an app
    that raises 500, a websocket.http.response denial its own status and body length)."""
    import base64
    import os
    import socket

    port = free_port()
    p = Proc(luath("tests.apps.asgi_ws:app", "--port", str(port), "--access-log"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)

    def handshake(path: str) -> tuple[socket.socket, bytes]:
        c = socket.create_connection((HOST, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        c.sendall((f"GET {path}?v=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: ws-test\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        return c, data

    def line_for(path: str) -> re.Match:
        deadline = time.monotonic() + 10
        while True:
            for ln in p.stdout().splitlines():
                m = COMBINED.match(ln)
                if m and m.group(3).startswith(f"GET {path}?"):
                    return m
            assert time.monotonic() < deadline, p.stdout()[-3000:]
            time.sleep(0.05)

    open_conn, head = handshake("/echo")  # stays open while its line is looked for
    assert head.startswith(b"HTTP/1.1 101"), head
    m = line_for("/echo")
    assert m.group(3) == "GET /echo?v=1 HTTP/1.1" and m.group(4) == "101" and m.group(7) == "ws-test"
    expected = {"/reject": ("403", None), "/raise-before": ("500", None), "/deny": ("401", "13")}
    for path, (status, length) in expected.items():
        c, head = handshake(path)
        assert head.startswith(f"HTTP/1.1 {status}".encode()), head
        c.close()
        m = line_for(path)
        assert m.group(4) == status, m.group(0)
        if length:
            assert m.group(5) == length, m.group(0)
    open_conn.close()
    time.sleep(0.3)
    assert sum(1 for ln in p.stdout().splitlines() if "GET /echo?" in ln) == 1
