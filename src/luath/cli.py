"""The command line: `luath module:app [options]` and `python -m luath`."""

from __future__ import annotations

import argparse
import os
import sys

from .config import Config


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="luath",
        description="Serve a WSGI application with luath's C++ HTTP/1.1 engine.",
    )
    p.add_argument("app", help='the application, as "module:attribute"')
    p.add_argument("--version", action="version", version=f"luath {_version()}")
    g = p.add_argument_group("application")
    g.add_argument("--interface", choices=("auto", "wsgi", "asgi"), default="auto")
    g.add_argument("--factory", action="store_true", help="the attribute is a factory returning the app")
    g.add_argument("--root-path", default=d.root_path, help="SCRIPT_NAME / root_path the app is mounted at")
    g.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto", help="ASGI lifespan events")
    g.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="ASGI event loop (auto: uvloop when installed)")
    g = p.add_argument_group("socket and processes")
    g.add_argument("--host", default=d.host)
    g.add_argument("--port", type=int, default=d.port)
    g.add_argument("--workers", type=_workers, default=d.workers, help="worker processes (auto = CPU count)")
    g.add_argument("--backlog", type=int, default=d.backlog)
    g = p.add_argument_group("limits (over a limit: 414, 431 or 413 and the connection closed)")
    g.add_argument("--max-request-line", type=int, default=d.max_request_line, metavar="BYTES")
    g.add_argument("--max-field-size", type=int, default=d.max_field_size, metavar="BYTES")
    g.add_argument("--max-head-size", type=int, default=d.max_head_size, metavar="BYTES")
    g.add_argument("--max-headers", type=int, default=d.max_headers, metavar="N")
    g.add_argument("--max-body-size", type=int, default=d.max_body_size, metavar="BYTES", help="0 = no limit")
    g.add_argument("--limit-concurrency", type=int, default=d.limit_concurrency, metavar="N",
                   help="open connections per worker; beyond it a new one gets 503 and is closed (0 = no limit)")
    g = p.add_argument_group("timeouts (seconds)")
    g.add_argument("--timeout-keep-alive", type=float, default=d.timeout_keep_alive)
    g.add_argument("--timeout-request-head", type=float, default=d.timeout_request_head)
    g.add_argument("--timeout-request-body", type=float, default=d.timeout_request_body)
    g.add_argument("--timeout-write", type=float, default=d.timeout_write)
    g.add_argument("--timeout-graceful-shutdown", type=float, default=d.timeout_graceful_shutdown)
    g = p.add_argument_group("logging")
    g.add_argument("--log-level", default=d.log_level,
                   choices=("critical", "error", "warning", "info", "debug", "trace"))
    return p


def _workers(value: str) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .main import import_app, run

    try:
        app = import_app(args.app, factory=args.factory)
    except Exception as e:  # noqa: BLE001 - any import failure is reported in one line
        print(f"luath: cannot load {args.app!r}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    options = {k: v for k, v in vars(args).items() if k not in ("app", "interface", "factory")}
    try:
        run(app, interface=args.interface, **options)
    except (ValueError, TypeError, NotImplementedError) as e:
        print(f"luath: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
