"""The usual Python progress gateway, as an anchor for bench/run-all.

FastAPI on uvicorn (one process), each browser connection with its own
Redis pub/sub subscription to its job's channel:
- GET /jobs/{job}/events: an SSE stream (StreamingResponse), "event:
  progress" and the published JSON as data;
- GET /ws: a WebSocket; {"op":"subscribe","job":ID,...} is answered with
  {"op":"subscribed","job":ID}, then each published JSON is a text message.
The subscription is made before the response head or the answer is sent,
so that a client that has either misses nothing.

Run: REDIS_URL=redis://127.0.0.1:PORT python3 -m uvicorn \
     fastapi_gateway:app --host 127.0.0.1 --port PORT
"""
import asyncio
import json
import os

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()
pool = aioredis.ConnectionPool.from_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), max_connections=None
)


def redis_client():
    return aioredis.Redis(connection_pool=pool)


async def messages(pubsub):
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
        if msg is not None and msg["type"] == "message":
            yield msg["data"]


@app.get("/jobs/{job}/events")
async def sse(job: str):
    pubsub = redis_client().pubsub()
    await pubsub.subscribe(job)

    async def stream():
        try:
            async for data in messages(pubsub):
                yield b"event: progress\ndata: " + data + b"\n\n"
        finally:
            await pubsub.unsubscribe(job)
            await pubsub.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        request = json.loads(await websocket.receive_text())
        job = request["job"]
    except (WebSocketDisconnect, ValueError, KeyError, TypeError):
        await websocket.close(code=1008)
        return
    pubsub = redis_client().pubsub()
    await pubsub.subscribe(job)
    await websocket.send_text(
        json.dumps({"op": "subscribed", "job": job}, separators=(",", ":"))
    )

    async def forward():
        async for data in messages(pubsub):
            await websocket.send_text(data.decode())

    # A closed connection is noticed by the reader; it cancels the forwarder.
    sender = asyncio.create_task(forward())
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        await pubsub.unsubscribe(job)
        await pubsub.close()
