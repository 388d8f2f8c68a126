"""Programmatically generated request corpus for differential testing of luath's HTTP/1.1 parser.

Each case: name, group (disagreement class key), kind ("valid" | "malformed" | "smuggling"), the raw bytes,
the verdict RFC 9112/9110 requires of a server ("accept" | "reject"), and the clause that decides it.
"smuggling" cases are messages whose framing is ambiguous or obfuscated (CL.TE, TE.CL, TE.TE, bad chunk
sizes, ...): a server must reject every one of them, never pick a framing.
"""
from __future__ import annotations

import dataclasses
import itertools


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    group: str
    kind: str
    data: bytes
    expect: str  # "accept" | "reject"
    rfc: str


CASES: list[Case] = []
_seen: set[bytes] = set()


def add(name, group, kind, data, expect, rfc):
    if data in _seen:
        return
    _seen.add(data)
    CASES.append(Case(name, group, kind, data, expect, rfc))


H = b"Host: example.com\r\n"
SMUGGLE = b"GET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n"  # the request a smuggler hides in the body

# ---------------------------------------------------------------------------------------------------------
# Valid requests of many shapes
METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"]
TARGETS = [b"/", b"/index.html", b"/a/b/c?x=1&y=2", b"/%7Euser/%20sp", b"/a?b?c", b"/?", b"/p;param",
           b"/a/../b", b"/!$&'()*+,;=:@-._~"]
for m, t in itertools.product(METHODS, TARGETS):
    add(f"valid-{m.decode()}-{t!r}", "valid-basic", "valid", m + b" " + t + b" HTTP/1.1\r\n" + H + b"\r\n",
        "accept", "RFC 9112 3 (request-line), 3.2.1 (origin-form)")
for v in (b"1.0", b"1.1"):
    for extra in (b"", b"Connection: keep-alive\r\n", b"Connection: close\r\n"):
        add(f"valid-version-{v}-{extra!r}", "valid-basic", "valid",
            b"GET / HTTP/" + v + b"\r\n" + (H if v == b"1.1" else b"") + extra + b"\r\n", "accept",
            "RFC 9112 2.3 (HTTP-version), 9.3 (persistence)")
for t in (b"http://example.com/x", b"http://example.com", b"https://example.com:8443/p?q=1",
          b"http://example.com?q", b"HTTP://EXAMPLE.COM/", b"http://[::1]:8080/", b"http://1.2.3.4/"):
    add(f"valid-absolute-{t!r}", "valid-absolute-form", "valid", b"GET " + t + b" HTTP/1.1\r\n" + H + b"\r\n",
        "accept", "RFC 9112 3.2.2 (absolute-form)")
add("valid-connect", "valid-connect", "valid",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "accept",
    "RFC 9112 3.2.3 (authority-form)")
add("valid-options-star", "valid-basic", "valid", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", "accept",
    "RFC 9112 3.2.4 (asterisk-form)")
for m in (b"PROPFIND", b"MKCOL", b"SEARCH", b"PURGE", b"M-SEARCH", b"FOO", b"get", b"X!#$%&'*+-.^_`|~"):
    add(f"valid-method-{m!r}", "valid-extension-method", "valid", m + b" / HTTP/1.1\r\n" + H + b"\r\n",
        "accept", "RFC 9110 9.1 (method = token; extensible)")
for i, lead in enumerate((b"\r\n", b"\r\n\r\n")):
    add(f"valid-leading-crlf-{i}", "valid-leading-empty-lines", "valid", lead + b"GET / HTTP/1.1\r\n" + H + b"\r\n",
        "accept", "RFC 9112 2.2 (SHOULD ignore at least one empty line before the request-line)")
