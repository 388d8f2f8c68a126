"""A real Starlette application for the ASGI framework tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


async def write_marker(path: str, text: str) -> None:
    await asyncio.sleep(1.0)
    with open(path, "w") as f:
        f.write(text)


async def index(request: Request):
    return JSONResponse({"framework": "starlette", "hello": "world",
                         "lifespan_state": getattr(request.state, "from_lifespan", None)})


async def item(request: Request):
    return JSONResponse({"id": int(request.path_params["item_id"]), "q": request.query_params.get("q")})


async def json_echo(request: Request):
    payload = await request.json()
    return JSONResponse({"received": payload, "doubled": [x * 2 for x in payload.get("numbers", [])]})


async def stream(request: Request):
    n = int(request.query_params.get("n", "10"))

    async def gen():
        for i in range(n):
            yield f"row {i}\n"
            if i % 50 == 0:
                await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


async def upload(request: Request):
    async with request.form() as f:
        up = f["file"]
        data = await up.read()
        return JSONResponse({"filename": up.filename, "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest(), "note": f.get("note")})


async def form(request: Request):
    f = await request.form()
    return JSONResponse({"name": f.get("name"), "tags": f.getlist("tag")})


async def bg(request: Request):
    task = BackgroundTask(write_marker, request.query_params["path"], "starlette-bg-done")
    return JSONResponse({"scheduled": True}, background=task)


async def error(request: Request):
    raise RuntimeError("starlette-view-error")


async def text(request: Request):
    return PlainTextResponse("plain starlette")


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"from_lifespan": "starlette-lifespan-state"}


app = Starlette(routes=[
    Route("/", index),
    Route("/items/{item_id:int}", item),
    Route("/json", json_echo, methods=["POST"]),
    Route("/stream", stream),
    Route("/upload", upload, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/bg", bg, methods=["POST"]),
    Route("/error", error),
    Route("/text", text),
], lifespan=lifespan)
