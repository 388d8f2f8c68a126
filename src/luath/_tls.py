"""TLS (HTTPS) settings: checked in Python before any worker is forked, handed to the C++ engine,
which does the handshakes and the record layer itself with OpenSSL.

TLS is on when ``ssl_certfile`` is set. What the engine reads (``Config.engine_options()``):

- ``ssl_certfile``: PEM, the certificate followed by its chain; ``ssl_keyfile``: the PEM private key
  (default: the certfile, which then holds both); ``ssl_keyfile_password`` for an encrypted key;
- ``ssl_ca_certs``: a PEM bundle of the CAs client certificates are verified against, and
  ``ssl_cert_reqs``: 0 no client certificate asked for, 1 optional (verified when sent), 2 required;
- ``ssl_ciphers``: an OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults);
- ``ssl_min_version``: "1.2" (default) or "1.3";
- ``ssl_ticket_keys``: 80 random bytes for session tickets, made once here in the master process so
  every worker (and every worker a SIGHUP starts) resumes the sessions of the others;
- ``timeout_tls_handshake``: seconds a connection has to complete its handshake.

The files are loaded here once with the ssl module so that a missing file, a key that does not match
the certificate or a wrong password stops start-up with one line naming the file; each worker loads
them again (so a SIGHUP rolling restart picks up renewed certificates).
"""

from __future__ import annotations

import os
import re
import ssl

CERT_REQS = {"none": 0, "optional": 1, "required": 2}
MIN_VERSIONS = ("1.2", "1.3")
TICKET_KEYS_LEN = 80  # OpenSSL's tlsext ticket key: 16 name + 32 HMAC + 32 AES bytes

# The Config fields the engine reads when TLS is on.
ENGINE_KEYS = (
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_keyfile_password",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_ciphers",
    "ssl_min_version",
    "ssl_ticket_keys",
    "timeout_tls_handshake",
)
NO_TLS_BUILD = "luath was built without TLS support (OpenSSL was not found when it was compiled)"


class TLSConfigError(ValueError):
    """A TLS setting or file that cannot be used; str() is the one line start-up prints."""


def has_tls() -> bool:
    """Whether the C++ engine was built with OpenSSL."""
    try:
        from . import _core
    except ImportError:
        return False
    return bool(getattr(_core, "HAS_TLS", False))


def enabled(cfg) -> bool:
    return bool(cfg.ssl_certfile)


