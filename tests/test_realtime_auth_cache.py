"""The WebSocket authentication cache (realtime/auth.py): one Redis lookup per handshake once a
session is known, and never a stale yes after a revocation, a deactivation or a role change.

Users: `admin` (group admin), `viewer` (group viewer), `norole` (no group) from conftest.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import issue_access_token, revoke_session
from accounts.tokens import InvalidToken
from realtime import auth
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


def identify(token: str) -> auth.SocketIdentity:
    return async_to_sync(auth.authenticate_token)(token)


def test_a_known_session_is_authenticated_without_the_database(viewer):
    token, session = issue_access_token(viewer)
    first = identify(token)
    assert (first.username, first.role, first.jti) == ("viewer", "viewer", session.jti)
    with CaptureQueriesContext(connection) as queries:
        again = identify(token)
    assert len(queries) == 0
    assert again == first


def test_the_cache_carries_the_role_of_a_user_in_no_group(norole):
    token, _ = issue_access_token(norole)
    identify(token)
    with CaptureQueriesContext(connection) as queries:
        assert identify(token).role is None
    assert len(queries) == 0


def test_a_revoked_session_is_refused_even_when_cached(viewer):
    token, session = issue_access_token(viewer)
    identify(token)
    revoke_session(session, reason="logout")
    with pytest.raises(InvalidToken, match="revoked"):
        identify(token)


def test_a_deactivated_user_is_refused_even_when_cached(viewer):
    token, _ = issue_access_token(viewer)
    identify(token)
    viewer.is_active = False
    viewer.save()
    with pytest.raises(InvalidToken):
        identify(token)


def test_a_group_change_is_seen_at_the_next_handshake(viewer):
    token, _ = issue_access_token(viewer)
    assert identify(token).role == "viewer"
    viewer.groups.add(Group.objects.get(name="admin"))
    assert identify(token).role == "admin"
    viewer.groups.clear()
    assert identify(token).role is None
    Group.objects.get(name="analyst").user_set.add(viewer)
    assert identify(token).role == "analyst"


def test_a_socket_opens_with_a_cached_identity_and_closes_on_logout(viewer):
    token, session = issue_access_token(viewer)
    identify(token)  # warm

    async def scenario():
        client = Client(f"/ws/alerts?token={token}")
        assert (await client.connect())[0]
        greeting = await client.receive()
        from channels.db import database_sync_to_async

        await database_sync_to_async(revoke_session)(session, reason="logout")
        error = await client.receive()
        code = await client.receive_close()
        return greeting, error, code

    greeting, error, code = async_to_sync(scenario)()
    assert greeting["type"] == "connection"
    assert error == {"type": "error", "message": "Invalid token"}
    assert code == 4003


def test_a_handshake_racing_a_logout_is_refused(viewer):
    """The identity was read (and cached) just before the logout committed: the marker wins."""
    token, session = issue_access_token(viewer)
    identify(token)
    revoke_session(session, reason="logout")

    async def scenario():
        client = Client(f"/ws/alerts?token={token}")
        assert (await client.connect())[0]
        return await client.receive(), await client.receive_close()

    assert async_to_sync(scenario)() == ({"type": "error", "message": "Invalid token"}, 4003)
