"""Malformed requests through the ASGI path: the engine answers 400/413/414/431/501/505 with
`Connection: close`, closes, and the ASGI application is never called.

The WSGI suite's malformed-request tests only use /marker, /echo, /query and /__stats (whose
``total`` counts application calls), which tests/apps/asgi_basic.py provides identically; they
are imported here and re-run with ``server`` overridden to the ASGI app.
"""

from __future__ import annotations

import pytest

from tests.asgi_helpers import ASGI, ASGI_ARGS, start_asgi
from tests.test_malformed import (  # noqa: F401
    H,
    check_rejected,
    test_bad_chunk_size,
    test_bad_chunk_size_app_not_called,
    test_bad_header_name,
    test_bad_method,
    test_bad_version_syntax,
    test_bare_lf_line_ending,
    test_chunk_data_not_followed_by_crlf,
    test_conflicting_content_length,
    test_content_length_with_transfer_encoding,
    test_control_bytes_in_value,
    test_duplicate_host,
    test_head_too_large_431,
    test_header_count_boundary,
    test_header_field_limit_boundary,
    test_header_line_without_colon,
    test_invalid_content_length,
    test_long_header_line_431,
    test_long_target_414,
    test_malformed_after_valid_request_on_same_connection,
    test_malformed_request_line,
    test_missing_host_http10_is_fine,
    test_missing_host_http11,
    test_obs_fold,
    test_request_line_limit_boundary,
    test_request_smuggling_rejected,
    test_server_keeps_serving_after_malformed,
    test_too_many_headers_431,
    test_transfer_encoding_last_not_chunked,
    test_transfer_encoding_on_http10,
    test_unknown_transfer_coding_501,
    test_unsupported_version_505,
    test_very_long_target_414,
    test_whitespace_before_colon,
)


@pytest.fixture
def server(start_server):
    """Override: the ASGI app on one worker."""
    return start_server(ASGI, *ASGI_ARGS)


def test_custom_limits_asgi(start_server):
    srv = start_asgi(start_server, "--max-request-line", "200", "--max-headers", "5", "--max-field-size", "100")
    line = b"GET /marker?" + b"a" * 300 + b" HTTP/1.1\r\n"
    check_rejected(srv, line + H(srv.port).encode() + b"\r\n", 414)
    raw = b"GET /marker HTTP/1.1\r\n" + H(srv.port).encode() + b"".join(b"X-H%d: v\r\n" % i for i in range(5)) + b"\r\n"
    check_rejected(srv, raw, 431)
    raw = b"GET /marker HTTP/1.1\r\n" + H(srv.port).encode() + b"X-Big: " + b"v" * 200 + b"\r\n\r\n"
    check_rejected(srv, raw, 431)
    with srv.connect() as c:
        r = c.request("GET", "/marker")
    assert r.status == 200 and r.body == b"MARKER-REACHED"


def test_body_over_limit_announced_only_asgi(start_server):
    srv = start_asgi(start_server, "--max-body-size", "1024")
    raw = b"POST /marker HTTP/1.1\r\n" + H(srv.port).encode() + b"Content-Length: 100000000\r\n\r\n"
    check_rejected(srv, raw, 413)
