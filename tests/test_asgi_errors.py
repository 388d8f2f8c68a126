"""ASGI application failures and protocol misuse: exceptions before/after the response start,
wrong message order or type, returning without a response, header injection."""

from __future__ import annotations

import uuid

import pytest

from tests.asgi_helpers import ASGI, ASGI_ARGS, stats, wait_flag
from tests.conftest import build_request


@pytest.fixture
def server(start_server):
    return start_server(ASGI, *ASGI_ARGS)


def _still_serving(srv):
    with srv.connect() as c:
        r = c.request("GET", "/")
    assert r.status == 200 and r.body == b"hello", f"server stopped serving after an app error: {r!r}"


def test_exception_before_start_500_and_traceback(server):
    tag = uuid.uuid4().hex
    off = server.log_size()
    with server.connect() as c:
        r = c.request("GET", f"/error/before?tag={tag}")
        assert r.status == 500, r
        assert b"luath-test-boom" not in r.body, "exception details must not leak to the client"
    log = server.wait_for_log("luath-test-boom-before " + tag, off)
    assert "Traceback" in log, f"no traceback logged:\n{log[-3000:]}"
    assert "RuntimeError" in log
    _still_serving(server)


def test_500_connection_reusable_or_closed_cleanly(server):
    with server.connect() as c:
        c.send(build_request("GET", "/error/before", port=server.port)
               + build_request("GET", "/query?after-500", port=server.port))
        r1 = c.read_response()
        assert r1.status == 500
        if "close" in r1.connection_tokens():
            closed, _ = c.wait_closed()
            assert closed
        else:
            assert c.read_response().body == b"q=after-500"


def test_many_errors_worker_keeps_serving(server):
    pid = stats(server)["pid"]
    for _ in range(20):
        with server.connect() as c:
            assert c.request("GET", "/error/before").status == 500
    _still_serving(server)
    assert stats(server)["pid"] == pid, "the worker was replaced: app errors must not kill it"


@pytest.mark.parametrize("cl", ["", "1"], ids=["chunked", "content-length"])
def test_exception_after_start_closes_connection(server, cl):
    tag = uuid.uuid4().hex
    off = server.log_size()
    with server.connect() as c:
        c.send(build_request("GET", f"/error/midstream?tag={tag}&cl={cl}", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200, r
        assert not r.complete, f"an app error after the response started must leave it incomplete: {r!r}"
        assert r.body.startswith(b"partial-data;"), r
        closed, extra = c.wait_closed()
        assert closed, "the connection must be closed after an error mid-response"
        assert extra == b""
    server.wait_for_log("luath-test-boom-midstream " + tag, off)
    _still_serving(server)


@pytest.mark.parametrize("q", ["", "?body=1"])
def test_return_without_response_500(server, q):
    with server.connect() as c:
        r = c.request("POST" if q else "GET", "/error/nostart" + q, body=b"abc" if q else b"")
    assert r.status == 500, r
    _still_serving(server)


def test_return_after_start_without_body(server):
    """start sent, no http.response.body at all: the client must not hang: either a complete
    (empty) response or an incomplete one followed by close."""
    with server.connect(timeout=15) as c:
        c.send(build_request("GET", "/error/start-only", port=server.port))
        try:
            r = c.read_response(allow_incomplete=True)
        except Exception as e:  # noqa: BLE001 - a 500 never started is fine, a hang is not
            pytest.fail(f"no response at all: {e!r}")
        assert r.status in (200, 500), r
        if r.complete and "close" not in r.connection_tokens():
            assert c.request("GET", "/").body == b"hello"
        else:
            closed, _ = c.wait_closed()
            assert closed
    _still_serving(server)


MISUSE_BEFORE_START = ["body-before-start", "unknown-type", "bad-status", "str-headers"]
MISUSE_AFTER_START = ["start-twice", "unknown-type-after-start", "str-body"]
MISUSE_AFTER_COMPLETE = ["body-after-complete", "start-after-complete"]


@pytest.mark.parametrize("kind", MISUSE_BEFORE_START)
def test_misuse_before_start(server, kind):
    """send() rejects the message with an exception; the app re-raises it; the client gets 500."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("GET", f"/misuse/{kind}?tag={tag}", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 500, r
    flag = wait_flag(server, tag, lambda f: True)
    assert flag and flag.get("raised"), f"send() accepted a {kind} message: {flag}"
    assert "Exception" in flag["mro"] and flag["raised"] not in ("AssertionError",), flag
    _still_serving(server)


@pytest.mark.parametrize("kind", MISUSE_AFTER_START)
def test_misuse_after_start(server, kind):
    """After http.response.start: send() raises; the response is a 500 (if nothing went out yet)
    or is cut off with the connection closed."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("GET", f"/misuse/{kind}?tag={tag}", port=server.port))
        try:
            r = c.read_response(allow_incomplete=True)
        except Exception:  # noqa: BLE001 - closed without a response is acceptable
            r = None
        if r is not None and r.status != 500:
            assert not r.complete or "close" in r.connection_tokens(), r
            closed, _ = c.wait_closed()
            assert closed, "connection left open after a broken response"
        if r is not None and r.status == 201:
            pytest.fail(f"second http.response.start was honoured: {r!r}")
    flag = wait_flag(server, tag, lambda f: True)
    assert flag and flag.get("raised"), f"send() accepted {kind}: {flag}"
    assert flag["done"] == 1, flag
    _still_serving(server)


@pytest.mark.parametrize("kind", MISUSE_AFTER_COMPLETE)
def test_misuse_after_complete(server, kind):
    """A message after the response is complete: send() raises (the response itself was fine)."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/misuse/{kind}?tag={tag}")
        assert r.status == 200 and r.body == b"done", r
        assert b"again" not in r.body
    flag = wait_flag(server, tag, lambda f: True)
    assert flag and flag.get("raised"), f"send() accepted a message after the response completed: {flag}"
    _still_serving(server)


@pytest.mark.parametrize("case", ["value-crlf", "value-lf", "value-cr", "value-nul",
                                  "name-crlf", "name-cr", "name-nul", "name-colon", "name-space"])
def test_header_injection_rejected(server, case):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("GET", f"/error/bad-header?case={case}&tag={tag}", port=server.port))
        r = c.read_response(allow_incomplete=True)
        raw = r.raw_head + r.body
        assert r.status == 500, f"{case}: {r!r}"
        assert b"X-Injected" not in raw, f"{case}: injected header reached the wire: {raw!r}"
    flag = wait_flag(server, tag, lambda f: True)
    assert flag and flag.get("raised"), f"{case}: send() accepted an invalid header: {flag}"
    _still_serving(server)
