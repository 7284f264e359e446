"""The /ws/<channel> consumer through the real ASGI stack (origin check, token middleware, router)
with WebsocketCommunicator, the real Redis channel layer and the real database.

Users: `admin` (group admin), `viewer` (group viewer) from conftest; tokens are issued by the
same service as login. Every received message is validated against the shared schema.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.models import Session
from accounts.services import issue_access_token, revoke_session
from realtime.messages import CHANNELS
from tests.ws_helpers import Client, open_channel

pytestmark = pytest.mark.django_db(transaction=True)


def run(scenario):
    return async_to_sync(scenario)()


@pytest.fixture(autouse=True)
def role_groups(django_db_setup, django_db_blocker):
    """Transactional tests flush the tables, including the role groups the migration made."""
    from django.contrib.auth.models import Group

    from accounts.roles import ROLES

    with django_db_blocker.unblock():
        for name in ROLES:
            Group.objects.get_or_create(name=name)


@pytest.fixture(autouse=True)
def no_presence_records():
    """Each test starts with no presence records under this run's prefix."""
    from realtime import presence

    def wipe():
        client = presence._client()
        for channel in CHANNELS:
            client.delete(presence.key(channel))

    wipe()
    yield
    wipe()


@pytest.fixture
def token(admin_user) -> str:
    return issue_access_token(admin_user)[0]


@pytest.mark.parametrize("channel", CHANNELS)
def test_each_channel_greets_with_the_connection_message(token, channel):
    async def scenario():
        client = Client(f"/ws/{channel}?token={token}")
        assert (await client.connect())[0]
        hello = await client.receive()
        assert hello["type"] == "connection"
        assert hello["status"] == "connected"
        assert hello["channel"] == channel
        assert hello["timestamp"].endswith("Z")
        await client.close()

    run(scenario)


def test_trailing_slash_reaches_the_same_channel(token):
    async def scenario():
        client = Client(f"/ws/alerts/?token={token}")
        await client.connect()
        assert (await client.receive())["channel"] == "alerts"
        await client.close()

    run(scenario)


@pytest.mark.parametrize("path", ["/ws/alerts", "/ws/alerts?token=", "/ws/alerts?other=1"])
def test_missing_token_is_told_token_required_and_closed_4001(db, path):
    async def scenario():
        client = Client(path)
        assert (await client.connect())[0]  # accepted first, so a browser can read why
        assert await client.receive() == {"type": "error", "message": "Token required"}
        assert await client.receive_close() == 4001

    run(scenario)


def test_garbage_token_is_told_invalid_token_and_closed_4003(db):
    async def scenario():
        client = Client("/ws/alerts?token=not-a-jwt")
        await client.connect()
        assert await client.receive() == {"type": "error", "message": "Invalid token"}
        assert await client.receive_close() == 4003

    run(scenario)


def test_revoked_expired_and_inactive_tokens_are_invalid(admin_user, viewer):
    revoked, revoked_session = issue_access_token(admin_user)
    revoke_session(revoked_session)
    expired, expired_session = issue_access_token(admin_user)
    Session.objects.filter(pk=expired_session.pk).update(expires_at=timezone.now())
    inactive, _ = issue_access_token(viewer)
    viewer.is_active = False
    viewer.save()

    async def scenario():
        for token in (revoked, expired, inactive):
            client = Client(f"/ws/dashboard?token={token}")
            await client.connect()
            assert await client.receive() == {"type": "error", "message": "Invalid token"}
            assert await client.receive_close() == 4003

    run(scenario)


def test_token_signed_with_another_key_is_invalid(admin_user, settings):
    from rest_framework_simplejwt.tokens import AccessToken

    forged = AccessToken.for_user(admin_user)
    forged_str = str(forged).rsplit(".", 1)[0] + ".AAAA"

    async def scenario():
        client = Client(f"/ws/alerts?token={forged_str}")
        await client.connect()
        assert await client.receive() == {"type": "error", "message": "Invalid token"}
        assert await client.receive_close() == 4003

    run(scenario)


@pytest.mark.parametrize("path", ["/ws/nope", "/ws/alerts/extra", "/elsewhere", "/ws/"])
def test_unknown_channel_gets_an_error_and_close_4004(token, path):
    async def scenario():
        client = Client(f"{path}?token={token}")
        await client.connect()
        assert await client.receive() == {"type": "error", "message": "Unknown channel"}
        assert await client.receive_close() == 4004

    run(scenario)


@pytest.mark.parametrize(
    "ping", ["ping", '{"type":"ping"}', " ping\n", '{"type": "ping", "id": 7}']
)
def test_ping_gets_pong(token, ping):
    async def scenario():
        client = await open_channel("alerts", token)
        await client.send_text(ping)
        pong = await client.receive()
        assert pong["type"] == "pong" and set(pong) == {"type", "timestamp"}
        await client.close()

    run(scenario)


