"""HTTP/1.x protocol behaviour: keep-alive, pipelining, HTTP/1.0, chunked in and out,
Expect: 100-continue, HEAD, response framing, 204/304, Date."""

from __future__ import annotations

import http.client
import time

import pytest

from tests.conftest import BASIC, build_request, chunked


def test_simple_get(server):
    with server.connect() as c:
        r = c.request("GET", "/")
    assert r.status == 200
    assert r.version == "HTTP/1.1"
    assert r.body == b"hello"
    assert r.header("content-length") == "5"


def test_date_header_present(server):
    with server.connect() as c:
        for target in ("/", "/gen", "/status/204", "/nope"):
            r = c.request("GET", target)
            date = r.header("date")
            assert date, f"no Date header on {target}: {r!r}"
            # IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
            time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")


def test_keep_alive_many_requests_one_connection(server):
    with server.connect() as c:
        port = c.local_port
        for i in range(50):
            r = c.request("GET", f"/query?i={i}")
            assert r.status == 200
            assert r.body == f"q=i={i}".encode()
            assert "close" not in r.connection_tokens()
        assert c.local_port == port
        assert c.is_open_after(0.2)


def test_keep_alive_with_bodies(server):
    with server.connect() as c:
        for i in range(20):
            body = b"x" * i * 100
            r = c.request("POST", "/echo", body=body, headers={"Content-Type": "application/octet-stream"})
            assert r.status == 200
            assert r.body == body


def test_pipelined_16_requests_in_one_write(server):
    reqs = b""
    for i in range(16):
        if i % 3 == 1:
            reqs += build_request("POST", f"/query?i={i}", body=b"B%d" % i, port=server.port)
        else:
            reqs += build_request("GET", f"/query?i={i}", port=server.port)
    with server.connect() as c:
        c.send(reqs)
        for i in range(16):
            r = c.read_response()
            assert r.status == 200, (i, r)
            expected = f"q=i={i}".encode()
            if i % 3 == 1:
                expected += b";body=B%d" % i
            assert r.body == expected, f"pipelined response {i} out of order or wrong: {r!r}"
        assert c.is_open_after(0.2)


def test_pipelined_with_connection_close_last(server):
    reqs = b"".join(build_request("GET", f"/query?i={i}", port=server.port) for i in range(3))
    reqs += build_request("GET", "/query?i=last", headers={"Connection": "close"}, port=server.port)
    reqs += build_request("GET", "/query?i=after-close", port=server.port)
    with server.connect() as c:
        c.send(reqs)
        for i in range(3):
            assert c.read_response().body == f"q=i={i}".encode()
        r = c.read_response()
        assert r.body == b"q=i=last"
        assert "close" in r.connection_tokens()
        closed, extra = c.wait_closed()
        assert closed and extra == b"", f"request after Connection: close was answered: {extra!r}"


def test_connection_close_request(server):
    with server.connect() as c:
        r = c.request("GET", "/", headers={"Connection": "close"})
        assert r.status == 200 and r.body == b"hello"
        assert "close" in r.connection_tokens()
        closed, extra = c.wait_closed()
        assert closed and extra == b""


def test_request_split_into_tiny_pieces(server):
    data = build_request("POST", "/echo?x=1", body=b"hello world", port=server.port)
    with server.connect() as c:
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.001)
        r = c.read_response()
    assert r.status == 200 and r.body == b"hello world"


# ------------------------------------------------------------------------------ HTTP/1.0

def test_http10_closes_after_response(server):
    with server.connect() as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        assert r.status == 200
        assert r.body == b"hello"
        closed, extra = c.wait_closed()
        assert closed and extra == b"", "HTTP/1.0 connection without keep-alive must be closed"


def test_http10_keep_alive(server):
    with server.connect() as c:
        for i in range(3):
            r = c.request("GET", f"/query?i={i}", version="HTTP/1.0", host=None,
                          headers={"Connection": "keep-alive"})
            assert r.status == 200
            assert r.body == f"q=i={i}".encode()
            assert r.framing == "length"
            assert "keep-alive" in r.connection_tokens(), \
                f"an HTTP/1.0 keep-alive response must say Connection: keep-alive: {r!r}"
        assert c.is_open_after(0.2)


