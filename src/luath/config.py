"""Server settings: one dataclass shared by the Python API, the CLI and the workers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class Config:
    """Every setting of a luath server, with its default.

    Limits (a request over one is answered with the status in brackets and the connection closed):
    max_request_line [414], max_field_size and max_head_size and max_headers [431], max_body_size [413,
    0 = no limit]. Timeouts are in seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    backlog: int = 2048
    root_path: str = ""
    # request limits
    max_request_line: int = 8190
    max_field_size: int = 8190
    max_head_size: int = 65536
    max_headers: int = 100
    max_body_size: int = 1 << 30
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
    )

    def engine_options(self) -> dict:
        """The settings the C++ engine reads."""
        return {k: getattr(self, k) for k in self.ENGINE_KEYS}

    def validate(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")
        for name in ("max_request_line", "max_field_size", "max_head_size", "max_headers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_headers > 256:
            raise ValueError("max_headers is at most 256")
        if self.max_body_size < 0:
            raise ValueError("max_body_size must be 0 (no limit) or positive")

    @classmethod
    def from_kwargs(cls, **kwargs) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg
