"""Server settings: one dataclass shared by the Python API, the CLI and the workers."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from . import _tls


@dataclass
class Config:
    """Every setting of a luath server, with its default.

    Limits (a request over one is answered with the status in brackets and the connection closed):
    max_request_line [414], max_field_size and max_head_size and max_headers [431], max_body_size [413,
    0 = no limit]. Timeouts are in seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    # a unix domain socket path instead of host:port, and its permission bits (0o666: any local user
    # may connect, as a reverse proxy running as another user must; restrict through the directory or
    # with a stricter mode)
    uds: str | None = None
    uds_mode: int = 0o666
    # an already listening socket inherited from the parent process (an int, or a list of them)
    fd: int | list | None = None
    workers: int = 1
    # WSGI: Python threads per worker running the application, so that one that blocks (sleeps, waits
    # on a database) does not stall the other connections of its worker; 1 = the app runs on the
    # event loop's thread (fastest for apps that do not block). wsgi.multithread is True when > 1.
    threads: int = 1
    backlog: int = 2048
    root_path: str = ""
    # a worker stops gracefully after this many requests (+ a random 0..jitter) and is replaced (0 = never)
    max_requests: int = 0
    max_requests_jitter: int = 0
    # request limits
    max_request_line: int = 8190
    max_field_size: int = 8190
    max_head_size: int = 65536
    max_headers: int = 100
    max_body_size: int = 1 << 30
    # connections per worker; a new one beyond it is answered 503 and closed (0 = no limit)
    limit_concurrency: int = 10000
    # timeouts (seconds)
    timeout_keep_alive: float = 5.0
    timeout_request_head: float = 30.0
    timeout_request_body: float = 30.0
    timeout_write: float = 30.0
    timeout_graceful_shutdown: float = 30.0
    # output buffering (bytes): stop producing while more than high is unsent
    write_buffer_high: int = 512 * 1024
    write_buffer_low: int = 64 * 1024
    log_level: str = "info"
    log_config: str | None = None       # a logging configuration file: .json, .yaml/.yml or .ini
    access_log: bool = False            # one line per response (WebSocket: per handshake) on luath.access
    access_log_format: str = "combined"  # "combined" or "json"
    # X-Forwarded-* and Forwarded applied to the request, only from the peers in forwarded_allow_ips:
    # comma-separated IPs, CIDR networks, "unix" (unix socket peers) or "*"
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1,unix"
    # every connection must begin with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy and
    # nginx's proxy_protocol write); its source address becomes the peer (see docs/security.md)
    proxy_protocol: bool = False
    app_name: str = ""                  # "module:app", for process titles
    # TLS (see luath._tls): on when ssl_certfile is set
    ssl_certfile: str | None = None     # PEM certificate, followed by its chain
    ssl_keyfile: str | None = None      # PEM private key (default: in the certfile)
    ssl_keyfile_password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None     # CAs client certificates are verified against
    ssl_cert_reqs: int = 0              # client certificates: 0 none, 1 optional, 2 required
    ssl_ciphers: str | None = None      # OpenSSL cipher list for TLS 1.2
    ssl_min_version: str = "1.2"        # "1.2" or "1.3"
    ssl_ticket_keys: bytes | None = field(default=None, repr=False)  # made in validate(), before forking
    timeout_tls_handshake: float = 10.0
    # WebSocket (ASGI apps): "auto" or "none" (upgrades answered as plain HTTP)
    ws: str = "auto"
    ws_max_size: int = 16 * 1024 * 1024   # bytes of one message after decompression (0 = no limit)
    ws_ping_interval: float = 20.0        # seconds between pings (0 = none)
    ws_ping_timeout: float = 20.0         # no pong within this: close 1011 (0 = wait forever)
    ws_per_message_deflate: bool = True
    extra: dict = field(default_factory=dict)

    ENGINE_KEYS = (
        "max_request_line",
        "max_field_size",
        "max_head_size",
        "max_headers",
        "max_body_size",
        "timeout_keep_alive",
        "timeout_request_head",
        "timeout_request_body",
        "timeout_write",
        "timeout_graceful_shutdown",
        "write_buffer_high",
        "write_buffer_low",
        "limit_concurrency",
        "proxy_protocol",
        "threads",
        "ws",
        "ws_max_size",
        "ws_ping_interval",
        "ws_ping_timeout",
        "ws_per_message_deflate",
    )

    def engine_options(self) -> dict:
        """The settings the C++ engine reads. Call it in the worker: max_requests gets its own jitter
        in each worker (random is reseeded after fork)."""
        opts = {k: getattr(self, k) for k in self.ENGINE_KEYS}
        if self.max_requests > 0:
            opts["max_requests"] = self.max_requests + random.randint(0, max(self.max_requests_jitter, 0))
        if self.access_log:
            from ._access import AccessLogger

            opts["access_log"] = AccessLogger(self.access_log_format)
        opts.update(_tls.engine_options(self))
        return opts

    @property
    def supervised(self) -> bool:
        """Whether the server runs a supervisor process with forked workers (rather than serving in
        the calling process): several workers, or workers that exit on purpose (max_requests)."""
        return self.workers > 1 or self.max_requests > 0

    def validate(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not 1 <= self.threads <= 1024:
            raise ValueError("threads must be between 1 and 1024")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")
        for name in ("max_request_line", "max_field_size", "max_head_size", "max_headers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_headers > 256:
            raise ValueError("max_headers is at most 256")
        if self.max_body_size < 0:
            raise ValueError("max_body_size must be 0 (no limit) or positive")
        if self.limit_concurrency < 0:
            raise ValueError("limit_concurrency must be 0 (no limit) or positive")
        if self.max_requests < 0 or self.max_requests_jitter < 0:
            raise ValueError("max_requests and max_requests_jitter must be 0 or positive")
        if self.ws not in ("auto", "none"):
            raise ValueError(f"ws must be auto or none, not {self.ws!r}")
        if self.ws_max_size < 0 or self.ws_ping_interval < 0 or self.ws_ping_timeout < 0:
            raise ValueError("ws_max_size, ws_ping_interval and ws_ping_timeout must be 0 or positive")
        if self.access_log_format not in ("combined", "json"):
            raise ValueError(f"access_log_format must be combined or json, not {self.access_log_format!r}")
        if not 0 <= self.uds_mode <= 0o7777:
            raise ValueError(f"uds_mode {self.uds_mode:o} is not a permission mode")
        if sum(x is not None and x != [] for x in (self.uds, self.fd)) > 1:
            raise ValueError("give at most one of uds and fd")
        if self.proxy_headers:
            from ._proxy import TrustedPeers

            TrustedPeers(self.forwarded_allow_ips)  # raises ValueError on a bad entry
        _tls.validate(self)  # with TLS on: loads the files once and makes the session ticket keys

    @classmethod
    def from_kwargs(cls, **kwargs) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg
