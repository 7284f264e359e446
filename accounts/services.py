"""Session lifecycle: issue on login, revoke on logout or by an admin."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts import audit
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
    """Revoke one session; True if it was active. Open sockets notice within seconds.

    A revocation by someone else than the session's owner (an admin) is audited; a logout is
    the owner's own business.
    """
    with transaction.atomic():
        updated = Session.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=reason[:100]
        )
        if updated:
            logger.info(
                "Session %s of user %s revoked (%s)",
                session.pk,
                session.user.get_username(),
                reason,
            )
            if actor is not None and getattr(actor, "pk", None) != session.user_id:
                audit.record(
                    "session.revoked",
                    actor=actor,
                    target=session,
                    details={"user": session.user.get_username(), "reason": reason},
                )
            _notify_revoked([session.jti])
    return bool(updated)


def revoke_user_sessions(user, *, reason: str = "revoked by admin", actor=None) -> int:
    with transaction.atomic():
        jtis = list(Session.objects.active().filter(user=user).values_list("jti", flat=True))
        count = Session.objects.filter(jti__in=jtis, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=reason[:100]
        )
        if count:
            audit.record(
                "session.revoked",
                actor=actor,
                target=user,
                details={"user": user.get_username(), "reason": reason, "sessions": count},
            )
        if jtis:
            _notify_revoked(jtis)
    return count


def record_failed_login(username: str, client_ip: str | None, *, lockouts=()) -> None:
    """Log a failed login; audit the failure that starts a lockout.

    The typed name is logged only if such a user exists: people type passwords into the user
    name field, and those must not end up in the logs.
    """
    User = get_user_model()
    exists = User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists()
    shown = repr(username[:150]) if exists else "(no such user)"
    logger.info("Failed login for user %s from %s", shown, client_ip)
    if lockouts:
        audit.record(
            "login.lockout",
            target_type="login",
            target_id=username[:150] if exists else "",
            details={"scopes": list(lockouts), "known_user": exists},
            ip_address=client_ip,
        )


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