HEADER_SHAPES = [
    b"X: y\r\n", b"X:y\r\n", b"X:    y    \r\n", b"X:\ty\t\r\n", b"X:\r\n", b"X: \r\n", b"X: a b  c\r\n",
    b"X: \x80\xff\xc3\xa9\r\n", b"X-!#$%&'*+-.^_`|~09: v\r\n", b"x: 1\r\nX: 2\r\nx: 3\r\n",
    b"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n", b"Cookie: a=b; c=d; e=\"f\"\r\n",
    b"X: " + b"v" * 2000 + b"\r\n", b"".join(b"H%d: %d\r\n" % (i, i) for i in range(50)),
    b"X: \"quoted, with comma\"\r\n", b"X: a\"b\r\n", b"X: ~!@#$%^&*()_+{}|:<>?`-=[]\\;',./\r\n",
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n", b"Expect: 100-continue\r\n", b"TE: trailers\r\n",
    b"Content-Length: 0\r\n", b"Transfer_Encoding: chunked\r\n", b"Transfer-Encodingx: chunked\r\n",
    b"Content-Lengthx: 5\r\n",
]
for i, hs in enumerate(HEADER_SHAPES):
    add(f"valid-header-{i}", "valid-header-shapes", "valid", b"GET / HTTP/1.1\r\n" + H + hs + b"\r\n", "accept",
        "RFC 9112 5 (field-line = field-name \":\" OWS field-value OWS), RFC 9110 5.5")
add("valid-host-empty", "valid-host", "valid", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "accept",
    "RFC 9110 7.2 (empty Host when the target URI has no authority)")
for hv in (b"example.com:8080", b"[::1]", b"1.2.3.4:1", b"EXAMPLE.com", b"xn--bcher-kva.example"):
    add(f"valid-host-{hv!r}", "valid-host", "valid", b"GET / HTTP/1.1\r\nHost: " + hv + b"\r\n\r\n", "accept",
        "RFC 9110 7.2 (Host = uri-host [ \":\" port ])")
add("valid-http10-no-host", "valid-basic", "valid", b"GET / HTTP/1.0\r\n\r\n", "accept",
    "RFC 9112 3.2 (Host required in HTTP/1.1 only)")

# Bodies
for n in (0, 1, 5, 100):
    add(f"valid-cl-{n}", "valid-content-length", "valid",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % n + b"x" * n, "accept", "RFC 9112 6.2")
for cl in (b"005", b" 5", b"5 ", b"\t5\t"):
    add(f"valid-cl-form-{cl!r}", "valid-content-length", "valid",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + cl + b"\r\n\r\nhello", "accept",
        "RFC 9110 8.6 (Content-Length = 1*DIGIT; OWS is not part of the value)")
add("valid-cl-duplicate-same", "cl-duplicate-identical", "valid",
    b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "accept",
    "RFC 9110 8.6 (identical repeated values MAY be accepted as one)")
CHUNK_BODIES = [
    b"5\r\nhello\r\n0\r\n\r\n", b"0\r\n\r\n", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\n", b"a\r\n0123456789\r\n0\r\n\r\n", b"0005\r\nhello\r\n000\r\n\r\n",
    b"5;ext\r\nhello\r\n0\r\n\r\n", b"5;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n", b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
    b"5;a=\"\\\"q\"\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n",
    b"5\r\nhello\r\n0\r\nA: 1\r\nB: 2\r\n\r\n", b"1\r\n\x00\r\n0\r\n\r\n",
    b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefghij") + b"0\r\n\r\n",
]
for i, body in enumerate(CHUNK_BODIES):
    for te in (b"chunked", b"Chunked", b"CHUNKED", b"\tchunked ", b"chunked\t"):
        add(f"valid-chunked-{i}-{te!r}", "valid-chunked", "valid",
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\n\r\n" + body, "accept",
            "RFC 9112 7.1 (chunked), RFC 9110 10.1.4 (coding names are case-insensitive), 5.6.3 OWS")
add("valid-te-list-empty-elements", "valid-chunked", "valid",
    b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: ,chunked,\r\n\r\n0\r\n\r\n", "accept",
    "RFC 9110 5.6.1 (recipients MUST accept and ignore empty list elements)")

