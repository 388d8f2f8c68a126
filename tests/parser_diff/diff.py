"""Differential testing of luath's HTTP/1.1 request parser against llhttp (via httptools) and h11.

    .venv/bin/python tests/parser_diff/diff.py            # print the summary
    .venv/bin/python tests/parser_diff/diff.py --write-doc  # also regenerate docs/parser-differences.md

luath's verdicts come from the luath_parse_cli driver (tests/cpp/parse_cli.cpp): taken from
$LUATH_PARSE_CLI when set, else compiled from the sources into build/parser_diff/ (needs a C++20 compiler).
"""
from __future__ import annotations

import binascii
import collections
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402


def cli_path() -> pathlib.Path:
    env = os.environ.get("LUATH_PARSE_CLI")
    if env:
        return pathlib.Path(env)
    skip = ("response.cpp", "websocket.cpp", "ws_deflate.cpp")  # not the request parser's
    srcs = sorted(p for p in (ROOT / "src/core/http").glob("*.cpp") if p.name not in skip)
    srcs.append(ROOT / "tests/cpp/parse_cli.cpp")
    hdrs = sorted((ROOT / "src/core/http").glob("*.hpp")) + sorted((ROOT / "src/core/http").glob("*.inc"))
    h = hashlib.sha1()
    for p in srcs + hdrs:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    out_dir = ROOT / "build" / "parser_diff"
    exe = out_dir / f"luath_parse_cli-{h.hexdigest()[:12]}"
    if not exe.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "clang++"
        tmp = exe.with_suffix(".tmp")
        subprocess.run([cxx, "-std=c++20", "-O1", "-g", f"-I{ROOT / 'src/core'}", *map(str, srcs), "-o", str(tmp)],
                       check=True)
        tmp.rename(exe)
        for old in out_dir.glob("luath_parse_cli-*"):
            if old != exe:
                old.unlink(missing_ok=True)
    return exe


def run_luath(cases, small=False) -> list[dict]:
    inp = "".join(binascii.hexlify(c.data).decode() + "\n" for c in cases)
    args = [str(cli_path())] + (["--small"] if small else [])
    out = subprocess.run(args, input=inp, capture_output=True, text=True, check=True).stdout
    res = [json.loads(line) for line in out.splitlines()]
    assert len(res) == len(cases)
    return res


def luath_outcome(r: dict) -> tuple[str, str]:
    """(accept|reject|incomplete, detail)."""
    if r["status"] == "error":
        return "reject", f'{r["error"]} ({r["http_status"]})'
    if r["status"] == "incomplete":
        return "incomplete", ""
    bs = r["body_status"]
    if bs == "error":
        return "reject", f'{r["body_error"]} ({r["http_status"]}, in body)'
    if bs == "incomplete":
        return "incomplete", f'{r["framing"]} body'
    return "accept", r["framing"]


def luath_body(r: dict) -> bytes | None:
    return r["body"].encode("latin-1") if r.get("body_status") == "done" else (b"" if r.get("body_status") == "none" else None)


def run_httptools(data: bytes) -> tuple[str, str, bytes | None]:
    try:
        import httptools
    except ImportError:
        return "n/a", "httptools not installed", None
    st = {"complete": False, "body": b"", "headers": False}

    class P:
        def on_headers_complete(self):
            st["headers"] = True

        def on_body(self, b):
            st["body"] += b

        def on_message_complete(self):
            st["complete"] = True

    p = httptools.HttpRequestParser(P())
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        return "accept", "upgrade", st["body"]
    except httptools.HttpParserError as e:
        if st["complete"]:  # the smuggled request after the body failed, the first message was fine
            return "accept", "", st["body"]
        msg = str(e).split(":")[-1].strip() if str(e) else ""
        return "reject", f"{type(e).__name__}: {msg}"[:90], None
    if st["complete"]:
        return "accept", "", st["body"]
    return "incomplete", "headers done" if st["headers"] else "", None


def run_h11(data: bytes) -> tuple[str, str, bytes | None]:
    try:
        import h11
    except ImportError:
        return "n/a", "h11 not installed", None
    conn = h11.Connection(h11.SERVER)
    body = b""
    try:
        conn.receive_data(data)
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                return "incomplete", "", None
            if ev is h11.PAUSED:
                return "accept", "paused", body
            if isinstance(ev, h11.Data):
                body += bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return "accept", "", body
    except h11.RemoteProtocolError as e:
        return "reject", f"RemoteProtocolError: {e}"[:90], None


def evaluate(cases=None):
    cases = corpus.CASES if cases is None else cases
    ours = run_luath(cases)
    rows = []
    for c, r in zip(cases, ours):
        o, od = luath_outcome(r)
        ho, hd, hb = run_httptools(c.data)
        ko, kd, kb = run_h11(c.data)
        rows.append(dict(case=c, luath=(o, od), luath_body=luath_body(r) if o == "accept" else None,
                         llhttp=(ho, hd), llhttp_body=hb, h11=(ko, kd), h11_body=kb))
    return rows


