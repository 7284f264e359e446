"""Helpers for the REST API tests (fixtures `clients`, `norole`, `api_setup` in conftest).

Callers, by role:
- `admin`, `analyst`, `viewer` — the named users of conftest, each with a Bearer token
- `norole` — a logged-in user in no role group
- `anonymous` — no Authorization header
- `agent` — `Authorization: Agent <token>` of a registered agent
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import issue_access_token
from agents.services import register_agent


def bearer_client(user) -> APIClient:
    token, _session = issue_access_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def wipe_login_throttle() -> None:
    """Forget failed logins counted under this test run's own Redis key prefix."""
    import redis

    from accounts.login_throttle import _client

    try:
        client = _client()
        keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:login-fail:*"))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # a test pointed REDIS_URL at a closed port: nothing was counted there


def clients_for(admin_user, analyst, viewer, norole) -> dict[str, APIClient]:
    _agent, agent_token = register_agent(hostname="WS-AGENT")
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Agent {agent_token}")
    return {
        "admin": bearer_client(admin_user),
        "analyst": bearer_client(analyst),
        "viewer": bearer_client(viewer),
        "norole": bearer_client(norole),
        "anonymous": APIClient(),
        "agent": agent,
    }


# Expected status for callers who may not do something: 401 without user credentials,
# 403 for a user whose role does not allow it.
DENIED = {"anonymous": 401, "agent": 401, "norole": 403, "viewer": 403}
READERS = ("admin", "analyst", "viewer")
WRITERS = ("admin", "analyst")


def received_on(group: str, action, *, expect: int = 1, timeout: float = 5.0):
    """Run `action()` (a request) while subscribed to a real channel-layer group.

    Returns (action's result, the wire messages received on `group`). The on-commit callbacks the
    request queues are executed as the test's transaction would commit them.
    """
    import asyncio

    from asgiref.sync import async_to_sync, sync_to_async
    from channels.layers import get_channel_layer
    from django.test import TestCase

    from realtime.manager import group_name

    layer = get_channel_layer()

    def run_and_commit():
        # What pytest-django's django_capture_on_commit_callbacks(execute=True) does.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return action()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(group_name(group), channel)
        try:
            result = await sync_to_async(run_and_commit)()
            messages = []
            for _ in range(expect):
                payload = await asyncio.wait_for(layer.receive(channel), timeout)
                messages.append(_envelope(payload))
            return result, messages
        finally:
            await layer.group_discard(group_name(group), channel)

    return async_to_sync(scenario)()


def _envelope(payload: dict) -> dict:
    """The client-facing message inside a channel-layer payload (JSON text or a dict)."""
    import json

    if "text" in payload:
        return json.loads(payload["text"])
    return payload["message"]
