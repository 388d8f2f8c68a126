"""The basic app wrapped in wsgiref.validate.validator: every route exercised here must pass
without a validator error (which would show up as a 500 and an AssertionError/WSGIWarning in
the server's stderr)."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.apps.basic import pattern_block
from tests.conftest import VALIDATED, build_request, chunked

BAD_MARKERS = ("AssertionError", "WSGIWarning", "Iterator garbage collected", "Traceback")


@pytest.fixture
def vserver(start_server):
    srv = start_server(VALIDATED, "--workers", "1")
    off = srv.log_size()
    yield srv
    # Give the worker a moment to log anything that happened after the last response
    # (e.g. close()/GC of the iterator) by making one more request.
    with srv.connect() as c:
        assert c.request("GET", "/").status == 200
    log = srv.log_since(off)
    for marker in BAD_MARKERS:
        assert marker not in log, f"validator complaint ({marker}) in server stderr:\n{log[-4000:]}"


CASES = [
    # (method, target, body, headers, status, expected body or None)
    ("GET", "/", b"", None, 200, b"hello"),
    ("GET", "/one", b"", None, 200, b"single item body"),
    ("GET", "/list", b"", None, 200, b"alpha-beta-gamma"),
    ("GET", "/cl?n=4", b"", None, 200, b"0123456789" * 4),
    ("GET", "/gen?n=4&size=2", b"", None, 200, b"00112233"),
    ("GET", "/status/204", b"", None, 204, b""),
    ("GET", "/status/304?gen=1", b"", None, 304, b""),
    ("GET", "/status/418", b"", None, 418, b"status 418"),
    ("GET", "/nope", b"", None, 404, None),
    ("HEAD", "/cl?n=4", b"", None, 200, b""),
    ("HEAD", "/gen", b"", None, 200, b""),
    ("POST", "/echo", b"some body", {"Content-Type": "text/plain"}, 200, b"some body"),
    ("POST", "/echo", chunked(b"chunk", b"ed"), {"Transfer-Encoding": "chunked"}, 200, b"chunked"),
    ("POST", "/query?x=1", b"abc", None, 200, b"q=x=1;body=abc"),
    ("GET", "/headers", b"", {"X-A": "1", "X-B": "2"}, 200, None),
    ("GET", "/environ/caf%C3%A9?z=1", b"", None, 200, None),
    ("POST", "/environ", b"k=v", {"Content-Type": "application/x-www-form-urlencoded"}, 200, None),
    ("POST", "/input?mode=readn&n=3", b"abcdefgh", None, 200, None),
    ("POST", "/input?mode=readline_n&n=3", b"ab\ncdefg\nh", None, 200, None),
    ("POST", "/input?mode=readlines", b"ab\ncd\n", None, 200, None),
    ("POST", "/input?mode=iter", b"ab\ncd\n", None, 200, None),
    ("POST", "/input?mode=readline", b"ab\ncd", None, 200, None),
    ("GET", "/write", b"", None, 200, b"first-second-third-fourth"),
    ("GET", "/write?gen=1&cl=1", b"", None, 200, b"first-second-third-fourth"),
    ("GET", "/close?mode=normal", b"", None, 200, b"piece-0;piece-1;piece-2;"),
    ("GET", "/upload", b"", None, 200, None),
    ("GET", "/environ?errors=validator-errors-stream", b"", None, 200, None),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_route_under_validator(vserver, case):
    method, target, body, headers, status, expected = case
    with vserver.connect() as c:
        c.send(build_request(method, target, body, headers, port=vserver.port))
        r = c.read_response(method)
        assert r.status == status, f"{method} {target}: {r!r}\n{vserver.stderr_text()[-3000:]}"
        if expected is not None:
            assert r.body == expected
        # the connection is still in a clean state
        assert c.request("GET", "/query?after").body == b"q=after"


def test_environ_values_under_validator(vserver):
    with vserver.connect() as c:
        env = c.request("GET", "/environ/x%2Fy?q=1").json()
    assert env["PATH_INFO"] == "/environ/x/y"
    assert env["QUERY_STRING"] == "q=1"


def test_file_wrapper_under_validator(vserver):
    size = 200_000
    with vserver.connect() as c:
        r = c.request("GET", f"/file?size={size}&cl=1")
    assert r.status == 200
    expected = (pattern_block() * 4)[:size]
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_pipelined_and_http10_under_validator(vserver):
    data = b"".join(build_request("GET", f"/query?i={i}", port=vserver.port) for i in range(8))
    with vserver.connect() as c:
        c.send(data)
        for i in range(8):
            assert c.read_response().body == f"q=i={i}".encode()
    with vserver.connect() as c:
        c.send(b"GET /gen?n=3&size=1 HTTP/1.0\r\n\r\n")
        assert c.read_response().body == b"012"


def test_expect_continue_under_validator(vserver):
    with vserver.connect() as c:
        c.send(build_request("POST", "/echo", headers={"Expect": "100-continue", "Content-Length": "4"},
                             port=vserver.port))
        assert c.read_response(keep_interim=True).status == 100
        c.send(b"data")
        assert c.read_response().body == b"data"


def test_close_once_under_validator(vserver):
    tag = uuid.uuid4().hex
    with vserver.connect() as c:
        assert c.request("GET", f"/close?tag={tag}").status == 200
        assert c.request("HEAD", f"/close?tag={tag}").status == 200
    deadline = time.monotonic() + 10
    while vserver.stats(tag)["closes"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vserver.stats(tag)["closes"] == 2


def test_big_generator_under_validator(vserver):
    size = 3 * 1024 * 1024 + 17
    with vserver.connect(timeout=30) as c:
        r = c.request("GET", f"/big?size={size}")
    assert len(r.body) == size
