"""The engine's HTTP/1.x behaviour through the ASGI path.

Most protocol tests written for WSGI only talk to routes that tests/apps/asgi_basic.py also has
(same paths, same answers), so they are imported here and re-run with the ``server`` fixture
overridden to the ASGI app.  ASGI-specific protocol checks (request body messages / more_body,
response streaming, HEAD, 100-continue timing) follow.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.asgi_helpers import ASGI, ASGI_ARGS, start_asgi, stats, wait_flag
from tests.conftest import SERVER_KIND, build_request, chunked

# Re-run the engine's protocol tests against the ASGI app (they only use shared routes).
from tests.test_http_basic import (  # noqa: F401
    test_app_content_length_used,
    test_app_headers_passed_through,
    test_chunked_empty_body,
    test_chunked_request_body,
    test_chunked_request_extensions_and_trailers,
    test_chunked_request_sent_slowly,
    test_chunked_request_uppercase_hex_and_leading_zeros,
    test_connection_close_request,
    test_date_header_present,
    test_expect_100_continue_body_sent_without_waiting,
    test_expect_100_continue_chunked,
    test_expect_100_continue_ignored_on_http10,
    test_expect_100_continue_not_sent_when_app_does_not_read,
    test_expect_100_continue_when_app_reads,
    test_expect_100_continue_with_http_client,
    test_generator_on_http11_is_chunked,
    test_head_http10,
    test_http10_closes_after_response,
    test_http10_generator_is_close_delimited,
    test_http10_generator_without_keepalive,
    test_http10_keep_alive,
    test_http10_post_with_body,
    test_http_client_library,
    test_keep_alive_many_requests_one_connection,
    test_keep_alive_with_bodies,
    test_large_unread_body_then_next_request,
    test_many_pipelined_requests_with_backpressure,
    test_no_body_statuses,
    test_pipelined_16_requests_in_one_write,
    test_pipelined_after_chunked_request,
    test_pipelined_with_connection_close_last,
    test_request_split_into_tiny_pieces,
    test_simple_get,
    test_transfer_encoding_case_insensitive,
    test_unread_body_is_discarded_keepalive,
)
from tests.test_big_bodies import test_echo_medium_chunked_both_ways, test_upload_medium_content_length  # noqa: F401


@pytest.fixture
def server(start_server):
    """Override: the ASGI app on one worker."""
    return start_server(ASGI, *ASGI_ARGS)


# ------------------------------------------------------------------------------ request body messages

def _messages(r) -> list:
    return json.loads(r.header("x-messages"))


def _check_more_body(msgs: list, total: int, body: bytes) -> None:
    assert msgs, "no http.request message"
    assert all(m != ["disconnect"] for m in msgs), msgs
    assert msgs[-1][1] is False, f"last http.request must have more_body False: {msgs}"
    assert all(m[1] is True for m in msgs[:-1]), f"every earlier http.request must have more_body True: {msgs}"
    assert sum(m[0] for m in msgs) == total == len(body)


def test_request_body_content_length_messages(server):
    body = bytes(range(256)) * 1000
    with server.connect() as c:
        r = c.request("POST", "/echo", body=body)
    assert r.status == 200 and r.body == body
    _check_more_body(_messages(r), len(body), r.body)


def test_request_body_chunked_across_messages(server):
    """Chunks sent with pauses: the app sees them as several http.request messages with more_body
    set on all but the last, and the decoded body (no chunk framing)."""
    pieces = [b"alpha-", b"beta-" * 100, b"gamma-" * 1000, b"delta"]
    with server.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Transfer-Encoding": "chunked"}, port=server.port))
        for p in pieces:
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
            time.sleep(0.15)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    want = b"".join(pieces)
    assert r.status == 200 and r.body == want, r
    msgs = _messages(r)
    _check_more_body(msgs, len(want), r.body)
    assert len([m for m in msgs if m[0] > 0]) >= 2, \
        f"a body arriving in pieces over 0.6 s should reach the app in several messages: {msgs}"


def test_request_no_body_one_message(server):
    with server.connect() as c:
        r = c.request("GET", "/echo")
    assert r.status == 200 and r.body == b""
    assert _messages(r) == [[0, False]]


def test_request_empty_chunked_body(server):
    with server.connect() as c:
        r = c.request("POST", "/echo", body=b"0\r\n\r\n", headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200 and r.body == b""
    msgs = _messages(r)
    assert msgs[-1] == [0, False] and sum(m[0] for m in msgs) == 0


# ------------------------------------------------------------------------------ response streaming

def test_streaming_without_content_length_is_chunked(server):
    with server.connect() as c:
        r = c.request("GET", "/gen?n=7&size=1000")
        assert r.header("transfer-encoding", "").lower() == "chunked", r
        assert not r.has_header("content-length")
        assert r.framing == "chunked" and r.complete
        assert r.body == b"".join((b"%d" % i) * 1000 for i in range(7))
        assert len([ch for ch in r.chunks if ch]) >= 2, "more_body pieces were not streamed as chunks"
        assert c.request("GET", "/").body == b"hello"


def test_content_length_across_body_messages(server):
    with server.connect() as c:
        r = c.request("GET", "/cl?n=50")
        assert r.framing == "length" and r.header("content-length") == "500"
        assert not r.has_header("transfer-encoding")
        assert r.body == b"0123456789" * 50
        assert c.request("GET", "/").body == b"hello"


def test_http10_streaming_no_chunked(server):
    with server.connect() as c:
        c.send(b"GET /gen?n=3&size=4 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        closed, _ = c.wait_closed()
    assert r.status == 200
    assert not r.has_header("transfer-encoding"), f"chunked response to HTTP/1.0: {r!r}"
    assert r.body == b"000011112222"
    assert closed


# ------------------------------------------------------------------------------ HEAD

@pytest.mark.parametrize("target", ["/", "/cl?n=3", "/gen?n=3&size=5", "/big?size=300000&cl=1"])
def test_head_same_headers_no_body(server, target):
    """The ASGI app sends its body for HEAD too; the server must drop it."""
    with server.connect() as c:
        g = c.request("GET", target)
        h = c.request("HEAD", target)
        after = c.request("GET", "/query?after-head")
    assert h.status == g.status == 200
    assert after.body == b"q=after-head", f"HEAD response leaked body bytes: {after!r}"
    skip = ("date",) if g.framing == "length" else ("date", "content-length", "transfer-encoding")

    def norm(r):
        return sorted((k.lower(), v) for k, v in r.headers if k.lower() not in skip)
    assert norm(h) == norm(g)
    if g.framing == "length":
        assert h.header("content-length") == g.header("content-length")


def test_head_pipelined(server):
    data = b"".join(build_request("HEAD", "/cl?n=5", port=server.port) for _ in range(3))
    data += build_request("GET", "/query?end", port=server.port)
    with server.connect() as c:
        c.send(data)
        for _ in range(3):
            r = c.read_response("HEAD")
            assert r.status == 200 and r.header("content-length") == "50"
        assert c.read_response().body == b"q=end"


# ------------------------------------------------------------------------------ Expect: 100-continue timing

def test_expect_100_continue_sent_only_when_app_calls_receive(server):
    """The app sleeps 0.8 s before its first receive(): no 100 Continue may arrive before that."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        c.send(build_request("POST", f"/expect-late?t=0.8&tag={tag}",
                             headers={"Expect": "100-continue", "Content-Length": "5"}, port=server.port))
        t0 = time.time()
        early = c.silent_for(0.4)
        assert early == b"", f"the server answered before the app called receive(): {early!r}"
        c.settimeout(15)
        interim = c.read_response(keep_interim=True)
        got_100 = time.time()
        assert interim.status == 100, interim
        flag = wait_flag(server, tag, lambda f: "receive_at" in f)
        assert got_100 >= flag["receive_at"] - 0.05, "100 Continue was sent before the app called receive()"
        assert got_100 - t0 >= 0.6
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello"


