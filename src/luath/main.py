"""The public entry points: serve(), serve_asgi(), run()."""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import sys

from . import _logconfig, _logging, _proxy, _tls, supervisor
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
    from ._sockets import wsgi_server_name
    from ._wsgi import FileWrapper, base_environ

    app = _proxy.wrap(app, "wsgi", cfg)

    def work(socks, multiprocess: bool):
        socks = socks if isinstance(socks, (list, tuple)) else [socks]
        host, port = wsgi_server_name(socks[0])
        environ = base_environ(str(host), int(port), cfg.root_path, multiprocess, _tls.scheme(cfg),
                               multithread=cfg.threads > 1)
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            _core.serve_wsgi(
                app,
                [s.fileno() for s in socks],
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


def _loader(app, cfg: Config, interface: str, factory: bool, build):
    """load() for the supervisor: the application object as given, or "module:app" imported (and the
    factory called) in the process that serves."""
    if not isinstance(app, str):
        return lambda: build(app)

    def load():
        obj = import_app(app, factory=factory)
        kind = interface if interface != "auto" else ("asgi" if is_asgi(obj) else "wsgi")
        if kind != build.interface:
            raise TypeError(f"{app} is an {kind.upper()} application, expected {build.interface.upper()}")
        return build(obj)

    return load


class AppLoadError(Exception):
    """The application cannot be imported; str() is the one-line reason."""


def probe_app(spec: str, factory: bool = False, interface: str = "auto") -> str:
    """Import "module:app" in a forked child (so this process stays free of application code, and
    SIGHUP can reload it in fresh workers) and return its interface, "wsgi" or "asgi"; AppLoadError
    with a one-line reason if it cannot be loaded."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            obj = import_app(spec, factory=factory)
            kind = interface if interface != "auto" else ("asgi" if is_asgi(obj) else "wsgi")
            msg = "ok " + kind
        except BaseException as e:  # noqa: BLE001 - reported by the parent
            msg = f"err {type(e).__name__}: {e}"
        try:
            os.write(w, msg.encode("utf-8", "replace")[:4000])
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        chunks.append(f.read())
    os.waitpid(pid, 0)
    msg = b"".join(chunks).decode("utf-8", "replace")
    if msg.startswith("ok "):
        return msg[3:]
    reason = msg[4:] if msg.startswith("err ") else "the process importing it died"
    raise AppLoadError(reason.splitlines()[0] if reason else "unknown error")


def serve(app, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, **options) -> None:
    """Serve a WSGI application until SIGINT or SIGTERM.

    Options are the fields of luath.Config (limits, timeouts, backlog, root_path, log_level, uds, fd,
    max_requests, access_log, proxy_headers, proxy_protocol, ...). app may be "module:app": then each
    worker imports it (and SIGHUP reloads the code); an application object is forked with the workers as
    it is.
    """
    factory = options.pop("factory", False)
    cfg = Config.from_kwargs(host=host, port=port, workers=workers, **options)
    if isinstance(app, str) and not cfg.app_name:
        cfg.app_name = app
    _logconfig.setup(cfg)

    def build(obj):
        return _wsgi_worker(obj, cfg)

    build.interface = "wsgi"
    supervisor.serve(_loader(app, cfg, "wsgi", factory, build), cfg)


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
    factory = options.pop("factory", False)
    cfg = Config.from_kwargs(host=host, port=port, workers=workers, **options)
    if isinstance(app, str) and not cfg.app_name:
        cfg.app_name = app
    _logconfig.setup(cfg)
    if cfg.threads > 1:
        import logging

        logging.getLogger("luath.error").warning("--threads applies to WSGI applications only: ignored")

    def build(obj):
        return asgi_worker(_proxy.wrap(obj, "asgi", cfg), cfg, lifespan, loop)

    build.interface = "asgi"
    supervisor.serve(_loader(app, cfg, "asgi", factory, build), cfg)


def run(app, interface: str = "auto", factory: bool = False, **options) -> None:
    """Serve "module:app" (or an application object), choosing WSGI or ASGI by `interface`.

    With a supervisor (several workers, max_requests) "module:app" is imported only in a throwaway
    child here (to check it and find its interface) and then by each worker, so SIGHUP serves new code.
    """
    if interface not in ("auto", "wsgi", "asgi"):
        raise ValueError(f"interface must be auto, wsgi or asgi, not {interface!r}")
    if isinstance(app, str):
        cfg = Config.from_kwargs(**{k: v for k, v in options.items() if k not in ("lifespan", "loop")})
        if cfg.supervised:
            interface = probe_app(app, factory=factory, interface=interface)
        else:
            try:
                obj = import_app(app, factory=factory)
            except Exception as e:  # noqa: BLE001 - one line for the command
                raise AppLoadError(f"{type(e).__name__}: {e}") from None
            options.setdefault("app_name", app)
            app, factory = obj, False
    if interface == "auto":
        interface = "asgi" if is_asgi(app) else "wsgi"
    lifespan = options.pop("lifespan", "auto")
    loop = options.pop("loop", "auto")
    if interface == "asgi":
        serve_asgi(app, lifespan=lifespan, loop=loop, factory=factory, **options)
    else:
        serve(app, factory=factory, **options)
