"""Benchmark applications (WSGI and ASGI) served by every peer."""
