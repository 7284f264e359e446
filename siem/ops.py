"""Operations endpoints: `/healthz`, `/readyz`, `/metrics` (docs/deployment.md).

- `/healthz`: the process answers. No authentication, no database, no Redis — a load balancer
  or systemd watchdog asks it every few seconds and it must stay cheap and truthful.
- `/readyz`: the database and Redis both answer (`SELECT 1`, `PING`, each bounded by a short
  timeout); 200 or 503 with what failed, so a load balancer sends no traffic to a process that
  cannot serve it.
- `/metrics`: Prometheus text. Only for `Authorization: Bearer <METRICS_TOKEN>` when that is
  set; otherwise only for loopback peers (Prometheus on the same host or an SSH tunnel) —
  nginx (deploy/nginx.conf) also refuses it from outside.
"""

from __future__ import annotations

import hmac
import logging
import time

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    from siem.redis import sync_client

    sync_client().ping()


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            # The class only: a connection error's text can hold host names and user names.
            logger.warning("Readiness: %s unavailable (%s)", name, type(exc).__name__)
            checks[name] = {"status": "unavailable", "error": type(exc).__name__}
        else:
            checks[name] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
    ready = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    return request.META.get("REMOTE_ADDR", "") in LOOPBACK


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return JsonResponse(
            {"detail": "Metrics are served to loopback or with METRICS_TOKEN only."}, status=403
        )
    from siem.metrics import exposition

    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
