#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/{request,chunked,proxy}/). Re-run after editing; files are committed."""
import hashlib
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    b"GET /a?b=c&d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET http://user@example.com/x HTTP/1.1\r\nHost: e\r\n\r\n",
    b"GET https://example.com:8443?q HTTP/1.1\r\nHost: e\r\n\r\n",
    b"GET http://[::1]:80/p HTTP/1.1\r\nHost: [::1]\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTE: trailers\r\n\r\n",
    # smuggling and framing conflicts
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / http/1.1\r\nHost: a\r\n\r\n",
    b"G\xc3T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(12)) + b"\r\n",
    # regressions found by the differential tests
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nCookie: " + b"k=v; " * 40 + b"\r\n\r\n",
]

CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"0\r\n\r\n",
    b"0\r\nX-Trailer: v\r\nY: w\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
    b"5;ext\r\nhello\r\n0\r\n\r\n",
    b"5;a=b;c=\"d\\\"e\"\r\nhello\r\n0;x\r\n\r\n",
    b"5 ;a = b\r\nhello\r\n0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"10000000000000000\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"5\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\n",
    b"5\r\nhello\r\n0\r\n X: y\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX : y\r\n\r\n",
    b"\r\n5\r\nhello\r\n0\r\n\r\n",
    b"5\x00\r\nhello\r\n0\r\n\r\n",
    b"005\r\nhello\r\n00\r\n\r\n",
    b"1\r\na\r\n" * 30 + b"0\r\n\r\n",
    b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n",
]


SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(vc, fam, body, length=None):
    return SIG + bytes([vc, fam]) + (len(body) if length is None else length).to_bytes(2, "big") + body


def tlv(t, v):
    return bytes([t]) + len(v).to_bytes(2, "big") + v


INET = bytes([203, 0, 113, 9, 10, 0, 0, 1]) + (40000).to_bytes(2, "big") + (8080).to_bytes(2, "big")
INET6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + (1).to_bytes(2, "big") + (2).to_bytes(2, "big")
HTTP = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"

PROXY = [
    b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n" + HTTP,
    b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 1 80\r\n" + HTTP,
    b"PROXY TCP6 ::ffff:10.0.0.1 fe80::a 1234 5678\r\n",
    b"PROXY UNKNOWN\r\n" + HTTP,
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
    HTTP,
    v2(0x21, 0x11, INET) + HTTP,
    v2(0x21, 0x12, INET),
    v2(0x21, 0x21, INET6) + b"\x16\x03\x01\x00\x05",
    v2(0x21, 0x11, INET + tlv(1, b"h2") + tlv(4, b"") + tlv(0xEA, b"v" * 40)),
    v2(0x21, 0x22, INET6 + tlv(0x20, b"\x07" + bytes(4) + tlv(0x21, b"TLSv1.3"))),
    v2(0x20, 0x00, b""),
    v2(0x20, 0x11, INET),
    v2(0x21, 0x00, b"abc"),
    v2(0x21, 0x31, bytes(216)),
    v2(0x21, 0x11, INET, length=0xFFFF),
    v2(0x21, 0x21, INET),
    v2(0x21, 0x11, INET + b"\x01\x00\x05ab"),
    v2(0x22, 0x11, INET),
    v2(0x11, 0x11, INET),
]


def write(dirname, items, prefix=b""):
    d = HERE / "corpus" / dirname
    d.mkdir(parents=True, exist_ok=True)
    for data in items:
        data = prefix + data
        (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


write("request", REQUESTS)
write("proxy", PROXY)
# The chunked target's first byte selects the body limit (0: none, 1: 16, 2: 1000, 3: 1 MiB).
for sel in (b"\x00", b"\x01", b"\x02"):
    write("chunked", CHUNKED[:: (1 if sel == b"\x00" else 3)], sel)


# WebSocket frames (fuzz_websocket): the first byte picks the size limit (bits 0-1), no views (bit 2)
# and permessage-deflate (bit 3); masked client frames follow.
def ws_frame(first: int, payload: bytes, key: bytes = b"\x12\x34\x56\x78") -> bytes:
    import struct
    n = len(payload)
    head = bytes([first, 0x80 | n]) if n < 126 else (
        bytes([first, 0x80 | 126]) + struct.pack("!H", n) if n < 65536 else bytes([first, 0x80 | 127]) + struct.pack("!Q", n))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def write_websocket_corpus() -> None:
    import zlib
    z = zlib.compressobj(-1, zlib.DEFLATED, -15)
    comp = (z.compress(b"hello hello hello") + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
    seeds = [
        b"\x00" + ws_frame(0x81, b"hello"),
        b"\x00" + ws_frame(0x82, bytes(range(200))),
        b"\x02" + ws_frame(0x01, b"frag") + ws_frame(0x89, b"ping") + ws_frame(0x80, b"ment"),
        b"\x00" + ws_frame(0x88, b"\x03\xe8bye"),
        b"\x00" + ws_frame(0x8A, b""),
        b"\x04" + ws_frame(0x81, "\u20ac uro".encode()),
        b"\x01" + ws_frame(0x82, b"x" * 20),
        b"\x08" + ws_frame(0xC1, comp),
        b"\x08" + ws_frame(0x41, comp[:3]) + ws_frame(0x80, comp[3:]),
        b"\x00" + bytes([0x81, 0x05]) + b"hello",  # unmasked
    ]
    out = HERE / "corpus" / "websocket"
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (out / hashlib.sha1(s).hexdigest()[:16]).write_bytes(s)


if __name__ == "__main__":
    write_websocket_corpus()
