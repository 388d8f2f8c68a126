"""Eager start of ASGI requests: the engine drives each request's coroutine itself (no Task, no trip
through the event loop for an app that never waits) with a spare Task entered as asyncio's current
task, and hands the coroutine to that Task when it waits. Every test runs with asyncio's loop and
with uvloop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid

import pytest

from tests.asgi_helpers import ASGI_ARGS, luath_cmd, spawn, stop, wait_flag, wait_listening
from tests.conftest import build_request, free_port

EAGER = "tests.apps.asgi_eager:app"


def _loops():
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401
        loops.append("uvloop")
    except ImportError:
        pass
    return loops


@pytest.fixture(params=_loops())
def server(request, start_server):
    return start_server(EAGER, *ASGI_ARGS, "--loop", request.param)


def _get(srv, target, conn=None):
    if conn is not None:
        r = conn.request("GET", target)
    else:
        with srv.connect() as c:
            r = c.request("GET", target)
    return r


def _json(r):
    assert r.status == 200, r
    return json.loads(r.body)


def test_private_asyncio_api_is_there():
    """The engine needs asyncio.tasks._enter_task/_leave_task (a private API): if a Python release
    changes them, this fails loudly (the worker then falls back to a Task per request)."""
    from luath._asgi import task_switch

    switch = task_switch()
    assert switch is not None, "asyncio.tasks._enter_task/_leave_task are gone"
    enter, leave = switch

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = loop.create_task(asyncio.sleep(0))
        seen = []

        def cb():
            enter(loop, task)
            try:
                seen.append(asyncio.current_task())
            finally:
                leave(loop, task)
            seen.append(asyncio.current_task())
            fut.set_result(None)

        loop.call_soon(cb)
        await fut
        await task
        return seen, task

    seen, task = asyncio.run(main())
    assert seen == [task, None]


def test_never_awaits(server):
    ids = set()
    with server.connect() as c:
        for i in range(5):
            d = _json(_get(server, f"/never-awaits?v=r{i}", c))
            ids.add(d["task"]["id"])
            # A fresh context per request: the previous request's set() is not seen.
            assert d["var_at_start"] == "unset", d
            # asyncio.current_task() is a Task (the spare) while the engine drives the coroutine.
            assert d["task"]["is_task"], d
            assert d["loop_running"] is True
            assert d["has_state"] is False, "an empty lifespan state is not copied into the scope"
    # No Task per request: requests that never wait all ran with the same (spare) current task ...
    assert len(ids) == 1, ids
    # ... until one waits: that Task continues it, and the next request gets a new spare.
    _json(_get(server, "/await-future"))
    d = _json(_get(server, "/never-awaits"))
    assert d["task"]["id"] not in ids


def test_awaits_a_future_once(server):
    with server.connect() as c:
        for _ in range(3):
            d = _json(_get(server, "/await-future", c))
            assert d["value"] == 42
            assert d["task"]["is_task"] and d["task_done"] is False
            assert d["same_task"], "current_task() changed when the coroutine first waited"


def test_bare_yield(server):
    d = _json(_get(server, "/sleep0"))
    assert d["same_task"] and d["task"]["is_task"], d


def test_suspending_requests_get_their_own_task(server):
    """Two requests that wait at the same time run in different Tasks."""
    results = []

    def one():
        results.append(_json(_get(server, "/await-future")))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r["same_task"] for r in results)


@pytest.mark.parametrize("route", ["/raise-before", "/raise-after"])
def test_raise_before_or_after_suspending_gives_500(server, route):
    off = server.log_size()
    with server.connect() as c:
        r = c.request("GET", route)
        assert r.status == 500, r
        # The connection keeps working (or was closed cleanly) and the worker keeps serving.
    log = server.wait_for_log("raised ", off)
    assert "Traceback" in log and "ValueError" in log
    assert _json(_get(server, "/hello")) == {"hello": True}


def test_raise_after_response_started_closes(server):
    with server.connect() as c:
        c.send(build_request("GET", "/raise-after-start", port=server.port))
        closed, data = c.wait_closed()
        assert closed
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert _json(_get(server, "/hello")) == {"hello": True}


def test_contextvars_isolated_between_concurrent_requests(server):
    results = {}

    def one(v):
        results[v] = _json(_get(server, f"/contextvar?v={v}&sleep=0.1"))

    threads = [threading.Thread(target=one, args=(f"v{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    for v, d in results.items():
        assert d["start"] == "unset" and d["end"] == v, (v, d)


def test_child_task_inherits_the_request_context(server):
    d = _json(_get(server, "/child-task-context?v=parent-value"))
    assert d == {"child_saw": "parent-value"}


def test_cancellation_on_disconnect(server):
    tag = uuid.uuid4().hex
    c = server.connect()
    c.send(build_request("GET", f"/cancel-on-disconnect?tag={tag}", port=server.port))
    assert wait_flag(server, tag, lambda f: f == "waiting") == "waiting"
    time.sleep(0.1)
    c.close()
    flag = wait_flag(server, tag, lambda f: f != "waiting", timeout=10)
    assert flag == "cancelled", flag
    assert _json(_get(server, "/hello")) == {"hello": True}


@pytest.mark.parametrize("wait", ["0", "1"])
def test_anyio_cancel_scope_across_the_first_wait(server, wait):
    pytest.importorskip("anyio")
    with server.connect() as c:
        for _ in range(3):
            assert _json(_get(server, f"/anyio-scope?wait={wait}", c)) == {"ok": True}


def test_cancel_own_task_then_return_does_not_hit_the_next_request(server):
    """An app cancels its current task (the spare) and returns without waiting; the next request,
    pipelined so that it runs in the same loop iteration, waits: it must not get that cancellation."""
    with server.connect() as c:
        for _ in range(3):
            c.send(build_request("GET", "/cancel-self-return", port=server.port)
                   + build_request("GET", "/await-future", port=server.port)
                   + build_request("GET", "/cancel-self-return", port=server.port)
                   + build_request("GET", "/contextvar?v=a&sleep=0.01", port=server.port))
            assert _json(c.read_response()) == {"returned": True}
            assert _json(c.read_response())["value"] == 42
            assert _json(c.read_response()) == {"returned": True}
            assert _json(c.read_response())["end"] == "a"


def test_cancel_own_task_then_wait(server):
    with server.connect() as c:
        for _ in range(2):
            assert _json(c.request("GET", "/cancel-self-wait")) == {"cancelled": True}
            assert _json(c.request("GET", "/await-future"))["value"] == 42


def test_anyio_move_on_after_across_the_first_wait(server):
    pytest.importorskip("anyio")
    d = _json(_get(server, "/anyio-move-on"))
    assert d["cancelled"] is True and d["seconds"] < 2, d


def test_anyio_to_thread(server):
    pytest.importorskip("anyio")
    assert _json(_get(server, "/anyio-thread")) == {"result": "from thread"}


def test_receive_send_kept_after_the_response(server):
    """The exchange (with its receive/send) is reused by the connection's next request only when
    nothing else holds it: a background task that kept them sees a finished request."""
    tag = uuid.uuid4().hex
    with server.connect() as c:
        assert _json(c.request("GET", f"/keep-send?tag={tag}")) == {"kept": True}
        for _ in range(3):
            assert _json(c.request("GET", "/hello")) == {"hello": True}
        flag = wait_flag(server, tag, lambda f: f is not None)
        assert flag == {"send": "RuntimeError", "receive": "http.disconnect"}, flag
        assert _json(c.request("GET", "/hello")) == {"hello": True}
        # Nothing stray (such as the late b"LATE") on the connection.
        assert not c.buf
        c.sock.settimeout(0.2)
        with pytest.raises((socket.timeout, TimeoutError)):
            c.sock.recv(1, socket.MSG_PEEK)


def test_scope_values_change_between_requests(server):
    """The scope is copied from a template that keeps the previous request's values: each request
    still sees its own method, path, raw_path, query_string, http_version and client."""
    cases = [("GET", "/echo-scope/a", "x=1", "HTTP/1.1"), ("POST", "/echo-scope/b", "", "HTTP/1.1"),
             ("GET", "/echo-scope/a", "x=1", "HTTP/1.1"), ("GET", "/echo-scope/a", "x=2", "HTTP/1.1"),
             ("PATCH", "/echo-scope/%C3%A9%20z", "", "HTTP/1.1"), ("GET", "/echo-scope/a", "x=1", "HTTP/1.0"),
             ("GET", "/echo-scope/a", "", "HTTP/1.1")]
    clients = set()
    for _ in range(2):
        with server.connect() as c:
            for method, path, query, version in cases:
                target = path + ("?" + query if query else "")
                r = c.request(method, target, version=version,
                              headers={"Connection": "keep-alive", "X-Case": f"{method} {target}"})
                d = _json(r)
                assert d["method"] == method
                assert d["raw_path"] == path
                assert d["path"] == path.replace("%C3%A9", "\u00e9").replace("%20", " ")
                assert d["query_string"] == query
                assert d["http_version"] == version.split("/")[1]
                assert ["x-case", f"{method} {target}"] in d["headers"]
                clients.add(tuple(d["client"]))
    assert len(clients) == 2, clients  # two connections, two client ports


def test_pipelined_after_a_request_that_waits(server):
    """A request that waits, then pipelined ones: the next requests are reached from inside the first
    one's send (in its Task) and must still be answered, in order."""
    with server.connect() as c:
        c.send(build_request("GET", "/slow-then-hello?sleep=0.02", port=server.port)
               + build_request("GET", "/never-awaits?v=p1", port=server.port)
               + build_request("GET", "/await-future", port=server.port)
               + build_request("GET", "/hello", port=server.port))
        r1, r2, r3, r4 = (c.read_response() for _ in range(4))
    assert json.loads(r1.body) == {"slow": True}
    assert json.loads(r2.body)["var_at_start"] == "unset"
    assert json.loads(r3.body)["value"] == 42
    assert json.loads(r4.body) == {"hello": True}


@pytest.mark.parametrize("loop", _loops())
def test_clean_shutdown_with_spare_task(loop):
    """The spare Task is cancelled at shutdown: no 'Task was destroyed but it is pending' and a clean
    exit, also with a request still waiting."""
    port = free_port()
    proc = spawn(luath_cmd(EAGER, port, "--interface", "asgi", "--workers", "1", "--loop", loop,
                           "--timeout-graceful-shutdown", "2"))
    try:
        wait_listening(proc, port)
        for path in ("/await-future", "/never-awaits", "/hello"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(build_request("GET", path, headers={"Connection": "close"}, port=port))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200"), data[:200]
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err[-3000:]
    assert "destroyed but it is pending" not in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