def test_http10_generator_is_close_delimited(server):
    with server.connect() as c:
        c.send(build_request("GET", "/gen?n=4&size=3", version="HTTP/1.0", host=None,
                             headers={"Connection": "keep-alive"}))
        r = c.read_response()
        assert r.status == 200
        assert not r.has_header("transfer-encoding"), f"chunked response to HTTP/1.0: {r!r}"
        assert not r.has_header("content-length")
        assert r.framing == "close"
        assert r.body == b"000111222333"
        assert "keep-alive" not in r.connection_tokens()


def test_http10_generator_without_keepalive(server):
    with server.connect() as c:
        c.send(b"GET /gen?n=3&size=2 HTTP/1.0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert not r.has_header("transfer-encoding")
    assert r.body == b"001122"


def test_http10_post_with_body(server):
    with server.connect() as c:
        r = c.request("POST", "/echo", body=b"ten bytes!", version="HTTP/1.0", host=None)
    assert r.status == 200 and r.body == b"ten bytes!"


# ------------------------------------------------------------------------------ chunked requests

def test_chunked_request_body(server):
    body = chunked(b"hello ", b"chunked ", b"world")
    with server.connect() as c:
        r = c.request("POST", "/echo", body=body, headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200
    assert r.body == b"hello chunked world"


def test_chunked_request_extensions_and_trailers(server):
    body = (b"5;name=value\r\nhello\r\n"
            b"1;a;b=\"quoted\"\r\n \r\n"
            b"A ; spaced=1\r\n0123456789\r\n"
            b"0;last=yes\r\n"
            b"X-Trailer: one\r\nX-Other: two\r\n\r\n")
    with server.connect() as c:
        r = c.request("POST", "/echo", body=body, headers={"Transfer-Encoding": "chunked"})
        assert r.status == 200, r
        assert r.body == b"hello 0123456789"
        # The connection stays usable: the trailers were consumed exactly.
        r2 = c.request("GET", "/")
        assert r2.status == 200 and r2.body == b"hello"


def test_chunked_request_uppercase_hex_and_leading_zeros(server):
    body = b"000A\r\n0123456789\r\n1f\r\n" + b"y" * 31 + b"\r\n0\r\n\r\n"
    with server.connect() as c:
        r = c.request("POST", "/echo", body=body, headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200 and r.body == b"0123456789" + b"y" * 31


def test_chunked_request_sent_slowly(server):
    with server.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Transfer-Encoding": "chunked"}, port=server.port))
        for piece in (b"4\r\nabcd\r\n", b"3\r", b"\nefg", b"\r\n", b"0\r\n", b"\r\n"):
            c.send(piece)
            time.sleep(0.02)
        r = c.read_response()
    assert r.status == 200 and r.body == b"abcdefg"


def test_chunked_empty_body(server):
    with server.connect() as c:
        r = c.request("POST", "/echo", body=b"0\r\n\r\n", headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200 and r.body == b""


def test_transfer_encoding_case_insensitive(server):
    with server.connect() as c:
        r = c.request("POST", "/echo", body=chunked(b"abc"), headers={"transfer-encoding": "Chunked"})
    assert r.status == 200 and r.body == b"abc"


def test_pipelined_after_chunked_request(server):
    data = build_request("POST", "/echo", body=chunked(b"one"), headers={"Transfer-Encoding": "chunked"},
                         port=server.port)
    data += build_request("POST", "/echo", body=b"two", port=server.port)
    data += build_request("GET", "/query?three", port=server.port)
    with server.connect() as c:
        c.send(data)
        assert c.read_response().body == b"one"
        assert c.read_response().body == b"two"
        assert c.read_response().body == b"q=three"


def test_unread_body_is_discarded_keepalive(server):
    """The app ignores the body; the next request on the connection must still parse."""
    data = build_request("POST", "/noread", body=b"z" * 5000, port=server.port)
    data += build_request("POST", "/noread", body=chunked(b"q" * 3000, b"r" * 10),
                          headers={"Transfer-Encoding": "chunked"}, port=server.port)
    data += build_request("GET", "/query?next", port=server.port)
    with server.connect() as c:
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert (r1.body, r2.body, r3.body) == (b"noread", b"noread", b"q=next")


# ------------------------------------------------------------------------------ response framing

def test_app_content_length_used(server):
    with server.connect() as c:
        r = c.request("GET", "/cl?n=7")
    assert r.header("content-length") == "70"
    assert r.framing == "length"
    assert not r.has_header("transfer-encoding")
    assert r.body == b"0123456789" * 7


def test_single_item_list_gets_content_length(server):
    with server.connect() as c:
        r = c.request("GET", "/one")
    assert r.header("content-length") == str(len(b"single item body"))
    assert not r.has_header("transfer-encoding")
    assert r.body == b"single item body"


def test_list_body_gets_content_length(server):
    with server.connect() as c:
        r = c.request("GET", "/list")
    assert r.body == b"alpha-beta-gamma"
    assert r.header("content-length") == str(len(b"alpha-beta-gamma")), \
        f"a list body should get a computed Content-Length: {r!r}"


def test_generator_on_http11_is_chunked(server):
    with server.connect() as c:
        r = c.request("GET", "/gen?n=5&size=4")
        assert r.header("transfer-encoding", "").lower() == "chunked", r
        assert not r.has_header("content-length")
        assert r.framing == "chunked" and r.complete
        assert r.body == b"00001111222233334444"
        # keep-alive still works after a chunked response
        r2 = c.request("GET", "/")
        assert r2.body == b"hello"


def test_generator_empty_chunks_not_terminating(server):
    """Empty strings yielded by the app must not be sent as a premature 0-chunk."""
    with server.connect() as c:
        r = c.request("GET", "/list")  # contains an empty item
        assert r.body == b"alpha-beta-gamma"
        r = c.request("GET", "/gen?n=3&size=0")
        assert r.status == 200 and r.complete and r.body == b""
        r2 = c.request("GET", "/")
        assert r2.body == b"hello"


@pytest.mark.parametrize("code", [204, 304])
@pytest.mark.parametrize("gen", ["", "1"])
def test_no_body_statuses(server, code, gen):
    with server.connect() as c:
        c.send(build_request("GET", f"/status/{code}?gen={gen}", port=server.port))
        r = c.read_response()
        assert r.status == code
        assert not r.has_header("transfer-encoding"), f"{code} must not be chunked: {r!r}"
        cl = r.header("content-length")
        assert cl in (None, "0"), r
        # Nothing after the head: the next response must parse cleanly.
        r2 = c.request("GET", "/query?after")
        assert r2.status == 200 and r2.body == b"q=after", r2


def test_404_and_other_status(server):
    with server.connect() as c:
        r = c.request("GET", "/status/418")
        assert r.status == 418 and r.reason == "I'm a teapot" and r.body == b"status 418"
        r = c.request("GET", "/does/not/exist")
        assert r.status == 404


# ------------------------------------------------------------------------------ HEAD

@pytest.mark.parametrize("target", ["/", "/cl?n=3", "/one", "/list", "/gen?n=3&size=5", "/big?size=300000&cl=1"])
def test_head_same_headers_as_get_no_body(server, target):
    with server.connect() as c:
        g = c.request("GET", target)
        h = c.request("HEAD", target)
        # a following request on the same connection proves no body bytes were sent for HEAD
        after = c.request("GET", "/query?after-head")
    assert h.status == g.status == 200
    assert after.body == b"q=after-head", f"HEAD response leaked body bytes: {after!r}"

    def norm(r):
        return sorted((k.lower(), v) for k, v in r.headers if k.lower() not in ("date",))
    if g.framing == "length":
        assert h.header("content-length") == g.header("content-length"), (g, h)
        assert norm(h) == norm(g)
    else:
        # Generator body: a HEAD response cannot know the length; other headers must match.
        skip = ("date", "content-length", "transfer-encoding")
        assert [x for x in norm(h) if x[0] not in skip] == [x for x in norm(g) if x[0] not in skip]


def test_head_http10(server):
    with server.connect() as c:
        c.send(b"HEAD /cl?n=2 HTTP/1.0\r\n\r\n")
        r = c.read_response("HEAD")
        assert r.header("content-length") == "20"
        closed, extra = c.wait_closed()
    assert closed and extra == b"", f"HEAD/1.0 sent body bytes: {extra!r}"


# ------------------------------------------------------------------------------ Expect: 100-continue

def test_expect_100_continue_when_app_reads(server):
    body = b"continue-body" * 10
    with server.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Expect": "100-continue",
                                                       "Content-Length": str(len(body))}, port=server.port))
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100, f"expected 100 Continue before sending the body, got {interim!r}"
        assert interim.version == "HTTP/1.1"
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.raw_head
        c.send(body)
        r = c.read_response()
        assert r.status == 200 and r.body == body
        # and the connection stays usable
        assert c.request("GET", "/").body == b"hello"


def test_expect_100_continue_chunked(server):
    with server.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Expect": "100-continue",
                                                       "Transfer-Encoding": "chunked"}, port=server.port))
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100
        c.send(chunked(b"abc", b"def"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcdef"


def test_expect_100_continue_not_sent_when_app_does_not_read(server):
    with server.connect() as c:
        c.send(build_request("POST", "/noread", headers={"Expect": "100-continue",
                                                         "Content-Length": "1000"}, port=server.port))
        r = c.read_response(keep_interim=True)
        assert r.status == 200, f"app never read the body; no 100 Continue may be sent, got {r!r}"
        assert r.body == b"noread"


def test_expect_100_continue_sent_only_once(server):
    """After the interim response the final response must follow directly (no second 100)."""
    with server.connect() as c:
        c.send(build_request("POST", "/input?mode=readline", headers={"Expect": "100-continue",
                                                                      "Content-Length": "12"},
                             port=server.port))
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100
        c.send(b"ab\ncd\nef\ngh\n")
        r = c.read_response(keep_interim=True)
        assert r.status == 200, r
        assert r.json()["pieces"] == ["ab\n", "cd\n", "ef\n", "gh\n"]


def test_expect_100_continue_body_sent_without_waiting(server):
    """Clients may send the body without waiting for 100: the server must cope, and must not
    emit a stray 100 Continue after the final response."""
    data = build_request("POST", "/echo", body=b"eager", headers={"Expect": "100-continue"}, port=server.port)
    with server.connect() as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200 and r.body == b"eager"
        c.send(build_request("GET", "/query?next", port=server.port))
        r2 = c.read_response(keep_interim=True)
        assert r2.status == 200 and r2.body == b"q=next", f"stray interim response after the final one: {r2!r}"


def test_expect_100_continue_ignored_on_http10(server):
    with server.connect() as c:
        c.send(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
        r = c.read_response(keep_interim=True)
    assert r.status == 200 and r.body == b"abc", r


def test_expect_100_continue_with_http_client(server):
    """A real client path: http.client sends the head, waits for 100, then the body."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=15)
    try:
        conn.putrequest("PUT", "/echo")
        conn.putheader("Content-Length", "5")
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        conn.sock.settimeout(15)
        line = conn.sock.recv(64)
        assert line.startswith(b"HTTP/1.1 100 Continue\r\n"), line
        conn.send(b"12345")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"12345"
    finally:
        conn.close()


# ------------------------------------------------------------------------------ keep-alive timeout

def test_idle_keepalive_connection_is_closed(start_server):
    srv = start_server(BASIC, "--workers", "1", "--timeout-keep-alive", "1")
    with srv.connect() as c:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        closed, extra = c.wait_closed(timeout=15)
        elapsed = time.monotonic() - t0
    assert closed and extra == b"", "idle keep-alive connection was not closed by the server"
    assert elapsed >= 0.5, f"closed after {elapsed:.2f}s, before the keep-alive timeout"


def test_absolute_form_target(server):
    with server.connect() as c:
        r = c.request("GET", f"http://127.0.0.1:{server.port}/environ/abs?x=1")
    assert r.status == 200
    env = r.json()
    assert env["PATH_INFO"] == "/environ/abs"
    assert env["QUERY_STRING"] == "x=1"


def test_http_client_library(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=15)
    try:
        for i in range(5):
            conn.request("POST", f"/echo?i={i}", body=b"payload-%d" % i)
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == b"payload-%d" % i
            assert resp.getheader("X-Query") == f"i={i}"
    finally:
        conn.close()


# ------------------------------------------------------------------------------ more framing / robustness

def test_app_headers_passed_through(server):
    with server.connect() as c:
        r = c.request("GET", "/custom-headers")
    assert r.status == 200 and r.body == b"ok"
    assert len(r.header_all("date")) == 1, f"exactly one Date header expected: {r.headers}"
    assert r.header_all("set-cookie") == ["a=1; Path=/", "b=2; Path=/"], "Set-Cookie headers must stay separate"
    assert r.header("x-mixed-case") == "Value With Spaces"


def test_app_content_length_longer_than_body_closes(server):
    """The app promises 100 bytes and yields 24: the client must see an incomplete response and a
    closed connection, not a hang."""
    with server.connect() as c:
        c.send(build_request("GET", "/close?mode=normal&cl=100&tag=short-body", port=server.port))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200
        assert not r.complete and r.body == b"piece-0;piece-1;piece-2;", r
        closed, extra = c.wait_closed(timeout=10)
        assert closed and extra == b""


def test_many_pipelined_requests_with_backpressure(server):
    """500 pipelined requests sent by one thread while another reads: all answered, in order."""
    import threading
    n = 500
    data = b"".join(build_request("GET", f"/cl?n=100&i={i}", port=server.port) for i in range(n))
    data += build_request("GET", "/query?final", headers={"Connection": "close"}, port=server.port)
    with server.connect(timeout=60) as c:
        err = []

        def sender():
            try:
                c.sock.sendall(data)
            except OSError as e:  # pragma: no cover - reported below
                err.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and len(r.body) == 1000, (i, r)
        assert c.read_response().body == b"q=final"
        t.join(30)
        assert not err and not t.is_alive()


def test_large_unread_body_then_next_request(server):
    """1 MiB body the app never reads, then a pipelined request: either the server drains the body
    and answers the next request, or it says Connection: close and closes. Never garbage."""
    import threading
    data = build_request("POST", "/noread", body=b"u" * (1 << 20), port=server.port)
    data += build_request("GET", "/query?after-big-unread", port=server.port)
    with server.connect(timeout=30) as c:
        t = threading.Thread(target=lambda: _sendall_quiet(c.sock, data), daemon=True)
        t.start()
        r1 = c.read_response()
        assert r1.status == 200 and r1.body == b"noread"
        if "close" in r1.connection_tokens():
            closed, extra = c.wait_closed()
            assert closed and extra == b""
        else:
            r2 = c.read_response()
            assert r2.body == b"q=after-big-unread", r2
        t.join(30)


def _sendall_quiet(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_request_head_timeout(start_server):
    """A client that sends half a request head and stalls is disconnected (timeout-request-head)."""
    srv = start_server(BASIC, "--workers", "1", "--timeout-request-head", "1")
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        closed, extra = c.wait_closed(timeout=15)
        elapsed = time.monotonic() - t0
    assert closed, "a stalled request head was never timed out"
    assert elapsed >= 0.5
    assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra[:200]


def test_request_body_timeout(start_server):
    srv = start_server(BASIC, "--workers", "1", "--timeout-request-body", "1")
    with srv.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Content-Length": "100"}, port=srv.port) + b"only part")
        t0 = time.monotonic()
        closed, extra = c.wait_closed(timeout=15)
        elapsed = time.monotonic() - t0
    assert closed, "a stalled request body was never timed out"
    assert elapsed >= 0.5
    # whatever was sent must not be a success for a body that never arrived
    assert not extra.startswith(b"HTTP/1.1 200"), extra[:200]
    with srv.connect() as c:
        assert c.request("GET", "/").body == b"hello"
