"""The command line: `luath module:app [options]` and `python -m luath`.

Every option can also be given as an environment variable LUATH_<NAME> (the long option's name in
upper case with "_" for "-": LUATH_PORT=9000, LUATH_WORKERS=auto, LUATH_ACCESS_LOG=1,
LUATH_FORWARDED_ALLOW_IPS=10.0.0.0/8,unix, LUATH_APP=module:app). The command line wins. Options that
may be repeated (--fd, --reload-dir) take a comma-separated list there.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import _tls
from .config import Config

ENV_PREFIX = "LUATH_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="luath",
        usage="%(prog)s [options] module:attribute",
        description="Serve a WSGI or ASGI application with luath's C++ HTTP/1.1 engine.",
        epilog="Every option also reads the environment variable LUATH_<OPTION> (e.g. LUATH_PORT, "
               "LUATH_WORKERS, LUATH_APP); the command line wins. Signals to the server: INT/TERM stop "
               "gracefully, HUP restarts the workers one by one (reloading the code), TTIN/TTOU add/remove "
               "a worker, USR1 reopens log files.",
    )
    p.add_argument("app", nargs="?", default=None, help='the application, as "module:attribute" (LUATH_APP)')
    p.add_argument("--version", action="version", version=f"luath {_version()}")
    g = p.add_argument_group("application")
    g.add_argument("--interface", choices=("auto", "wsgi", "asgi"), default="auto",
                   help="auto: ASGI if the application is an async callable (default: %(default)s)")
    g.add_argument("--factory", action=argparse.BooleanOptionalAction, default=False,
                   help="the attribute is a function returning the application")
    g.add_argument("--root-path", default=d.root_path, metavar="PATH",
                   help="SCRIPT_NAME / root_path the application is mounted at")
    g.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto", help="ASGI lifespan events")
    g.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="ASGI event loop (auto: uvloop when installed)")
    g.add_argument("--env-file", metavar="FILE",
                   help="KEY=VALUE lines (dotenv style) put into the environment before the application "
                        "is imported")
    g = p.add_argument_group("socket")
    g.add_argument("--host", default=d.host, help="address to listen on; :: for IPv6 and IPv4 (default: %(default)s)")
    g.add_argument("--port", type=_port, default=d.port, help="(default: %(default)s)")
    g.add_argument("--uds", metavar="PATH", help="listen on a unix domain socket instead of host:port")
    g.add_argument("--uds-mode", type=_octal, default=d.uds_mode, metavar="MODE",
                   help="permissions of the --uds socket file, octal (default: 666, so that a proxy "
                        "running as another user can connect; restrict with e.g. 660 or the directory)")
    g.add_argument("--fd", type=_nonneg_int, action="append", metavar="N",
                   help="serve on an inherited listening socket (repeatable). systemd socket activation "
                        "(LISTEN_FDS/LISTEN_PID) is used automatically")
    g.add_argument("--backlog", type=_pos_int, default=d.backlog, help="(default: %(default)s)")
    g = p.add_argument_group("processes")
    g.add_argument("--workers", type=_workers, default=d.workers, metavar="N",
                   help="worker processes; auto = CPU count (default: %(default)s)")
    g.add_argument("--threads", type=_pos_int, default=d.threads, metavar="N",
                   help="WSGI: threads per worker running the application, so a blocking app does not "
                        "stall the other connections of its worker (default: %(default)s = the app runs "
                        "on the event loop's thread)")
    g.add_argument("--max-requests", type=_nonneg_int, default=d.max_requests, metavar="N",
                   help="replace a worker after N requests (0 = never)")
    g.add_argument("--max-requests-jitter", type=_nonneg_int, default=d.max_requests_jitter, metavar="N",
                   help="add a random 0..N to --max-requests per worker, so they do not restart together")
    g.add_argument("--reload", action=argparse.BooleanOptionalAction, default=False,
                   help="development: restart the server when a .py file changes (watchfiles when "
                        "installed, else polling every 0.5 s)")
    g.add_argument("--reload-dir", action="append", metavar="DIR",
                   help="directory to watch with --reload (repeatable; default: the current directory)")
    g = p.add_argument_group("limits (over a limit: 414, 431 or 413 and the connection closed)")
    g.add_argument("--max-request-line", type=_pos_int, default=d.max_request_line, metavar="BYTES")
    g.add_argument("--max-field-size", type=_pos_int, default=d.max_field_size, metavar="BYTES")
    g.add_argument("--max-head-size", type=_pos_int, default=d.max_head_size, metavar="BYTES")
    g.add_argument("--max-headers", type=_pos_int, default=d.max_headers, metavar="N")
    g.add_argument("--max-body-size", type=_nonneg_int, default=d.max_body_size, metavar="BYTES",
                   help="0 = no limit")
    g.add_argument("--limit-concurrency", type=_nonneg_int, default=d.limit_concurrency, metavar="N",
                   help="open connections per worker; beyond it a new one gets 503 and is closed (0 = no limit)")
    g = p.add_argument_group("timeouts (seconds)")
    g.add_argument("--timeout-keep-alive", type=_seconds, default=d.timeout_keep_alive, metavar="S")
    g.add_argument("--timeout-request-head", type=_seconds, default=d.timeout_request_head, metavar="S")
    g.add_argument("--timeout-request-body", type=_seconds, default=d.timeout_request_body, metavar="S")
    g.add_argument("--timeout-write", type=_seconds, default=d.timeout_write, metavar="S")
    g.add_argument("--timeout-graceful-shutdown", type=_seconds, default=d.timeout_graceful_shutdown, metavar="S",
                   help="on stop, time for the requests in progress to finish")
    g = p.add_argument_group("proxy")
    g.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=d.proxy_headers,
                   help="use X-Forwarded-For/-Proto/-Host/-Port and Forwarded from trusted peers for the "
                        "client's address, the scheme and the host")
    g.add_argument("--forwarded-allow-ips", default=d.forwarded_allow_ips, metavar="LIST",
                   help='the trusted peers: comma-separated IPs and networks (CIDR), "unix" for unix '
                        'socket peers, or "*" (default: %(default)s)')
    g.add_argument("--proxy-protocol", action=argparse.BooleanOptionalAction, default=d.proxy_protocol,
                   help="every connection must begin with a PROXY protocol header, v1 or v2 (HAProxy "
                        "send-proxy[-v2], nginx proxy_protocol); one that is missing or malformed closes the "
                        "connection. Its source address replaces the peer's, also for the "
                        "--forwarded-allow-ips check. Only for sockets that nothing but the proxy can reach")
    g = p.add_argument_group("logging")
    g.add_argument("--log-level", default=d.log_level, type=str.lower,
                   choices=("critical", "error", "warning", "info", "debug", "trace"))
    g.add_argument("--log-config", metavar="FILE",
                   help="logging configuration: .json or .yaml (dictConfig; YAML needs PyYAML) or .ini "
                        "(fileConfig). Loggers: luath.error, luath.access")
    g.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=d.access_log,
                   help="log every response (and every WebSocket handshake: 101 or the refusal) on "
                        "luath.access (default: off; without --log-config on stdout)")
    g.add_argument("--access-log-format", choices=("combined", "json"), default=d.access_log_format)
    g = p.add_argument_group("websocket (ASGI)")
    g.add_argument("--ws", choices=("auto", "none"), default=d.ws,
                   help="WebSocket upgrades for ASGI apps (none: answered as plain HTTP)")
    g.add_argument("--ws-max-size", type=_nonneg_int, default=d.ws_max_size, metavar="BYTES",
                   help="largest message (after decompression); larger closes with 1009 (default: 16 MiB)")
    g.add_argument("--ws-ping-interval", type=_seconds, default=d.ws_ping_interval, metavar="S",
                   help="send a ping this often (0 = never; default: %(default)s)")
    g.add_argument("--ws-ping-timeout", type=_seconds, default=d.ws_ping_timeout, metavar="S",
                   help="close with 1011 when no pong comes within this (0 = wait forever; default: %(default)s)")
    g.add_argument("--ws-per-message-deflate", action=argparse.BooleanOptionalAction,
                   default=d.ws_per_message_deflate, help="permessage-deflate compression (default: on)")
    _tls.add_cli_options(p)
    return p


def _pos_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _nonneg_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def _port(value: str) -> int:
    n = _nonneg_int(value)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"port {n} is out of range")
    return n


def _seconds(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if s < 0 or s != s:
        raise argparse.ArgumentTypeError("must not be negative")
    return s


def _octal(value: str) -> int:
    try:
        n = int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {value!r}") from None
    if not 0 <= n <= 0o7777:
        raise argparse.ArgumentTypeError(f"not a permission mode: {value!r}")
    return n


def _workers(value: str) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    return _pos_int(value)


def _version() -> str:
    from . import __version__

    return __version__


def apply_environment(parser: argparse.ArgumentParser, environ=os.environ) -> None:
    """Set each option's default from LUATH_<NAME> when that variable is set."""
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        name = ENV_PREFIX + action.dest.upper()
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
                low = raw.strip().lower()
                if low not in _TRUE + _FALSE:
                    raise argparse.ArgumentTypeError(f"not a boolean (use 1/0, true/false, yes/no, on/off)")
                value = low in _TRUE
            elif isinstance(action, argparse._AppendAction):
                value = [action.type(v.strip()) if action.type else v.strip() for v in raw.split(",") if v.strip()]
            else:
                value = action.type(raw) if action.type else raw
                if action.choices is not None and value not in action.choices:
                    raise argparse.ArgumentTypeError(
                        f"invalid choice {value!r} (choose from {', '.join(map(str, action.choices))})")
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            parser.error(f"environment variable {name}={raw!r}: {e}")
        action.default = value


