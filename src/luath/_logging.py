"""Logging through the standard library: `luath.error` for the server and application errors."""

from __future__ import annotations

import logging
import sys

error_log = logging.getLogger("luath.error")
access_log = logging.getLogger("luath.access")

LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}


def setup(level: str = "info") -> None:
    """Readable logs on stderr unless the application configured logging itself."""
    lvl = LEVELS.get(level.lower(), logging.INFO)
    root = logging.getLogger("luath")
    root.setLevel(lvl)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.propagate = False


def log_app_error(exc: BaseException, message: str) -> None:
    """Called by the engine with the application's exception; logs it with its traceback."""
    error_log.error(message, exc_info=(type(exc), exc, exc.__traceback__))
