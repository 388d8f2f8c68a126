"""A real FastAPI application for the ASGI framework tests."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import BackgroundTasks, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse

app = FastAPI()


async def write_marker(path: str, text: str) -> None:
    await asyncio.sleep(1.0)
    with open(path, "w") as f:
        f.write(text)


@app.get("/")
async def index():
    return {"framework": "fastapi", "hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"id": item_id, "q": q}


@app.post("/json")
async def json_echo(payload: dict):
    return {"received": payload, "doubled": [x * 2 for x in payload.get("numbers", [])]}


@app.get("/stream")
async def stream(n: int = 10):
    async def gen():
        for i in range(n):
            yield f"row {i}\n"
            if i % 50 == 0:
                await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


@app.post("/upload")
async def upload(file: UploadFile = File(...), note: str = Form(...)):
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "note": note}


@app.post("/form")
async def form(request: Request):
    f = await request.form()
    return {"name": f.get("name"), "tags": f.getlist("tag")}


@app.post("/bg")
async def bg(path: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_marker, path, "fastapi-bg-done")
    return {"scheduled": True}


@app.get("/error")
async def error():
    raise RuntimeError("fastapi-view-error")


@app.get("/text", response_class=PlainTextResponse)
async def text():
    return "plain fastapi"
