"""Real Flask and Django applications driven by real HTTP clients (requests, httpx)."""

from __future__ import annotations

import hashlib
import os

import pytest

requests = pytest.importorskip("requests")
httpx = pytest.importorskip("httpx")

FRAMEWORKS = {
    "flask": "tests.apps.flask_app:app",
    "django": "tests.apps.django_app:application",
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def fw(request, start_server):
    pytest.importorskip(request.param)
    return start_server(FRAMEWORKS[request.param], "--workers", "1")


def test_index(fw):
    r = requests.get(fw.url + "/", timeout=15)
    assert r.status_code == 200
    assert r.text.endswith("says hi")
    assert r.headers["Content-Length"] == str(len(r.content))


def test_form_post(fw):
    with requests.Session() as s:
        r = s.post(fw.url + "/form", data=[("name", "Zoë & co"), ("tag", "a"), ("tag", "b=c")], timeout=15)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["name"] == "Zoë & co"
    assert j["tags"] == ["a", "b=c"]
    assert j["content_type"].startswith("application/x-www-form-urlencoded")


def test_multipart_upload(fw):
    data = os.urandom(300_000)
    r = requests.post(fw.url + "/upload", files={"file": ("blob.bin", data, "application/octet-stream")},
                      data={"note": "hello"}, timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j == {"filename": "blob.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                 "note": "hello"}


def test_json(fw):
    r = requests.post(fw.url + "/json", json={"numbers": [1, 2, 3], "s": "ünï"}, timeout=15)
    assert r.status_code == 200
    assert r.json() == {"received": {"numbers": [1, 2, 3], "s": "ünï"}, "doubled": [2, 4, 6]}
    assert r.headers["Content-Type"].startswith("application/json")


def test_redirect_followed(fw):
    r = requests.get(fw.url + "/redirect", timeout=15)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [302]
    assert r.json() == {"src": "redirect", "path": "/target"}


def test_redirect_not_followed(fw):
    r = requests.get(fw.url + "/redirect", allow_redirects=False, timeout=15)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/target?src=redirect")


def test_post_redirect_303(fw):
    r = requests.post(fw.url + "/post-redirect", data={"x": "1"}, timeout=15)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [303]
    assert r.json()["src"] == "post"


def test_cookies_roundtrip(fw):
    with requests.Session() as s:
        r = s.get(fw.url + "/set-cookie?v=chocolate", timeout=15)
        assert r.status_code == 200
        assert len(r.raw.headers.getlist("Set-Cookie")) == 2, "both Set-Cookie headers must be sent separately"
        assert s.cookies.get("flavour") == "chocolate"
        r = s.get(fw.url + "/get-cookie", timeout=15)
        assert r.json()["cookies"] == {"flavour": "chocolate", "second": "two"}


def test_streaming_response(fw):
    with requests.get(fw.url + "/stream?n=500", stream=True, timeout=15) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    assert lines == [f"row {i}".encode() for i in range(500)]


def test_methods(fw):
    with requests.Session() as s:
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            r = s.request(m, fw.url + "/method", data=b"payload" if m != "GET" else None, timeout=15)
            assert r.status_code == 200, (m, r.text)
            assert r.json()["method"] == m
            if m != "GET":
                assert r.json()["data"] == "payload"


def test_view_error_is_500_and_server_survives(fw):
    r = requests.get(fw.url + "/error", timeout=15)
    assert r.status_code == 500
    assert requests.get(fw.url + "/", timeout=15).status_code == 200


def test_not_found(fw):
    r = requests.get(fw.url + "/no/such/page", timeout=15)
    assert r.status_code == 404


def test_httpx_keepalive_session(fw):
    with httpx.Client(base_url=fw.url, timeout=15) as client:
        for i in range(20):
            r = client.post("/json", json={"numbers": [i]})
            assert r.status_code == 200
            assert r.json()["doubled"] == [2 * i]
        r = client.get("/set-cookie?v=ginger")
        assert client.cookies.get("flavour") == "ginger"
        r = client.get("/get-cookie")
        assert r.json()["cookies"]["flavour"] == "ginger"
        r = client.post("/form", data={"name": "httpx"})
        assert r.json()["name"] == "httpx"


def test_httpx_chunked_upload(fw, request):
    if "django" in request.node.callspec.id:
        pytest.skip("Django ignores wsgi.input_terminated: it reads CONTENT_LENGTH bytes only")

    def gen():
        for i in range(100):
            yield b"%d," % i
    with httpx.Client(base_url=fw.url, timeout=15) as client:
        r = client.post("/method", content=gen())
    assert r.status_code == 200
    assert r.json()["data"] == "".join(f"{i}," for i in range(100))
