"""The access log: one line per response on the logger ``luath.access`` at INFO.

The engine calls ``access_log(request, status, length, duration)`` after each response, where request is
the WSGI environ or the ASGI scope, length the body bytes sent and duration seconds. Formats:

combined (Apache/nginx "combined")::

    127.0.0.1 - - [10/Oct/2024:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 2326 "http://ref/" "curl/8.5"

json: one object per line with the keys time, remote_addr, method, path, query, protocol, status,
length, duration, referer, user_agent.
"""

from __future__ import annotations

import json
import logging
import time

access_logger = logging.getLogger("luath.access")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off) // 60
    return (f"{lt.tm_mday:02d}/{_MONTHS[lt.tm_mon - 1]}/{lt.tm_year:04d}:{lt.tm_hour:02d}:{lt.tm_min:02d}:"
            f"{lt.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}")


def _quote(s: str) -> str:
    """The inside of a quoted field: control characters, quotes and backslashes escaped (no log
    injection through a header)."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


def request_fields(request: dict) -> dict:
    """remote_addr, method, target, protocol, referer, user_agent of a WSGI environ or an ASGI scope."""
    if "REQUEST_METHOD" in request:  # WSGI
        target = request.get("RAW_URI")
        if target is None:
            target = request.get("SCRIPT_NAME", "") + request.get("PATH_INFO", "")
            if request.get("QUERY_STRING"):
                target += "?" + request["QUERY_STRING"]
        path, _, query = target.partition("?")
        return {
            "remote_addr": request.get("REMOTE_ADDR") or "-",
            "method": request.get("REQUEST_METHOD", "-"),
            "target": target,
            "path": path,
            "query": query,
            "protocol": request.get("SERVER_PROTOCOL", "-"),
            "referer": request.get("HTTP_REFERER", ""),
            "user_agent": request.get("HTTP_USER_AGENT", ""),
        }
    # ASGI scope
    client = request.get("client")
    raw = request.get("raw_path")
    if raw:
        path = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        path = path.partition("?")[0]
    else:
        path = request.get("root_path", "") + request.get("path", "")
    qs = request.get("query_string") or b""
    query = qs.decode("latin-1") if isinstance(qs, (bytes, bytearray)) else str(qs)
    referer = user_agent = ""
    for k, v in request.get("headers") or ():
        k = bytes(k).lower()
        if k == b"referer":
            referer = bytes(v).decode("latin-1")
        elif k == b"user-agent":
            user_agent = bytes(v).decode("latin-1")
    return {
        "remote_addr": str(client[0]) if client else "-",
        "method": request.get("method", "GET" if request.get("type") == "websocket" else "-"),
        "target": path + ("?" + query if query else ""),
        "path": path,
        "query": query,
        "protocol": "HTTP/" + str(request.get("http_version", "1.1")),
        "referer": referer,
        "user_agent": user_agent,
    }


def format_combined(request: dict, status: int, length: int, duration: float, now: float | None = None) -> str:
    f = request_fields(request)
    size = str(length) if length else "-"
    return (f'{f["remote_addr"]} - - [{_clf_time(time.time() if now is None else now)}] '
            f'"{_quote(f["method"])} {_quote(f["target"])} {_quote(f["protocol"])}" {status} {size} '
            f'"{_quote(f["referer"] or "-")}" "{_quote(f["user_agent"] or "-")}"')


def format_json(request: dict, status: int, length: int, duration: float, now: float | None = None) -> str:
    f = request_fields(request)
    t = time.time() if now is None else now
    return json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"
                + time.strftime("%z", time.localtime(t)),
        "remote_addr": f["remote_addr"],
        "method": f["method"],
        "path": f["path"],
        "query": f["query"],
        "protocol": f["protocol"],
        "status": status,
        "length": length,
        "duration": round(duration, 6),
        "referer": f["referer"],
        "user_agent": f["user_agent"],
    }, ensure_ascii=False)


class AccessLogger:
    """The callable handed to the engine as the access_log option."""

    __slots__ = ("format", "logger")

    def __init__(self, fmt: str = "combined", logger: logging.Logger = access_logger):
        if fmt not in ("combined", "json"):
            raise ValueError(f"access log format must be combined or json, not {fmt!r}")
        self.format = format_combined if fmt == "combined" else format_json
        self.logger = logger

    def __call__(self, request, status, length, duration) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            try:
                line = self.format(request, status, length, duration)
            except Exception as e:  # noqa: BLE001 - a log line never breaks serving
                line = f"(access log line failed: {type(e).__name__}: {e})"
            self.logger.info(line)
