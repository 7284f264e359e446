"""Helpers for the AI analyzer tests.

- `FakeLLM`: a loopback HTTP server speaking the OpenAI chat-completions protocol, so the real
  `openai` client is exercised end to end; a test scripts its answers with `behaviour`.
- `broadcasts(groups, action)`: runs `action` (sync, DB allowed) while a listener subscribed on
  the real Redis where server processes listen, and returns exactly what each channel received
  (a sentinel sent after the action marks the end, so "nothing else" is asserted without
  sleeping).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.ws_helpers import check


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message (status 200)
    body: str | None = None  # a raw body instead of a completion
    delay: float = 0.0


def completion(content: str | None, model: str = "fake-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def events_in(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events our prompt carried (the JSON document after the first line)."""
    user = next(m for m in body["messages"] if m["role"] == "user")["content"]
    return json.loads(user.split("\n", 1)[1])["events"]


def verdicts(score_of: Callable[[dict], int], category: str = "intrusion") -> Callable:
    """A behaviour answering well: one verdict per event, the score chosen by `score_of`."""

    def behaviour(body: dict) -> Reply:
        analyses = [
            {
                "event_id": event["event_id"],
                "score": score_of(event),
                "category": category,
                "description": f"verdict for {event['computer']}",
            }
            for event in events_in(body)
        ]
        return Reply(content=json.dumps({"analyses": analyses}))

    return behaviour


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeLLM:
    behaviour: Callable[[dict], Reply] = field(default=lambda body: Reply(content="{}"))
    requests: list[Request] = field(default_factory=list)

    def start(self) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                fake.requests.append(Request(self.path, headers, body))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, json.dumps({"error": {"message": "not found"}}))
                reply = fake.behaviour(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None:
                    return self._send(reply.status, reply.body)
                if reply.status != 200:
                    error = {"error": {"message": f"fake failure {reply.status}", "type": "x"}}
                    return self._send(reply.status, json.dumps(error))
                return self._send(200, json.dumps(completion(reply.content, body.get("model"))))

            def _send(self, status: int, text: str):
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requested_ids(self) -> list[int]:
        return [
            event["event_id"]
            for request in self.requests
            if request.path.rstrip("/") == "/v1/chat/completions"
            for event in events_in(request.body)
        ]


_SENTINEL = {"type": "test.sentinel"}


def broadcasts(groups: list[str], action: Callable[[], Any], timeout: float = 10.0):
    """Run `action()` while listening on the real Redis to what reaches `groups`.

    `groups` are channel names ("notifications", "dashboard", ...). The listener subscribes
    where the server processes themselves listen: the per-channel Redis pub/sub channel of the
    fan-out hub (REALTIME_FANOUT=hub, the default), or the channel-layer group otherwise.
    It adds no WebSocket client, so presence counts are untouched. On-commit callbacks queued
    by the action run as its transaction commits (like django_capture_on_commit_callbacks).
    Returns (result, {group: [messages...]}); every message is checked against the schema.
    """
    from realtime.manager import fanout_mode

    if fanout_mode() == "hub":
        return _hub_broadcasts(groups, action, timeout)
    return _layer_broadcasts(groups, action, timeout)


def _run_and_commit(action: Callable[[], Any]):
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        return action()


def _hub_broadcasts(groups: list[str], action: Callable[[], Any], timeout: float):
    import redis
    from django.conf import settings

    from realtime import history
    from realtime.fanout import redis_channel

    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    names = {redis_channel(group): group for group in groups}
    pubsub.subscribe(*names)
    confirmed = 0
    while confirmed < len(names):  # subscriptions are live before the action runs
        reply = pubsub.get_message(timeout=timeout)
        assert reply is not None, "Redis did not confirm the subscription"
        confirmed += reply["type"] == "subscribe"
    try:
        result = _run_and_commit(action)
        # Published after every broadcast of the action completed: it arrives last.
        for name in names:
            client.publish(name, json.dumps(_SENTINEL))
        received: dict[str, list[dict]] = {group: [] for group in groups}
        open_groups = set(groups)
        deadline = time.monotonic() + timeout
        while open_groups:
            assert time.monotonic() < deadline, f"no sentinel on {open_groups}: {received}"
            reply = pubsub.get_message(timeout=0.5)
            if reply is None or reply["type"] != "message":
                continue
            group = names[reply["channel"].decode()]
            for text in history.split(reply["data"]):  # one write's texts, newline-joined
                message = json.loads(text)
                if message == _SENTINEL:
                    open_groups.discard(group)
                else:
                    received[group].append(check(message))
        return result, received
    finally:
        pubsub.close()
        client.close()


def _layer_broadcasts(groups: list[str], action: Callable[[], Any], timeout: float):
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.layers import get_channel_layer

    from realtime.manager import group_name

    layer = get_channel_layer()

    async def scenario():
        channels = {}
        for group in groups:
            channels[group] = await layer.new_channel()
            await layer.group_add(group_name(group), channels[group])
        try:
            result = await sync_to_async(_run_and_commit)(action)
            received: dict[str, list[dict]] = {}
            for group, channel in channels.items():
                await layer.group_send(group_name(group), _SENTINEL)
                messages = []
                while True:
                    payload = await asyncio.wait_for(layer.receive(channel), timeout)
                    if payload.get("type") == _SENTINEL["type"]:
                        break
                    if "text" in payload:
                        message = json.loads(payload["text"])
                    else:
                        message = payload["message"]
                    messages.append(check(message))
                received[group] = messages
            return result, received
        finally:
            for group, channel in channels.items():
                await layer.group_discard(group_name(group), channel)

    return async_to_sync(scenario)()


def content(messages: list[dict]) -> list[dict]:
    """Messages without their per-channel sequence number, to compare across channels."""
    return [{k: v for k, v in m.items() if k != "seq"} for m in messages]