# ---------------------------------------------------------------------------------------------------------
# Malformed requests (not about framing): the RFC says reject (400/414/431/505...)
RL = [
    (b"GET  / HTTP/1.1", "RFC 9112 3 (exactly one SP between components)"),
    (b"GET /  HTTP/1.1", "RFC 9112 3"),
    (b"GET / HTTP/1.1 ", "RFC 9112 3"),
    (b" GET / HTTP/1.1", "RFC 9112 3"),
    (b"GET\t/ HTTP/1.1", "RFC 9112 3 (SP only; lenient whitespace parsing is a MAY that we do not take)"),
    (b"GET /\tHTTP/1.1", "RFC 9112 3"),
    (b"GET / HTTP/1.1\x00", "RFC 9112 2.3"),
    (b"GET /", "RFC 9112 3 (HTTP/0.9 request-line is not HTTP/1.1)"),
    (b"GET / HTTP/1", "RFC 9112 2.3"),
    (b"GET / HTTP/1.", "RFC 9112 2.3"),
    (b"GET / HTTP/1.1.1", "RFC 9112 2.3"),
    (b"GET / HTTP/11.1", "RFC 9112 2.3 (HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT)"),
    (b"GET / HTTP/1.10", "RFC 9112 2.3"),
    (b"GET / http/1.1", "RFC 9112 2.3 (HTTP-name is case-sensitive)"),
    (b"GET / HTTP/1,1", "RFC 9112 2.3"),
    (b"GET / HTTPS/1.1", "RFC 9112 2.3"),
    (b"GET / HTTP/2.0", "RFC 9110 15.6.6 (505 for an unsupported major version)"),
    (b"GET / HTTP/1.2", "RFC 9110 15.6.6 / 2.5 (we only speak 1.0 and 1.1: 505)"),
    (b"GET / HTTP/0.9", "RFC 9110 15.6.6"),
    (b"GET / HTTP/3.0", "RFC 9110 15.6.6"),
    (b"G(ET / HTTP/1.1", "RFC 9110 9.1 (method = token)"),
    (b"GE\x7fT / HTTP/1.1", "RFC 9110 9.1"),
    (b"G\xc3\xa9T / HTTP/1.1", "RFC 9110 9.1"),
    (b"/ HTTP/1.1", "RFC 9112 3"),
    (b"GET / a HTTP/1.1", "RFC 9112 3 (SP in target)"),
    (b"GET /a#frag HTTP/1.1", "RFC 9112 3.2.1 (origin-form has no fragment)"),
    (b"GET /\x00 HTTP/1.1", "RFC 9112 3.2 / RFC 3986 (CTL in target)"),
    (b"GET /\x7f HTTP/1.1", "RFC 9112 3.2"),
    (b"GET /\x01 HTTP/1.1", "RFC 9112 3.2"),
    (b"GET a HTTP/1.1", "RFC 9112 3.2 (no valid request-target form)"),
    (b"GET * HTTP/1.1", "RFC 9112 3.2.4 (asterisk-form only for OPTIONS)"),
    (b"CONNECT / HTTP/1.1", "RFC 9112 3.2.3 (CONNECT takes authority-form)"),
    (b"CONNECT example.com HTTP/1.1", "RFC 9110 9.3.6 (authority-form needs a port)"),
    (b"GET http://user@example.com/ HTTP/1.1", "RFC 9110 4.2.4 (userinfo MUST be treated as an error)"),
    (b"GET http:///x HTTP/1.1", "RFC 9110 4.2.1 (http URI with empty host is invalid)"),
    (b"GET ftp://example.com/ HTTP/1.1", "RFC 9112 3.2.2 (we serve http(s) only)"),
]
for i, (rl, rfc) in enumerate(RL):
    add(f"bad-request-line-{i}", "bad-request-line", "malformed", rl + b"\r\n" + H + b"\r\n", "reject", rfc)
