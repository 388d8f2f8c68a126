"""A gunicorn worker class running luath's engine: ``gunicorn -k luath.gunicorn.Worker app:app``.

gunicorn's arbiter binds the sockets, forks and supervises; each worker runs luath's C++ event loop on
the sockets it inherited. Settings taken from gunicorn: --keep-alive, --graceful-timeout,
--limit-request-line, --limit-request-fields, --limit-request-field_size, --max-requests(-jitter),
--access-logfile (combined format on gunicorn's access logger), --log-level, --threads (a pool of
threads per worker running the application, as luath's --threads), --proxy-protocol (any value but
off turns luath's on: a PROXY v1 or v2 header is then required on every connection, whatever
--proxy-allow-from says; see docs/security.md). SIGTERM stops the worker
gracefully, SIGQUIT/SIGINT at once, SIGUSR1 reopens log files (at the next request).

gunicorn's --timeout: the worker must touch its heartbeat file every --timeout seconds. The engine's
loop runs in C++, so a thread does it while the loop releases the GIL (whenever it waits for I/O);
a worker stuck in application code holding the GIL is still killed. The thread also stops the worker
when the arbiter has gone. If in doubt, ``--timeout 0`` turns gunicorn's check off.

WSGI only (an ASGI application needs ``luath --interface asgi``).
"""

from __future__ import annotations

import os
import signal
import threading

from gunicorn.workers.base import Worker as _BaseWorker

from . import _logging
from ._sockets import wsgi_server_name
from .config import Config


class Worker(_BaseWorker):
    def luath_config(self) -> Config:
        c = self.cfg
        cfg = Config(
            max_request_line=c.limit_request_line or Config.max_request_line,  # gunicorn: 0 = unlimited
            max_headers=min(c.limit_request_fields, 256) if c.limit_request_fields else Config.max_headers,
            max_field_size=c.limit_request_field_size or Config.max_field_size,
            timeout_keep_alive=float(c.keepalive),
            timeout_graceful_shutdown=float(c.graceful_timeout),
            log_level=str(c.loglevel).lower(),
            limit_concurrency=c.worker_connections or Config.limit_concurrency,
            threads=max(1, min(int(c.threads or 1), 1024)),  # gunicorn's --threads
        )
        pp = getattr(c, "proxy_protocol", False)
        if pp and str(pp).lower() not in ("off", "false", "0", "no"):
            cfg.proxy_protocol = True
        if c.is_ssl:  # gunicorn's --certfile/--keyfile: luath terminates TLS itself
            cfg.ssl_certfile = c.certfile
            cfg.ssl_keyfile = c.keyfile or None
            cfg.ssl_ca_certs = c.ca_certs or None
            cfg.ssl_cert_reqs = int(c.cert_reqs or 0)
            if c.ciphers:
                cfg.ssl_ciphers = c.ciphers
        return cfg

    def engine_options(self, cfg: Config) -> dict:
        opts = cfg.engine_options()
        if self.cfg.max_requests > 0:
            opts["max_requests"] = self.max_requests  # gunicorn added its jitter already
        if self.cfg.accesslog:
            from ._access import AccessLogger

            opts["access_log"] = AccessLogger("combined", logger=self.log.access_log)
        return opts

    def _heartbeat(self, stop: threading.Event) -> None:
        interval = self.timeout / 2.0 if self.timeout else 1.0
        interval = min(max(interval, 0.2), 5.0)
        while not stop.wait(interval):
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                self.notify()
            except (OSError, ValueError):
                return

    def run(self) -> None:
        from . import _core
        from ._wsgi import FileWrapper, base_environ

        cfg = self.luath_config()
        _logging.setup(cfg.log_level)
        for s in self.sockets:
            s.setblocking(False)
        host, port = wsgi_server_name(self.sockets[0].sock if hasattr(self.sockets[0], "sock") else self.sockets[0])
        environ = base_environ(host, port, os.environ.get("SCRIPT_NAME", ""), True,
                               url_scheme="https" if cfg.ssl_certfile else "http",
                               multithread=cfg.threads > 1)
        # SIGQUIT/SIGINT (gunicorn's "now"): the default action, not a Python handler that would only run
        # at the next request; SIGTERM and SIGINT are taken by the engine for a graceful stop.
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        # A SIGTERM from here on stays pending until the engine's handler is installed (the engine
        # unblocks it then); one that came before, while the app loaded, was seen by gunicorn's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        if not self.alive:
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), name="luath-heartbeat", daemon=True)
        self.notify()
        beat.start()
        try:
            _core.serve_wsgi(self.wsgi, [s.fileno() for s in self.sockets], self.engine_options(cfg), environ,
                             FileWrapper, _logging.log_app_error, True)
        finally:
            stop.set()
            beat.join(5)
