"""WebSocket handshake guards: the Origin check and the `?token=` authentication.

Neither refuses an authentication failure at the HTTP level: the guide wants the socket
accepted, then told `Token required` (close 4001) or `Invalid token` (close 4003), so a browser
can show why. The middleware only records the outcome in the scope; the consumer speaks.
A disallowed browser Origin, on the other hand, is refused before the handshake (HTTP 403).

One cached lookup per socket (docs/realtime.md "Authentication cache"): a reconnect storm of
1,000 sockets must not be 2,000 database queries queued on one thread. So:
1. The JWT's signature and expiry are checked in the event loop (pure CPU, ~50 us).
2. One Redis MGET reads the session's cached identity `<prefix>:auth:s:<jti>` (user id, user
   name, role, expiry) and its revocation marker `<prefix>:auth:revoked:<jti>`.
3. A miss goes to the database once (session active, user active, role) and fills the cache
   for `REALTIME_AUTH_CACHE_SEC` (never past the session's expiry).
Invalidation: a revocation (logout, admin, deactivated user) writes the marker after commit and
before the revocation broadcast (`mark_revoked`), so a cached entry filled by a racing
handshake is still refused; a change of the user's groups or flags drops the user's entries
(`forget_user`, from `realtime.apps`). The periodic database re-check of open sockets stays
as the safety net for a marker lost while Redis was unreachable.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts.tokens import InvalidToken
from siem.client_address import scope_client_ip

logger = logging.getLogger("realtime")

DEFAULT_AUTH_CACHE_SEC = 300

TOKEN_REQUIRED = "Token required"  # noqa: S105 (a message, not a secret)
INVALID_TOKEN = "Invalid token"  # noqa: S105 (a message, not a secret)
# SPEC "Roles on every path": a valid token of a user in no role group gets this and close 4003.
PERMISSION_DENIED = "Permission denied"


def may_subscribe(user) -> bool:
    """May this (authenticated, active) user open any `/ws/` channel or get a live ticket?
    The one role check of the real-time layer; sockets read the role from the cached
    identity (`SocketIdentity.role`), which `accounts.roles.get_role` filled."""
    from accounts.roles import get_role

    return get_role(user) is not None


def token_from_query(query_string: bytes | str, name: str = "token") -> str:
    """The first non-empty `token` (or `name`) of the query string, or ""."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    for value in parse_qs(query_string, keep_blank_values=True).get(name, []):
        if value.strip():
            return value.strip()
    return ""


# --- the cached identity of a socket ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SocketIdentity:
    """Who opened a socket: all the consumer (and the role check) needs, without ORM objects."""

    jti: str
    user_id: int
    username: str
    role: str | None  # accounts.roles: admin / analyst / viewer, None for a user in no group
    expires_at: float  # the session's expiry (epoch seconds)


@dataclass(frozen=True, slots=True)
class SocketUser:
    """`scope["user"]` of an authenticated socket: a small stand-in for the User row (a
    socket's scope lives as long as the socket; the ORM object weighs kilobytes)."""

    pk: int
    username: str
    role: str | None = None  # the cached role: check this, not the user's groups (a query)
    is_active: bool = True
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def id(self) -> int:
        return self.pk

    def get_username(self) -> str:
        return self.username


def cache_seconds() -> int:
    return int(getattr(settings, "REALTIME_AUTH_CACHE_SEC", DEFAULT_AUTH_CACHE_SEC))


