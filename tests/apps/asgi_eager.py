"""ASGI app for the eager-start tests (tests/test_asgi_eager.py): the engine drives each request's
coroutine itself and hands it to an asyncio Task only when it waits.

Each route answers JSON describing what the app saw; /__stats?tag= reads FLAGS[tag] (results of
work that outlives a response, such as a cancellation seen after the client left).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from urllib.parse import parse_qs

from tests.apps.lifespan import accept_lifespan

REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
FLAGS: dict[str, object] = {}


def _qs(scope) -> dict[str, str]:
    q = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in q.items()}


def _task_info(task) -> dict:
    return {"is_task": isinstance(task, asyncio.Task), "id": task.get_name() if task is not None else None}


async def _json(send, obj, status=200):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await accept_lifespan(receive, send)
    path = scope["path"]
    q = _qs(scope)

    if path == "/__stats":
        return await _json(send, {"flag": FLAGS.get(q.get("tag", ""))})

    if path == "/never-awaits":
        # Sends complete at once: this coroutine never suspends.
        before = REQUEST_VAR.get()
        REQUEST_VAR.set(q.get("v", "x"))
        t = asyncio.current_task()
        return await _json(send, {"var_at_start": before, "task": _task_info(t),
                                  "loop_running": asyncio.get_running_loop().is_running(),
                                  "has_state": "state" in scope})

    if path == "/await-future":
        loop = asyncio.get_running_loop()
        t0 = asyncio.current_task()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 42)
        value = await fut
        t1 = asyncio.current_task()
        return await _json(send, {"value": value, "same_task": t0 is t1, "task": _task_info(t1),
                                  "task_done": t1.done() if t1 is not None else None})

    if path == "/sleep0":
        t0 = asyncio.current_task()
        await asyncio.sleep(0)  # a bare yield
        t1 = asyncio.current_task()
        return await _json(send, {"same_task": t0 is t1, "task": _task_info(t1)})

    if path == "/raise-before":
        raise ValueError("raised before suspending")

    if path == "/raise-after":
        await asyncio.sleep(0.01)
        raise ValueError("raised after suspending")

    if path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await asyncio.sleep(0.01)
        raise ValueError("raised after the response started")

    if path == "/contextvar":
        # Set, wait (other requests run meanwhile), read back: each request has its own context.
        mine = q.get("v", "")
        start = REQUEST_VAR.get()
        REQUEST_VAR.set(mine)
        await asyncio.sleep(float(q.get("sleep", "0.05")))
        return await _json(send, {"start": start, "end": REQUEST_VAR.get(), "mine": mine})

    if path == "/child-task-context":
        REQUEST_VAR.set(q.get("v", ""))

        async def child():
            return REQUEST_VAR.get()

        seen = await asyncio.create_task(child())
        return await _json(send, {"child_saw": seen})

    if path == "/cancel-on-disconnect":
        # The pattern frameworks use: a watcher waits for http.disconnect and cancels the request's task.
        tag = q.get("tag", "")
        me = asyncio.current_task()
        FLAGS[tag] = "waiting"

        async def watch():
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    me.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            FLAGS[tag] = "cancelled"
            raise
        finally:
            watcher.cancel()
        FLAGS[tag] = "not cancelled"
        return await _json(send, {})

    if path == "/anyio-scope":
        # anyio keys its state on asyncio.current_task(): a cancel scope entered while the engine drives
        # the coroutine and left after it waited must see the same task.
        import anyio

        with anyio.CancelScope():
            if q.get("wait") == "1":
                await anyio.sleep(0.01)
        return await _json(send, {"ok": True})

    if path == "/anyio-thread":
        import anyio

        result = await anyio.to_thread.run_sync(lambda: "from thread")
        return await _json(send, {"result": result})

    if path == "/keep-send":
        # A background task keeps this request's receive and send and uses them after the response:
        # the connection's next request must not be affected (its exchange is not reused).
        tag = q.get("tag", "")

        async def late():
            await asyncio.sleep(0.1)
            msg = await receive()
            try:
                await send({"type": "http.response.body", "body": b"LATE"})
                FLAGS[tag] = {"send": "accepted", "receive": msg["type"]}
            except Exception as exc:  # noqa: BLE001
                FLAGS[tag] = {"send": type(exc).__name__, "receive": msg["type"]}

        asyncio.ensure_future(late())
        return await _json(send, {"kept": True})

    if path.startswith("/echo-scope"):
        return await _json(send, {"method": scope["method"], "path": scope["path"],
                                  "raw_path": scope["raw_path"].decode("latin-1"),
                                  "query_string": scope["query_string"].decode("latin-1"),
                                  "http_version": scope["http_version"], "client": list(scope["client"]),
                                  "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]]})

    if path == "/cancel-self-return":
        # Cancels its current task (the spare, while driven eagerly) and returns without waiting.
        asyncio.current_task().cancel()
        return await _json(send, {"returned": True})

    if path == "/cancel-self-wait":
        # Cancels its current task, then waits: the cancellation arrives at that wait, as in a Task.
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(5)
            got = False
        except asyncio.CancelledError:
            got = True
            asyncio.current_task().uncancel()
        return await _json(send, {"cancelled": got})

    if path == "/anyio-move-on":
        import anyio

        t0 = time.monotonic()
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(5)
        return await _json(send, {"cancelled": scope.cancelled_caught, "seconds": time.monotonic() - t0})

    if path == "/hello":
        return await _json(send, {"hello": True})

    if path == "/slow-then-hello":
        await asyncio.sleep(float(q.get("sleep", "0.05")))
        return await _json(send, {"slow": True})

    await _json(send, {"error": "no route"}, status=404)