def parse_cert_reqs(value) -> int:
    """"none"/"optional"/"required", 0/1/2, or ssl.CERT_NONE/OPTIONAL/REQUIRED -> 0, 1 or 2."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key.startswith("cert_"):
            key = key[5:]
        if key in CERT_REQS:
            return CERT_REQS[key]
        if key.isdigit():
            value = int(key)
    if isinstance(value, int) and not isinstance(value, bool) and int(value) in (0, 1, 2):
        return int(value)  # ssl.VerifyMode is an IntEnum with the same numbers
    raise TLSConfigError(f"ssl_cert_reqs must be none, optional or required (0, 1, 2), not {value!r}")


def parse_min_version(value) -> str:
    """"1.2"/"1.3" (also "TLSv1.2", 1.3, ssl.TLSVersion.TLSv1_3) -> "1.2" or "1.3"."""
    if isinstance(value, ssl.TLSVersion):
        value = {ssl.TLSVersion.TLSv1_2: "1.2", ssl.TLSVersion.TLSv1_3: "1.3"}.get(value, value.name)
    text = str(value).strip().lower().replace("_", ".")
    for prefix in ("tlsv", "tls"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text in MIN_VERSIONS:
        return text
    raise TLSConfigError(f"ssl_min_version must be 1.2 or 1.3, not {value!r}")


def _used_options(cfg) -> list[str]:
    """The TLS options given (other than their defaults)."""
    used = [n for n in ("ssl_certfile", "ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers")
            if getattr(cfg, n)]
    if cfg.ssl_cert_reqs not in (0, "none", None):
        used.append("ssl_cert_reqs")
    return used


def validate(cfg) -> None:
    """Normalise and check the TLS settings of cfg; with TLS on, load the files once and make the
    session ticket keys (so call this in the master process, before forking). TLSConfigError
    (a ValueError) with a one-line reason."""
    used = _used_options(cfg)
    if used and not has_tls():
        raise TLSConfigError(f"{NO_TLS_BUILD}: cannot use {', '.join(used)}")
    cfg.ssl_cert_reqs = parse_cert_reqs(cfg.ssl_cert_reqs)
    cfg.ssl_min_version = parse_min_version(cfg.ssl_min_version)
    try:
        cfg.timeout_tls_handshake = float(cfg.timeout_tls_handshake)
    except (TypeError, ValueError):
        raise TLSConfigError(f"timeout_tls_handshake must be a number of seconds, not "
                             f"{cfg.timeout_tls_handshake!r}") from None
    if not cfg.timeout_tls_handshake > 0:
        raise TLSConfigError("timeout_tls_handshake must be positive")
    if not enabled(cfg):
        others = [n for n in used if n != "ssl_certfile"]
        if others:
            raise TLSConfigError(f"{', '.join(others)} given without ssl_certfile (TLS is on when "
                                 f"ssl_certfile is set)")
        cfg.ssl_ticket_keys = None
        return
    for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_ciphers"):
        v = getattr(cfg, name)
        if v is not None and not isinstance(v, (str, os.PathLike)):
            raise TLSConfigError(f"{name} must be a string, not {type(v).__name__}")
    cfg.ssl_certfile = os.fspath(cfg.ssl_certfile)
    cfg.ssl_keyfile = os.fspath(cfg.ssl_keyfile) if cfg.ssl_keyfile else None
    cfg.ssl_ca_certs = os.fspath(cfg.ssl_ca_certs) if cfg.ssl_ca_certs else None
    if isinstance(cfg.ssl_keyfile_password, (bytes, bytearray)):
        cfg.ssl_keyfile_password = bytes(cfg.ssl_keyfile_password).decode("utf-8")
    if cfg.ssl_keyfile_password is not None and not isinstance(cfg.ssl_keyfile_password, str):
        raise TLSConfigError("ssl_keyfile_password must be a string")
    if cfg.ssl_cert_reqs and not cfg.ssl_ca_certs:
        raise TLSConfigError("ssl_cert_reqs optional/required needs ssl_ca_certs (the CAs client "
                             "certificates are verified against)")
    load_context(cfg)
    if cfg.ssl_ticket_keys is None:
        cfg.ssl_ticket_keys = os.urandom(TICKET_KEYS_LEN)
    elif not isinstance(cfg.ssl_ticket_keys, (bytes, bytearray)) or len(cfg.ssl_ticket_keys) != TICKET_KEYS_LEN:
        raise TLSConfigError(f"ssl_ticket_keys must be {TICKET_KEYS_LEN} bytes")
    else:
        cfg.ssl_ticket_keys = bytes(cfg.ssl_ticket_keys)


def _check_readable(option: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise TLSConfigError(f"{option} {path}: {e.strerror or e}") from None


def _reason(e: ssl.SSLError) -> str:
    r = getattr(e, "reason", None)
    lib = getattr(e, "library", None)
    if r:
        return f"{lib}: {r}" if lib else str(r)
    text = str(e.args[1] if len(e.args) > 1 else e)
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text).strip("[] ") or "OpenSSL error"


def load_context(cfg) -> ssl.SSLContext:
    """An ssl.SSLContext with cfg's certificate, key, CAs and ciphers loaded, as the engine will
    load them; TLSConfigError naming the file that is wrong."""
    certfile = cfg.ssl_certfile
    keyfile = cfg.ssl_keyfile or certfile
    _check_readable("ssl_certfile", certfile)
    if keyfile != certfile:
        _check_readable("ssl_keyfile", keyfile)
    # The certificate alone first, so that a bad one is not reported as a bad key.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=certfile)
    except (ssl.SSLError, ValueError) as e:
        raise TLSConfigError(f"ssl_certfile {certfile}: no PEM certificate could be read "
                             f"({_reason(e) if isinstance(e, ssl.SSLError) else e})") from None

    asked = []
    password = cfg.ssl_keyfile_password

    def get_password():
        # called by OpenSSL only for an encrypted key; never let it prompt on the terminal
        asked.append(True)
        return password if password is not None else ""

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(certfile, cfg.ssl_keyfile or None, get_password)
    except ssl.SSLError as e:
        why = _reason(e)
        low = why.lower()
        key_opt = "ssl_keyfile" if cfg.ssl_keyfile else "ssl_certfile"
        if "mismatch" in low:
            msg = f"{key_opt} {keyfile} does not match the certificate in ssl_certfile {certfile}"
        elif asked and password is None:
            msg = f"{key_opt} {keyfile} is encrypted: give ssl_keyfile_password"
        elif asked:
            msg = f"{key_opt} {keyfile}: wrong ssl_keyfile_password (the key cannot be decrypted)"
        elif "no start line" in low or "pem" in low:
            msg = f"{key_opt} {keyfile}: no PEM private key could be read"
        else:
            msg = f"{key_opt} {keyfile}: cannot load the certificate and key ({why})"
        raise TLSConfigError(msg) from None
    if cfg.ssl_ca_certs:
        _check_readable("ssl_ca_certs", cfg.ssl_ca_certs)
        try:
            ctx.load_verify_locations(cafile=cfg.ssl_ca_certs)
        except (ssl.SSLError, ValueError) as e:
            raise TLSConfigError(f"ssl_ca_certs {cfg.ssl_ca_certs}: no PEM certificate could be read "
                                 f"({_reason(e) if isinstance(e, ssl.SSLError) else e})") from None
    if cfg.ssl_ciphers:
        try:
            ctx.set_ciphers(cfg.ssl_ciphers)
        except ssl.SSLError:
            raise TLSConfigError(f"ssl_ciphers {cfg.ssl_ciphers!r} selects no cipher OpenSSL knows") from None
    return ctx


def engine_options(cfg) -> dict:
    """The TLS part of Config.engine_options(): empty when TLS is off."""
    if not enabled(cfg):
        return {}
    opts = {k: getattr(cfg, k) for k in ENGINE_KEYS}
    opts["ssl_keyfile"] = cfg.ssl_keyfile or cfg.ssl_certfile
    return opts


def scheme(cfg) -> str:
    """The URL scheme requests are served under: https with TLS on."""
    return "https" if enabled(cfg) else "http"


def add_cli_options(parser) -> None:
    """The --ssl-* options of the command line (their dests are the Config field names)."""
    from .config import Config

    d = Config()
    g = parser.add_argument_group("TLS (HTTPS; on when --ssl-certfile is given)")
    g.add_argument("--ssl-certfile", default=None, metavar="PATH",
                   help="PEM certificate, followed by its chain")
    g.add_argument("--ssl-keyfile", default=None, metavar="PATH",
                   help="PEM private key (default: the certfile holds it)")
    g.add_argument("--ssl-keyfile-password", default=None, metavar="PASSWORD",
                   help="password of an encrypted key (LUATH_SSL_KEYFILE_PASSWORD keeps it out of ps)")
    g.add_argument("--ssl-ca-certs", default=None, metavar="PATH",
                   help="PEM bundle of the CAs client certificates are verified against")
    g.add_argument("--ssl-cert-reqs", default="none", choices=tuple(CERT_REQS),
                   help="client certificates: none (not asked for), optional (verified when sent), required")
    g.add_argument("--ssl-ciphers", default=None, metavar="LIST",
                   help="OpenSSL cipher list for TLS 1.2 (default: OpenSSL's)")
    g.add_argument("--ssl-min-version", default=d.ssl_min_version, choices=MIN_VERSIONS,
                   help="oldest TLS version accepted")
    g.add_argument("--timeout-tls-handshake", type=float, default=d.timeout_tls_handshake, metavar="SECONDS",
                   help="time a new connection has to complete its TLS handshake")
