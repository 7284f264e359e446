"""Session lifecycle: issue on login, revoke on logout or by an admin."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Session

logger = logging.getLogger(__name__)


def issue_access_token(
    user, *, client_ip: str | None = None, user_agent: str = ""
) -> tuple[str, Session]:
    """Create a simplejwt access token for `user` and the session row that keeps it valid."""
    token = AccessToken.for_user(user)
    expires_at = datetime.fromtimestamp(int(token["exp"]), tz=UTC)
    with transaction.atomic():
        session = Session.objects.create(
            jti=str(token["jti"]),
            user=user,
            expires_at=expires_at,
            client_ip=client_ip or None,
            user_agent=(user_agent or "")[:512],
        )
    logger.info("Session %s issued for user %s", session.pk, user.get_username())
    return str(token), session


def revoke_session(session: Session, *, reason: str = "logout", actor=None) -> bool:
    """Revoke one session; True if it was active. Open sockets notice within seconds."""
    updated = Session.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason[:100]
    )
    if updated:
        logger.info(
            "Session %s of user %s revoked (%s)", session.pk, session.user.get_username(), reason
        )
        _notify_revoked([session.jti])
    return bool(updated)


def revoke_user_sessions(user, *, reason: str = "revoked by admin") -> int:
    jtis = list(Session.objects.active().filter(user=user).values_list("jti", flat=True))
    count = Session.objects.filter(jti__in=jtis, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason[:100]
    )
    if jtis:
        _notify_revoked(jtis)
    return count


def _notify_revoked(jtis: list[str]) -> None:
    """Tell every server process to close sockets opened with these tokens (after commit).

    First the WebSocket authentication cache's markers (a handshake racing this revocation is
    refused), then the broadcast that closes open sockets: on_commit keeps that order.
    """
    from realtime.auth import mark_revoked
    from realtime.manager import get_connection_manager

    transaction.on_commit(lambda: mark_revoked(jtis), robust=True)
    get_connection_manager().revoke_sessions(jtis)


def access_token_lifetime() -> int:
    return int(settings.JWT_ACCESS_TOKEN_LIFETIME_SEC)
