"""A bare ASGI fan-out app for daphne (no Django, no Channels): `bench/ws_fanout.py --bare-daphne`
runs it to tell daphne's own cost per connection and per delivery from the product's.

Greets each socket, then writes every message published on WS_BASELINE_KEY to every socket
through ASGI `websocket.send` — what the bare `websockets` baseline does, but on daphne.
"""

from __future__ import annotations

import asyncio
import json
import os

from redis import asyncio as aioredis

GREETING = json.dumps({"type": "connection", "status": "connected"})
_sends: set = set()
_reader: asyncio.Task | None = None


async def _read() -> None:
    client = aioredis.Redis.from_url(os.environ["WS_BASELINE_REDIS"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(os.environ["WS_BASELINE_KEY"])
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        frame = {"type": "websocket.send", "text": message["data"].decode()}
        for send in list(_sends):
            try:
                await send(frame)
            except Exception:
                _sends.discard(send)


async def application(scope, receive, send) -> None:
    global _reader
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if _reader is None:
        _reader = asyncio.ensure_future(_read())
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": GREETING})
    _sends.add(send)
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _sends.discard(send)
