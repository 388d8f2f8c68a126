"""luath: a fast WSGI and ASGI server whose engine is C++ on libuv."""

from .config import Config
from .main import run, serve, serve_asgi

__version__ = "0.1.0"
__all__ = ["Config", "serve", "serve_asgi", "run", "__version__"]
