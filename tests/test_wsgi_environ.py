"""PEP 3333 environ, wsgi.input, wsgi.file_wrapper, start_response and write()."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.apps.basic import pattern_block
from tests.conftest import build_request, chunked


def get_environ(srv, target="/environ", method="GET", body=b"", headers=None, version="HTTP/1.1", host="default"):
    with srv.connect() as c:
        c.send(build_request(method, target, body, headers, version, host, srv.port))
        r = c.read_response(method)
        local_port = c.local_port
    assert r.status == 200, r
    env = r.json()
    env["__client_port__"] = local_port
    return env


def test_basic_cgi_variables(server):
    env = get_environ(server, "/environ/path?a=1&b=two")
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/path"
    assert env["QUERY_STRING"] == "a=1&b=two"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert isinstance(env["SERVER_NAME"], str) and env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert int(env["REMOTE_PORT"]) == env["__client_port__"]
    assert env["RAW_URI"] == "/environ/path?a=1&b=two"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"


def test_no_body_content_length(server):
    env = get_environ(server, "/environ")
    assert env.get("CONTENT_LENGTH", "") == ""
    assert "HTTP_CONTENT_LENGTH" not in env
    assert "HTTP_CONTENT_TYPE" not in env


def test_query_string_empty_and_raw(server):
    env = get_environ(server, "/environ")
    assert env.get("QUERY_STRING", "") == ""
    env = get_environ(server, "/environ?x=%20y+z&%C3%A9=%2F")
    assert env["QUERY_STRING"] == "x=%20y+z&%C3%A9=%2F", "QUERY_STRING must be passed raw"
    env = get_environ(server, "/environ?")
    assert env["QUERY_STRING"] == ""


def test_path_info_percent_decoded_latin1(server):
    env = get_environ(server, "/environ/caf%C3%A9/a%2Fb/%20x%25")
    assert env["PATH_INFO"] == "/environ/caf\xc3\xa9/a/b/ x%"
    assert env["RAW_URI"] == "/environ/caf%C3%A9/a%2Fb/%20x%25"


def test_path_info_raw_utf8_bytes_as_latin1(server):
    with server.connect() as c:
        c.send(b"GET /environ/\xc3\xa9t\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    # Non-ASCII bytes in the target are either rejected (400) or passed through as latin-1.
    assert r.status in (200, 400), r
    if r.status == 200:
        assert r.json()["PATH_INFO"] == "/environ/\xc3\xa9t\xc3\xa9"


def test_post_content_type_and_length(server):
    env = get_environ(server, "/environ", method="POST", body=b"a=1&b=2",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "7"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["__body__"] == "a=1&b=2"


def test_chunked_request_environ(server):
    env = get_environ(server, "/environ", method="POST", body=chunked(b"abc", b"de"),
                      headers={"Transfer-Encoding": "chunked"})
    assert env["__body__"] == "abcde"
    assert env.get("CONTENT_LENGTH", "") in ("", "5"), env.get("CONTENT_LENGTH")
    assert env["wsgi.input_terminated"] is True


def test_http10_protocol(server):
    env = get_environ(server, "/environ", version="HTTP/1.0", host=None)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_wsgi_keys(server):
    env = get_environ(server, "/environ")
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert isinstance(env["wsgi.multithread"], bool)
    assert isinstance(env["wsgi.multiprocess"], bool)
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert set(env["wsgi.input.methods"]) >= {"read", "readline", "readlines", "__iter__"}
    assert set(env["wsgi.errors.methods"]) >= {"write", "writelines", "flush"}
    assert env["wsgi.file_wrapper.callable"] is True


def test_wsgi_multiprocess_with_workers(start_server):
    from tests.conftest import BASIC
    srv = start_server(BASIC, "--workers", "2")
    env = get_environ(srv, "/environ")
    assert env["wsgi.multiprocess"] is True


def test_all_environ_strings_are_native_str(server):
    env = get_environ(server, "/environ?q=1", headers={"X-Custom": "v\xe9"})
    for k, v in env.items():
        if k.startswith("__") or k.startswith("wsgi."):
            continue
        assert isinstance(v, str), (k, v)
    assert env["HTTP_X_CUSTOM"] == "v\xe9"  # obs-text passed through as latin-1


def test_http_headers_mapping(server):
    env = get_environ(server, "/environ", headers=[
        ("X-Custom-Header", "value1"),
        ("accept", "text/html"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
        ("x-multi", "c"),
        ("X-Spaces", "  padded value  "),
    ])
    assert env["HTTP_X_CUSTOM_HEADER"] == "value1"
    assert env["HTTP_ACCEPT"] == "text/html"
    assert env["HTTP_X_MULTI"] == "a, b, c"
    assert env["HTTP_X_SPACES"] == "padded value"


def test_underscore_headers_dropped(server):
    env = get_environ(server, "/environ", headers=[("X_Forwarded_For", "6.6.6.6"), ("X_Other", "1")])
    assert "HTTP_X_FORWARDED_FOR" not in env, "header with underscores must be dropped (spoofing)"
    assert "HTTP_X_OTHER" not in env
    env = get_environ(server, "/environ", headers=[("X-Forwarded-For", "1.2.3.4"),
                                                   ("X_Forwarded_For", "6.6.6.6")])
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    env = get_environ(server, "/environ", headers=[("X_Forwarded_For", "6.6.6.6"),
                                                   ("X-Forwarded-For", "1.2.3.4")])
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_wsgi_errors_goes_to_server_log(server):
    token = "errors-token-" + uuid.uuid4().hex
    off = server.log_size()
    get_environ(server, f"/environ?errors={token}")
    text = server.wait_for_log(token, off)
    assert "second-line-" + token in server.wait_for_log("second-line-" + token, off), text


# ------------------------------------------------------------------------------ wsgi.input

BODY = b"line one\nline two\n\nlast line without newline"
LINES = [b"line one\n", b"line two\n", b"\n", b"last line without newline"]


def _input(srv, mode, body=BODY, n=4, is_chunked=False):
    headers = {"Transfer-Encoding": "chunked"} if is_chunked else None
    payload = chunked(body[:7], body[7:20], body[20:]) if is_chunked else body
    with srv.connect() as c:
        r = c.request("POST", f"/input?mode={mode}&n={n}", body=payload, headers=headers)
    assert r.status == 200, r
    res = r.json()
    res["pieces"] = [p.encode("latin-1") for p in res["pieces"]]
    res["after"] = [a.encode("latin-1") for a in res["after"]]
    assert res["types"] in (["bytes"], []), res["types"]
    assert all(a == b"" for a in res["after"]), f"reading past the end must give b'': {res['after']}"
    return res["pieces"]


@pytest.mark.parametrize("is_chunked", [False, True], ids=["content-length", "chunked"])
class TestInput:
    def test_read_all(self, server, is_chunked):
        assert _input(server, "read", is_chunked=is_chunked) == [BODY]

    def test_read_n(self, server, is_chunked):
        pieces = _input(server, "readn", n=4, is_chunked=is_chunked)
        assert b"".join(pieces) == BODY
        assert all(len(p) == 4 for p in pieces[:-1]), [len(p) for p in pieces]
        assert 1 <= len(pieces[-1]) <= 4

    def test_readline(self, server, is_chunked):
        assert _input(server, "readline", is_chunked=is_chunked) == LINES

    def test_readline_n(self, server, is_chunked):
        pieces = _input(server, "readline_n", n=5, is_chunked=is_chunked)
        assert b"".join(pieces) == BODY
        assert all(len(p) <= 5 for p in pieces)
        assert pieces[:4] == [b"line ", b"one\n", b"line ", b"two\n"]
        assert pieces[4] == b"\n"

    def test_readlines(self, server, is_chunked):
        assert _input(server, "readlines", is_chunked=is_chunked) == LINES

    def test_iteration(self, server, is_chunked):
        assert _input(server, "iter", is_chunked=is_chunked) == LINES

    def test_mixed(self, server, is_chunked):
        pieces = _input(server, "mixed", is_chunked=is_chunked)
        assert pieces == [b"line one\n", b"lin", b"e ", b"two\n", b"\n", b"last line without newline"]


def test_input_empty_body(server):
    for mode in ("read", "readline", "readlines", "iter", "readn"):
        with server.connect() as c:
            r = c.request("POST", f"/input?mode={mode}", headers={"Content-Length": "0"})
        res = r.json()
        assert res["pieces"] in ([], [""]), (mode, res)
        assert all(a == "" for a in res["after"])


def test_input_get_without_body(server):
    with server.connect() as c:
        r = c.request("GET", "/input?mode=read")
    assert r.json()["pieces"] == [""]


def test_input_does_not_read_next_pipelined_request(server):
    """read() must stop at Content-Length even when the next request is already buffered."""
    data = build_request("POST", "/input?mode=read", body=b"exact", port=server.port)
    data += build_request("GET", "/query?next", port=server.port)
    with server.connect() as c:
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.json()["pieces"] == ["exact"]
    assert r2.body == b"q=next"


def test_input_long_lines(server):
    body = b"a" * 100_000 + b"\n" + b"b" * 70_000
    with server.connect() as c:
        r = c.request("POST", "/input?mode=readline", body=body)
    pieces = r.json()["pieces"]
    assert [len(p) for p in pieces] == [100_001, 70_000]


# ------------------------------------------------------------------------------ file_wrapper

@pytest.mark.parametrize("size,cl", [(0, ""), (1, ""), (100_000, ""), (1_000_003, "1"), (300_000, "1")])
def test_file_wrapper(server, size, cl):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/file?size={size}&cl={cl}&tag={tag}")
        assert r.status == 200
        expected = (pattern_block() * (size // 65536 + 1))[:size]
        assert len(r.body) == size
        assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(expected).hexdigest()
        if cl:
            assert r.header("content-length") == str(size)
        # keep-alive survives a file response
        assert c.request("GET", "/").body == b"hello"
    deadline = time.monotonic() + 10
    while server.stats(tag)["file_closed"] is not True and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats(tag)["file_closed"] is True, "the file behind wsgi.file_wrapper was not closed"


def test_file_wrapper_head(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("HEAD", f"/file?size=5000&cl=1&tag={tag}")
        assert r.status == 200 and r.header("content-length") == "5000"
        assert c.request("GET", "/query?after").body == b"q=after"


# ------------------------------------------------------------------------------ start_response / write

def test_start_response_second_call_without_exc_info_raises(server):
    with server.connect() as c:
        r = c.request("GET", "/sr/second-call")
    assert r.status == 200, r
    assert r.body.startswith(b"raised="), r
    assert r.body != b"raised=no", "second start_response call without exc_info must raise"


def test_start_response_exc_info_replaces_status_before_headers_sent(server):
    with server.connect() as c:
        r = c.request("GET", "/sr/replace")
    assert r.status == 503, r
    assert r.has_header("x-second")
    assert not r.has_header("x-first"), "the first start_response headers must be replaced"
    assert r.body == b"replaced"


def test_start_response_exc_info_after_headers_sent_reraises(server):
    tag = uuid.uuid4().hex
    with server.connect() as c:
        r = c.request("GET", f"/sr/after-sent?tag={tag}")
    assert r.status == 200
    assert r.body == b"headers-sent;reraised=yes", r


@pytest.mark.parametrize("variant", ["", "&gen=1", "&cl=1", "&cl=1&gen=1"])
def test_write_callable_data_first(server, variant):
    with server.connect() as c:
        r = c.request("GET", f"/write?x=1{variant}")
        assert r.status == 200
        assert r.body == b"first-second-third-fourth", r
        assert c.request("GET", "/").body == b"hello"


def test_write_callable_http10(server):
    with server.connect() as c:
        c.send(b"GET /write?gen=1 HTTP/1.0\r\n\r\n")
        r = c.read_response()
    assert r.body == b"first-second-third-fourth"