@pytest.mark.parametrize(
    "garbage",
    ["hello", "{", "[]", "null", '{"type":"subscribe"}', '{"no":"type"}', "PING", "x" * 100_000],
)
def test_garbage_input_gets_an_error_and_the_socket_stays_open(token, garbage):
    async def scenario():
        client = await open_channel("events", token)
        await client.send_text(garbage)
        error = await client.receive()
        assert error["type"] == "error"
        assert "ping" in error["message"]
        await client.send_text("ping")  # still open and serving
        assert (await client.receive())["type"] == "pong"
        await client.close()

    run(scenario)


def test_binary_frame_gets_an_error_and_the_socket_stays_open(token):
    async def scenario():
        client = await open_channel("events", token)
        await client.send_bytes(b"\x00\x01ping")
        assert (await client.receive())["type"] == "error"
        await client.send_text('{"type":"ping"}')
        assert (await client.receive())["type"] == "pong"
        await client.close()

    run(scenario)


def test_logout_closes_open_sockets_of_that_token_only(admin_user):
    token, session = issue_access_token(admin_user)
    other_token, _ = issue_access_token(admin_user)

    async def scenario():
        first = await open_channel("alerts", token)
        second = await open_channel("dashboard", token)
        other = await open_channel("alerts", other_token)
        await database_sync_to_async(revoke_session)(session)
        for client in (first, second):
            assert await client.receive() == {"type": "error", "message": "Invalid token"}
            assert await client.receive_close() == 4003
        assert await other.nothing_more()
        await other.send_text("ping")
        assert (await other.receive())["type"] == "pong"
        await other.close()

    run(scenario)


def test_token_expiry_closes_the_socket_with_invalid_token(admin_user):
    token, session = issue_access_token(admin_user)
    # The session ends in one second (the JWT itself would still verify for hours).
    Session.objects.filter(pk=session.pk).update(expires_at=timezone.now() + timedelta(seconds=1))

    async def scenario():
        client = await open_channel("incidents", token)
        assert await client.receive(timeout=5) == {"type": "error", "message": "Invalid token"}
        assert await client.receive_close() == 4003

    run(scenario)


def test_periodic_recheck_closes_a_socket_whose_revocation_message_was_lost(admin_user, settings):
    settings.REALTIME_SESSION_RECHECK_SEC = 0.2
    token, session = issue_access_token(admin_user)

    async def scenario():
        client = await open_channel("agents", token)
        # Revoked in the database only: no group message is sent.
        await database_sync_to_async(Session.objects.filter(pk=session.pk).update)(
            revoked_at=timezone.now()
        )
        assert await client.receive(timeout=5) == {"type": "error", "message": "Invalid token"}
        assert await client.receive_close() == 4003

    run(scenario)


def test_connect_and_disconnect_log_the_guides_four_lines_without_the_token(token, caplog):
    caplog.set_level(logging.INFO, logger="realtime")

    async def scenario():
        client = await open_channel("alerts", token)
        await client.close()

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "realtime"]
    assert lines == [
        "User admin connecting to alerts channel",
        "Client connected to channel 'alerts' (total: 1)",
        "User admin disconnected from alerts channel",
        "Client disconnected from channel 'alerts' (remaining: 0)",
    ]
    assert all(token not in r.getMessage() for r in caplog.records)


def test_refused_token_is_logged_without_the_token(db, caplog):
    caplog.set_level(logging.DEBUG)
    bad = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"

    async def scenario():
        client = Client(f"/ws/alerts?token={bad}")
        await client.connect()
        await client.receive()

    run(scenario)
    assert caplog.records
    assert all(bad not in r.getMessage() and "token=" not in r.getMessage() for r in caplog.records)


def test_origin_outside_cors_and_allowed_hosts_is_refused_before_the_handshake(token, settings):
    settings.CORS_ORIGINS = ["http://localhost:3000"]
    settings.ALLOWED_HOSTS = ["siem.example.test"]

    async def scenario():
        for origin, allowed in [
            (b"http://localhost:3000", True),  # CORS_ORIGINS
            (b"https://siem.example.test", True),  # ALLOWED_HOSTS
            (b"http://localhost:3001", False),
            (b"https://evil.example.test", False),
            (b"null", False),
        ]:
            client = Client(f"/ws/alerts?token={token}", headers=[(b"origin", origin)])
            connected, _ = await client.connect()
            assert connected is allowed, origin
            if allowed:
                assert (await client.receive())["type"] == "connection"
                await client.close()
        # Non-browser clients send no Origin at all: the token alone authenticates them.
        client = Client(f"/ws/alerts?token={token}")
        assert (await client.connect())[0]
        await client.close()

    run(scenario)


def test_server_messages_are_json_text_frames(token):
    async def scenario():
        client = await open_channel("alerts", token)
        await client.comm.send_to(text_data="ping")
        raw = await client.comm.receive_from()
        assert isinstance(raw, str) and json.loads(raw)["type"] == "pong"
        await client.close()

    run(scenario)