def load_env_file(path: str, environ=os.environ) -> dict:
    """dotenv-style KEY=VALUE lines: blank lines and # comments skipped, an optional "export ", values
    optionally in single quotes (taken as they are) or double quotes (\\n, \\" and \\\\ escapes).
    Variables already set in the environment are overridden. Returns what was set."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            key, eq, value = line.partition("=")
            key = key.strip()
            if not eq or not key or not (key.replace("_", "a").isalnum() and not key[0].isdigit()):
                raise ValueError(f"{path}:{lineno}: not a KEY=VALUE line")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            elif len(value) >= 2 and value[0] == value[-1] == '"':
                value = (value[1:-1].replace("\\\\", "\0").replace("\\n", "\n").replace('\\"', '"')
                         .replace("\0", "\\"))
            else:
                value = value.split(" #", 1)[0].rstrip()
            out[key] = value
    environ.update(out)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    apply_environment(parser)
    args = parser.parse_args(argv)
    if args.env_file:
        try:
            loaded = load_env_file(args.env_file)
        except (OSError, ValueError) as e:
            parser.error(f"--env-file: {e}")
        if any(k.startswith(ENV_PREFIX) for k in loaded):  # settings in the env file count too
            parser = build_parser()
            apply_environment(parser)
            args = parser.parse_args(argv)
    if args.app is None:
        parser.error('the application is required: luath module:attribute (or LUATH_APP)')
    if args.uds and args.fd:
        parser.error("give --uds or --fd, not both")
    return args


NOT_CONFIG = ("app", "interface", "factory", "env_file", "reload", "reload_dir", "lifespan", "loop")


def options_of(args: argparse.Namespace) -> dict:
    """The keyword options for luath.run() (Config fields and lifespan/loop)."""
    opts = {k: v for k, v in vars(args).items() if k not in NOT_CONFIG}
    opts["lifespan"] = args.lifespan
    opts["loop"] = args.loop
    return opts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reload:
        from ._reload import Reloader

        return Reloader(args).run()
    return serve_args(args)


def serve_args(args: argparse.Namespace) -> int:
    from .main import AppLoadError, run

    try:
        run(args.app, interface=args.interface, factory=args.factory, **options_of(args))
    except AppLoadError as e:
        print(f"luath: cannot load {args.app!r}: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, NotImplementedError) as e:
        print(f"luath: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
