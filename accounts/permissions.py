"""Role permissions for the REST API, built on `accounts.roles`.

- `IsRoleUser`: any user in a role group (admin, analyst, viewer; superusers count as admin).
- `CanTriage`: admins and analysts.
- `ReadRoleWriteTriage`: safe methods for any role user, writes for admins and analysts.
- `ReadRoleWriteAdmin`: safe methods for any role user, writes for admins only.

Anonymous requests fail with 401 (the authentication class sends `WWW-Authenticate`); a user
who is logged in but has no role group gets 403.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts import roles

_CACHE_ATTR = "_siem_role"


def request_role(request) -> str | None:
    """The caller's role, looked up once per request (groups cost a query)."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, _CACHE_ATTR):
        setattr(user, _CACHE_ATTR, roles.get_role(user))
    return getattr(user, _CACHE_ATTR)


class IsRoleUser(BasePermission):
    message = "Your account has no role (admin, analyst or viewer)."

    def has_permission(self, request, view) -> bool:
        return request_role(request) in roles.ROLES


class CanTriage(BasePermission):
    message = "Only the admin and analyst roles may do this."

    def has_permission(self, request, view) -> bool:
        return request_role(request) in {roles.ADMIN, roles.ANALYST}


class ReadRoleWriteTriage(BasePermission):
    message = "Only the admin and analyst roles may change data; viewers read."
    writers = frozenset({roles.ADMIN, roles.ANALYST})

    def has_permission(self, request, view) -> bool:
        role = request_role(request)
        if request.method in SAFE_METHODS:
            if role is None:
                self.message = IsRoleUser.message
            return role in roles.ROLES
        return role in self.writers


class ReadRoleWriteAdmin(ReadRoleWriteTriage):
    """Safe methods for any role user, writes for admins only (detection rules)."""

    message = "Only the admin role may change this; analysts and viewers read."
    writers = frozenset({roles.ADMIN})
