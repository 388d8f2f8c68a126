"""Application failures and the close() contract of the returned iterable."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import build_request


def _still_serving(srv):
    with srv.connect() as c:
        r = c.request("GET", "/")
    assert r.status == 200 and r.body == b"hello", f"server stopped serving after an app error: {r!r}"


def _wait_stat(srv, tag, key, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        st = srv.stats(tag)
        if st[key] >= want or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


# ------------------------------------------------------------------------------ exceptions

def test_exception_before_start_response_500_and_traceback(server):
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


def test_exception_on_first_next_500(server):
    tag = uuid.uuid4().hex
    off = server.log_size()
    with server.connect() as c:
        r = c.request("GET", f"/error/first-next?tag={tag}")
    assert r.status == 500, "an exception before any body byte was produced must still give a 500"
    server.wait_for_log("luath-test-boom-first-next " + tag, off)
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


@pytest.mark.parametrize("cl", ["", "1"], ids=["chunked", "content-length"])
def test_exception_mid_generator_truncates_and_closes(server, cl):
    tag = uuid.uuid4().hex
    off = server.log_size()
    with server.connect() as c:
        c.send(build_request("GET", f"/error/midgen?tag={tag}&cl={cl}", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200, r
        assert not r.complete, f"an app error after the headers must leave the response incomplete: {r!r}"
        assert r.body.startswith(b"partial-data;"), r
        closed, extra = c.wait_closed()
        assert closed, "the connection must be closed after a mid-body error"
        assert extra == b""
    server.wait_for_log("luath-test-boom-midgen " + tag, off)
    _still_serving(server)


def test_return_without_start_response_500(server):
    for q in ("", "?empty=1"):
        with server.connect() as c:
            r = c.request("GET", "/error/nostart" + q)
        assert r.status == 500, (q, r)
        assert b"returned without start_response" not in r.body
    _still_serving(server)


@pytest.mark.parametrize("case", ["value-crlf", "value-lf", "value-cr", "value-nul",
                                  "name-crlf", "name-cr", "name-nul", "status-crlf", "status-lf"])
def test_header_injection_500(server, case):
    with server.connect() as c:
        c.send(build_request("GET", f"/error/bad-header?case={case}", port=server.port))
        r = c.read_response(allow_incomplete=True)
        raw = r.raw_head + r.body
        assert r.status == 500, f"{case}: {r!r}"
        assert b"X-Injected" not in raw, f"{case}: injected header reached the wire: {raw!r}"
        assert b"should not be sent" not in raw
        # anything else the server sends on this connection must not contain it either
        if "close" in r.connection_tokens():
            _, extra = c.wait_closed()
            assert b"X-Injected" not in extra
    _still_serving(server)


# ------------------------------------------------------------------------------ close()

def _close_count_is_one(srv, tag):
    st = _wait_stat(srv, tag, "closes", 1)
    assert st["closes"] >= 1, f"close() was never called on the iterable (tag {tag}): {st}"
    # make sure a second close does not arrive late
    _still_serving(srv)
    st = srv.stats(tag)
    assert st["closes"] == 1, f"close() called {st['closes']} times, expected exactly once"
    return st


def test_close_called_once_normal(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/close?tag={tag}&mode=normal")
    assert r.body == b"piece-0;piece-1;piece-2;"
    _close_count_is_one(server, tag)


def test_close_called_once_with_content_length(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/close?tag={tag}&mode=normal&cl=24")
    assert r.body == b"piece-0;piece-1;piece-2;" and r.header("content-length") == "24"
    _close_count_is_one(server, tag)


def test_close_called_once_http10(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(f"GET /close?tag={tag} HTTP/1.0\r\n\r\n".encode())
        r = c.read_response()
    assert r.body == b"piece-0;piece-1;piece-2;"
    _close_count_is_one(server, tag)


def test_close_called_once_on_head(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("HEAD", f"/close?tag={tag}&mode=normal")
        assert r.status == 200
        assert c.request("GET", "/query?x").body == b"q=x"
    _close_count_is_one(server, tag)


def test_close_called_once_on_error_in_first_next(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/close?tag={tag}&mode=raise-first")
    assert r.status == 500
    _close_count_is_one(server, tag)


def test_close_called_once_on_error_mid_iteration(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("GET", f"/close?tag={tag}&mode=raise-mid", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert not r.complete
        c.wait_closed()
    _close_count_is_one(server, tag)


def test_close_called_once_on_client_disconnect(server):
    tag = uuid.uuid4().hex
    c = server.connect()
    try:
        c.send(build_request("GET", f"/close?tag={tag}&mode=endless&limit=6000", port=server.port))
        head = c.read_head()
        assert head[2] == 200
        c.read_exact(200_000)  # a few pieces arrived: the app is mid-iteration
    finally:
        c.close()
    t0 = time.monotonic()
    st = _wait_stat(server, tag, "closes", 1, timeout=15)
    assert st["closes"] == 1, f"close() not called after client disconnect: {st}"
    elapsed = time.monotonic() - t0
    st2 = server.stats(tag)
    assert st2["iterated"] < 6000, "the server kept iterating to the end after the client went away"
    assert elapsed < 15
    _close_count_is_one(server, tag)


def test_close_called_on_client_disconnect_before_reading(server):
    """Client sends a request and disconnects immediately: close() still exactly once."""
    tag = uuid.uuid4().hex
    c = server.connect()
    c.send(build_request("GET", f"/close?tag={tag}&mode=endless&limit=3000", port=server.port))
    c.close()
    st = _wait_stat(server, tag, "calls", 1, timeout=3)
    if st["calls"] == 0:
        return  # the server noticed the disconnect before dispatching: the app was never called
    _close_count_is_one(server, tag)


def test_body_longer_than_app_content_length(server):
    """The app says Content-Length: 5 but yields 24 bytes: at most 5 bytes may go out as this
    response's body, the excess must never be read as the start of a next response, and close()
    is still called exactly once."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("GET", f"/close?tag={tag}&mode=normal&cl=5", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200 and r.body == b"piece"[:len(r.body)]
        try:
            c.send(build_request("GET", "/query?next", port=server.port))
            closed, extra = c.wait_closed(timeout=2.0)
        except (BrokenPipeError, ConnectionResetError):
            closed, extra = True, b""
        if not closed or extra:
            assert extra.startswith(b"HTTP/1.1 200"), f"garbage after a length-limited body: {extra[:200]!r}"
    _close_count_is_one(server, tag)


def test_close_called_for_each_pipelined_request(server):
    tags = [uuid.uuid4().hex for _ in range(5)]
    data = b"".join(build_request("GET", f"/close?tag={t}", port=server.port) for t in tags)
    with server.connect() as c:
        c.send(data)
        for _ in tags:
            assert c.read_response().body == b"piece-0;piece-1;piece-2;"
    for t in tags:
        _close_count_is_one(server, t)
