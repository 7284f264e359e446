"""WebSocket handshake guards: the Origin check and the `?token=` authentication.

Neither refuses an authentication failure at the HTTP level: the guide wants the socket
accepted, then told `Token required` (close 4001) or `Invalid token` (close 4003), so a browser
can show why. The middleware only records the outcome in the scope; the consumer speaks.
A disallowed browser Origin, on the other hand, is refused before the handshake (HTTP 403).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts.tokens import InvalidToken, validate_access_token
from siem.client_address import scope_client_ip

logger = logging.getLogger("realtime")

TOKEN_REQUIRED = "Token required"  # noqa: S105 (a message, not a secret)
INVALID_TOKEN = "Invalid token"  # noqa: S105 (a message, not a secret)
# SPEC "Roles on every path": a valid token of a user in no role group gets this and close 4003.
PERMISSION_DENIED = "Permission denied"


class NoRole(Exception):
    """A valid token or ticket of a user in no role group (and not a superuser)."""


def may_subscribe(user) -> bool:
    """May this (authenticated, active) user open any `/ws/` channel? The one role check of
    the real-time layer (sync; it costs a groups query, so a cache may wrap it later)."""
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


def _check_token(raw: str):
    return _authorized(validate_access_token(raw))


def _redeem_ticket(ticket: str):
    from realtime.tickets import redeem_ticket

    return _authorized(redeem_ticket(ticket))


def _authorized(identity):
    """The identity if its user has a role, else NoRole; runs in the worker thread, so what
    the consumer reads later (the username) is loaded here, not in the event loop."""
    identity.user.get_username()
    if not may_subscribe(identity.user):
        raise NoRole(identity.user.get_username())
    return identity


class QueryTokenAuthMiddleware:
    """Validates `?token=` like REST does (or redeems a one-time `?ticket=`); sets scope
    `user`, `token_identity` and `auth_error`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        scope = dict(scope, user=AnonymousUser(), token_identity=None, auth_error=None)
        query = scope.get("query_string", b"")
        raw = token_from_query(query)
        ticket = "" if raw else token_from_query(query, name="ticket")
        if not raw and not ticket:
            scope["auth_error"] = TOKEN_REQUIRED
        else:
            check = _check_token if raw else _redeem_ticket
            try:
                scope["token_identity"] = await database_sync_to_async(check)(raw or ticket)
                scope["user"] = scope["token_identity"].user
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
            except NoRole as exc:
                # Refused before the consumer subscribes or replays anything (close 4003).
                logger.warning(
                    "WebSocket refused from %s: user %s has no role", scope_client_ip(scope), exc
                )
                scope["auth_error"] = PERMISSION_DENIED
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