BADH = [
    (b"X y: z", "bad-header-name", "RFC 9110 5.1 (field-name = token)"),
    (b": novalue", "bad-header-name", "RFC 9110 5.1"),
    (b"X\x00: y", "bad-header-name", "RFC 9110 5.1"),
    (b"X\x7f: y", "bad-header-name", "RFC 9110 5.1"),
    (b"X\xc3\xa9: y", "bad-header-name", "RFC 9110 5.1"),
    (b"X(y): z", "bad-header-name", "RFC 9110 5.1"),
    (b"X\"y: z", "bad-header-name", "RFC 9110 5.1"),
    (b"X[y]: z", "bad-header-name", "RFC 9110 5.1"),
    (b"NoColon", "bad-header-name", "RFC 9112 5 (field-line needs a colon)"),
    (b"X : y", "space-before-colon", "RFC 9112 5.1 (MUST reject whitespace between name and colon)"),
    (b"X\t: y", "space-before-colon", "RFC 9112 5.1"),
    (b"X: a\x00b", "ctl-in-value", "RFC 9110 5.5 (NUL MUST be rejected or replaced with SP)"),
    (b"X: a\x01b", "ctl-in-value", "RFC 9110 5.5 (field-value has no CTLs)"),
    (b"X: a\x0bb", "ctl-in-value", "RFC 9110 5.5"),
    (b"X: a\x0cb", "ctl-in-value", "RFC 9110 5.5"),
    (b"X: a\x1bb", "ctl-in-value", "RFC 9110 5.5"),
    (b"X: a\x7fb", "ctl-in-value", "RFC 9110 5.5"),
    (b"X: a\rb", "bare-cr", "RFC 9112 2.2 (bare CR MUST be treated as invalid or replaced with SP)"),
    (b"X: a\r", "bare-cr", "RFC 9112 2.2"),
]
for i, (line, group, rfc) in enumerate(BADH):
    add(f"bad-header-{i}", group, "malformed", b"GET / HTTP/1.1\r\n" + H + line + b"\r\n\r\n", "reject", rfc)
add("obs-fold", "obs-fold", "malformed", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", "reject",
    "RFC 9112 5.2 (a server MUST reject obs-fold with 400 or replace it)")
add("obs-fold-tab", "obs-fold", "malformed", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", "reject",
    "RFC 9112 5.2")
add("ws-before-first-header", "obs-fold", "malformed", b"GET / HTTP/1.1\r\n " + H + b"\r\n", "reject",
    "RFC 9112 2.2 (whitespace between start-line and first field: reject or ignore the line)")
add("bare-lf-request-line", "bare-lf", "malformed", b"GET / HTTP/1.1\n" + H + b"\r\n", "reject",
    "RFC 9112 2.2 (a recipient MAY accept a bare LF; luath does not)")
add("bare-lf-header", "bare-lf", "malformed", b"GET / HTTP/1.1\r\nHost: example.com\n\r\n", "reject",
    "RFC 9112 2.2 (MAY, not taken)")
add("bare-lf-end", "bare-lf", "malformed", b"GET / HTTP/1.1\r\n" + H + b"\n", "reject", "RFC 9112 2.2 (MAY, not taken)")
add("bare-lf-all", "bare-lf", "malformed", b"GET / HTTP/1.1\nHost: example.com\n\n", "reject",
    "RFC 9112 2.2 (MAY, not taken)")
add("missing-host", "host", "malformed", b"GET / HTTP/1.1\r\n\r\n", "reject",
    "RFC 9112 3.2 (MUST respond 400 when Host is missing)")
add("duplicate-host", "host", "malformed", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "reject",
    "RFC 9112 3.2 (MUST respond 400 to more than one Host)")
add("duplicate-host-same", "host", "malformed", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "reject",
    "RFC 9112 3.2")
for hv in (b"a b", b"a/b", b"a@b", b"a:b:c", b"[::1", b"a:port", b"a?b", b"a#b"):
    add(f"bad-host-{hv!r}", "host-invalid-value", "malformed", b"GET / HTTP/1.1\r\nHost: " + hv + b"\r\n\r\n",
        "reject", "RFC 9112 3.2 (MUST respond 400 to a Host field with an invalid value)")
add("too-many-leading-crlf", "leading-empty-lines", "malformed", b"\r\n" * 20 + b"GET / HTTP/1.1\r\n" + H + b"\r\n",
    "reject", "RFC 9112 2.2 (only 'at least one' empty line must be ignored; luath caps at 8)")
add("long-target", "limits", "malformed", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", "reject",
    "RFC 9112 3 (SHOULD 414 when the request-target is longer than the server accepts)")
add("long-header", "limits", "malformed", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 9000 + b"\r\n\r\n",
    "reject", "RFC 6585 5 (431)")
add("many-headers", "limits", "malformed",
    b"GET / HTTP/1.1\r\n" + H + b"".join(b"X%d: y\r\n" % i for i in range(120)) + b"\r\n", "reject",
    "RFC 6585 5 (431)")