# ------------------------------------------------------------------------------ limits and timeouts via ASGI

def test_max_body_size_413_asgi(start_server):
    from tests.test_malformed import check_rejected, H
    srv = start_asgi(start_server, "--max-body-size", "1024")
    raw = (b"POST /marker HTTP/1.1\r\n" + H(srv.port).encode() + b"Content-Length: 2048\r\n\r\n" + b"b" * 2048)
    check_rejected(srv, raw, 413)
    with srv.connect() as c:
        r = c.request("POST", "/echo", body=b"k" * 1024)
    assert r.status == 200 and len(r.body) == 1024


def test_max_body_size_chunked_413_asgi(start_server):
    """A chunked body that grows over the limit while the app is reading it: 413 (the app's
    receive() sees the body end / a disconnect) and the connection is closed."""
    from tests.test_malformed import check_rejected, H
    srv = start_asgi(start_server, "--max-body-size", "1024")
    raw = (b"POST /echo HTTP/1.1\r\n" + H(srv.port).encode() + b"Transfer-Encoding: chunked\r\n\r\n"
           + chunked(b"c" * 600, b"d" * 600))
    check_rejected(srv, raw, 413, app_not_called=False)
    with srv.connect() as c:
        assert c.request("GET", "/").body == b"hello"


def test_keep_alive_timeout_asgi(start_server):
    srv = start_asgi(start_server, "--timeout-keep-alive", "1")
    with srv.connect() as c:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        closed, extra = c.wait_closed(timeout=15)
        elapsed = time.monotonic() - t0
    assert closed and extra == b""
    assert elapsed >= 0.5


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath option")
def test_request_body_timeout_asgi(start_server):
    srv = start_asgi(start_server, "--timeout-request-body", "1")
    with srv.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Content-Length": "100"}, port=srv.port) + b"only part")
        closed, extra = c.wait_closed(timeout=15)
    assert closed, "a stalled request body was never timed out"
    assert not extra.startswith(b"HTTP/1.1 200"), extra[:200]
    with srv.connect() as c:
        assert c.request("GET", "/").body == b"hello"


def test_stats_route_counts(server):
    before = stats(server)["total"]
    with server.connect() as c:
        c.request("GET", "/")
    assert stats(server)["total"] == before + 1
