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

    from siem.redis import client as redis_client

    try:
        client = redis_client()
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


def received_on(channel: str, user, action, *, expect: int = 1) -> tuple[object, list[dict]]:
    """Run `action()` (an API request) while `user` listens on /ws/<channel>, as a browser would.

    Returns (action's result, the first `expect` messages the socket received, each already
    validated against the shared message schema by tests.ws_helpers). Transport-independent:
    whatever carries broadcasts between processes, this is what a subscribed client sees. Needs
    `@pytest.mark.django_db(transaction=True)`: the consumer reads the session on its own
    connection, and broadcasts leave only after a real commit.
    """
    from asgiref.sync import async_to_sync, sync_to_async

    from tests.ws_helpers import open_channel

    token, _session = issue_access_token(user)

    async def scenario():
        client = await open_channel(channel, token)
        try:
            result = await sync_to_async(action)()
            messages = [await client.receive(timeout=5) for _ in range(expect)]
        finally:
            await client.close()
        return result, messages

    return async_to_sync(scenario)()
