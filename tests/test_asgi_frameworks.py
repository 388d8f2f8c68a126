"""Real ASGI frameworks (FastAPI, Starlette, Litestar, Django) on luath, driven by httpx."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.asgi_helpers import ASGI_ARGS

httpx = pytest.importorskip("httpx")

FRAMEWORKS = {
    "fastapi": ("tests.apps.asgi_fastapi:app", ("fastapi", "multipart")),
    "starlette": ("tests.apps.asgi_starlette:app", ("starlette", "multipart")),
    "litestar": ("tests.apps.asgi_litestar:app", ("litestar",)),
    "django": ("tests.apps.asgi_django:application", ("django",)),
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def fw(request, start_server):
    spec, mods = FRAMEWORKS[request.param]
    for m in mods:
        pytest.importorskip(m)
    srv = start_server(spec, *ASGI_ARGS)
    srv.name = request.param
    return srv


def test_json_get(fw):
    with httpx.Client(base_url=fw.url, timeout=15) as client:
        r = client.get("/")
        assert r.status_code == 200
        assert r.json()["framework"] == fw.name and r.json()["hello"] == "world"
        assert r.headers["content-type"].startswith("application/json")
        r = client.get("/items/42", params={"q": "ünï code"})
        assert r.status_code == 200
        assert r.json() == {"id": 42, "q": "ünï code"}


def test_json_post_keepalive(fw):
    with httpx.Client(base_url=fw.url, timeout=15) as client:
        for i in range(20):
            r = client.post("/json", json={"numbers": [i, 1], "s": "ünï"})
            assert r.status_code == 200, r.text
            assert r.json() == {"received": {"numbers": [i, 1], "s": "ünï"}, "doubled": [2 * i, 2]}


def test_plain_text(fw):
    r = httpx.get(fw.url + "/text", timeout=15)
    assert r.status_code == 200
    assert r.text == f"plain {fw.name}"


def test_streaming_response(fw):
    with httpx.Client(timeout=15) as client:
        with client.stream("GET", fw.url + "/stream", params={"n": 500}) as r:
            assert r.status_code == 200
            assert r.headers.get("transfer-encoding", "").lower() == "chunked" or "content-length" in r.headers
            lines = list(r.iter_lines())
    assert [x for x in lines if x] == [f"row {i}" for i in range(500)]


def test_form_urlencoded(fw):
    r = httpx.post(fw.url + "/form", data={"name": "Zoë & co", "tag": ["a", "b=c"]}, timeout=15)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "Zoë & co", "tags": ["a", "b=c"]}


def test_multipart_upload(fw):
    data = os.urandom(300_000)
    r = httpx.post(fw.url + "/upload", files={"file": ("blob.bin", data, "application/octet-stream")},
                   data={"note": "hello"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"filename": "blob.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "note": "hello"}


def test_chunked_upload(fw):
    body = b'{"numbers": [' + b", ".join(b"%d" % i for i in range(200)) + b"]}"

    def pieces():
        for i in range(0, len(body), 37):
            yield body[i:i + 37]
    r = httpx.post(fw.url + "/json", content=pieces(), headers={"content-type": "application/json"}, timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["doubled"] == [2 * i for i in range(200)]


def test_background_task(fw, tmp_path):
    marker = tmp_path / "bg-marker"
    t0 = time.monotonic()
    r = httpx.post(fw.url + "/bg", params={"path": str(marker)}, timeout=15)
    answered = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json() == {"scheduled": True}
    exists_at_response = marker.exists()
    deadline = time.monotonic() + 15
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the background task never ran"
    assert marker.read_text() == f"{fw.name}-bg-done"
    assert not exists_at_response or answered >= 1.0, \
        "the response waited for the background task (it must be sent first)"
    # the server keeps serving on the same worker
    assert httpx.get(fw.url + "/", timeout=15).status_code == 200


def test_view_error_is_500_and_server_survives(fw):
    off = fw.log_size()
    r = httpx.get(fw.url + "/error", timeout=15)
    assert r.status_code == 500
    assert httpx.get(fw.url + "/", timeout=15).status_code == 200
    assert fw.alive()
    if fw.name in ("fastapi", "starlette"):
        # Starlette's ServerErrorMiddleware sends the 500 and re-raises to the server, which must log
        # it (Django and Litestar handle and log view errors themselves).
        fw.wait_for_log(f"{fw.name}-view-error", off)


def test_not_found(fw):
    r = httpx.get(fw.url + "/no/such/page", timeout=15)
    assert r.status_code == 404


def test_concurrent_async_clients(fw):
    import asyncio

    async def main():
        async with httpx.AsyncClient(base_url=fw.url, timeout=30) as client:
            rs = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(50)))
        return rs
    rs = asyncio.run(main())
    assert [r.json()["id"] for r in rs] == list(range(50))


def test_starlette_lifespan_state(start_server):
    pytest.importorskip("starlette")
    srv = start_server(FRAMEWORKS["starlette"][0], *ASGI_ARGS)
    r = httpx.get(srv.url + "/", timeout=15)
    assert r.json()["lifespan_state"] == "starlette-lifespan-state", \
        "state yielded by a Starlette lifespan must reach request.state (scope['state'])"
