"""Short-lived WebSocket credentials for the session-authenticated Django admin.

The admin pages authenticate with Django's session cookie, while every WebSocket needs a JWT
(SPEC: `?token=`). Instead of exposing the analyst's long-lived token to admin pages, a staff
member's browser asks `POST /admin/live-ticket/` (session + CSRF) for a credential that only
lives long enough to open a socket: a one-time ticket once the real-time layer offers them
(issue 9), otherwise an access token whose session row expires after a few minutes and can be
revoked like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Session

# The socket closes (4003) when its token expires and the page quietly fetches a new one: ten
# minutes keeps that rare while a token leaked through a URL is soon useless.
ADMIN_LIVE_TOKEN_LIFETIME_SEC = 600
ADMIN_LIVE_USER_AGENT = "django-admin live alert list"


def issue_admin_live_token(user, *, client_ip: str | None = None) -> tuple[str, int]:
    """A fresh access token for `user` valid ADMIN_LIVE_TOKEN_LIFETIME_SEC; (token, lifetime)."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=ADMIN_LIVE_TOKEN_LIFETIME_SEC))
    with transaction.atomic():
        Session.objects.create(
            jti=str(token["jti"]),
            user=user,
            expires_at=datetime.fromtimestamp(int(token["exp"]), tz=UTC),
            client_ip=client_ip or None,
            user_agent=ADMIN_LIVE_USER_AGENT,
        )
    return str(token), ADMIN_LIVE_TOKEN_LIFETIME_SEC
