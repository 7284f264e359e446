"""The analysts' pages (live dashboard, alert, incident, hunting, rules) and the admin's
WebSocket credential endpoint.

The page holds no secret: it is plain HTML and static JavaScript; the analyst signs in through
`POST /api/v1/auth/login` and the page keeps the JWT in sessionStorage.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from realtime.auth import may_subscribe
from siem.admin_live import issue_admin_live_ticket
from siem.client_address import client_ip

API_BASE = "/api/v1"
DASHBOARD_WS_PATH = "/ws/dashboard"
EVENTS_WS_PATH = "/ws/events"


def content_security_policy(request: HttpRequest) -> str:
    """Only our own scripts, styles and sockets: a stray injected tag cannot run or phone home."""
    host = request.get_host()
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    response = render(
        request,
        "dashboard/index.html",
        {"api_base": API_BASE, "ws_path": DASHBOARD_WS_PATH},
    )
    response["Content-Security-Policy"] = content_security_policy(request)
    response["Referrer-Policy"] = "same-origin"
    return response


def _page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    response = render(request, template, {"api_base": API_BASE, **context})
    response["Content-Security-Policy"] = content_security_policy(request)
    response["Referrer-Policy"] = "same-origin"
    return response


@require_GET
def alert_page(request: HttpRequest, alert_id: int) -> HttpResponse:
    """The alert page: a shell; its data comes over the API once the analyst has signed in."""
    return _page(request, "cases/alert.html", {"alert_id": alert_id, "crumb": f"Alert #{alert_id}"})


@require_GET
def incident_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    return _page(
        request,
        "cases/incident.html",
        {"incident_id": incident_id, "crumb": f"Incident #{incident_id}"},
    )


@require_GET
def hunt(request: HttpRequest) -> HttpResponse:
    """The hunting page (/events/): `?q=`, `?range=15m|1h|24h|7d` or `?since=&until=` in the URL."""
    return _page(request, "hunt/index.html", {"ws_path": EVENTS_WS_PATH})


@require_GET
def rules_page(request: HttpRequest) -> HttpResponse:
    """The rules page (/rules/): ATT&CK coverage, the rules with their hits, one rule's text;
    `?technique=`, `?q=`, `?source=`, `?enabled=`, `?level=` and `?rule=` in the URL."""
    return _page(request, "rules/index.html", {})


@never_cache
@require_POST
def admin_live_ticket(request: HttpRequest) -> JsonResponse:
    """A one-time WebSocket ticket for a signed-in staff member (session + CSRF)."""
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return JsonResponse({"detail": "A signed-in staff session is required."}, status=403)
    if not may_subscribe(user):
        # Staff in no role group (SPEC "Roles on every path"): no live data either.
        return JsonResponse({"detail": "Permission denied: your account has no role."}, status=403)
    ticket, lifetime = issue_admin_live_ticket(user, client_ip=client_ip(request))
    return JsonResponse({"ticket": ticket, "expires_in": lifetime})
