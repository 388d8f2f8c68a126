"""The Python half of the ASGI layer: asyncio as the outer loop around luath's libuv loop, the
continuation of application coroutines that wait, and lifespan.

Each request's coroutine is driven by the engine itself at once (no Task, no trip through the event
loop for an app that never waits), in a copy of the context like a Task, with a "spare" asyncio Task
entered as the current task (asyncio.tasks._enter_task/_leave_task) so that asyncio.current_task(),
anyio and sniffio see a Task. If the coroutine waits, that spare Task takes it over (its first step
waits on the very future the coroutine yielded), so cancellation, exceptions and current_task() are
a Task's from then on; the next request gets a new spare. What differs from a Task of its own while
the coroutine runs eagerly: asyncio.current_task() is the spare, which is shared by the requests
that finish without waiting (task-local bookkeeping keyed on it, such as anyio's, sees one task
running them one after the other), and its name is not per request. Without the private API (it is
checked when the worker starts, or with LUATH_ASGI_TASK_PER_REQUEST=1, a diagnostic switch), each
request runs in its own Task made by _spawn (eager_start on 3.12+). Measured with callgrind (uvloop,
hello world, instructions per request): 3.11 11.6k here against 25.8k with a Task per request; 3.12
14.9k against 21.0k with eager_start.

libuv's backend file descriptor is watched with loop.add_reader and libuv's next timer is mirrored
with loop.call_later, so nothing polls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from time import monotonic

from . import _logging

log = logging.getLogger("luath.error")


# asyncio.Task(..., eager_start=True) (3.12+) runs the coroutine's first step at once, inside its Task.
EAGER_TASKS = sys.version_info >= (3, 12)


def task_switch():
    """asyncio's private (_enter_task, _leave_task), which make a Task the current one while the
    engine drives a request's coroutine; None when this Python has not got them (tested in
    tests/test_asgi_eager.py so that a change in asyncio fails loudly)."""
    if os.environ.get("LUATH_ASGI_TASK_PER_REQUEST") == "1":  # diagnostic: the Task-per-request path
        return None
    enter = getattr(asyncio.tasks, "_enter_task", None)
    leave = getattr(asyncio.tasks, "_leave_task", None)
    if callable(enter) and callable(leave):
        return enter, leave
    return None


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """asyncio's default loop, or uvloop ("auto" picks uvloop when it is installed)."""
    if kind not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be auto, asyncio or uvloop, not {kind!r}")
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ValueError("loop='uvloop' but uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Lifespan:
    """Runs the app's lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, app, mode: str):
        self.app = app
        self.mode = mode
        self.state: dict = {}
        self.supported = mode != "off"
        self._events: asyncio.Queue | None = None
        self._startup = None
        self._shutdown = None
        self._task = None
        self.error: str | None = None

    async def startup(self) -> bool:
        if not self.supported:
            return True
        loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = loop.create_task(self._run(scope))
        await self._events.put({"type": "lifespan.startup"})
        await asyncio.wait([self._startup, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._startup.done():
            ok, message = self._startup.result()
            if not ok:
                self.error = message or "lifespan startup failed"
            return ok
        # The app returned or raised before answering startup.
        if self.mode == "on":
            self.error = self.error or "the application did not complete lifespan startup"
            return False
        self.supported = False
        return True

    async def _run(self, scope):
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - reported according to the mode
            if self.mode == "on" or (self._startup and self._startup.done()):
                log.error("Exception in lifespan", exc_info=exc)
                self.error = f"{type(exc).__name__}: {exc}"
                if self._startup and not self._startup.done():
                    self._startup.set_result((False, self.error))
            else:
                log.info("ASGI lifespan not supported by the application (%s); going on without it",
                         type(exc).__name__)
                self.supported = False
                if self._startup and not self._startup.done():
                    self._startup.set_result((True, None))
        finally:
            for fut in (self._startup, self._shutdown):
                if fut and not fut.done():
                    fut.set_result((False, self.error))

    async def _receive(self):
        return await self._events.get()

    async def _send(self, message):
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup.set_result((True, None))
        elif kind == "lifespan.startup.failed":
            self._startup.set_result((False, message.get("message", "")))
        elif kind == "lifespan.shutdown.complete":
            self._shutdown.set_result((True, None))
        elif kind == "lifespan.shutdown.failed":
            self._shutdown.set_result((False, message.get("message", "")))
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")

    async def shutdown(self, timeout: float) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._events.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self._shutdown), timeout)
        except asyncio.TimeoutError:
            log.warning("lifespan shutdown did not complete within %.0f s", timeout)
        ok, message = self._shutdown.result() if self._shutdown.done() else (True, None)
        if not ok and message:
            log.error("lifespan shutdown failed: %s", message)


class Worker:
    """One worker: the asyncio loop, the C++ server on it, signals and graceful shutdown."""

    def __init__(self, app, cfg, sock, lifespan: str = "auto", loop: str = "auto"):
        self.app = app
        self.cfg = cfg
        self.sock = sock
        self.lifespan_mode = lifespan
        self.loop_kind = loop
        self.server = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer = None
        self._timer_when = 0.0
        self._wake_pending = False
        self._tasks: set = set()
        self._stop = None
        self._bridged = False

    # -- the bridge between the loops: in C++ (server.bridge: server.tick is the backend fd's reader,
    # server.wake schedules a tick); _tick is the same in Python, used before bridge() and after
    # unbridge() (background work still running during shutdown).
    def _tick(self) -> None:
        self._wake_pending = False
        server = self.server
        if server is None:
            return
        timeout = server.run()
        if timeout == 0:
            self._wake()
        elif timeout > 0:
            # libuv's next timer, mirrored: the armed asyncio timer is kept unless this one is due
            # earlier (a timer that fires early only runs libuv once more), so a tick costs no timer.
            when = monotonic() + timeout / 1000.0
            if self._timer is None or when < self._timer_when - 0.002:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = self.loop.call_later(timeout / 1000.0, self._on_timer)
                self._timer_when = when
        if server.done and self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._tick()

    def _wake(self) -> None:
        if self._bridged:
            self.server.wake()
            return
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon(self._tick)

    async def _run_app(self, coro, exchange):
        """The body of each request's Task: reports how the app ended straight from the Task's last step
        (no done-callbacks, so no extra trips through the event loop)."""
        tasks = self._tasks
        task = asyncio.current_task()
        tasks.add(task)
        try:
            await coro
        except BaseException as exc:  # noqa: BLE001 - every ending is reported to the engine
            exchange.app_done(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            exchange.app_done(None)
        finally:
            tasks.discard(task)

    def _on_done(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _new_task(self, cont):
        """A Task around an engine continuation (a spare that later continues a request that waits)."""
        task = self.loop.create_task(cont)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn(self, coro, exchange):
        if EAGER_TASKS:  # the app runs now; one that never waits has finished before this returns
            return asyncio.Task(self._run_app(coro, exchange), loop=self.loop, eager_start=True)
        return self.loop.create_task(self._run_app(coro, exchange))

    def _signal(self) -> None:
        log.info("shutting down")
        if self.server is not None:
            self.server.stop()
            self._wake()

    async def main(self) -> int:
        from . import _core

        self.loop = asyncio.get_running_loop()
        lifespan = Lifespan(self.app, self.lifespan_mode)
        if not await lifespan.startup():
            log.error("application startup failed: %s", lifespan.error)
            return 3
        from ._sockets import server_address

        socks = self.sock if isinstance(self.sock, (list, tuple)) else [self.sock]
        host, port = server_address(socks[0])  # (path, None) on a unix socket
        base_scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "scheme": "https" if self.cfg.ssl_certfile else "http",
            "root_path": self.cfg.root_path,
            "server": (host, port),
            "extensions": {"http.response.pathsend": {}, "http.response.trailers": {}},
        }
        switch = task_switch()
        eager = (self.loop, switch[0], switch[1], self._new_task) if switch else None
        self.server = _core.AsgiServer(
            self.app,
            [s.fileno() for s in socks],
            self.cfg.engine_options(),
            base_scope,
            self._spawn,
            self.loop.create_future,
            self._wake,
            _logging.log_app_error,
            eager=eager,
        )
        if lifespan.supported and lifespan.state:
            self.server.set_state(lifespan.state)
        elif lifespan.supported:
            self.server.set_state(lifespan.state)
        self._stop = self.loop.create_future()
        fd = self.server.backend_fd()
        self.server.bridge(self.loop, self._on_done)
        self._bridged = True
        self.loop.add_reader(fd, self.server.tick)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self._signal)
        self._wake()  # the first run from a loop callback: no task is current there
        try:
            await self._stop
        finally:
            self.loop.remove_reader(fd)
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.remove_signal_handler(sig)
            self._bridged = False
            self.server.unbridge()
            if self._timer is not None:
                self._timer.cancel()
        # Requests whose coroutines still run after their connection closed (background work) get the
        # rest of the graceful period; the spare Task ends now.
        self.server.cancel_spare()
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=self.cfg.timeout_graceful_shutdown)
            for t in pending:
                t.cancel()
            if pending:  # let the cancellations reach the apps while the engine is still there
                await asyncio.wait(pending, timeout=1.0)
        await lifespan.shutdown(self.cfg.timeout_graceful_shutdown)
        self.server.close()
        self.server = None
        return 0

    def run(self) -> int:
        loop = new_event_loop(self.loop_kind)
        try:
            asyncio.set_event_loop(loop)
            return loop.run_until_complete(self.main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()


def asgi_worker(app, cfg, lifespan: str, loop: str):
    """work(sock, multiprocess) for the supervisor."""

    def work(sock, multiprocess: bool):
        code = Worker(app, cfg, sock, lifespan=lifespan, loop=loop).run()
        if code:
            sys.stderr.flush()
            raise SystemExit(code)

    return work
