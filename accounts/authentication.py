"""REST authentication for users: `Authorization: Bearer <access token>`.

Every request re-checks the signature, expiry, the server-side session (not revoked) and that
the user is active, through the same `validate_access_token` the WebSocket middleware uses.
Other schemes (e.g. `Agent <token>`) are not ours: we return None so DRF answers 401 unless a
view lists the agents' own authentication class.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.tokens import InvalidToken, TokenIdentity, validate_access_token

KEYWORD = "Bearer"


class SessionJWTAuthentication(BaseAuthentication):
    """Authenticates `Bearer` JWTs; `request.auth` is the `TokenIdentity` (user, session, jti)."""

    keyword = KEYWORD

    def authenticate(self, request) -> tuple[object, TokenIdentity] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: expected 'Bearer <token>'")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token") from None
        try:
            identity = validate_access_token(raw)
        except InvalidToken:
            # The reason (expired, revoked, inactive user...) stays server-side, as in the guide.
            raise AuthenticationFailed("Invalid token") from None
        return identity.user, identity

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate value makes DRF answer 401 (not 403) to unauthenticated requests.
        return f'{self.keyword} realm="api"'
