"""The scenario table.  A new scenario is one more entry in SCENARIOS.

Every Python server is started with ``bench.apps.{wsgi,asgi}_hello:<callable>``;
the reference servers (limit, nginx) route by ``path`` instead, and only run
the scenarios listed in their ``scenarios`` set (see servers.py).
"""
import json
from dataclasses import dataclass, field
from typing import Callable, Optional

MIB = 1024 * 1024


def _exact(expected: bytes) -> Callable[[bytes], Optional[str]]:
    def check(body: bytes) -> Optional[str]:
        if body != expected:
            return f"body {body[:60]!r} (len {len(body)}) != expected {expected[:60]!r}"
        return None
    return check


def _json_hello(body: bytes) -> Optional[str]:
    try:
        if json.loads(body) == {"message": "Hello, World!"}:
            return None
    except ValueError:
        pass
    return f"body {body[:80]!r} is not the JSON hello"


def _size(n: int) -> Callable[[bytes], Optional[str]]:
    def check(body: bytes) -> Optional[str]:
        if len(body) != n or body.strip(b"x"):
            return f"body of {len(body)} bytes, expected {n} bytes of 'x'"
        return None
    return check


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    callable: str                 # app callable in bench/apps/*_hello.py
    path: str = "/"               # URL path (used by nginx's routing)
    check: Callable[[bytes], Optional[str]] = _exact(b"Hello, World!")
    check_method: str = "GET"
    check_body: Optional[bytes] = None  # request body for the pre-flight check
    script: Optional[str] = None  # wrk lua script in bench/lua/
    script_args: tuple = ()
    connections: Optional[int] = None   # overrides --connections
    latency_valid: bool = True    # wrk's latency figures are meaningless when pipelining
    tls: bool = False             # https:// with the self-signed bench cert (servers.tls_cert())
    body_bytes: int = 0           # the response body is this many 'x' (0: 'Hello, World!'); limit-c serves it
    client: str = "wrk"           # the load generator: "wrk" or "http_client" (bench/http_client.cpp)
    extra: dict = field(default_factory=dict)


SCENARIOS = [
    Scenario("plaintext", "GET /, 13-byte text/plain 'Hello, World!', keep-alive",
             callable="app", path="/"),
    Scenario("pipeline", "plaintext with 16 requests pipelined per write (wrk lua)",
             callable="app", path="/", script="pipeline.lua", script_args=("16",),
             latency_valid=False),
    Scenario("json", 'GET /json, {"message": "Hello, World!"} built per request',
             callable="json_app", path="/json", check=_json_hello),
    Scenario("12k", "GET /12k, 12 KiB response body",
             callable="app_12k", path="/12k", check=_size(12 * 1024), body_bytes=12 * 1024),
    Scenario("1m", "GET /1m, 1 MiB response body",
             callable="app_1m", path="/1m", check=_size(MIB), body_bytes=MIB),
    Scenario("upload", "POST /upload with a 1 MiB body the app reads fully (wrk lua)",
             callable="upload_app", path="/upload", check=_exact(str(MIB).encode()),
             check_method="POST", check_body=b"x" * MIB,
             script="upload.lua", script_args=(str(MIB),)),
    Scenario("c1000", "plaintext with 1,000 concurrent keep-alive connections",
             callable="app", path="/", connections=1000),
    Scenario("tls", "plaintext over HTTPS (TLS 1.3, keep-alive); luath-plain: luath-wsgi without TLS; "
             "load from bench/http_client, not wrk (bench/README.md)",
             callable="app", path="/", tls=True, client="http_client"),
]

BY_NAME = {s.name: s for s in SCENARIOS}
