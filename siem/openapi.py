"""OpenAPI descriptions of our two authentication schemes (imported by siem.api_urls)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import get_class


class BearerJWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SessionJWTAuthentication"
    name = "BearerJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`Authorization: Bearer <access_token>` from POST /api/v1/auth/login. Valid "
                "JWT_ACCESS_TOKEN_LIFETIME_SEC (8 h by default) unless the session is revoked "
                "(logout, admin) or the user deactivated."
            ),
        }


class AgentTokenScheme(OpenApiAuthenticationExtension):
    """Matches the agents app's authentication class, whatever its name."""

    target_class = "rest_framework.authentication.BaseAuthentication"
    name = "AgentToken"
    priority = 1

    @classmethod
    def _matches(cls, target) -> bool:
        return get_class(target).__module__.startswith("agents.")

    def get_security_definition(self, auto_schema):
        return settings.SPECTACULAR_SETTINGS["APPEND_COMPONENTS"]["securitySchemes"]["AgentToken"]
