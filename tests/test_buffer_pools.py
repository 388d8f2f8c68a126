"""Buffers shared between connections (issue 7, 1,000 connections).

An idle keep-alive connection holds no read buffer and no output staging buffer: both go back to
the server's pools after each response and the next request takes whichever is at hand. These tests
check that nothing is lost or mixed up by that: responses on many interleaved connections stay
their own, a request split across an idle gap still parses, pipelined requests left in the buffer
are answered, and a connection whose output is stuck (the client does not read) keeps its staged
bytes while the others reuse the pool.
"""
from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import BASIC, SERVER_KIND, build_request


def test_many_connections_interleaved_responses_are_their_own(server):
    n, rounds = 200, 5
    conns = [server.connect() for _ in range(n)]
    try:
        for r in range(rounds):
            for i, c in enumerate(conns):  # every connection has a request in flight at once
                c.send(build_request("GET", f"/query?c={i}&r={r}", port=server.port))
            for i, c in enumerate(conns):
                resp = c.read_response()
                assert resp.status == 200
                assert resp.body == f"q=c={i}&r={r}".encode(), (i, r, resp)
    finally:
        for c in conns:
            c.close()


@pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's --threads")
def test_threads_stage_output_off_the_loop(start_server):
    # With --threads the app writes its response from pool threads; the pool of staging buffers
    # belongs to the loop thread, which serves other connections at the same time.
    srv = start_server(BASIC, "--workers", "1", "--threads", "4")
    n, size = 2000, 7
    expected = b"".join((b"%d" % (i % 10)) * size for i in range(n))
    conns = [srv.connect() for _ in range(16)]
    try:
        for r in range(3):
            for i, c in enumerate(conns):
                if i % 2:
                    c.send(build_request("GET", f"/gen?n={n}&size={size}", port=srv.port))
                else:
                    c.send(build_request("GET", f"/query?c={i}&r={r}", port=srv.port))
            for i, c in enumerate(conns):
                resp = c.read_response()
                assert resp.status == 200
                if i % 2:
                    assert resp.body == expected, (i, r, len(resp.body))
                else:
                    assert resp.body == f"q=c={i}&r={r}".encode(), (i, r, resp)
    finally:
        for c in conns:
            c.close()


def test_request_split_across_idle_gap(server):
    with server.connect() as c:
        c.send(build_request("GET", "/query?i=first", port=server.port))
        assert c.read_response().body == b"q=i=first"
        time.sleep(0.3)  # idle keep-alive: the connection gave its buffers back
        req = build_request("GET", "/query?i=split", port=server.port)
        c.send(req[:7])
        time.sleep(0.3)
        c.send(req[7:20])
        time.sleep(0.3)
        c.send(req[20:])
        assert c.read_response().body == b"q=i=split"
        assert c.is_open_after(0.1)


def test_pipelined_after_idle_gap(server):
    with server.connect() as c:
        c.send(build_request("GET", "/query?i=0", port=server.port))
        assert c.read_response().body == b"q=i=0"
        time.sleep(0.3)
        reqs = b"".join(build_request("GET", f"/query?i={i}", port=server.port) for i in range(1, 9))
        reqs += build_request("POST", "/query?i=9", body=b"tail", port=server.port)
        c.send(reqs[:-3])  # the last request's body is incomplete: it waits in the buffer
        for i in range(1, 9):
            assert c.read_response().body == f"q=i={i}".encode()
        time.sleep(0.2)
        c.send(reqs[-3:])
        assert c.read_response().body == b"q=i=9;body=tail"


def test_stuck_output_keeps_its_bytes_while_others_reuse_the_pool(server):
    # Many small chunks: the chunk framing and data are staged (copied). 3 MB is more than the
    # socket buffers take from a client that does not read (about 2.3 MB here), so staged bytes stay
    # queued on the connection while the other connections take and give back pooled buffers.
    n, size = 200000, 10
    slow = socket.create_connection((server.host, server.port), timeout=15)
    try:
        slow.sendall(build_request("GET", f"/gen?n={n}&size={size}", port=server.port))
        time.sleep(0.5)  # the server fills the socket and waits for it
        others = [server.connect() for _ in range(20)]
        try:
            for r in range(10):
                for i, c in enumerate(others):
                    c.send(build_request("GET", f"/query?c={i}&r={r}", port=server.port))
                for i, c in enumerate(others):
                    assert c.read_response().body == f"q=c={i}&r={r}".encode()
        finally:
            for c in others:
                c.close()
        data = bytearray()
        slow.settimeout(15)
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = slow.recv(65536)
            assert chunk, "connection closed before the end of the response"
            data += chunk
    finally:
        slow.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    # De-chunk and check every chunk is the digit pattern of its index.
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        ln = int(body[pos:eol], 16)
        if ln == 0:
            break
        out += body[eol + 2:eol + 2 + ln]
        pos = eol + 2 + ln + 2
    expected = b"".join((b"%d" % (i % 10)) * size for i in range(n))
    assert len(out) == len(expected)
    assert out == expected