# ---------------------------------------------------------------------------------------------------------
# Request smuggling: every one of these must be rejected.
TE_OBFUSCATIONS = [  # (header line(s), label); none of them is a clean, single "Transfer-Encoding: chunked"
    (b"Transfer-Encoding : chunked", "space-before-colon"),
    (b"Transfer-Encoding\t: chunked", "tab-before-colon"),
    (b" Transfer-Encoding: chunked", "leading-space"),
    (b"X: y\r\n Transfer-Encoding: chunked", "obs-fold"),
    (b"X: y\r\n\tTransfer-Encoding: chunked", "obs-fold-tab"),
    (b"Transfer-Encoding: chunked\r\n x", "folded-value"),
    (b"Transfer-Encoding: \x0bchunked", "vtab"),
    (b"Transfer-Encoding: chunked\x0b", "vtab-trailing"),
    (b"Transfer-Encoding: \x0cchunked", "formfeed"),
    (b"Transfer-Encoding: chunked\x0c", "formfeed-trailing"),
    (b"Transfer-Encoding: chunked\x00", "nul"),
    (b"Transfer-Encoding: \x00chunked", "nul-leading"),
    (b"Transfer-Encoding:\x0bchunked", "vtab-no-space"),
    (b"Transfer-Encoding: chunked\r", "bare-cr"),
    (b"Transfer-Encoding: ch\runked", "bare-cr-inside"),
    (b"Transfer-Encoding: xchunked", "xchunked"),
    (b"Transfer-Encoding: chunkedx", "chunkedx"),
    (b"Transfer-Encoding: chunk", "truncated"),
    (b"Transfer-Encoding: \"chunked\"", "quoted"),
    (b"Transfer-Encoding: chunked;q=1", "parameter"),
    (b"Transfer-Encoding: chu nked", "inner-space"),
    (b"Transfer-Encoding: chunked, chunked", "chunked-twice-comma"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "chunked-twice-lines"),
    (b"Transfer-Encoding: chunked, identity", "chunked-then-identity"),
    (b"Transfer-Encoding: identity, chunked", "identity-then-chunked"),
    (b"Transfer-Encoding: gzip, chunked", "gzip-then-chunked"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity", "te-te-identity"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x", "te-te-x"),
    (b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked", "te-te-identity-first"),
    (b"Transfer-Encoding: chunked\r\nTransfer-encoding: cow", "te-te-case"),
    (b"Transfer-Encoding: chunked,", "trailing-comma-identity") if False else
    (b"Transfer-Encoding: chunked, x", "chunked-then-x"),
    (b"Transfer-Encoding: identity", "identity"),
    (b"Transfer-Encoding: x", "unknown"),
    (b"Transfer-Encoding:", "empty"),
    (b"Transfer-Encoding: ,", "empty-list"),
    (b"Transfer-Encoding\x00: chunked", "nul-in-name"),
    (b"Transfer-Encoding\x0b: chunked", "vtab-in-name"),
    (b"Transfer\x00Encoding: chunked", "nul-inside-name"),
    (b"Transfer-Encoding: chunked\nX: y", "bare-lf-in-value"),
    (b"Transfer-Encoding\n: chunked", "bare-lf-in-name"),
    (b"Transfer-Encoding: \xffchunked", "obs-text"),
]
BODY = b"5\r\nhello\r\n0\r\n\r\n"
for hdr, label in TE_OBFUSCATIONS:
    pre = b"POST / HTTP/1.1\r\n" + H
    add(f"smuggle-TE.TE-{label}", f"te-obfuscation", "smuggling",
        pre + b"Transfer-Encoding: chunked\r\n" + hdr + b"\r\n\r\n" + BODY + SMUGGLE, "reject",
        "RFC 9112 6.1, 6.3(4): a TE whose final coding is not chunked, or an unparseable one, MUST be "
        "answered 400 and the connection closed; RFC 9112 5.1/5.2/2.2, RFC 9110 5.5 for the syntax")
    add(f"smuggle-TE.x-{label}", "te-obfuscation", "smuggling",
        pre + hdr + b"\r\n\r\n" + BODY + SMUGGLE, "reject",
        "RFC 9112 6.1, 6.3(4); RFC 9112 5.1/5.2/2.2, RFC 9110 5.5 for the syntax")
    add(f"smuggle-CL.TE-{label}", "cl-te", "smuggling",
        pre + b"Content-Length: 6\r\n" + hdr + b"\r\n\r\n" + BODY + SMUGGLE, "reject",
        "RFC 9112 6.1 (CL and TE together: MAY reject; luath always does), 6.3(3)")
    add(f"smuggle-TE.CL-{label}", "cl-te", "smuggling",
        pre + hdr + b"\r\nContent-Length: 4\r\n\r\n" + BODY + SMUGGLE, "reject",
        "RFC 9112 6.1, 6.3(3)")
for te in (b"chunked", b"CHUNKED", b"\tchunked", b"chunked ", b"Chunked"):
    add(f"smuggle-CL.TE-clean-{te!r}", "cl-te", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + BODY + SMUGGLE,
        "reject", "RFC 9112 6.1 (a message with both is a smuggling attempt: MAY reject; luath does), 6.3(3)")
    add(f"smuggle-TE.CL-clean-{te!r}", "cl-te", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\nContent-Length: 4\r\n\r\n" + BODY + SMUGGLE,
        "reject", "RFC 9112 6.1, 6.3(3)")
    add(f"smuggle-TE-http10-{te!r}", "te-http10", "smuggling",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + BODY + SMUGGLE, "reject",
        "RFC 9112 6.1 (TE in an HTTP/1.0 message: MUST treat the framing as faulty)")
    add(f"smuggle-TE-http10-cl-{te!r}", "te-http10", "smuggling",
        b"POST / HTTP/1.0\r\nContent-Length: 6\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + BODY + SMUGGLE,
        "reject", "RFC 9112 6.1")
CL_BAD = [
    (b"-1", "negative"), (b"-0", "negative-zero"), (b"+5", "plus"), (b"0x5", "hex"), (b"5.0", "decimal"),
    (b"5 5", "two-numbers"), (b"5,5", "list-same"), (b"5, 5", "list-same-space"), (b"5, 6", "list-differ"),
    (b"5\x0b", "vtab"), (b"\x0c5", "formfeed"), (b"5\x00", "nul"), (b"", "empty"), (b"abc", "alpha"),
    (b"1e3", "exponent"), (b"99999999999999999999", "overflow-u64"), (b"18446744073709551616", "2^64"),
    (b"18446744073709551621", "2^64+5"), (b"9223372036854775808", "2^63"), (b"\"5\"", "quoted"),
    (b"5;x", "param"), (b"\xff5", "obs-text"),
]
for v, label in CL_BAD:
    add(f"smuggle-CL-{label}", "cl-invalid", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + v + b"\r\n\r\nhello" + SMUGGLE, "reject",
        "RFC 9112 6.3(5): an invalid Content-Length MUST be answered 400; RFC 9110 8.6 (1*DIGIT)")
for a, b in ((b"5", b"6"), (b"0", b"5"), (b"5", b"05x")):
    add(f"smuggle-CL.CL-{a!r}-{b!r}", "cl-cl", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + a + b"\r\nContent-Length: " + b + b"\r\n\r\nhello!" + SMUGGLE,
        "reject", "RFC 9112 6.3(5) (differing Content-Length values: 400), RFC 9110 8.6")
for name, label in ((b"Content-Length : 5", "space-before-colon"), (b" Content-Length: 5", "leading-space"),
                    (b"Content-Length\t: 5", "tab-before-colon"), (b"Content-Length\x00: 5", "nul-name"),
                    (b"Content-Length: 5\r", "bare-cr"), (b"X: y\r\n Content-Length: 5", "obs-fold")):
    add(f"smuggle-CL-name-{label}", "cl-obfuscation", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + name + b"\r\n\r\nhello" + SMUGGLE, "reject",
        "RFC 9112 5.1 / 5.2 / 2.2")
CHUNK_BAD = [
    (b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "size-overflow-18"),
    (b"10000000000000000\r\nhello\r\n0\r\n\r\n", "size-overflow-2^64"),
    (b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n", "size-overflow-17"),
    (b"-5\r\nhello\r\n0\r\n\r\n", "size-negative"),
    (b"+5\r\nhello\r\n0\r\n\r\n", "size-plus"),
    (b"0x5\r\nhello\r\n0\r\n\r\n", "size-0x"),
    (b" 5\r\nhello\r\n0\r\n\r\n", "size-leading-space"),
    (b"5 \r\nhello\r\n0\r\n\r\n", "size-trailing-space"),
    (b"5\t\r\nhello\r\n0\r\n\r\n", "size-trailing-tab"),
    (b"\r\n5\r\nhello\r\n0\r\n\r\n", "size-empty"),
    (b"g\r\nhello\r\n0\r\n\r\n", "size-non-hex"),
    (b"5\x00\r\nhello\r\n0\r\n\r\n", "size-nul"),
    (b"5\x0b\r\nhello\r\n0\r\n\r\n", "size-vtab"),
    (b"5\nhello\r\n0\r\n\r\n", "size-bare-lf"),
    (b"5\rhello\r\n0\r\n\r\n", "size-bare-cr"),
    (b"5\r\nhello\n0\r\n\r\n", "data-bare-lf"),
    (b"5\r\nhello\r0\r\n\r\n", "data-bare-cr"),
    (b"5\r\nhelloXX0\r\n\r\n", "data-no-crlf"),
    (b"3\r\nhello\r\n0\r\n\r\n", "data-longer-than-size"),
    (b"5\r\nhello\r\n0\n\r\n", "last-bare-lf"),
    (b"5\r\nhello\r\n0\r\n\n", "end-bare-lf"),
    (b"5\r\nhello\r\n0\r\nX: y\n\r\n", "trailer-bare-lf"),
    (b"5\r\nhello\r\n0\r\n X: y\r\n\r\n", "trailer-obs-fold"),
    (b"5\r\nhello\r\n0\r\nX : y\r\n\r\n", "trailer-space-before-colon"),
    (b"5\r\nhello\r\n0\r\nX: a\x00b\r\n\r\n", "trailer-nul"),
    (b"5;\x00\r\nhello\r\n0\r\n\r\n", "ext-nul"),
    (b"5;a\x0bb\r\nhello\r\n0\r\n\r\n", "ext-vtab"),
    (b"5;a=\"b\r\nhello\r\n0\r\n\r\n", "ext-unterminated-quote"),
    (b"5;\r\nhello\r\n0\r\n\r\n", "ext-empty-name"),
    (b"5;a=\r\nhello\r\n0\r\n\r\n", "ext-empty-value"),
    (b"5;a=b c\r\nhello\r\n0\r\n\r\n", "ext-space-in-value"),
    (b"5\r\nhello\r\n0\r\n\rX", "end-bare-cr"),
    (b"0\r\nhello\r\n\r\n", "last-chunk-then-garbage-trailer"),
    (b"5\r\nhello\r\n-0\r\n\r\n", "last-chunk-negative"),
]
for body, label in CHUNK_BAD:
    add(f"smuggle-chunk-{label}", "chunk-framing", "smuggling",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body + SMUGGLE, "reject",
        "RFC 9112 7.1 (chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; chunk-size = 1*HEXDIG), "
        "7.1.1 (chunk-ext BWS), 7.1.2 (trailer-section), 2.2 (CRLF)")
for hv, label in ((b"a\r\nHost: b", "double"), (b"a, b", "list")):
    add(f"smuggle-host-{label}", "host", "smuggling", b"GET / HTTP/1.1\r\nHost: " + hv + b"\r\n\r\n", "reject",
        "RFC 9112 3.2 (more than one Host, or an invalid Host value: 400)")
# Request-line based desync: bare LF/CR splitting a line into two requests, NUL in the request line.
for rl, label in ((b"GET / HTTP/1.1\rHost: a\r\n", "bare-cr-request-line"),
                  (b"GET /\x00 HTTP/1.1\r\n" + H, "nul-target"),
                  (b"GET / HTTP/1.1\nGET /x HTTP/1.1\r\n" + H, "bare-lf-two-lines")):
    add(f"smuggle-rl-{label}", "request-line-desync", "smuggling",
        rl + b"Content-Length: 5\r\n\r\nhello" + SMUGGLE, "reject", "RFC 9112 2.2, 3")


def by_kind(kind: str) -> list[Case]:
    return [c for c in CASES if c.kind == kind]


if __name__ == "__main__":
    from collections import Counter
    print(len(CASES), Counter(c.kind for c in CASES))
