"""A FastAPI application with WebSocket endpoints (tests/test_websocket.py)."""

from __future__ import annotations

import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
LAST_CLOSE: list[int] = []


@app.websocket("/ws/{name}")
async def chat(websocket: WebSocket, name: str, greeting: str = "hello"):
    await websocket.accept()
    await websocket.send_text(f"{greeting} {name}")
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                LAST_CLOSE.append(msg["code"])
                return
            if msg.get("text") is not None:
                text = msg["text"]
                if text.startswith("{"):
                    data = json.loads(text)
                    await websocket.send_text(json.dumps({"n": data["n"] + 1}, separators=(",", ":")))
                else:
                    await websocket.send_text(f"{name} said: {text}")
            else:
                await websocket.send_bytes(msg["bytes"][::-1])
    except WebSocketDisconnect as e:
        LAST_CLOSE.append(e.code)


@app.websocket("/ws-last")
async def last(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text(str(LAST_CLOSE[-1] if LAST_CLOSE else None))
    try:
        await websocket.receive_text()
    except WebSocketDisconnect:
        pass


@app.websocket("/ws-reject")
async def reject(websocket: WebSocket):
    await websocket.close(code=1008)


@app.get("/")
async def index():
    return {"ok": True}
