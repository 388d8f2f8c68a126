"""The ASGI HTTP connection scope (ASGI HTTP spec 2.x) as luath builds it."""

from __future__ import annotations

import json

import pytest

from tests.asgi_helpers import ASGI, ASGI_ARGS
from tests.conftest import HOST, build_request


@pytest.fixture
def server(start_server):
    return start_server(ASGI, *ASGI_ARGS)


def get_scope(srv, target="/scope", method="GET", body=b"", headers=None, version="HTTP/1.1", host="default"):
    with srv.connect() as c:
        c.send(build_request(method, target, body, headers, version, host, srv.port))
        r = c.read_response(method)
        local_port = c.local_port
    assert r.status == 200, r
    s = r.json()
    s["__client_port__"] = local_port
    return s


def B(s: str) -> dict:
    """How the app encodes a bytes value in JSON."""
    return {"__bytes__": s}


def test_basic_scope(server):
    s = get_scope(server, "/scope/path?a=1&b=two")
    assert s["type"] == "http"
    assert s["asgi"]["version"] == "3.0"
    assert isinstance(s["asgi"].get("spec_version"), str) and s["asgi"]["spec_version"].startswith("2."), s["asgi"]
    assert s["http_version"] == "1.1"
    assert s["method"] == "GET"
    assert s["scheme"] == "http"
    assert s["path"] == "/scope/path"
    assert s["raw_path"] == B("/scope/path")
    assert s["query_string"] == B("a=1&b=two")
    assert s["root_path"] == ""
    assert s["client"] == ["127.0.0.1", s["__client_port__"]]
    assert s["server"] == [HOST, server.port]


def test_scope_value_types(server):
    s = get_scope(server, "/scope?x=1")
    t = s["__types__"]
    assert t["type"] == "str" and t["method"] == "str" and t["path"] == "str" and t["scheme"] == "str"
    assert t["http_version"] == "str" and t["root_path"] == "str"
    assert t["raw_path"] == "bytes" and t["query_string"] == "bytes"
    assert t["headers"] in ("list", "tuple"), t["headers"]
    assert t["client"] in ("list", "tuple") and t["server"] in ("list", "tuple")
    assert t["asgi"] == "dict"
    assert t.get("extensions") == "dict", "scope['extensions'] must be a dict"
    # headers: an iterable of [name, value] pairs of bytes
    assert all(x.startswith("bytes/bytes/") for x in s["__header_types__"]), s["__header_types__"]


def test_http10_scope(server):
    s = get_scope(server, "/scope", version="HTTP/1.0", host=None)
    assert s["http_version"] == "1.0"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods(server, method):
    s = get_scope(server, "/scope", method=method, body=b"abc" if method in ("POST", "PUT") else b"")
    assert s["method"] == method
    if method in ("POST", "PUT"):
        assert s["__body__"] == "abc"


def test_custom_method_uppercase_kept(server):
    s = get_scope(server, "/scope", method="PROPFIND")
    assert s["method"] == "PROPFIND"


def test_path_percent_decoded_utf8(server):
    s = get_scope(server, "/caf%C3%A9")
    assert s["path"] == "/café"
    assert s["raw_path"] == B("/caf%C3%A9"), "raw_path must be the undecoded path"


def test_path_decoding_details(server):
    s = get_scope(server, "/scope/a%2Fb/%20x%25/%E2%82%AC?q=%C3%A9&r=a+b")
    assert s["path"] == "/scope/a/b/ x%/€"
    assert s["raw_path"] == B("/scope/a%2Fb/%20x%25/%E2%82%AC"), "raw_path excludes the query string"
    assert s["query_string"] == B("q=%C3%A9&r=a+b"), "query_string must be passed raw (undecoded)"


def test_raw_utf8_bytes_in_path(server):
    with server.connect() as c:
        c.send(b"GET /scope/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    if r.status == 400:
        pytest.skip("the engine rejects raw non-ASCII bytes in the target (allowed)")
    s = r.json()
    assert s["path"] == "/scope/café"
    assert s["raw_path"] == B("/scope/caf\xc3\xa9")


def test_query_string_empty(server):
    assert get_scope(server, "/scope")["query_string"] == B("")
    assert get_scope(server, "/scope?")["query_string"] == B("")


def test_headers_lowercased_in_order_with_duplicates(server):
    headers = [("X-First", "1"), ("Content-Type", "text/x-test"), ("X-Dup", "a"), ("x-MIXED-case", "Value Kept"),
               ("X-Dup", "b"), ("Accept", "*/*")]
    s = get_scope(server, "/scope", method="POST", body=b"hi", headers=headers)
    hs = [(n["__bytes__"], v["__bytes__"]) for n, v in s["headers"]]
    assert all(n == n.lower() for n, _ in hs), f"header names must be lower-cased: {hs}"
    # Received order (Host first, as build_request sends it; Content-Length last)
    expected = [("host", f"{HOST}:{server.port}"), ("x-first", "1"), ("content-type", "text/x-test"),
                ("x-dup", "a"), ("x-mixed-case", "Value Kept"), ("x-dup", "b"), ("accept", "*/*"),
                ("content-length", "2")]
    assert hs == expected, hs


def test_header_values_raw_bytes(server):
    with server.connect() as c:
        c.send(b"GET /scope HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\nX-Utf8: caf\xc3\xa9\r\n"
               b"X-Spaces:   padded value  \r\n\r\n")
        r = c.read_response()
    hs = dict((n["__bytes__"], v["__bytes__"]) for n, v in r.json()["headers"])
    assert hs["x-latin"] == "caf\xe9"
    assert hs["x-utf8"] == "caf\xc3\xa9"
    assert hs["x-spaces"] == "padded value", "optional whitespace around a field value must be stripped"


def test_absolute_form_target(server):
    with server.connect() as c:
        r = c.request("GET", f"http://127.0.0.1:{server.port}/scope/abs?x=1")
    assert r.status == 200
    s = r.json()
    assert s["path"] == "/scope/abs"
    assert s["query_string"] == B("x=1")


def test_state_from_lifespan_is_shallow_copy(server):
    with server.connect() as c:
        r1 = c.request("GET", "/state?set=one").json()
        r2 = c.request("GET", "/state").json()
    assert r1["state"].get("from_startup") == "yes", f"startup state missing from scope['state']: {r1}"
    assert r1["state"].get("startup_pid") is not None
    assert "leak_one" not in r2["keys"], \
        "a key a request added to scope['state'] leaked into the next request: state must be a copy"
    assert "one" in r2["shared"], "scope['state'] must be a shallow copy (nested objects shared)"


def test_extensions_advertised(server):
    s = get_scope(server, "/scope")
    ext = s["__extensions__"]
    assert isinstance(ext, dict)
    assert "http.response.pathsend" in ext, ext
    assert "http.response.trailers" in ext, ext


def test_scope_not_shared_between_requests(server):
    with server.connect() as c:
        a = c.request("GET", "/scope/one?x=1").json()
        b = c.request("GET", "/scope/two").json()
    assert a["path"] == "/scope/one" and b["path"] == "/scope/two"
    assert b["query_string"] == B("")


def test_root_path_option(start_server):
    """--root-path is reported as scope["root_path"] (path semantics for a prefix are not checked)."""
    srv = start_server(ASGI, *ASGI_ARGS, "--root-path", "/mounted")
    s = get_scope(srv, "/scope/x")
    assert s["root_path"] == "/mounted"
