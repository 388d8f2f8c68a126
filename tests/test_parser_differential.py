"""Differential tests of the HTTP/1.1 request parser (tests/parser_diff/): every request of the generated
corpus goes through luath's parser (luath_parse_cli, compiled from the sources when needed) and must get
the verdict RFC 9112/9110 requires; every request-smuggling variant must be rejected. The comparisons
with llhttp (httptools) and h11 run only when those packages are installed.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "parser_diff"))

import corpus  # noqa: E402
import diff  # noqa: E402


@pytest.fixture(scope="module")
def verdicts():
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")) and "LUATH_PARSE_CLI" not in __import__("os").environ:
        pytest.skip("no C++ compiler to build luath_parse_cli")
    results = diff.run_luath(corpus.CASES)
    return {c.name: (c, diff.luath_outcome(r), r) for c, r in zip(corpus.CASES, results)}


def test_corpus_size():
    assert len(corpus.CASES) >= 500
    assert len(corpus.by_kind("smuggling")) >= 200


def test_every_smuggling_variant_is_rejected(verdicts):
    accepted = [(name, out, c.data) for name, (c, out, _) in verdicts.items()
                if c.kind == "smuggling" and out[0] != "reject"]
    assert accepted == [], f"{len(accepted)} smuggling variants not rejected"


def test_verdicts_match_the_rfc(verdicts):
    wrong = [(name, out, c.expect, c.rfc) for name, (c, out, _) in verdicts.items() if out[0] != c.expect]
    assert wrong == []


def test_valid_chunked_bodies_decode(verdicts):
    for name, (c, out, r) in verdicts.items():
        if c.kind == "valid" and r.get("framing") == "chunked":
            assert r["body_status"] == "done", name


def test_small_limits_never_accept_smuggling():
    cases = corpus.by_kind("smuggling")
    for c, r in zip(cases, diff.run_luath(cases, small=True)):
        assert diff.luath_outcome(r)[0] == "reject", c.name


@pytest.mark.parametrize("other", ["httptools", "h11"])
def test_same_body_as_other_parsers_when_all_accept(verdicts, other):
    pytest.importorskip(other)
    run = diff.run_httptools if other == "httptools" else diff.run_h11
    mismatched = []
    for name, (c, out, r) in verdicts.items():
        if c.kind != "valid" or out[0] != "accept":
            continue
        theirs, _, body = run(c.data)
        if theirs == "accept" and body is not None and diff.luath_body(r) != body:
            mismatched.append((name, diff.luath_body(r), body))
    assert mismatched == []


@pytest.mark.parametrize("other", ["httptools", "h11"])
def test_documented_disagreements_only(verdicts, other):
    """Every disagreement with llhttp/h11 is a case where luath gives the RFC verdict (docs/parser-differences.md)."""
    pytest.importorskip(other)
    run = diff.run_httptools if other == "httptools" else diff.run_h11
    for name, (c, out, _) in verdicts.items():
        theirs = run(c.data)[0]
        if theirs != out[0]:
            assert out[0] == c.expect, (name, out, theirs)
