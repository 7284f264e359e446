"""Domain errors raised by services and understood by every caller (API, admin, commands),
and the answer to a database outage."""

from __future__ import annotations

import logging

from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger("siem.errors")


class InvalidTransition(Exception):
    """A status change that the workflow does not allow, e.g. resolving a resolved alert."""

    def __init__(self, kind: str, obj_id: object, current: str, target: str, reason: str = ""):
        current, target = str(current), str(target)  # plain values, not enum reprs
        self.kind, self.obj_id, self.current, self.target = kind, obj_id, current, target
        message = f"{kind} {obj_id} is {current!r}; cannot change to {target!r}"
        if reason:
            message += f": {reason}"
        super().__init__(message)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """A database outage is a 503 with Retry-After and a JSON body, not Django's HTML 500.

    Agents and scripts retry a 503 after Retry-After and do not mistake it for a bug in what
    they sent; the operator's log still gets the error (once per request, without traceback
    spam). Only connection-level errors (OperationalError, InterfaceError) are translated:
    a constraint violation or a bad query stays a 500, because retrying will not help.
    """

    # MiddlewareMixin: sync and async capable, so the ASGI chain stays asynchronous.
    def process_exception(self, request, exception):
        from django.conf import settings
        from django.db import InterfaceError, OperationalError
        from django.http import JsonResponse

        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("Database unavailable (%s): %s %s", exception, request.method, request.path)
        retry_after = int(settings.DB_UNAVAILABLE_RETRY_AFTER_SEC)
        response = JsonResponse(
            {
                "detail": "The database is unavailable; try again later.",
                "code": "database_unavailable",
            },
            status=503,
        )
        response["Retry-After"] = str(retry_after)
        return response