def _session_key(jti: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:auth:s:{jti}"


def revoked_key(jti: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:auth:revoked:{jti}"


def _decode(raw: str) -> tuple[str, str]:
    """(jti, user id) of a token whose signature and expiry check out; InvalidToken if not."""
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import AccessToken

    try:
        token = AccessToken(raw)
    except TokenError as exc:
        raise InvalidToken(f"bad token: {exc}") from exc
    jti, user_id = token.get("jti"), token.get("user_id")
    if not jti or user_id is None:
        raise InvalidToken("token lacks jti or user")
    return str(jti), str(user_id)


def _identity_from_database(jti: str) -> SocketIdentity:
    """The database's answer for `jti` (sync: through a thread). One query for the session and
    user, one for the role's groups (none for a superuser)."""
    from accounts.models import Session
    from accounts.roles import get_role

    session = Session.objects.active().filter(jti=jti).select_related("user").first()
    if session is None:
        raise InvalidToken("session revoked, expired or unknown")
    user = session.user
    if not user.is_active:
        raise InvalidToken("user inactive")
    return SocketIdentity(
        jti=jti,
        user_id=user.pk,
        username=user.get_username(),
        role=get_role(user),
        expires_at=session.expires_at.timestamp(),
    )


async def cached_identity(jti: str, user_id: str | int | None = None) -> SocketIdentity:
    """The identity behind an active session `jti`, from the cache or (once) the database.

    `user_id`: the token's (or ticket's) claim, which must match. Redis unreachable: the
    database answers alone (slower, still correct).
    """
    from siem.redis import aclient as _aclient

    client = _aclient()
    try:
        cached, revoked = await client.mget(_session_key(jti), revoked_key(jti))
    except (redis.RedisError, OSError):
        cached = revoked = client = None
    if revoked is not None:
        raise InvalidToken("session revoked")
    if cached is not None:
        identity = SocketIdentity(jti=jti, **json.loads(cached))
        if identity.expires_at <= time.time():
            raise InvalidToken("session expired")
    else:
        identity = await database_sync_to_async(_identity_from_database)(jti)
        ttl = int(min(cache_seconds(), identity.expires_at - time.time()))
        if client is not None and ttl > 0:
            body = {
                "user_id": identity.user_id,
                "username": identity.username,
                "role": identity.role,
                "expires_at": identity.expires_at,
            }
            try:
                await client.set(_session_key(jti), json.dumps(body), ex=ttl)
            except (redis.RedisError, OSError):
                pass  # next handshake asks the database again
    if user_id is not None and str(identity.user_id) != str(user_id):
        raise InvalidToken("user mismatched")
    return identity


async def authenticate_token(raw: str) -> SocketIdentity:
    jti, user_id = _decode(raw)
    return await cached_identity(jti, user_id)


async def authenticate_ticket(ticket: str) -> SocketIdentity:
    from realtime.tickets import aredeem_claims

    claims = await aredeem_claims(ticket)
    return await cached_identity(claims["jti"], claims["user_id"])


async def is_revoked(jti: str) -> bool:
    """Has `jti` been revoked since its identity was read? One Redis EXISTS (the consumer asks
    once it is subscribed to revocations, closing the race with a logout in between);
    the database answers when Redis does not."""
    from siem.redis import aclient as _aclient

    try:
        return bool(await _aclient().exists(revoked_key(jti)))
    except (redis.RedisError, OSError):
        return not await database_sync_to_async(_session_still_active)(jti)


def _session_still_active(jti: str) -> bool:
    from accounts.models import Session

    return Session.objects.active().filter(jti=jti, user__is_active=True).exists()


# --- invalidation (sync: services, signals) ---------------------------------------------------
def mark_revoked(jtis: list[str]) -> None:
    """Refuse these sessions from the cache on: write the markers, drop the entries. Called
    after the revocation commits and before its broadcast (accounts.services)."""
    from siem.redis import client as _client

    if not jtis:
        return
    ttl = int(getattr(settings, "JWT_ACCESS_TOKEN_LIFETIME_SEC", 28800)) + 60
    try:
        pipe = _client().pipeline(transaction=False)
        for jti in jtis:
            pipe.set(revoked_key(jti), 1, ex=ttl)
            pipe.delete(_session_key(jti))
        pipe.execute()
    except (redis.RedisError, OSError):
        # Open sockets still close on the revocation broadcast (retried from the backlog) or
        # the periodic re-check; a cached entry lives at most REALTIME_AUTH_CACHE_SEC.
        logger.warning("Auth cache: revocation markers not written (Redis unavailable)")


def forget_sessions(jtis: list[str]) -> None:
    """Drop cached identities (role or flags changed): the next handshake reads the database."""
    from siem.redis import client as _client

    if not jtis:
        return
    try:
        _client().delete(*(_session_key(jti) for jti in jtis))
    except (redis.RedisError, OSError):
        logger.warning("Auth cache: %d entries not dropped (Redis unavailable)", len(jtis))


def forget_user(user_id: int) -> None:
    from accounts.models import Session

    forget_sessions(
        list(Session.objects.active().filter(user_id=user_id).values_list("jti", flat=True))
    )


class QueryTokenAuthMiddleware:
    """Validates `?token=` like REST does (or redeems a one-time `?ticket=`); sets scope
    `user` (a `SocketUser`), `token_identity` (a `SocketIdentity`, with the role), `role` and
    `auth_error`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        scope = dict(scope, user=AnonymousUser(), token_identity=None, role=None, auth_error=None)
        query = scope.get("query_string", b"")
        raw = token_from_query(query)
        ticket = "" if raw else token_from_query(query, name="ticket")
        if not raw and not ticket:
            scope["auth_error"] = TOKEN_REQUIRED
        else:
            try:
                if raw:
                    identity = await authenticate_token(raw)
                else:
                    identity = await authenticate_ticket(ticket)
            except InvalidToken as exc:
                # The reason is safe to log (it never contains the token); clients see only
                # "Invalid token".
                logger.info(
                    "WebSocket %s refused from %s: %s",
                    "token" if raw else "ticket",
                    scope_client_ip(scope),
                    exc,
                )
                scope["auth_error"] = INVALID_TOKEN
            else:
                if identity.role is None:
                    # Refused before the consumer subscribes or replays anything (close 4003).
                    logger.warning(
                        "WebSocket refused from %s: user %s has no role",
                        scope_client_ip(scope),
                        identity.username,
                    )
                    scope["auth_error"] = PERMISSION_DENIED
                scope["token_identity"] = identity
                scope["role"] = identity.role
                scope["user"] = SocketUser(
                    pk=identity.user_id, username=identity.username, role=identity.role
                )
        return await self.app(scope, receive, send)


def origin_allowed(origin: str) -> bool:
    """Is a browser Origin in CORS_ORIGINS, or its host in ALLOWED_HOSTS?"""
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and garbage
    normalized = f"{parts.scheme}://{parts.netloc}".lower()
    if normalized in {o.rstrip("/").lower() for o in settings.CORS_ORIGINS}:
        return True
    host, _port = split_domain_port(parts.netloc)
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class OriginCheckMiddleware:
    """Refuses a handshake (HTTP 403) whose Origin is not allowed; no Origin is allowed.

    Origin only protects browsers from cross-site WebSocket hijacking; non-browser clients
    (the guide's Python client, agents, scripts) send none and authenticate with the token.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origins = [v for k, v in scope.get("headers", []) if k == b"origin"]
            if origins:
                origin = origins[-1].decode("latin-1")
                if not origin_allowed(origin):
                    logger.warning(
                        "WebSocket handshake refused from %s: origin %r not allowed",
                        scope_client_ip(scope),
                        origin,
                    )
                    await receive()  # websocket.connect
                    await send({"type": "websocket.close", "code": 1008})
                    return
        return await self.app(scope, receive, send)
