"""One-time WebSocket tickets (issue 9): `POST /api/v1/auth/ws-ticket`, then `?ticket=`.

Users: `admin` (group admin), `viewer` (group viewer) from conftest.
"""

from __future__ import annotations

import logging
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from accounts.services import issue_access_token, revoke_session
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


def ticket_for(token: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/v1/auth/ws-ticket")
    assert response.status_code == 201, response.content
    return response.json()


async def attempt(query: str) -> tuple[dict, Client]:
    client = Client(f"/ws/alerts?{query}")
    assert (await client.connect())[0]
    return await client.receive(), client


def test_a_ticket_opens_one_socket_once(viewer):
    token, _ = issue_access_token(viewer)
    issued = ticket_for(token)
    assert issued["expires_in"] == 30
    assert issued["ticket"] != token and "." not in issued["ticket"]  # not a JWT

    async def scenario():
        first, client = await attempt(f"ticket={issued['ticket']}")
        await client.close()
        second, again = await attempt(f"ticket={issued['ticket']}")
        code = await again.receive_close()
        return first, second, code

    first, second, code = async_to_sync(scenario)()
    assert first["type"] == "connection" and first["channel"] == "alerts"
    assert second == {"type": "error", "message": "Invalid token"}
    assert code == 4003


def test_an_expired_ticket_is_refused(viewer, settings):
    settings.REALTIME_TICKET_TTL_SEC = 1
    token, _ = issue_access_token(viewer)
    issued = ticket_for(token)
    time.sleep(1.5)

    async def scenario():
        message, client = await attempt(f"ticket={issued['ticket']}")
        return message, await client.receive_close()

    assert async_to_sync(scenario)() == ({"type": "error", "message": "Invalid token"}, 4003)


def test_unknown_ticket_is_invalid_and_missing_credentials_still_say_token_required(db):
    async def scenario():
        unknown, client = await attempt("ticket=wst_nonsense")
        unknown_code = await client.receive_close()
        empty, client = await attempt("ticket=")
        empty_code = await client.receive_close()
        return unknown, unknown_code, empty, empty_code

    unknown, unknown_code, empty, empty_code = async_to_sync(scenario)()
    assert (unknown, unknown_code) == ({"type": "error", "message": "Invalid token"}, 4003)
    assert (empty, empty_code) == ({"type": "error", "message": "Token required"}, 4001)


def test_issuing_a_ticket_needs_a_valid_bearer_token(db):
    assert APIClient().post("/api/v1/auth/ws-ticket").status_code == 401


def test_a_ticket_of_a_revoked_session_is_refused_and_its_socket_closes_on_logout(admin_user):
    token, session = issue_access_token(admin_user)
    kept = ticket_for(token)["ticket"]
    late = ticket_for(token)["ticket"]

    async def scenario():
        hello, client = await attempt(f"ticket={kept}")
        await database_sync_to_async(revoke_session)(session)
        closed = await client.receive(), await client.receive_close()
        refused, again = await attempt(f"ticket={late}")
        return hello, closed, refused, await again.receive_close()

    hello, closed, refused, code = async_to_sync(scenario)()
    assert hello["type"] == "connection"
    assert closed == ({"type": "error", "message": "Invalid token"}, 4003)
    assert (refused, code) == ({"type": "error", "message": "Invalid token"}, 4003)


def test_tickets_never_reach_the_logs(viewer, caplog):
    caplog.set_level(logging.DEBUG)
    token, _ = issue_access_token(viewer)
    used = ticket_for(token)["ticket"]

    async def scenario():
        _, client = await attempt(f"ticket={used}")
        await client.close()
        _, client = await attempt(f"ticket={used}")  # refused: logged with a reason
        await client.receive_close()

    async_to_sync(scenario)()
    assert "ticket refused" in caplog.text
    assert used not in caplog.text and token not in caplog.text
