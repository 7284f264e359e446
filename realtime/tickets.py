"""One-time WebSocket tickets: `?ticket=` instead of `?token=`, so long-lived access tokens
need not sit in URLs, proxy logs and browser history.

`POST /api/v1/auth/ws-ticket` (Bearer) returns a random ticket valid `REALTIME_TICKET_TTL_SEC`
(30) seconds for one handshake. Redis holds only its SHA-256, mapped to the token's session id
(`jti`); GETDEL makes it single-use even with several server processes racing. A socket opened
with a ticket belongs to that session: logout, revocation and expiry close it exactly like a
socket opened with the token itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets

from django.conf import settings

from accounts.models import Session
from accounts.tokens import InvalidToken, TokenIdentity
from siem import redis as siem_redis

DEFAULT_TTL_SEC = 30


def ttl_seconds() -> int:
    return int(getattr(settings, "REALTIME_TICKET_TTL_SEC", DEFAULT_TTL_SEC))


def _key(ticket: str) -> str:
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    return f"{settings.REDIS_KEY_PREFIX}:rt:ticket:{digest}"


def issue_ticket(*, user, jti: str) -> tuple[str, int]:
    """A fresh single-use ticket for the session `jti` of `user`; (ticket, lifetime)."""
    ticket = "wst_" + secrets.token_urlsafe(32)
    ttl = ttl_seconds()
    siem_redis.client().set(_key(ticket), json.dumps({"jti": str(jti), "user_id": user.pk}), ex=ttl)
    return ticket, ttl


def redeem_ticket(ticket: str) -> TokenIdentity:
    """The identity behind a ticket, consuming it; InvalidToken if unknown, used or expired,
    or if its session or user is no longer active (sync: call through a thread)."""
    if not ticket or len(ticket) > 200:
        raise InvalidToken("malformed ticket")
    raw = siem_redis.client().getdel(_key(ticket))
    if raw is None:
        raise InvalidToken("ticket unknown, already used or expired")
    claims = json.loads(raw)
    session = Session.objects.active().filter(jti=claims["jti"]).select_related("user").first()
    if session is None:
        raise InvalidToken("ticket's session revoked or expired")
    user = session.user
    if user.pk != claims["user_id"] or not user.is_active:
        raise InvalidToken("ticket's user inactive or mismatched")
    return TokenIdentity(user=user, session=session, jti=session.jti)


async def aredeem_claims(ticket: str) -> dict:
    """Consume a ticket in the event loop: its claims `{"jti", "user_id"}`, or InvalidToken.

    The WebSocket handshake's path: the session behind the claims is then checked through the
    authentication cache (`realtime.auth.cached_identity`), not the database each time.
    """
    if not ticket or len(ticket) > 200:
        raise InvalidToken("malformed ticket")
    raw = await siem_redis.aclient().getdel(_key(ticket))
    if raw is None:
        raise InvalidToken("ticket unknown, already used or expired")
    return json.loads(raw)
