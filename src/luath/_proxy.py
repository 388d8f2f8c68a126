"""Proxy headers: the client's address, scheme and host as a trusted reverse proxy reports them.

Applied only when the immediate peer is trusted (``forwarded_allow_ips``: comma-separated IPs, CIDR
networks, ``unix`` for peers on a unix socket, ``*`` for everyone). The default trusts 127.0.0.1 and
unix sockets.

- ``Forwarded`` (RFC 7239), when present, is used instead of the X-Forwarded-* headers;
- ``X-Forwarded-For`` gives the client: walking the list from the right (the nearest hop), trusted
  proxies are skipped and the first untrusted address is the client (the rightmost untrusted address
  wins: what a client wrote itself at the left cannot be trusted). If every address is trusted, the
  leftmost is taken;
- ``X-Forwarded-Proto`` (http, https, ws, wss) gives the scheme, ``X-Forwarded-Host`` the host and
  ``X-Forwarded-Port`` the port; for these the last value (written by the nearest proxy) counts.

WSGI: REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, HTTP_HOST, SERVER_NAME, SERVER_PORT. ASGI: client,
scheme, server. The request is changed in place, so the access log shows the client too.
"""

from __future__ import annotations

import ipaddress

_SCHEMES = ("http", "https", "ws", "wss")


class TrustedPeers:
    def __init__(self, spec: str | list):
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
        self.always = "*" in items
        self.unix = "unix" in items
        self.hosts: set[str] = set()
        self.networks = []
        for item in items:
            if item in ("*", "unix"):
                continue
            try:
                if "/" in item:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    self.hosts.add(str(ipaddress.ip_address(item)))
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {item!r} is not an IP address or network, "
                                 f"'unix' or '*'") from None

    def __contains__(self, addr) -> bool:
        """addr: an IP address string; "" or None for a unix socket peer."""
        if self.always:
            return True
        if not addr:
            return self.unix
        if addr in self.hosts:
            return True
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        if str(ip) in self.hosts:
            return True
        return any(ip in net for net in self.networks)


def _split_hostport(value: str) -> tuple[str, int | None]:
    """"1.2.3.4:80", "[::1]:80", "::1", "host" -> (host, port or None)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host, (int(port) if port.isdigit() else None)


def _parse_forwarded(value: str) -> list[dict]:
    """RFC 7239 elements, left to right, each a dict of lower-case parameter names to values."""
    elements = []
    for element in _split_outside_quotes(value, ","):
        params = {}
        for pair in _split_outside_quotes(element, ";"):
            name, eq, val = pair.partition("=")
            if not eq:
                continue
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            params[name.strip().lower()] = val
        elements.append(params)
    return elements


def _split_outside_quotes(s: str, sep: str) -> list[str]:
    out, cur, quoted, escaped = [], [], False, False
    for ch in s:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [p for p in (x.strip() for x in out) if p]


def resolve(trusted: TrustedPeers, peer: str | None, get) -> dict | None:
    """What the proxy headers say, or None when they do not apply. get(name) returns a header's value
    (several lines joined with ", ") or None. The result may have client (host, port or None),
    scheme, host (the Host value) and port."""
    if peer not in trusted:
        return None
    out: dict = {}
    forwarded = get("forwarded")
    if forwarded:
        elements = _parse_forwarded(forwarded)
        chosen = None
        for el in reversed(elements):
            if "for" not in el:
                continue
            host, port = _split_hostport(el["for"])
            chosen = el
            if host not in trusted:
                break
        else:
            with_for = [el for el in elements if "for" in el]
            chosen = with_for[0] if with_for else (elements[-1] if elements else None)
        if chosen is None:
            return None
        if "for" in chosen:
            host, port = _split_hostport(chosen["for"])
            out["client"] = (host, port)
        if chosen.get("proto", "").lower() in _SCHEMES:
            out["scheme"] = chosen["proto"].lower()
        if chosen.get("host"):
            out["host"] = chosen["host"]
        return out
    xff = get("x-forwarded-for")
    if xff:
        hops = [h.strip() for h in xff.split(",") if h.strip()]
        client = None
        for hop in reversed(hops):
            client = hop
            if _split_hostport(hop)[0] not in trusted:
                break
        else:
            client = hops[0] if hops else None
        if client:
            out["client"] = _split_hostport(client)
    proto = get("x-forwarded-proto")
    if proto:
        last = proto.split(",")[-1].strip().lower()
        if last in _SCHEMES:
            out["scheme"] = last
    host = get("x-forwarded-host")
    if host:
        out["host"] = host.split(",")[-1].strip()
    port = get("x-forwarded-port")
    if port:
        last = port.split(",")[-1].strip()
        if last.isdigit():
            out["port"] = int(last)
    return out


class ProxyHeadersWSGI:
    """WSGI middleware applying the proxy headers of trusted peers to the environ."""

    def __init__(self, app, forwarded_allow_ips: str = "127.0.0.1,unix"):
        self.app = app
        self.trusted = TrustedPeers(forwarded_allow_ips)

    def __call__(self, environ, start_response):
        info = resolve(self.trusted, environ.get("REMOTE_ADDR"),
                       lambda name: environ.get("HTTP_" + name.upper().replace("-", "_")))
        if info:
            if "client" in info:
                host, port = info["client"]
                environ["REMOTE_ADDR"] = host
                environ["REMOTE_PORT"] = str(port or 0)
            if "scheme" in info:
                environ["wsgi.url_scheme"] = "https" if info["scheme"] in ("https", "wss") else "http"
            if "host" in info:
                environ["HTTP_HOST"] = info["host"]
                name, port = _split_hostport(info["host"])
                environ["SERVER_NAME"] = name
                if port is not None:
                    environ["SERVER_PORT"] = str(port)
                elif "port" not in info:
                    environ["SERVER_PORT"] = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
            if "port" in info:
                environ["SERVER_PORT"] = str(info["port"])
        return self.app(environ, start_response)


class ProxyHeadersASGI:
    """ASGI middleware applying the proxy headers of trusted peers to the scope (http and websocket)."""

    def __init__(self, app, forwarded_allow_ips: str = "127.0.0.1,unix"):
        self.app = app
        self.trusted = TrustedPeers(forwarded_allow_ips)

    def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")

            def get(name: str, _h=scope.get("headers") or ()):
                key = name.encode()
                vals = [bytes(v).decode("latin-1") for k, v in _h if bytes(k).lower() == key]
                return ", ".join(vals) if vals else None

            info = resolve(self.trusted, client[0] if client else None, get)
            if info:
                if "client" in info:
                    host, port = info["client"]
                    scope["client"] = (host, port or 0)
                if "scheme" in info:
                    secure = info["scheme"] in ("https", "wss")
                    if scope["type"] == "websocket":
                        scope["scheme"] = "wss" if secure else "ws"
                    else:
                        scope["scheme"] = "https" if secure else "http"
                if "host" in info or "port" in info:
                    server = scope.get("server") or (None, None)
                    name, port = _split_hostport(info["host"]) if "host" in info else (server[0], server[1])
                    if "port" in info:
                        port = info["port"]
                    elif port is None:
                        port = 443 if scope.get("scheme") in ("https", "wss") else 80
                    scope["server"] = (name, port)
        return self.app(scope, receive, send)


def wrap(app, interface: str, cfg):
    """The app behind the proxy-headers middleware when cfg.proxy_headers is set."""
    if not cfg.proxy_headers:
        return app
    cls = ProxyHeadersASGI if interface == "asgi" else ProxyHeadersWSGI
    return cls(app, cfg.forwarded_allow_ips)
