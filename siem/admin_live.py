"""One-time WebSocket tickets for the session-authenticated Django admin.

The admin pages authenticate with Django's session cookie and hold no JWT, yet every WebSocket
needs one (SPEC: `?token=`) or a one-time ticket (issue 9: `?ticket=`). A staff member's page
asks `POST /admin/live-ticket/` (session + CSRF) for a ticket. The ticket is bound to a
server-side session row of its own, so no bearer token is ever handed to the admin page:

1. reuse the user's admin-live session if it has more than a minute left, otherwise create one
   that lives ADMIN_LIVE_SESSION_LIFETIME_SEC (a row like any login's: the admin can revoke it);
2. issue a single-use ticket (30 s) for that session through `realtime.tickets`.

A socket opened with the ticket closes (4003) when that session expires or is revoked; the page
then asks for a new ticket, which fails with 403 once the admin session has ended.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.utils import timezone

from accounts.models import Session
from realtime.tickets import issue_ticket

# Ten minutes: a socket is renewed rarely, and one that outlives its admin tab is soon closed.
ADMIN_LIVE_SESSION_LIFETIME_SEC = 600
ADMIN_LIVE_USER_AGENT = "django-admin live alert list"
_REUSE_MARGIN = timedelta(seconds=60)


def issue_admin_live_ticket(user, *, client_ip: str | None = None) -> tuple[str, int]:
    """A one-time WebSocket ticket for staff member `user`; (ticket, ticket lifetime)."""
    now = timezone.now()
    session = (
        Session.objects.active()
        .filter(user=user, user_agent=ADMIN_LIVE_USER_AGENT, expires_at__gt=now + _REUSE_MARGIN)
        .order_by("-expires_at")
        .first()
    )
    if session is None:
        session = Session.objects.create(
            # No JWT is signed for it: the id only has to be unique, like a token's `jti`.
            jti=f"admin-live-{secrets.token_hex(16)}",
            user=user,
            expires_at=now + timedelta(seconds=ADMIN_LIVE_SESSION_LIFETIME_SEC),
            client_ip=client_ip or None,
            user_agent=ADMIN_LIVE_USER_AGENT,
        )
    return issue_ticket(user=user, jti=session.jti)
