"""Logging set-up from the settings: --log-level, --log-config, the access log; reopening log files."""

from __future__ import annotations

import json
import logging
import logging.config
import sys

from . import _logging


def load_config_file(path: str) -> None:
    """Configure logging from a file: .json (dictConfig), .yaml/.yml (dictConfig, needs PyYAML), anything
    else as an .ini file for logging.config.fileConfig. Loggers that already exist are kept."""
    lower = path.lower()
    if lower.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            conf = json.load(f)
        conf.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(conf)
    elif lower.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: a YAML logging configuration needs PyYAML (pip install pyyaml)") from None
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
        conf.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(conf)
    else:
        logging.config.fileConfig(path, disable_existing_loggers=False)


def setup(cfg) -> None:
    """The logging a server with these settings runs with."""
    if cfg.log_config:
        try:
            load_config_file(cfg.log_config)
        except Exception as e:  # noqa: BLE001 - one line for the command
            raise ValueError(f"cannot use log config {cfg.log_config}: {type(e).__name__}: {e}") from None
        return
    _logging.setup(cfg.log_level)
    if cfg.access_log:
        access = logging.getLogger("luath.access")
        access.setLevel(logging.INFO)
        if not access.handlers:
            # the lines as they are (combined log format / JSON), on stdout like other servers' access logs
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            access.addHandler(handler)
            access.propagate = False


def reopen_files() -> None:
    """Reopen every logging.FileHandler's file (after logrotate moved it; on SIGUSR1)."""
    handlers = set(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.update(logger.handlers)
    for h in handlers:
        if isinstance(h, logging.FileHandler):
            h.acquire()
            try:
                if h.stream is not None:
                    h.stream.close()
                h.stream = h._open()
            except OSError:
                pass
            finally:
                h.release()