def disagreements(rows):
    """Groups of disagreements: key (group, who, ours, theirs) -> list of rows."""
    groups = collections.defaultdict(list)
    for row in rows:
        c = row["case"]
        for who in ("llhttp", "h11"):
            theirs = row[who][0]
            if theirs == "n/a":
                continue
            ours = row["luath"][0]
            if ours != theirs:
                groups[(c.group, who, ours, theirs)].append(row)
            elif ours == "accept" and row[f"{who}_body"] is not None and row["luath_body"] != row[f"{who}_body"]:
                groups[(c.group, who, "accept (body differs)", "accept")].append(row)
    return groups


def summary(rows) -> dict:
    smug = [r for r in rows if r["case"].kind == "smuggling"]
    return dict(
        total=len(rows),
        kinds=collections.Counter(r["case"].kind for r in rows),
        smuggling_total=len(smug),
        smuggling_accepted_luath=sum(r["luath"][0] != "reject" for r in smug),
        smuggling_accepted_llhttp=sum(r["llhttp"][0] == "accept" for r in smug),
        smuggling_accepted_h11=sum(r["h11"][0] == "accept" for r in smug),
        luath_vs_rfc=sum(r["luath"][0] != r["case"].expect for r in rows),
        llhttp_vs_rfc=sum(r["llhttp"][0] not in ("n/a", r["case"].expect) for r in rows),
        h11_vs_rfc=sum(r["h11"][0] not in ("n/a", r["case"].expect) for r in rows),
    )


def _esc(b: bytes, n=90) -> str:
    # Leave out what every case shares, so that the part that differs shows.
    for pre in (b"POST / HTTP/1.1\r\nHost: example.com\r\n", b"GET / HTTP/1.1\r\nHost: example.com\r\n"):
        if b.startswith(pre):
            b = b"..." + b[len(pre):]
    if b.endswith(corpus.SMUGGLE):
        b = b[: -len(corpus.SMUGGLE)] + b"<smuggled GET /admin>"
    s = repr(b)[2:-1]
    s = s if len(s) <= n else s[: n - 3] + "..."
    return s.replace("|", "\\|").replace("`", "'")


SUMMARY = """\
## Summary of the classes

Every disagreement below falls in one of these classes; in each, luath gives the verdict the RFC requires
(or, where the RFC allows a choice, the strict one, which removes a smuggling vector):

1. **Framing conflicts (CL.TE / TE.CL)** — luath rejects every message with both Content-Length and
   Transfer-Encoding (RFC 9112 6.1: a server MAY reject; 6.3 rule 3 says such a message "ought to be handled
   as an error" by intermediaries). h11 rejects only some of them; llhttp rejects them.
2. **Obfuscated Transfer-Encoding (TE.TE)** — obs-fold (RFC 9112 5.2: MUST reject or unfold), whitespace
   before the colon (5.1: MUST reject), CTLs/VT/FF/NUL in the value (RFC 9110 5.5), bare CR/LF (RFC 9112
   2.2), unknown codings or a final coding other than chunked (RFC 9112 6.1 / 6.3 rule 4: 400 or 501, close).
   h11 accepts folded Transfer-Encoding lines and bare-LF lines; llhttp accepts `identity, chunked` /
   `gzip, chunked` (it treats them as chunked). An empty `Transfer-Encoding:` line next to `chunked` is
   rejected by luath too (no RFC requirement either way; proxies disagree on whether it resets the codings).
3. **Transfer-Encoding in HTTP/1.0** — RFC 9112 6.1: MUST treat the framing as faulty. Both others accept.
4. **Chunk framing** — chunk-size is 1*HEXDIG with no sign, prefix, or whitespace (RFC 9112 7.1), chunk-ext
   BWS only before `;` (7.1.1), and every line ends in CRLF (2.2). h11 accepts trailing whitespace after
   the size, bare LF in trailers, NUL/VT in extensions; llhttp accepts `5;a=` (empty extension value).
5. **Content-Length** — RFC 9110 8.6: 1*DIGIT; luath also rejects values over 2^63-1 (llhttp waits for the
   body); h11 accepts `Content-Length` lines hidden behind obs-fold or leading whitespace. Identical
   repeated values MAY be accepted (RFC 9110 8.6) — luath accepts, llhttp rejects.
6. **Host** — RFC 9112 3.2: 400 when missing, repeated or invalid. llhttp and h11 accept repeated and
   invalid (`a b`, `a@b`, `a:port`, ...) Host values.
7. **Request line** — luath rejects versions other than 1.0/1.1 with 505 (RFC 9110 15.6.6), fragments,
   userinfo (RFC 9110 4.2.4), asterisk-form for methods other than OPTIONS and CONNECT without authority-form
   (RFC 9112 3.2). llhttp/h11 accept many of these and leave them to the application.
8. **Leniency luath does not take** — bare LF as line terminator (RFC 9112 2.2: MAY) and more than 8 leading
   empty lines (2.2 requires ignoring at least one); h11 accepts bare LF.
9. **Where the others are stricter than the RFC** — llhttp rejects trailing whitespace after `chunked`
   (`chunked\t`, OWS is allowed, RFC 9110 5.6.3) and extension methods it does not know (RFC 9110 9.1:
   method is any token); h11 rejects `5 ;a=b` (BWS before `;` is allowed, RFC 9112 7.1.1), empty list
   elements in Transfer-Encoding (RFC 9110 5.6.1: MUST ignore) and leading empty lines (RFC 9112 2.2: SHOULD
   ignore at least one).
10. **Limits** — luath answers 414/431 for an 9000-byte target/field and 120 fields (its configured limits,
    RFC 9112 3 / RFC 6585 5); llhttp and h11 have larger or no limits.
"""


