"""Listening sockets: TCP (IPv4, IPv6), unix domain sockets, an inherited fd, systemd socket activation.

Every socket returned is listening, non-blocking and inheritable, so forked workers (and a process
started by the --reload watcher) can use it. The engine accepts on any listening stream socket; a
connection over a unix socket has REMOTE_ADDR "" (WSGI) and client None (ASGI).
"""

from __future__ import annotations

import errno
import os
import socket
import stat

SD_LISTEN_FDS_START = 3
_bound_paths: set[str] = set()  # unix socket files this process created (removed again by close())


class BindError(SystemExit):
    """A socket that cannot be had; its message is the one line the command prints."""


def systemd_fds() -> list[int]:
    """The fds systemd passed (LISTEN_FDS/LISTEN_PID, from fd 3), or []. The variables are removed
    so that processes started later do not take the fds for theirs."""
    try:
        pid = int(os.environ.get("LISTEN_PID", ""))
        n = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if pid != os.getpid() or n <= 0:
        return []
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n))


def from_fd(fd: int) -> socket.socket:
    """A listening socket object around an inherited fd (which it now owns)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise BindError(f"luath: fd {fd} is not a socket: {e.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"luath: fd {fd} is not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise BindError(f"luath: fd {fd} is not a listening socket")
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    """host:port; IPv6 when the host is (and "::" takes IPv4 too)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BindError(f"luath: cannot listen on {host}:{port}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host in ("::", ""):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise BindError(f"luath: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_unix(path: str, mode: int, backlog: int) -> socket.socket:
    """A unix domain socket at path with the given permission bits. A stale socket file (nobody
    listening) is replaced; one in use is an error."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise BindError(f"luath: cannot listen on {path}: it exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                probe.close()
                raise BindError(f"luath: cannot listen on {path}: {e.strerror}") from None
            os.unlink(path)  # stale
        else:
            probe.close()
            raise BindError(f"luath: cannot listen on {path}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        _bound_paths.add(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise BindError(f"luath: cannot listen on {path}: {e.strerror}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def fd_list(fd) -> list[int]:
    if fd is None:
        return []
    if isinstance(fd, int):
        return [fd]
    return [int(x) for x in fd]


def listeners(cfg) -> list[socket.socket]:
    """The sockets cfg asks for: systemd's (when LISTEN_FDS is for this process), else cfg.fd, else
    cfg.uds, else cfg.host:cfg.port."""
    fds = systemd_fds() or fd_list(cfg.fd)
    if fds:
        return [from_fd(fd) for fd in fds]
    if cfg.uds:
        return [bind_unix(cfg.uds, cfg.uds_mode, cfg.backlog)]
    return [bind_tcp(cfg.host, cfg.port, cfg.backlog)]


def close(socks: list[socket.socket]) -> None:
    """Close the listeners; remove the file of a unix socket this process bound."""
    for sock in socks:
        path = None
        if sock.family == socket.AF_UNIX:
            try:
                name = sock.getsockname()
                path = name if isinstance(name, str) and name and not name.startswith("\0") else None
            except OSError:
                pass
        sock.close()
        if path and path in _bound_paths:
            _bound_paths.discard(path)
            try:
                os.unlink(path)
            except OSError:
                pass


def describe(sock: socket.socket, tls: bool = False) -> str:
    """For the log: http://host:port (https:// with TLS) or unix:path (with " (TLS)")."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name if isinstance(name, str) else name.decode(errors='replace')}" + (" (TLS)" if tls else "")
    host, port = name[:2]
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{scheme}://{host}:{port}"


def server_address(sock: socket.socket) -> tuple[str, int | None]:
    """(host, port) of a TCP listener; (path, None) of a unix one (the ASGI "server" convention)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return (name if isinstance(name, str) else name.decode(errors="replace"), None)
    return str(name[0]), int(name[1])


def wsgi_server_name(sock: socket.socket) -> tuple[str, int]:
    """SERVER_NAME and SERVER_PORT for WSGI (never empty, PEP 3333): "localhost" and 80 on a unix
    socket, where only the Host header tells the name."""
    host, port = server_address(sock)
    if port is None:
        return "localhost", 80
    return host, port
