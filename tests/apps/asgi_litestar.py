"""A real Litestar application for the ASGI framework tests."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Optional

from litestar import Litestar, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.response import Response, Stream


async def write_marker(path: str, text: str) -> None:
    await asyncio.sleep(1.0)
    with open(path, "w") as f:
        f.write(text)


@get("/")
async def index() -> dict:
    return {"framework": "litestar", "hello": "world"}


@get("/items/{item_id:int}")
async def item(item_id: int, q: Optional[str] = None) -> dict:
    return {"id": item_id, "q": q}


@post("/json", status_code=200)
async def json_echo(data: dict[str, Any]) -> dict:
    return {"received": data, "doubled": [x * 2 for x in data.get("numbers", [])]}


@get("/stream")
async def stream(n: int = 10) -> Stream:
    async def gen():
        for i in range(n):
            yield f"row {i}\n"
            if i % 50 == 0:
                await asyncio.sleep(0)
    return Stream(gen(), media_type="text/plain")


@post("/upload", status_code=200)
async def upload(request: Request) -> dict:
    f = await request.form()
    up = f["file"]
    data = await up.read()
    return {"filename": up.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "note": f.get("note")}


@post("/form", status_code=200)
async def form(request: Request) -> dict:
    f = await request.form()
    return {"name": f.get("name"), "tags": f.getall("tag") if hasattr(f, "getall") else f.getlist("tag")}


@post("/bg", status_code=200)
async def bg(path: str) -> Response:
    return Response({"scheduled": True}, background=BackgroundTask(write_marker, path, "litestar-bg-done"))


@get("/error")
async def error() -> dict:
    raise RuntimeError("litestar-view-error")


@get("/text", media_type="text/plain")
async def text() -> str:
    return "plain litestar"


app = Litestar(route_handlers=[index, item, json_echo, stream, upload, form, bg, error, text], debug=False)
