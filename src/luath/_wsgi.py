"""The Python half of the WSGI layer: wsgi.file_wrapper and the constant part of the environ."""

from __future__ import annotations

import sys


class FileWrapper:
    """wsgi.file_wrapper (PEP 3333). luath sends a regular file with sendfile from its current
    position; anything else is iterated in blksize pieces."""

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike, blksize: int = 65536):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def base_environ(server_name: str, server_port: int, script_name: str, multiprocess: bool,
                 url_scheme: str = "http", multithread: bool = False) -> dict:
    """The keys every request shares; the engine copies this dict and adds the request's own.
    url_scheme is "https" when the server does TLS; multithread when the app runs in a thread pool."""
    return {
        "SCRIPT_NAME": script_name,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
