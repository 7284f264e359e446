"""Validation of access tokens, shared by REST authentication and the WebSocket middleware.

A token is honoured only if all hold: the signature and expiry check out (simplejwt), its
session row exists and is not revoked or expired, and the user exists and is active.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Session


class InvalidToken(Exception):
    """Any reason a token is refused; the message is for logs, clients only see 'Invalid token'."""


@dataclass(frozen=True)
class TokenIdentity:
    user: object
    session: Session
    jti: str


def validate_access_token(raw: str) -> TokenIdentity:
    """The user and session behind `raw`, or InvalidToken (sync: in async code, use a thread)."""
    if not raw:
        raise InvalidToken("empty token")
    try:
        token = AccessToken(raw)
    except TokenError as exc:
        raise InvalidToken(f"bad token: {exc}") from exc
    jti = token.get("jti")
    user_id = token.get("user_id")
    if not jti or user_id is None:
        raise InvalidToken("token lacks jti or user")
    session = Session.objects.active().filter(jti=str(jti)).select_related("user").first()
    if session is None:
        raise InvalidToken("session revoked, expired or unknown")
    user = session.user
    if str(user.pk) != str(user_id) or not user.is_active:
        raise InvalidToken("user inactive or mismatched")
    return TokenIdentity(user=user, session=session, jti=str(jti))


def user_model():
    return get_user_model()
