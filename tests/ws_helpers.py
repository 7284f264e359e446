"""Helpers for the WebSocket tests: a schema-checking communicator and token issuing.

Every message a test receives is validated against the shared contract
`../shared/spec/messages.schema.json` before the test looks at it.
"""

from __future__ import annotations

import json
from pathlib import Path

from channels.testing import WebsocketCommunicator
from django.conf import settings
from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(settings.BASE_DIR).parent / "shared" / "spec" / "messages.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


# Issue 9 adds one message type to SPEC's: the answer to a `?since=` the history cannot serve.
RESYNC_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "required": ["type", "channel", "since", "latest", "timestamp"],
        "properties": {
            "type": {"const": "resync_required"},
            "channel": {"type": "string"},
            "since": {"type": "integer", "minimum": 0},
            "latest": {"type": ["integer", "null"]},
            "timestamp": {"$ref": "#/$defs/ts"},
        },
        "$defs": SCHEMA["$defs"],
    }
)


def check(message: dict) -> dict:
    """Raise if `message` breaks the contract; return it."""
    if message.get("type") == "resync_required":
        RESYNC_VALIDATOR.validate(message)
    else:
        VALIDATOR.validate(message)
    return message


def application():
    from realtime.routing import websocket_application

    return websocket_application()


class Client:
    """A WebsocketCommunicator that validates what it receives."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.comm = WebsocketCommunicator(application(), path, headers=headers or [])

    async def connect(self):
        return await self.comm.connect(timeout=5)

    async def receive(self, timeout: float = 3) -> dict:
        return check(json.loads(await self.comm.receive_from(timeout=timeout)))

    async def receive_close(self, timeout: float = 3) -> int:
        output = await self.comm.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        code = output.get("code", 1000)
        # What daphne does after a server-side close: tell the application the socket is gone.
        await self.comm.disconnect(code=code)
        return code

    async def send_text(self, text: str) -> None:
        await self.comm.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.comm.send_to(bytes_data=data)

    async def nothing_more(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.comm.disconnect()


async def open_channel(channel: str, token: str) -> Client:
    """Connect to /ws/<channel> and consume the `connection` message."""
    client = Client(f"/ws/{channel}?token={token}")
    connected, _ = await client.connect()
    assert connected
    hello = await client.receive()
    assert hello["type"] == "connection" and hello["channel"] == channel, hello
    return client