def write_doc(rows, path):
    s = summary(rows)
    groups = disagreements(rows)
    lines = []
    w = lines.append
    w("# HTTP/1.1 parser: differences with llhttp and h11")
    w("")
    w("Generated by `tests/parser_diff/diff.py --write-doc` (do not edit by hand; edit the generator).")
    w(f"The corpus (`tests/parser_diff/corpus.py`) has **{s['total']} requests**: "
      f"{s['kinds']['valid']} valid, {s['kinds']['malformed']} malformed and {s['kinds']['smuggling']} "
      "request-smuggling variants (CL.TE, TE.CL, TE.TE obfuscations, invalid Content-Length, chunk framing).")
    w("Each one is fed whole to luath's parser (head + chunked decoder, through `luath_parse_cli`), to llhttp "
      "(httptools.HttpRequestParser) and to h11 (h11.Connection, server role). Each case carries the verdict "
      "the RFC requires of a server and the clause that decides it.")
    w("")
    w(f"**Zero smuggling variants accepted by luath: 0 of {s['smuggling_total']}** "
      f"(llhttp accepts {s['smuggling_accepted_llhttp']}, h11 accepts {s['smuggling_accepted_h11']}; "
      "'accept' = the first message was parsed to its end and a framing was chosen).")
    w("")
    w("| parser | verdicts differing from the RFC verdict |")
    w("|---|---|")
    w(f"| luath | {s['luath_vs_rfc']} |")
    w(f"| llhttp (httptools) | {s['llhttp_vs_rfc']} |")
    w(f"| h11 | {s['h11_vs_rfc']} |")
    w("")
    w("Verdicts: `accept` (head and body parsed), `reject` (an error; luath's error name and HTTP status are "
      "given), `incomplete` (the parser waits for more bytes: it did not see the message as finished, e.g. "
      "it took a different framing and waits for more body). Where the RFC leaves a choice (MAY), luath takes "
      "the strict one, and the clause says so.")
    w("")
    w(SUMMARY)
    w("## Disagreement classes (generated)")
    w("")
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3]))
    for key in order:
        group, who, ours, theirs = key
        rs = groups[key]
        c0 = rs[0]["case"]
        rfc_clauses = sorted({r["case"].rfc for r in rs})
        rfc_verdicts = sorted({r["case"].expect for r in rs})
        w(f"### {group}: luath {ours}, {who} {theirs} ({len(rs)} case{'s' if len(rs) > 1 else ''})")
        w("")
        w(f"RFC verdict: **{', '.join(rfc_verdicts)}** — " + "; ".join(rfc_clauses))
        w("")
        w("| case | request (excerpt) | luath | " + who + " |")
        w("|---|---|---|---|")
        for r in rs[:8]:
            c = r["case"]
            w(f"| {c.name} | `{_esc(c.data)}` | {r['luath'][0]} {r['luath'][1]} | {r[who][0]} {_esc(r[who][1].encode(), 60)} |")
        if len(rs) > 8:
            w(f"| ... | {len(rs) - 8} more | | |")
        w("")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def main(argv):
    rows = evaluate()
    s = summary(rows)
    groups = disagreements(rows)
    print(f"cases: {s['total']} {dict(s['kinds'])}")
    print(f"smuggling variants accepted: luath {s['smuggling_accepted_luath']}/{s['smuggling_total']}, "
          f"llhttp {s['smuggling_accepted_llhttp']}, h11 {s['smuggling_accepted_h11']}")
    print(f"verdicts differing from the RFC: luath {s['luath_vs_rfc']}, llhttp {s['llhttp_vs_rfc']}, h11 {s['h11_vs_rfc']}")
    for key in sorted(groups):
        print(f"  {key}: {len(groups[key])}")
    for r in rows:
        if r["luath"][0] != r["case"].expect:
            print(f"LUATH != RFC: {r['case'].name}: {r['luath']} expected {r['case'].expect} {r['case'].data!r}")
    if "--write-doc" in argv:
        write_doc(rows, ROOT / "docs" / "parser-differences.md")
        print("wrote docs/parser-differences.md")
    return 1 if s["smuggling_accepted_luath"] or s["luath_vs_rfc"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
