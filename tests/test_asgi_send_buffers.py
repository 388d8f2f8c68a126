"""What http.response.body does with the app's objects, and output buffers reused across responses.

The server references a bytes body (immutable) until it is written, but must copy a bytearray before
send() returns: the app may change or free it at once. And the staging buffers and
segment lists that idle keep-alive connections give back are reused by the next response, possibly on
another connection: responses of mixed shapes (small/copied, large/referenced, chunked) in turn on
several keep-alive connections must each arrive intact."""

from __future__ import annotations

import pytest

from tests.apps.asgi_send_buffers import PIECE, body_for
from tests.asgi_helpers import ASGI_ARGS

APP = "tests.apps.asgi_send_buffers:app"


@pytest.mark.parametrize("cl", ["0", "1"], ids=["chunked", "content-length"])
def test_bytearray_body_changed_after_send(start_server, cl):
    kind = "bytearray"  # (a memoryview body is refused with a TypeError: the spec says bytes)
    srv = start_server(APP, *ASGI_ARGS)
    with srv.connect() as c:
        for _ in range(3):  # keep-alive: the same connection, again
            r = c.request("GET", f"/mutate?kind={kind}&cl={cl}")
            assert r.status == 200
            assert r.framing == ("length" if cl == "1" else "chunked")
            assert len(r.body) == 3 * PIECE
            assert r.body == b"a" * PIECE + b"b" * PIECE + b"c" * PIECE


def test_mixed_shapes_reuse_output_buffers(start_server):
    srv = start_server(APP, *ASGI_ARGS)
    conns = [srv.connect() for _ in range(3)]
    try:
        shapes = [("small", 13), ("big", 12 * 1024), ("chunked", 9000), ("big", 300 * 1024),
                  ("small", 3000), ("chunked", 40), ("big", 5000), ("small", 0)]
        for i in range(40):
            kind, n = shapes[i % len(shapes)]
            c = conns[i % len(conns)]
            r = c.request("GET", f"/shape?n={n}&kind={kind}")
            assert r.status == 200, (i, kind, n)
            assert r.body == body_for(n), (i, kind, n)
    finally:
        for c in conns:
            c.close()
