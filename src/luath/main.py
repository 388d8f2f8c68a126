"""The public entry points: serve(), serve_asgi(), run()."""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import sys

from . import _logging, supervisor
from .config import Config


def import_app(spec: str, factory: bool = False):
    """Load "module:attr" (attr may be dotted); call it when factory is set."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ImportError(f'app must be given as "module:attribute", not {spec!r}')
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {attr!r}") from None
    if factory:
        obj = obj()
    return obj


def is_asgi(app) -> bool:
    """An async callable, or an object whose __call__ is async, or a callable of three parameters."""
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call):
        return True
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 3


def _wsgi_worker(app, cfg: Config):
    from . import _core
    from ._wsgi import FileWrapper, base_environ

    def work(sock, multiprocess: bool):
        host, port = sock.getsockname()[:2] if isinstance(sock.getsockname(), tuple) else (cfg.host, cfg.port)
        environ = base_environ(str(host), int(port), cfg.root_path, multiprocess)
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            _core.serve_wsgi(
                app,
                [sock.fileno()],
                cfg.engine_options(),
                environ,
                FileWrapper,
                _logging.log_app_error,
                True,
            )
        finally:
            # libuv reset these to the default on the way out; give Python its handlers back.
            for s, h in saved.items():
                if h is not None:
                    signal.signal(s, h)

    return work


def serve(app, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, **options) -> None:
    """Serve a WSGI application until SIGINT or SIGTERM.

    Options are the fields of luath.Config (limits, timeouts, backlog, root_path, log_level).
    """
    cfg = Config.from_kwargs(host=host, port=port, workers=workers, **options)
    _logging.setup(cfg.log_level)
    supervisor.serve(_wsgi_worker(app, cfg), cfg)


def serve_asgi(app, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, lifespan: str = "auto",
               loop: str = "auto", **options) -> None:
    """Serve an ASGI 3 application until SIGINT or SIGTERM.

    lifespan: "auto" (run it if the app supports it), "on" (a failure stops the server), "off".
    loop: "auto" (uvloop when installed), "asyncio" or "uvloop".
    """
    from ._asgi import asgi_worker, new_event_loop

    if lifespan not in ("auto", "on", "off"):
        raise ValueError(f"lifespan must be auto, on or off, not {lifespan!r}")
    new_event_loop(loop).close()  # fail early on a loop that cannot be had
    cfg = Config.from_kwargs(host=host, port=port, workers=workers, **options)
    _logging.setup(cfg.log_level)
    supervisor.serve(asgi_worker(app, cfg, lifespan, loop), cfg)


def run(app, interface: str = "auto", factory: bool = False, **options) -> None:
    """Serve "module:app" (or an application object), choosing WSGI or ASGI by `interface`."""
    if isinstance(app, str):
        app = import_app(app, factory=factory)
    if interface == "auto":
        interface = "asgi" if is_asgi(app) else "wsgi"
    lifespan = options.pop("lifespan", "auto")
    loop = options.pop("loop", "auto")
    if interface == "asgi":
        serve_asgi(app, lifespan=lifespan, loop=loop, **options)
    elif interface == "wsgi":
        serve(app, **options)
    else:
        raise ValueError(f"interface must be auto, wsgi or asgi, not {interface!r}")
