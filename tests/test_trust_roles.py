"""SPEC "Roles on every path" for the real-time layer: a user in no role group gets nothing.

WebsocketCommunicator through the real ASGI stack (origin check, token middleware, router,
consumer), real Redis, real database; every message checked against the shared schema. The
same against a real daphne process is in test_trust_daphne.py.

Users: `admin` (group admin), `viewer` (group viewer) from conftest; `norole` — logged in, in
no role group; `root` — a superuser in no group (counts as admin).
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import Client as BrowserClient
from rest_framework.test import APIClient

from accounts.services import issue_access_token
from realtime import presence
from realtime.messages import CHANNELS
from realtime.tickets import issue_ticket
from tests.conftest import PASSWORD
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)

DENIED = {"type": "error", "message": "Permission denied"}


async def refused(path: str) -> tuple[dict, int]:
    """The first message and the close code right after it (nothing in between)."""
    client = Client(path)
    connected, _ = await client.connect()
    assert connected
    first = await client.receive()
    return first, await client.receive_close()


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("since", ["", "&since=0"])
def test_a_no_role_token_is_refused_on_every_channel_before_any_data(norole, channel, since):
    token, _ = issue_access_token(norole)
    first, code = async_to_sync(refused)(f"/ws/{channel}?token={token}{since}")
    assert (first, code) == (DENIED, 4003)
    assert presence.count(channel) == 0  # never joined, so never counted or replayed to


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_no_role_ticket_is_refused_on_every_channel(norole, channel):
    token, session = issue_access_token(norole)
    # The endpoint refuses this user a ticket (below); a ticket issued while the user still had
    # a role, or by the admin's live-ticket path, must not open a socket either.
    ticket, _ = issue_ticket(user=norole, jti=session.jti)
    first, code = async_to_sync(refused)(f"/ws/{channel}?ticket={ticket}&since=0")
    assert (first, code) == (DENIED, 4003)


def test_the_ws_ticket_endpoint_answers_403_to_a_user_with_no_role(norole, viewer):
    for user, expected in ((norole, 403), (viewer, 201)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user)[0]}")
        assert client.post("/api/v1/auth/ws-ticket").status_code == expected


def test_a_user_whose_role_was_removed_is_refused_on_the_next_socket(viewer):
    token, _ = issue_access_token(viewer)
    viewer.groups.clear()
    first, code = async_to_sync(refused)(f"/ws/alerts?token={token}")
    assert (first, code) == (DENIED, 4003)


def test_a_superuser_in_no_group_counts_as_admin(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.test", PASSWORD)
    token, _ = issue_access_token(root)

    async def scenario():
        client = Client(f"/ws/dashboard?token={token}")
        await client.connect()
        hello = await client.receive()
        await client.close()
        return hello

    assert async_to_sync(scenario)()["type"] == "connection"


def test_staff_with_no_role_get_no_admin_live_ticket(norole, admin_user):
    norole.is_staff = True
    norole.save()
    browser = BrowserClient()
    browser.force_login(norole)
    response = browser.post("/admin/live-ticket/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Permission denied: your account has no role."}
    # Staff with a role still get one.
    admin_user.is_staff = True
    admin_user.save()
    browser = BrowserClient()
    browser.force_login(admin_user)
    assert browser.post("/admin/live-ticket/").status_code == 200
